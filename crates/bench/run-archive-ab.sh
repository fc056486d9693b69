#!/usr/bin/env bash
# The archive's cost at a fixed chat load, for judging a change to the archive's write path
# against the binary before it: server CPU per 100k delivered stanzas at RATE msg/s (100
# pairs, DURATION s), with the archive on and off, and the archive thread's own CPU, each
# binary in turn, REPEAT times (server on CPU 0, the generator on CPU 1, a fresh SQLite file
# per run).
#
#   crates/bench/run-archive-ab.sh LABEL_A BIN_A LABEL_B BIN_B [RATE DURATION REPEAT]
#
# EXTRA_A and EXTRA_B, when set, are TOML appended to each binary's config (e.g.
# $'[storage]\nsqlite_archive_log_rows = 65536\n'), to compare settings of one binary.
set -euo pipefail
cd "$(dirname "$0")/../.."
SCRIPT=archive-ab
. crates/bench/lib.sh
la=$1 ba=$2 lb=$3 bb=$4 rate=${5:-1000} duration=${6:-10} repeat=${7:-3}
cargo build --release -p parley-bench >/dev/null 2>&1
bench=$PWD/target/release/parley-bench
ulimit -n 20000
trap stop_started EXIT
port=17558

# Ticks (1/100 s) the process's thread named NAME has used so far; 0 when there is none.
thread_ticks() {
    local pid=$1 name=$2 total=0
    for t in /proc/"$pid"/task/*; do
        [ "$(cat "$t/comm" 2>/dev/null)" = "$name" ] || continue
        total=$(awk '{print $14 + $15}' "$t/stat")
    done
    echo "$total"
}

one() {
    local label=$1 parley=$2 archive=$3 extra=$4 dir
    dir=$(mktemp -d /tmp/parley-archive-ab.XXXXXX)
    single_parley_config "$dir" "$port"
    # Off: `enabled = false` goes into EXTRA's own [mam] table when it has one (TOML
    # refuses a table given twice).
    if [ "$archive" = off ]; then
        case $extra in
        *'[mam]'*) extra=${extra/\[mam\]/$'[mam]\nenabled = false'} ;;
        *) extra+=$'\n[mam]\nenabled = false\n' ;;
        esac
    fi
    printf '\n%s\n' "$extra" >>"$dir/parley.toml"
    import_users "$dir/parley.toml" 200
    taskset -c 0 "$parley" --config "$dir/parley.toml" serve >/dev/null 2>&1 &
    local pid=$!
    pids_to_stop+=("$pid")
    wait_port "$port"
    local before
    before=$(thread_ticks "$pid" parley-archive-)
    taskset -c 1 "$bench" run --json --target "127.0.0.1:$port" --server-pid "$pid" \
        chat --pairs 100 --rate "$rate" --duration "$duration" 2>/dev/null | tail -1 >"$dir/out.json"
    local after
    after=$(thread_ticks "$pid" parley-archive-)
    python3 - "$dir/out.json" "$label" "$archive" $((after - before)) <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
l = d['latency']
print('%-10s archive %-3s cpu s/100k %6.2f  archive thread %4s ticks  p50/p99 ms %.2f/%.2f  lost %d'
      % (sys.argv[2], sys.argv[3], d['server_cpu_s_per_100k'] or 0, sys.argv[4],
         l['p50_us'] / 1000, l['p99_us'] / 1000, d['lost']))
PY
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
}

for _ in $(seq 1 "$repeat"); do
    one "$la" "$ba" on "${EXTRA_A:-}"
    one "$lb" "$bb" on "${EXTRA_B:-}"
    one "$la" "$ba" off "${EXTRA_A:-}"
    one "$lb" "$bb" off "${EXTRA_B:-}"
done
