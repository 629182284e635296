#!/usr/bin/env bash
# Run every fuzz target for SECONDS (default 600) each, two at a time, with
# the corpus kept in fuzz/corpus/<target>. cargo fuzz needs nightly
# features; RUSTC_BOOTSTRAP lets the stable toolchain provide them.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-600}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
run() { cargo fuzz run "$1" "corpus/$1" -O -- -max_total_time="$secs" -rss_limit_mb=2048 >"target/fuzz-$1.log" 2>&1; echo "$1: exit $? ($(grep -c '' "target/fuzz-$1.log") log lines)"; }
mkdir -p target
run csr & run pem & wait
run settings & run kubeconfig & wait
for t in csr pem settings kubeconfig; do
  tail -n 3 "target/fuzz-$t.log" | sed "s/^/$t: /"
done
