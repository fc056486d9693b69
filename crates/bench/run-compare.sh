#!/usr/bin/env bash
# Reproduces docs/benchmarks.md: installs the reference servers where missing (Debian/Ubuntu),
# builds Parley and the load generator in release mode, and runs every scenario against
# Parley, Prosody and ejabberd side by side (about 8 minutes on 2 cores).
# Extra arguments go to `parley-bench compare` (e.g. --servers parley,prosody --quick). To judge
# a change against the old code in the same run, add the old binary as a server:
#   --servers parley,parley-baseline,prosody --baseline-bin /path/to/old/parley
# The message archive's cost: add the same binary with the archive off, as the recorded run
# does:
#   --servers parley,parley-noarchive,prosody,prosody-mam,ejabberd
# (prosody-mam: the reference Prosody with mod_mam added, beside Parley's archive)
set -euo pipefail
cd "$(dirname "$0")/../.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v prosody >/dev/null 2>&1 || missing+=(prosody)
command -v ejabberdctl >/dev/null 2>&1 || missing+=(ejabberd)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
  echo "run-compare: installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
# The Debian packages start their services; the runner starts its own instances on other ports.
as_root systemctl stop prosody ejabberd >/dev/null 2>&1 || true

cargo build --release -p parley -p parley-bench
# Servers and the generator need many file descriptors.
ulimit -n 20000
exec target/release/parley-bench compare "$@"
