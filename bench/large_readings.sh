#!/usr/bin/env bash
# Large readings behind a slow plugin: the host's peak memory, and that it loses and repeats
# nothing (see bench/large_readings.py). Results in BENCHMARKS.md.
# Needs: mosquitto (Debian package), python3 with venv (PyPI the first time, for paho-mqtt).
# Usage: bash bench/large_readings.sh [OPTIONS of bench/large_readings.py]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/load/venv.sh
source bench/load/venv.sh
cargo xtask build-plugins >/dev/null
# The bench profile shares its dependencies with `cargo bench`.
cargo build --profile bench --bin host --quiet
"$venv/bin/python" bench/large_readings.py target/release/host "$@"
