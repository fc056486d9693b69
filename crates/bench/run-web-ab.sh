#!/usr/bin/env bash
# One Parley binary's web listener figures, for judging a change to it against the binary
# before (run each in turn, twice, on the same machine): WebSocket RSS per idle session
# (1000 and 3000 sessions), WebSocket chat at 1000 msg/s, BOSH chat at full load (one
# message in flight per sender) and at 1000 msg/s; archive off, server on CPU 0, the
# generator on CPU 1.
#
#   crates/bench/run-web-ab.sh LABEL PARLEY_BIN
set -euo pipefail
label=$1 parley=$2
cd "$(dirname "$0")/../.."
cargo build --release -p parley-bench >/dev/null 2>&1
SCRIPT=web-ab
. crates/bench/lib.sh
bench=$PWD/target/release/parley-bench
ulimit -n 20000
dir=$(mktemp -d /tmp/parley-web.XXXXXX)
port=17556 http=17557
single_parley_config "$dir" "$port"
python3 - "$dir/parley.toml" $http <<'PY'
import sys
p,port=sys.argv[1],sys.argv[2]
s=open(p).read()
s=s.replace('[http]\nlisten = "127.0.0.1:0"','[http]\nlisten = "127.0.0.1:%s"\nbosh_sessions_per_ip_burst = 10000000\nbosh_sessions_per_ip_per_minute = 10000000\nbosh_max_sessions = 100000'%port)
s+='\n[mam]\nenabled = false\n'
open(p,'w').write(s)
PY
import_users "$dir/parley.toml" 3200
taskset -c 0 "$parley" --config "$dir/parley.toml" serve >/dev/null 2>&1 &
pid=$!
wait_port "$port"; wait_port "$http"
run() { taskset -c 1 "$bench" run --json --target 127.0.0.1:$http --server-pid $pid "$@" 2>/dev/null | tail -1; }
run --transport ws idle --sessions 1000,3000 | python3 -c "import json,sys; d=json.load(sys.stdin); print('$label ws idle KiB/session', round(d['rss_per_session_kib'],1))"
run --transport ws chat --pairs 100 --rate 1000 --duration 5 | python3 -c "import json,sys; d=json.load(sys.stdin); l=d['latency']; print('$label ws 1000/s cpu s/100k', round(d['server_cpu_s_per_100k'] or 0,2), 'p50/p99 ms', l['p50_us']/1000, l['p99_us']/1000, 'lost', d['lost'])"
run --transport bosh chat --pairs 100 --window 1 --duration 5 | python3 -c "import json,sys; d=json.load(sys.stdin); print('$label bosh full req/s', round(d['http_requests_per_s'] or 0), 'delivered/s', round(d['delivered_per_s']), 'cpu s/100k', round(d['server_cpu_s_per_100k'] or 0,2))"
run --transport bosh chat --pairs 100 --rate 1000 --duration 5 | python3 -c "import json,sys; d=json.load(sys.stdin); l=d['latency']; print('$label bosh 1000/s cpu s/100k', round(d['server_cpu_s_per_100k'] or 0,2), 'p50/p99 ms', l['p50_us']/1000, l['p99_us']/1000, 'lost', d['lost'])"
kill $pid; wait $pid 2>/dev/null || true
rm -rf "$dir"
