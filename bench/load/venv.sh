# Sourced by the benches that run the Python baseline: makes bench/load/.venv with the pinned
# requirements (paho-mqtt, shapely) and sets $venv. Needs python3 with venv; PyPI the first time.
venv="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/.venv"
requirements="$(dirname "$venv")/requirements.txt"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! cmp -s "$requirements" "$venv/.requirements.txt"; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$venv/.requirements.txt"
fi
