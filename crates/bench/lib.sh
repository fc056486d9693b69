# Shared by the run-*.sh benchmark scripts (sourced, not run): the reference Prosody
# launcher's place, the release build, a single Parley with the settings of
# `parley-bench compare`, its accounts, waiting for a port and stopping what a script
# started. Each script sets SCRIPT (its name, for messages) before sourcing.

# The reference launcher sits beside the repository (../shared) or beside its worktree.
PROSODY_LAUNCHER=${PROSODY_LAUNCHER:-../shared/reference/prosody/run-prosody.sh}
[ -x "$PROSODY_LAUNCHER" ] || PROSODY_LAUNCHER=../../shared/reference/prosody/run-prosody.sh

# Builds Parley and the load generator in release mode; sets $bench and $parley.
build_release() {
    cargo build --release -p parley -p parley-bench
    ulimit -n 20000
    bench=$PWD/target/release/parley-bench
    parley=$PWD/target/release/parley
}

# Processes to stop on exit (scripts append pids; `stop_started` kills them).
pids_to_stop=()
stop_started() {
    for p in "${pids_to_stop[@]}"; do kill "$p" 2>/dev/null || true; done
}

wait_port() {
    for _ in $(seq 1 150); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.2
    done
    echo "$SCRIPT: nothing listens on 127.0.0.1:$1" >&2
    return 1
}

# Writes DIR/parley.toml: one node on C2S-PORT with the settings of `parley-bench compare`
# (plain TCP allowed, STARTTLS offered with the self-signed certificate it makes,
# SCRAM-SHA-1 with 4096 iterations, no rate limits), data in DIR.
single_parley_config() {
    local dir=$1 port=$2
    cat >"$dir/parley.toml" <<EOT
[server]
hosts = ["localhost"]
data_dir = "$dir"

[c2s]
listen = ["127.0.0.1:$port"]
direct_tls = []
require_encryption = false

[sasl]
scram_iterations = 4096

[limits]
max_connections_per_ip = 10000000
connection_rate_per_ip = 10000000
connection_burst_per_ip = 10000000
max_sessions = 10000000
read_bytes_per_s = 1073741824
read_burst_bytes = 1073741824

[admin]
listen = "127.0.0.1:0"

[http]
listen = "127.0.0.1:0"

[log]
level = "warn"
EOT
}

# Creates user1..userCOUNT (password "pw") in the store of CONFIG.
import_users() {
    local config=$1 count=$2
    for i in $(seq 1 "$count"); do echo "user$i@localhost pw"; done \
        | "$parley" --config "$config" user import >/dev/null
}
