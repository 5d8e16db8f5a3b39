#!/usr/bin/env bash
# The whole chain, fleet to InfluxDB, with the count of points checked in the database.
# Needs: apt-get install mosquitto influxdb. Results go in BENCHMARKS.md.
# Usage: bash bench/chain.sh [--fleet N] [--hours H] [--chain broker|process]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --profile bench --bin host --quiet
python3 bench/chain.py target/release/host "$@"
