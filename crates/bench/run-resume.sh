#!/usr/bin/env bash
# Reproduces the "Stream resumption (XEP-0198)" section of docs/benchmarks.md: builds Parley
# and the load generator in release mode, starts, side by side in one session, a single
# Parley node, the reference Prosody 0.12 (mod_smacks) and a 2-node local cluster
# (cluster/local up 2), and runs `parley-bench run resume` against each: Parley and Prosody
# resuming on the same server, the cluster resuming on the node the session was on (A → A)
# and on the other node (A → B, node ports directly, not through HAProxy). Plain TCP and
# STARTTLS for the single servers (the cluster requires TLS), 1 and 10 clients at once.
# Servers are pinned to CPU 0, the generator to CPU 1, as in `parley-bench compare`.
# Writes docs/benchmarks/resume.md and replaces the section at the end of docs/benchmarks.md.
# Extra arguments go to every `parley-bench run resume` (e.g. --iterations 50).
set -euo pipefail
cd "$(dirname "$0")/../.."

ITER_ARGS=("$@")
WORK=${WORK:-/tmp/parley-resume}
OUT=target/resume-bench
PARLEY_PORT=17222
PROSODY_PORT=17322
USERS=20
SCRIPT=run-resume
# shellcheck source=crates/bench/lib.sh
source crates/bench/lib.sh

build_release
rm -rf "$WORK" "$OUT"
mkdir -p "$WORK/parley" "$WORK/prosody/certs" "$OUT"

cleanup() {
    stop_started
    cluster/local down >/dev/null 2>&1 || true
}
trap cleanup EXIT

# Parley, one node: the settings of `parley-bench compare` (plain TCP allowed, STARTTLS
# offered with the self-signed certificate it makes, SCRAM-SHA-1 with 4096 iterations).
single_parley_config "$WORK/parley" $PARLEY_PORT
import_users "$WORK/parley/parley.toml" $USERS
taskset -c 0 "$parley" --config "$WORK/parley/parley.toml" serve >"$WORK/parley/log" 2>&1 &
parley_pid=$!
pids_to_stop+=("$parley_pid")

# Prosody: the reference launcher and config (mod_smacks enabled, its defaults), with a
# self-signed certificate so that it offers STARTTLS too: ECDSA P-256, the kind Parley
# makes for itself, so that both TLS handshakes cost the same kind of signature.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 -subj /CN=localhost \
    -keyout "$WORK/prosody/certs/localhost.key" -out "$WORK/prosody/certs/localhost.crt" 2>/dev/null
PROSODY_DIR="$WORK/prosody" PROSODY_C2S=$PROSODY_PORT PROSODY_HTTP=17380 \
    "$PROSODY_LAUNCHER" $USERS >/dev/null
for _ in $(seq 1 50); do [ -s "$WORK/prosody/prosody.pid" ] && break; sleep 0.2; done
prosody_pid=$(cat "$WORK/prosody/prosody.pid")
pids_to_stop+=("$prosody_pid")
taskset -a -pc 0 "$prosody_pid" >/dev/null

# The cluster: two nodes, etcd, PostgreSQL, HAProxy (not used here).
cluster/local down --purge >/dev/null 2>&1 || true
cluster/local up 2
"$bench" provision --storage-url postgres://postgres@127.0.0.1:15432/parley accounts --count $USERS
node1=$(cat cluster/.local/node1/parley.pid)
node2=$(cat cluster/.local/node2/parley.pid)
taskset -a -pc 0 "$node1" >/dev/null
taskset -a -pc 0 "$node2" >/dev/null

# One row: LABEL PID TARGET RESUME-TARGET CLIENTS [generator options...]; RESUME_ARGS
# (an array) adds options of the scenario itself.
RESUME_ARGS=()
run() {
    local label=$1 pid=$2 target=$3 resume_target=$4 c=$5
    shift 5
    echo "== $label, $c client(s)" >&2
    taskset -c 1 "$bench" run --json --server-pid "$pid" --target "$target" "$@" \
        resume --concurrency "$c" --resume-target "$resume_target" \
        "${RESUME_ARGS[@]}" "${ITER_ARGS[@]}" | tail -n 1 >"$OUT/$label-c$c.json"
    rows+=("$(row_name "$label")=$OUT/$label-c$c.json")
}
row_name() {
    case $1 in
        parley-plain) echo "Parley, same node, plain TCP" ;;
        prosody-plain) echo "Prosody, same server, plain TCP" ;;
        parley-tls) echo "Parley, same node, STARTTLS" ;;
        prosody-tls) echo "Prosody, same server, STARTTLS" ;;
        cluster-same) echo "Parley cluster, same node (A → A), STARTTLS" ;;
        cluster-other) echo "Parley cluster, other node (A → B), STARTTLS" ;;
        cluster-other-hold20) echo "Parley cluster, other node (A → B), STARTTLS, cut 20 ms after the messages" ;;
    esac
}
rows=()
for c in 1 10; do
    run parley-plain "$parley_pid" 127.0.0.1:$PARLEY_PORT 127.0.0.1:$PARLEY_PORT $c
    run prosody-plain "$prosody_pid" 127.0.0.1:$PROSODY_PORT 127.0.0.1:$PROSODY_PORT $c
    run parley-tls "$parley_pid" 127.0.0.1:$PARLEY_PORT 127.0.0.1:$PARLEY_PORT $c --starttls
    run prosody-tls "$prosody_pid" 127.0.0.1:$PROSODY_PORT 127.0.0.1:$PROSODY_PORT $c --starttls
    # Server CPU figures of the cluster rows are node A's only.
    run cluster-same "$node1" 127.0.0.1:16001 127.0.0.1:16001 $c --starttls
    run cluster-other "$node1" 127.0.0.1:16001 127.0.0.1:16002 $c --starttls
done
# Resumes on the other node fail now and then when the cut comes right after the messages
# (see the notes); the same run with a 20 ms pause before the cut shows the difference.
RESUME_ARGS=(--hold-ms 20)
run cluster-other-hold20 "$node1" 127.0.0.1:16001 127.0.0.1:16002 10 --starttls
RESUME_ARGS=()

cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
mem=$(awk '/MemTotal/ { printf "%d", $2 / 1048576 }' /proc/meminfo)
{
    echo "## Stream resumption (XEP-0198)"
    echo
    echo "Generated by \`crates/bench/run-resume.sh\` on $(date -u +%Y-%m-%d) in one session: 2 × $cpu, $mem GiB RAM, Linux $(uname -r). Servers on CPU 0, the generator on CPU 1 (both cluster nodes share CPU 0; etcd and PostgreSQL unpinned). Parley $(git rev-parse --short HEAD) release build with the settings of the comparison above; Prosody $(dpkg-query -W -f '${Version}' prosody 2>/dev/null || echo 0.12) with the reference config (mod_smacks, its defaults); the cluster from \`cluster/local up 2\` (TLS required there, so STARTTLS)."
    echo
    echo "Each iteration: log in (SCRAM-SHA-1), bind, initial presence, \`<enable resume='true'/>\`, send itself 5 messages and receive them without acking, cut the TCP connection (RST, no stream close), reconnect, authenticate, \`<resume h='0'/>\`. 200 iterations per row; with 10 clients each client is its own account. \"Other node\": logged in on node A's c2s port (16001), resumed on node B's (16002), no HAProxy in between."
    echo
    echo "Command: \`crates/bench/run-resume.sh\`; one row is, e.g., \`target/release/parley-bench run --starttls --target 127.0.0.1:16001 resume --concurrency 10 --resume-target 127.0.0.1:16002\`."
    echo
    "$bench" resume-report "${rows[@]}"
    echo
    cat crates/bench/resume-notes.md
} >docs/benchmarks/resume.md
# The section comes last but for the CSI and group chat ones (crates/bench/run-csi.sh,
# run-muc.sh), as parley-bench compare appends them.
sed -i '/^## Stream resumption (XEP-0198)/,$d' docs/benchmarks.md
# Trailing blank lines off, so that the section follows after exactly one.
sed -i -e :a -e '/^\n*$/{$d;N;ba' -e '}' docs/benchmarks.md
printf '\n' >>docs/benchmarks.md
cat docs/benchmarks/resume.md >>docs/benchmarks.md
for later in csi muc; do
    if [ -f "docs/benchmarks/$later.md" ]; then
        printf '\n' >>docs/benchmarks.md
        cat "docs/benchmarks/$later.md" >>docs/benchmarks.md
    fi
done
cat docs/benchmarks/resume.md
