"""The processing alone, no broker: the Python baseline's avg_quartier against `host plugin test`
running avg_quartier.wasm, on the same recorded readings.

Through Mosquitto, neither can go faster than the broker delivers (see bench/load): this
measures what each costs per reading when the input is already there. The readings come from
the weather model (`host plugin test weather.wasm`, the 77 stations); the Python side runs the
very class `bench/load/python_baseline.py` runs, fed the same lines, its publications kept in
a list instead of sent. The host side is one `host plugin test` process: reading the file,
decoding, the supervised WASM calls in batches of 100, encoding every output message.

Usage: bench/load/.venv/bin/python bench/offline.py HOST_BINARY [HOURS]
"""
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "load"))
from python_baseline import AvgQuartier, Quartiers  # noqa: E402

PLUGINS = os.path.join(ROOT, "plugins/target/wasm32-wasip2/release")
WINDOW_S, LATENESS_S = 300, 60


class Message:
    """What paho hands `on_message`: the payload, as bytes."""

    __slots__ = ("payload",)

    def __init__(self, payload):
        self.payload = payload


class KeptPublications:
    """Stands for the paho client: keeps what the baseline would publish."""

    def __init__(self):
        self.sent = []

    def publish(self, topic, body, qos=0):
        self.sent.append((topic, body))


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def record_readings(host, path, hours):
    """The weather model's readings over `hours` hours, one tick a minute, as JSON lines."""
    end = f"2026-11-29T{hours:02d}:00:00Z" if hours < 24 else "2026-11-30T00:00:00Z"
    with open(path, "w") as out:
        subprocess.run([host, "plugin", "test", os.path.join(PLUGINS, "weather.wasm"), "--stations",
                        os.path.join(ROOT, "data/stations/meteo.json"), "--from", "2026-11-29T00:00:00Z",
                        "--to", end, "--interval-s", "60"], stdout=out, check=True)
    with open(path, "rb") as f:
        return [line.rstrip(b"\n") for line in f]


def run_python(lines):
    client = KeptPublications()
    app = AvgQuartier(client, Quartiers(os.path.join(ROOT, "data/geo/quartiers.geojson")), "toulouse", 0,
                      WINDOW_S, LATENESS_S, "quartiers")
    messages = [Message(line) for line in lines]
    wall, cpu = time.perf_counter(), time.process_time()
    for message in messages:
        app.on_message(None, None, message)
    with app.lock:
        app.advance(None)
    return time.perf_counter() - wall, time.process_time() - cpu, app.processed, len(client.sent)


def run_host(host, readings_path, work):
    config = os.path.join(work, "avg_quartier.toml")
    with open(config, "w") as f:
        f.write(f"window_s = {WINDOW_S}\nlateness_s = {LATENESS_S}\n")
    command = [host, "plugin", "test", os.path.join(PLUGINS, "avg_quartier.wasm"), "--config", config,
               "--input", readings_path]
    cpu = children_cpu()
    wall = time.perf_counter()
    output = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True).stdout
    return time.perf_counter() - wall, children_cpu() - cpu, output.count(b"\n")


def main():
    host = sys.argv[1]
    hours = int(sys.argv[2]) if len(sys.argv) > 2 else 12
    work = tempfile.mkdtemp(prefix="garonne-offline-")
    readings_path = os.path.join(work, "readings.jsonl")
    lines = record_readings(host, readings_path, hours)
    n = len(lines)
    # Start-up alone (loading the compiled component from the cache, init), to tell it apart.
    one = os.path.join(work, "one.jsonl")
    with open(one, "wb") as f:
        f.write(lines[0] + b"\n")
    run_host(host, one, work)  # fills the compiled-code cache
    start_wall, start_cpu, _ = run_host(host, one, work)
    host_wall, host_cpu, host_out = run_host(host, readings_path, work)
    py_wall, py_cpu, py_in, py_out = run_python(lines)
    assert py_in == n, f"the Python baseline refused {n - py_in} of {n} readings"
    # The host closes every window at the end, the script only those its watermark passed.
    assert host_out >= py_out > 0, f"the host published {host_out} messages, the script {py_out}"
    print(f"{n:,} readings ({hours} h of the 77 stations, one tick a minute), windows of {WINDOW_S} s, "
          f"lateness {LATENESS_S} s")
    print("| | readings/s (wall) | CPU per reading | messages out |")
    print("|---|---|---|---|")
    print(f"| Python baseline (json + shapely, in process) | {n / py_wall:,.0f} | {py_cpu / n * 1e6:.2f} µs | "
          f"{py_out:,} |")
    print(f"| host plugin test avg_quartier.wasm (whole process) | {n / host_wall:,.0f} | "
          f"{host_cpu / n * 1e6:.2f} µs | {host_out:,} |")
    print(f"| the same without its start-up ({start_wall * 1000:.0f} ms) | {n / (host_wall - start_wall):,.0f} | "
          f"{(host_cpu - start_cpu) / n * 1e6:.2f} µs | |")
    print(f"host / Python, readings per second: {py_wall / host_wall:.1f}x whole process, "
          f"{py_wall / (host_wall - start_wall):.1f}x without start-up; CPU per reading "
          f"{py_cpu / (host_cpu - start_cpu):.1f}x")


if __name__ == "__main__":
    main()
