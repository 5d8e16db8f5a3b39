"""Large readings behind a slow plugin: what the host holds, and that it loses and repeats nothing.

Starts Mosquitto on a free loopback port in a temp folder (`max_queued_messages 1000000`, so
that the broker holds what the host does not read yet) and `host run` with one plugin, by
default the JavaScript rolling_median, slower than the readings come. Publishes N readings,
each with a tag of TAG bytes, at QoS 1 as fast as paho can, then waits until the host's status
(`garonne/status/...`, every 10 s) says it took them all in. Prints the host's peak RSS
(VmHWM, from the moment it is online: the start and the compilation of the plugin are left
out) and its counters; fails if it took in more or fewer than N readings (a lost or a
repeated one), made a dead letter, or lost its input connection on the way.

Usage: python bench/large_readings.py HOST [--readings N] [--tag-bytes B] [--plugin NAME]
                                          [--queue-bytes B] [--timeout S]
Needs paho-mqtt (the virtual environment of bench/load: bench/large_readings.sh makes it).
BENCHMARKS.md ("Session 16: queues bounded in bytes") has the figures.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import paho.mqtt.client as mqtt

# The same loopback helpers as the historian bench (this folder is on the path of a script run).
from historian import free_port, wait_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
T0 = 1_795_939_200_000  # 2026-11-29T08:00:00Z
SENSORS = 400


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss(pid):
    # Writing 5 to clear_refs sets VmHWM back to the current RSS (Linux 4.0+), as bench/load does.
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError as error:
        print(f"large_readings: the peak RSS includes the start ({error})", file=sys.stderr)


def pipeline(args, port, work):
    runtime = f"\n[runtime]\nqueue_bytes = {args.queue_bytes}\n" if args.queue_bytes else ""
    wasm = os.path.join(args.plugins_dir, f"{args.plugin}.wasm")
    text = f"""# Written by bench/large_readings.py
[mqtt]
url = "mqtt://127.0.0.1:{port}"
client_id = "large-readings"
qos = 1
broker_inflight = 100
{runtime}
[[plugin]]
path = "{wasm}"
inputs = ["toulouse/sensors/#"]
"""
    path = os.path.join(work, "pipeline.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


class Status:
    """The host's latest status message."""

    def __init__(self):
        self.latest = {}
        self.changed = threading.Event()

    def on_message(self, _client, _userdata, message):
        if message.topic.startswith("garonne/status/"):
            try:
                self.latest = json.loads(message.payload)
            except ValueError:
                return
            self.changed.set()


def publish(client, n, tag_bytes):
    # The tag is the same in every reading: build its JSON once, the rest per reading.
    tail = json.dumps({"unit": "°C", "lat": 43.6, "lon": 1.44, "tags": {"note": "x" * tag_bytes}})[1:].encode()
    pending = []
    for i in range(n):
        sensor = i % SENSORS
        # Values move from one reading of a sensor to the next: quality filters see no frozen sensor.
        head = '{"sensor_id":"s%d","kind":"temperature","value":%.1f,"ts":%d,' % (
            sensor, 12.0 + (i // SENSORS) % 50 / 10, T0 + i * 100)
        pending.append(client.publish(f"toulouse/sensors/temperature/s{sensor}", head.encode() + tail, qos=1))
        if len(pending) >= 1000:
            for info in pending:
                info.wait_for_publish(60)
            pending.clear()
    for info in pending:
        info.wait_for_publish(60)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("--plugins-dir", default=os.path.join(ROOT, "plugins/target/wasm32-wasip2/release"))
    parser.add_argument("--plugin", default="rolling_median")
    parser.add_argument("--readings", type=int, default=20_000)
    parser.add_argument("--tag-bytes", type=int, default=16_000)
    parser.add_argument("--queue-bytes", type=int, help="the host's runtime.queue_bytes (default: its own)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for the host to take all in")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="garonne-large-")
    processes = []
    try:
        port = free_port()
        conf = os.path.join(work, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 100\n"
                    "max_queued_messages 1000000\nmax_queued_bytes 0\npersistence false\n")
        processes.append(subprocess.Popen(["mosquitto", "-c", conf], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
        wait_port(port)

        status = Status()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="large-readings-publisher")
        client.max_inflight_messages_set(1000)
        client.on_message = status.on_message
        client.connect("127.0.0.1", port)
        client.loop_start()
        client.subscribe("garonne/status/#", qos=1)

        log_path = os.path.join(work, "host.log")
        host_log = open(log_path, "w")
        env = dict(os.environ, RUST_LOG="warn")
        host = subprocess.Popen([args.host, "run", "--config", pipeline(args, port, work)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=host_log, env=env)
        processes.append(host)
        # Online once its retained status says so.
        deadline = time.time() + 60
        while status.latest.get("state") != "online":
            if time.time() > deadline or host.poll() is not None:
                raise SystemExit(f"large_readings: the host did not start; see {log_path}")
            status.changed.wait(0.2)
            status.changed.clear()

        # The peak from here on: a first start compiles the plugin (a JavaScript one takes the
        # host to some 400 MiB while Cranelift works), which is not what the readings cost.
        reset_peak_rss(host.pid)
        started = time.time()
        publish(client, args.readings, args.tag_bytes)
        sent_s = time.time() - started
        deadline = time.time() + args.timeout
        plugin = {}
        while time.time() < deadline:
            plugin = status.latest.get("plugins", {}).get(args.plugin, {})
            if plugin.get("readings_in", 0) >= args.readings and plugin.get("queued_bytes", 0) == 0:
                break
            status.changed.wait(1)
            status.changed.clear()
        took_s = time.time() - started
        rss = peak_rss_mib(host.pid)
        client.loop_stop()
        host.terminate()
        host.wait(30)
        host_log.close()
        with open(log_path) as f:
            reconnections = sum("input connection lost" in line for line in f)

        print(f"| {args.plugin} | {args.readings:,} × {args.tag_bytes:,} B tag | "
              f"{args.queue_bytes or 'default'} | {sent_s:.1f} s / {took_s:.1f} s | {rss:.1f} MiB | "
              f"{plugin.get('readings_in')} | {plugin.get('dead_letters')} | {plugin.get('deadline_failures')} | "
              f"{reconnections} |")
        problems = []
        if plugin.get("readings_in") != args.readings:
            problems.append(f"took in {plugin.get('readings_in')} readings, not {args.readings}")
        if plugin.get("dead_letters"):
            problems.append(f"{plugin['dead_letters']} dead letters")
        if reconnections:
            problems.append(f"the input connection was lost {reconnections} times")
        if problems:
            print(f"large_readings: FAILED: {'; '.join(problems)} (host log: {log_path})", file=sys.stderr)
            sys.exit(1)
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
