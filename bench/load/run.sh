#!/usr/bin/env bash
# Load test of the processing stage (issue 8, points 2 and 3): Mosquitto's own ceiling, the host
# (quality_filter + avg_quartier) and the Python baseline, at QoS 0 and 1, in one run on loopback.
# Prints a Markdown report on stdout (progress on stderr). See bench/load/README.md.
# Needs: mosquitto (Debian package), python3 with venv; PyPI for the first run.
# Usage: bash bench/load/run.sh [--quick] [DRIVER OPTIONS...]   (--help for the options)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
command="bash bench/load/run.sh${*:+ $*}"
cd "$root"

for tool in mosquitto python3; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing (apt-get install mosquitto python3-venv)" >&2; exit 1; }
done

# shellcheck source=bench/load/venv.sh
source "$here/venv.sh"

case " $* " in
    *" --help "*|*" -h "*) exec "$venv/bin/python" "$here/driver.py" --help ;;
esac

# The bench profile (optimised, shares its dependencies with `cargo bench`) puts the host in
# target/release/host.
echo "run.sh: building the host and the plugins" >&2
cargo build --profile bench --bin host --quiet
cargo xtask build-plugins >&2

exec "$venv/bin/python" "$here/driver.py" --command "$command" --json "$here/last-run.json" "$@"
