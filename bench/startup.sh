#!/usr/bin/env bash
# Start-up cost of `host run`: compiling a plugin with an empty cache, against loading it from
# the on-disk cache. Prints medians and their ratio. Results go in BENCHMARKS.md.
# Usage: bash bench/startup.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo xtask build-plugins
# The bench profile shares its dependencies with `cargo bench`.
cargo build --profile bench --bin host --quiet
python3 bench/startup.py target/release/host plugins/target/wasm32-wasip2/release/rolling_stats.wasm "${1:-7}"
