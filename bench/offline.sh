#!/usr/bin/env bash
# The processing alone, no broker: the Python baseline's avg_quartier against `host plugin test`
# running avg_quartier.wasm on the same readings (see bench/offline.py). Results in BENCHMARKS.md.
# Needs: python3 with venv (PyPI the first time, for shapely).
# Usage: bash bench/offline.sh [HOURS of readings, default 12]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/load/venv.sh
source bench/load/venv.sh
cargo xtask build-plugins >/dev/null
# The bench profile shares its dependencies with `cargo bench`.
cargo build --profile bench --bin host --quiet
"$venv/bin/python" bench/offline.py target/release/host "${1:-12}"
