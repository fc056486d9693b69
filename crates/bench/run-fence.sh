#!/usr/bin/env bash
# The cost of the RFC 6120 §10.1 fence (docs/routing.md): presence broadcast to CONTACTS
# contacts, ROUNDS rounds, with and without the fence, on one node (server on CPU 0, the
# generator on CPU 1) and on a 3-node cluster (cluster/local, STARTTLS as it requires, CPU
# summed over the three nodes), alternating the two builds REPEAT times.
#
#   crates/bench/run-fence.sh WITH_BIN WITHOUT_BIN [CONTACTS ROUNDS REPEAT]
#
# WITHOUT_BIN is the same tree with the session's fence turned off (an early `return;` at the
# top of `fn fence` in crates/session/src/stanzas.rs). Prints one line per run.
set -euo pipefail
cd "$(dirname "$0")/../.."
SCRIPT=run-fence
. crates/bench/lib.sh
with=$1 without=$2 contacts=${3:-1000} rounds=${4:-30} repeat=${5:-2}
cargo build --release -p parley-bench
ulimit -n 20000
bench=$PWD/target/release/parley-bench
trap 'stop_started; cluster/local down --purge >/dev/null 2>&1 || true' EXIT

summary() {
    python3 -c "import json,sys
d = json.loads(sys.stdin.readlines()[-1])
print('$1', '$2', 'all contacts have it p50 %.2f ms, max %.2f ms; server CPU %.2f ms/round'
      % (d['contacts_all_ms_p50'], d['contacts_all_ms_max'], d['server_cpu_ms_per_round']))"
}

one_node() {
    local label=$1 parley=$2 dir port=17555
    dir=$(mktemp -d /tmp/parley-fence.XXXXXX)
    single_parley_config "$dir" "$port"
    import_users "$dir/parley.toml" $((contacts + 1))
    "$bench" provision --storage-url "sqlite://$dir/parley.db" roster --contacts "$contacts" >/dev/null 2>&1
    taskset -c 0 "$parley" --config "$dir/parley.toml" serve >/dev/null 2>&1 &
    local pid=$!
    pids_to_stop+=("$pid")
    wait_port "$port"
    taskset -c 1 "$bench" run --json --server-pid "$pid" --target "127.0.0.1:$port" \
        presence --contacts "$contacts" --rounds "$rounds" 2>/dev/null | summary "one node" "$label"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
}

three_nodes() {
    local label=$1 parley=$2 url=postgres://postgres@127.0.0.1:15432/parley
    cluster/local down --purge >/dev/null 2>&1 || true
    PARLEY_BIN=$parley cluster/local up 3 >/dev/null
    "$bench" provision --storage-url "$url" accounts --count $((contacts + 1)) >/dev/null 2>&1
    "$bench" provision --storage-url "$url" roster --contacts "$contacts" >/dev/null 2>&1
    local p1 p2 p3
    p1=$(cat cluster/.local/node1/parley.pid) p2=$(cat cluster/.local/node2/parley.pid)
    p3=$(cat cluster/.local/node3/parley.pid)
    "$bench" run --json --starttls --server-pid "$p1" --also-server-pid "$p2,$p3" \
        --target 127.0.0.1:16001,127.0.0.1:16002,127.0.0.1:16003 \
        presence --contacts "$contacts" --rounds "$rounds" 2>/dev/null | summary "3 nodes" "$label"
    cluster/local down --purge >/dev/null 2>&1 || true
}

for _ in $(seq 1 "$repeat"); do
    one_node "with the fence" "$with"
    one_node "without" "$without"
done
for _ in $(seq 1 "$repeat"); do
    three_nodes "with the fence" "$with"
    three_nodes "without" "$without"
done
