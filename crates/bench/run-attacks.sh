#!/usr/bin/env bash
# Reproduces the attack table of docs/security.md: runs every attack of `parley-bench attack`
# (a fresh single-node Parley per attack, default limits, loopback only) against the Parley
# of an older commit ("before", default: the last commit before issue 10's hardening) and
# against this tree ("after"), then prints the side-by-side markdown table.
#   crates/bench/run-attacks.sh [BEFORE_REV]
set -euo pipefail
cd "$(dirname "$0")/../.."
before_rev=${1:-d5b2d65}
root=$PWD
out=target/attack
mkdir -p "$out"
ulimit -n 20000

# The older Parley, built from a detached worktree into the same target dir (its external
# crates are shared), then copied aside before this tree's build replaces the binary.
if [ ! -x "$out/parley-$before_rev" ]; then
  rm -rf "$out/src" && git worktree prune
  git worktree add --detach "$out/src" "$before_rev"
  (cd "$out/src" && CARGO_TARGET_DIR="$root/target" cargo build --release -p parley)
  cp target/release/parley "$out/parley-$before_rev"
  git worktree remove --force "$out/src"
fi
cargo build --release -p parley -p parley-bench
bench=target/release/parley-bench
"$bench" attack --parley-bin "$out/parley-$before_rev" --out "$out/before.json" "${@:2}"
"$bench" attack --parley-bin target/release/parley --out "$out/after.json" "${@:2}"
"$bench" attack-report "$out/before.json" "$out/after.json" | tee "$out/report.md"
