#!/usr/bin/env bash
# Reproduces the scale figures of docs/scaling.md (issue 16): builds Parley and the load
# generator in release mode, then with cluster/local (etcd, PostgreSQL, Parley nodes on
# loopback; HAProxy is started but not used: the generators dial each node's own port):
#
#  1. fill: 3 nodes, PER_NODE sessions each (default 19,000: a process may open at most
#     20,000 files, node and generator alike), opened node after node by PROCS generator
#     processes per node, each from its own 127.0.x.y source addresses
#     (`parley-bench scale fill`, which starts `parley-bench scale hold` children), with
#     a snapshot of etcd (/metrics, the session keys and their bytes) and of every node
#     (/metrics, CPU and RSS from /proc) before, after each node and after the release;
#     with every session held, a fourth node is started (`run-scale.sh join-probe`): can
#     it list the registry and become ready?
#  2. login rate against the number of nodes: the same generator (`run login`, one
#     process) against 1, 2 and 3 nodes, LOGINS logins each;
#  3. the lease burst: on one node, BURST keys (41-byte names, like session keys) written
#     under one lease below the cluster prefix, then the lease revoked, as etcd does for a
#     node that dies: one revision deleting them all, one watch response to every node;
#     whether the node's registry watch takes it (python3 for etcd's JSON gateway);
#
# and writes docs/benchmarks/scale.md (`parley-bench scale report`). Raw JSON goes to
# target/scale/. Stops the cluster afterwards, also on failure.
#
#   PER_NODE=19000 PROCS=2 LOGINS=3000 NODES=3 crates/bench/run-scale.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

PER_NODE=${PER_NODE:-19000}
PROCS=${PROCS:-2}
LOGINS=${LOGINS:-3000}
BURST=${BURST:-200000}
NODES=${NODES:-3}
out=target/scale
bench=${BENCH:-target/release/parley-bench}
# cluster/local starts this Parley binary.
export PARLEY_BIN=${PARLEY_BIN:-$PWD/target/release/parley}
db=postgres://postgres@127.0.0.1:15432/parley

# While the cluster is full: start one more node (NODES+1) from the last node's config and
# see whether it lists the registry and becomes ready (the `--while-full` probe).
join_probe() {
  local k=$((NODES + 1)) src="cluster/.local/node$NODES" bin="$PARLEY_BIN" dir pid code=""
  dir="$PWD/cluster/.local/node$k"
  mkdir -p "$dir"
  sed -e "s/node$NODES/node$k/g" -e "s/16\([0-4]\)0$NODES/16\10$k/g" "$src/parley.toml" >"$dir/parley.toml"
  (cd "$dir" && exec setsid "$bin" --config "$dir/parley.toml" serve \
    >"$dir/parley.log" 2>&1 </dev/null) &
  pid=$!
  echo "$pid" >"$dir/parley.pid"
  for _ in $(seq 60); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:1620$k/ready" || true)
    [ "$code" = 200 ] && break
    sleep 0.5
  done
  echo "node$k /ready after at most 30 s: ${code:-no answer}"
  curl -s "http://127.0.0.1:1620$k/metrics" | grep -E '^parley_registry_sessions' || true
  grep -iE 'too large|listing again|error' "$dir/parley.log" | sort | uniq -c | sort -rn | head -5 | cut -c1-400 || true
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -rf "$dir"
}
if [ "${1:-}" = join-probe ]; then join_probe; exit 0; fi

# N keys under one lease, then the lease revoked (step 3).
lease_burst() {
  python3 - "$1" <<'PY'
import base64, json, sys, urllib.request
n = int(sys.argv[1])
b = lambda s: base64.b64encode(s.encode()).decode()
def post(path, body):
    req = urllib.request.Request("http://127.0.0.1:23790" + path, json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=30).read())
lease = post("/v3/lease/grant", {"TTL": 3600})["ID"]
for start in range(0, n, 128):  # etcd's default --max-txn-ops
    post("/v3/kv/txn", {"success": [{"requestPut": {
        "key": b("/parley/probe/%027d" % i), "value": b("x" * 110), "lease": lease}}
        for i in range(start, min(n, start + 128))]})
revision = int(post("/v3/lease/revoke", {"ID": lease})["header"]["revision"])
print("%d keys under one lease, revoked" % n)
# The revision the revoke made, for `applied_revision` (on stderr: not part of the report).
print(revision, file=sys.stderr)
PY
}

# Waits (up to 60 s) until node K's registry cache holds etcd revision REV
# (`parley_registry_revision`), instead of guessing how long the watch takes.
applied_revision() {
  local k=$1 rev=$2 at
  for _ in $(seq 600); do
    at=$(curl -s "http://127.0.0.1:1620$k/metrics" | awk '/^parley_registry_revision/ { print $2 }')
    [ -n "$at" ] && [ "$at" -ge "$rev" ] && return 0
    sleep 0.1
  done
  echo "run-scale.sh: node$k did not reach etcd revision $rev (at ${at:-?})" >&2
  return 1
}

# BUILD=0 skips the build (BENCH and PARLEY_BIN then name the binaries to use).
[ "${BUILD:-1}" = 0 ] || cargo build --release -p parley -p parley-bench
# Every node and generator inherits this: 19,000 sessions plus the node's own files.
ulimit -n 20000
mkdir -p "$out" docs/benchmarks
cluster/local down --purge >/dev/null 2>&1 || true
trap 'cluster/local down >/dev/null 2>&1 || true' EXIT

# The c2s and admin addresses of nodes 1..N, comma-separated.
addrs() { local base=$1 n=$2 k s=""; for ((k = 1; k <= n; k++)); do s+="${s:+,}127.0.0.1:$((base + k))"; done; echo "$s"; }
pids() { local k s=""; for ((k = 1; k <= $1; k++)); do s+="${s:+,}$(tr -dc 0-9 <"cluster/.local/node$k/parley.pid")"; done; echo "$s"; }

# 1. The fill.
cluster/local up "$NODES"
"$bench" provision --storage-url "$db" accounts --count $((NODES * PER_NODE))
"$bench" scale fill --starttls \
  --targets "$(addrs 16000 "$NODES")" --admins "$(addrs 16200 "$NODES")" \
  --pids "$(pids "$NODES")" --etcd-pid "$(tr -dc 0-9 <cluster/.local/etcd/etcd.pid)" \
  --per-node "$PER_NODE" --procs-per-node "$PROCS" \
  --while-full "NODES=$NODES crates/bench/run-scale.sh join-probe" >"$out/fill.json"
cluster/local down --purge

# 2. Login rate against the number of nodes, one generator process; with the busy cores of
# the whole machine during each run (/proc/stat: all jiffies but idle and iowait).
cpu_busy_total() { awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat; }
logins=()
for n in 1 2 3; do
  cluster/local up "$n"
  "$bench" provision --storage-url "$db" accounts --count "$LOGINS"
  read -r b0 t0 < <(cpu_busy_total)
  "$bench" run --json --starttls --target "$(addrs 16000 "$n")" \
    login --count "$LOGINS" --concurrency 50 >"$out/login-$n.raw.json"
  read -r b1 t1 < <(cpu_busy_total)
  jq --argjson busy "$(awk -v b=$((b1 - b0)) -v t=$((t1 - t0)) -v c="$(nproc)" 'BEGIN { printf "%.3f", t ? b / t * c : 0 }')" \
    '. + {machine_busy_cores: $busy}' "$out/login-$n.raw.json" >"$out/login-$n.json"
  logins+=("$n=$out/login-$n.json")
  cluster/local down --purge
done

# 3. The lease burst.
cluster/local up 1
lease_burst "$BURST" >"$out/burst.txt" 2>"$out/burst.rev"
applied_revision 1 "$(cat "$out/burst.rev")" || true
grep -oE 'registry watch interrupted.*' cluster/.local/node1/parley.log | sed 's/\x1b\[[0-9;]*m//g' | sort | uniq -c >>"$out/burst.txt" || true
cluster/local down --purge

"$bench" scale report --fill "$out/fill.json" --logins "$(IFS=,; echo "${logins[*]}")" \
  >docs/benchmarks/scale.md
{
  printf '\nOne node, one revision deleting the keys of a revoked lease (`lease_burst` in the script):\n\n```\n'
  cat "$out/burst.txt"
  printf '```\n'
} >>docs/benchmarks/scale.md
cat docs/benchmarks/scale.md
