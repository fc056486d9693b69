#!/usr/bin/env bash
# Reproduces the "Group chat (XEP-0045)" section of docs/benchmarks.md (issue 15): builds
# Parley and the load generator in release mode and runs `parley-bench muc`, which starts
# in turn a 3-node Parley cluster (etcd and PostgreSQL on loopback), the same cluster with
# the room archive off, and the reference Prosody 0.12 with mod_muc (Component
# "conference.localhost" "muc", its defaults), and
# against each: 1000 users log in (spread evenly over the nodes), join one room, and one of
# them talks at 1, 5, 10 and 50 messages a second; fan-out latency to the last occupant,
# server CPU per message, RSS per occupant. Servers on CPU 0, the generator on CPU 1, as in
# `parley-bench compare`. Writes docs/benchmarks/muc.md (with crates/bench/muc-notes.md)
# and replaces the section at the end of docs/benchmarks.md. About 10 minutes on 2 cores.
# Extra arguments go to `parley-bench muc` (e.g. --users 200 --rates 1,10 --duration 5, or
# --servers parley,prosody; --parley-bin and --parley-revision to measure another build).
# Runs as root (Prosody runs as its own user, PostgreSQL as postgres).
set -euo pipefail
cd "$(dirname "$0")/../.."

SCRIPT=run-muc
# shellcheck source=crates/bench/lib.sh
source crates/bench/lib.sh

for tool in prosody etcd taskset setpriv; do
    command -v "$tool" >/dev/null || { echo "$SCRIPT: $tool is missing" >&2; exit 1; }
done
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
    || { echo "$SCRIPT: PostgreSQL is missing" >&2; exit 1; }

build_release
echo "$SCRIPT: load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$bench" muc --prosody-launcher "$PROSODY_LAUNCHER" --out docs/benchmarks/muc.md "$@" >/dev/null

# The section is the last of docs/benchmarks.md (parley-bench compare appends it last too).
sed -i '/^## Group chat (XEP-0045)/,$d' docs/benchmarks.md
# Trailing blank lines off, so that the section follows after exactly one.
sed -i -e :a -e '/^\n*$/{$d;N;ba' -e '}' docs/benchmarks.md
printf '\n' >>docs/benchmarks.md
cat docs/benchmarks/muc.md >>docs/benchmarks.md
cat docs/benchmarks/muc.md
