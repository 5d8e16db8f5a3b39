#!/usr/bin/env bash
# Sustained points per second from Mosquitto through `host historian` into InfluxDB 1.x, against
# what InfluxDB ingests when the same lines are posted to it directly, in the same run.
# Needs: apt-get install mosquitto mosquitto-clients influxdb. Results go in BENCHMARKS.md.
# Usage: bash bench/historian.sh [POINTS] [BATCH_SIZE] [--pack=K] [HISTORIAN FLAGS...]
# (--pack=K: K readings per MQTT message, a JSON array, as a gateway sends them; default 1)
set -euo pipefail
cd "$(dirname "$0")/.."
# The bench profile shares its dependencies with `cargo bench`.
cargo build --profile bench --bin host --quiet
python3 bench/historian.py target/release/host "${1:-200000}" "${2:-5000}" "${@:3}"
