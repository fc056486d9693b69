#!/usr/bin/env bash
# Reproduces the cluster figures of docs/benchmarks.md: builds Parley and the load generator
# in release mode, starts a 3-node cluster on loopback (cluster/local: etcd, PostgreSQL,
# three nodes, HAProxy), provisions accounts into its database, and runs the `cluster`
# scenario: same-node vs cross-node chat latency at one rate, etcd requests per login in a
# login storm, registry cache bytes per entry. Writes docs/benchmarks/cluster.md, which
# crates/bench/run-compare.sh includes in docs/benchmarks.md. Stops the cluster afterwards.
# Extra arguments go to `parley-bench run cluster` (e.g. --rate 1000 --hold 2000).
set -euo pipefail
cd "$(dirname "$0")/../.."

cargo build --release -p parley -p parley-bench
ulimit -n 20000
cluster/local down --purge >/dev/null 2>&1 || true
cluster/local up 3
trap 'cluster/local down' EXIT
bench=target/release/parley-bench
"$bench" provision --storage-url postgres://postgres@127.0.0.1:15432/parley \
  accounts --count 6000
"$bench" run --json --starttls \
  --target 127.0.0.1:16001,127.0.0.1:16002,127.0.0.1:16003 \
  cluster --admin 127.0.0.1:16201,127.0.0.1:16202,127.0.0.1:16203 \
  --report docs/benchmarks/cluster.md "$@" \
  | tee target/cluster-bench.json
