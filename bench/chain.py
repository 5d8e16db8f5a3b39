"""The whole chain, fleet to InfluxDB: a sensor model's fleet -> Mosquitto -> quality_filter ->
avg_quartier -> Mosquitto -> host historian -> InfluxDB 1.x, with the count of points checked in
the database.

Starts Mosquitto and InfluxDB on free loopback ports in a temp folder, a `host historian`
storing toulouse/sensors/#, toulouse/quartiers/# and toulouse/unassigned/#, then `host run` with the weather model over
a fleet of virtual stations from --from to --to as fast as it can go. The run is timed from the
start of `host run` until InfluxDB holds every reading the model published and every average
avg_quartier published (their counts come from the host's own statistics at exit), so the rate
is the chain's sustained rate with zero loss, or the script says what was lost.

Usage: python3 bench/chain.py HOST_BINARY [--fleet N] [--hours H] [--chain broker|process]
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from historian import proc_stats, query, start_servers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLUGINS = os.path.join(ROOT, "plugins/target/wasm32-wasip2/release")


def count(influx, measurement):
    result = query(influx, f'SELECT count("value") FROM "{measurement}"')
    series = result["results"][0].get("series")
    return series[0]["values"][0][1] if series else 0


def pipeline(work, mqtt_port, args):
    # `process`: avg_quartier takes quality_filter's output in the host, not from the broker.
    avg_inputs = '["plugin:quality_filter"]' if args.chain == "process" else '["toulouse/clean/#"]'
    text = f"""
[mqtt]
url = "mqtt://127.0.0.1:{mqtt_port}"
client_id = "bench-chain-host"
qos = 1
broker_inflight = 1000
[runtime]
start = "2026-01-15T00:00:00Z"
end = "2026-01-15T{args.hours:02d}:00:00Z"
seed = 7
cache_dir = "{work}/cache"
[[plugin]]
path = "{PLUGINS}/weather.wasm"
stations = "{ROOT}/data/stations/meteo.json"
interval_s = 60
fleet = {args.fleet}
[[plugin]]
path = "{PLUGINS}/quality_filter.wasm"
inputs = ["toulouse/sensors/#"]
[[plugin]]
path = "{PLUGINS}/avg_quartier.wasm"
inputs = {avg_inputs}
[plugin.config]
window_s = 900
lateness_s = 0
"""
    path = f"{work}/chain.toml"
    with open(path, "w") as f:
        f.write(text)
    return path


def stats_of(log, plugin):
    """The plugin's statistics from the lines `host run` prints at exit."""
    match = re.search(rf"^\s+{plugin}: (\{{.*\}})$", log, re.MULTILINE)
    if not match:
        raise SystemExit(f"no statistics for {plugin} in the host's output:\n{log[-3000:]}")
    return json.loads(match.group(1))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("--fleet", type=int, default=20, help="virtual stations per real one")
    parser.add_argument("--hours", type=int, default=6, help="simulated hours, from midnight")
    parser.add_argument("--chain", choices=["broker", "process"], default="broker")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="garonne-chain-")
    os.chmod(work, 0o777)
    mqtt_port, influx, servers = start_servers(work, inflight=1000, databases=("garonne",))
    historian, failed = None, False
    try:
        historian = subprocess.Popen(
            [args.host, "historian", "--mqtt", f"mqtt://127.0.0.1:{mqtt_port}", "--influx-url", influx,
             "--database", "garonne", "--spool-dir", f"{work}/spool", "--client-id", "bench-chain-historian",
             "--topic", "toulouse/sensors/#", "--topic", "toulouse/quartiers/#",
             "--topic", "toulouse/unassigned/#"],
            stderr=open(f"{work}/historian.log", "w"))
        deadline = time.time() + 30
        while b"historian connected" not in open(f"{work}/historian.log", "rb").read():
            if time.time() > deadline:
                raise SystemExit("the historian did not connect")
            time.sleep(0.05)
        time.sleep(0.5)  # its SUBSCRIBE
        config = pipeline(work, mqtt_port, args)
        started = time.perf_counter()
        host = subprocess.run([args.host, "run", "--config", config], capture_output=True, text=True,
                              timeout=3600, env={**os.environ, "RUST_LOG": "warn"})
        host_s = time.perf_counter() - started
        if host.returncode != 0:
            raise SystemExit(f"host run failed:\n{host.stderr[-3000:]}")
        readings = stats_of(host.stderr, "weather")["messages_out"]
        averages = stats_of(host.stderr, "avg_quartier")["messages_out"]
        # Done when every point is in; or when nothing changed for 30 s (then something is lost,
        # and the time of the last change is the chain's time).
        stored, last_change = (0, 0), time.perf_counter()
        while stored != (readings, averages) and time.perf_counter() - last_change < 30:
            time.sleep(0.2)
            # avg_quartier's messages: the averages, and the counts of readings in no quartier.
            now = (count(influx, "sensors"), count(influx, "quartiers") + count(influx, "unassigned"))
            if now != stored:
                stored, last_change = now, time.perf_counter()
        chain_s = last_change - started
        cpu, peak = proc_stats(historian.pid)
        print(f"fleet {args.fleet} per station, {args.hours} simulated hours, chain through {args.chain}")
        print("| | count | seconds | per second |")
        print("|---|---|---|---|")
        print(f"| readings published by the fleet (host run, start to exit) | {readings:,} | {host_s:.1f} | "
              f"{readings / host_s:,.0f} |")
        print(f"| readings in InfluxDB (`sensors`) | {stored[0]:,} | {chain_s:.1f} | {stored[0] / chain_s:,.0f} |")
        print(f"| avg_quartier's messages in InfluxDB (`quartiers`, `unassigned`) | {stored[1]:,} of {averages:,} | | |")
        print(f"historian: {cpu:.1f} s of CPU, peak {peak} MiB")
        lost = (readings - stored[0], averages - stored[1])
        print("zero loss: every reading and every average is in the database" if lost == (0, 0)
              else f"LOST: {lost[0]} readings and {lost[1]} averages missing (or duplicated if negative)")
        if lost != (0, 0):
            with open(f"{work}/historian.log") as log:
                print("historian's log, last lines:\n" + "".join(log.readlines()[-15:]))
            failed = True
    finally:
        for process in ([historian] if historian else []) + servers:
            process.terminate()
            process.wait()
        shutil.rmtree(work, ignore_errors=True)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
