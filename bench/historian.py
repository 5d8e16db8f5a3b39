"""Historian throughput: Mosquitto -> host historian -> InfluxDB 1.x, against direct ingest.

Starts Mosquitto and InfluxDB on free loopback ports in a temp folder, then:
1. direct: posts N points to InfluxDB's /write in batches of BATCH (the ceiling);
2. historian: publishes the same N readings to Mosquitto (QoS 0 publisher, QoS 1 historian
   subscription) and times until InfluxDB has acknowledged them all (the historian's log of
   written batches; one count in the database checks it), sampling the CPU time of the
   historian, Mosquitto and InfluxDB and the historian's peak memory from /proc.
Prints one Markdown table row per stage and the ratio.

`--pack=K` among the historian flags (taken out of them) publishes the readings in packs of K per
message (a JSON array, as a gateway sends them) to the broker-alone and historian stages; direct
ingest posts the same lines as always.
"""
import datetime
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

T0 = 1_793_491_200_000  # 2026-11-01T00:00:00Z


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def http(url, data=None):
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status, response.read()


def query(influx, q, db="garonne"):
    url = f"{influx}/query?db={db}&epoch=ms&q={urllib.parse.quote(q)}"
    return json.loads(http(url, b"")[1])


def count(influx, db):
    result = query(influx, "SELECT count(value) FROM sensors", db)
    series = result["results"][0].get("series")
    return series[0]["values"][0][1] if series else 0


LOG_FILTER = "info,garonne::historian=debug,rumqttc=warn"
WRITTEN = re.compile(r"^(\S+)\s.*batch written.*written=(\d+)")


def wait_for_written(log_path, n, deadline):
    """The wall-clock time (from the log line's timestamp) at which the historian reported `n`
    points written."""
    while time.time() < deadline:
        with open(log_path) as f:
            for entry in f:
                match = WRITTEN.match(entry)
                if match and int(match.group(2)) >= n:
                    return datetime.datetime.fromisoformat(match.group(1).replace("Z", "+00:00")).timestamp()
        time.sleep(0.05)
    raise SystemExit(f"the historian did not report {n} points written; see {log_path}")


def reading(i):
    return {"sensor_id": f"station-{i % 1000}", "kind": "temperature", "value": (i % 400) / 10,
            "unit": "°C", "ts": T0 + (i // 1000) * 1000, "lat": 43.6, "lon": 1.44,
            "tags": {"station_name": f"station {i % 1000}"}}


def line(i):
    r = reading(i)
    return (f"sensors,kind=temperature,sensor_id={r['sensor_id']},station_name=station\\ {i % 1000},unit=°C "
            f"value={r['value']},lat=43.6,lon=1.44 {r['ts']}")


def proc_stats(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    peak = 0
    with open(f"/proc/{pid}/status") as f:
        for l in f:
            if l.startswith("VmHWM:"):
                peak = int(l.split()[1]) // 1024
    return cpu, peak


def start_servers(work, inflight, databases):
    """Mosquitto (no queue limit: a bench measures its clients, not the broker's policy when one
    falls behind) and InfluxDB 1.x, on free loopback ports, their files in `work`, with
    `databases` created. Returns the broker's port, InfluxDB's URL and the two processes."""
    mqtt_port, influx_port, rpc_port = free_port(), free_port(), free_port()
    with open(f"{work}/mosquitto.conf", "w") as f:
        f.write(f"listener {mqtt_port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                f"max_queued_messages 0\nmax_inflight_messages {inflight}\nlog_dest stderr\n")
    with open(f"{work}/influxdb.conf", "w") as f:
        f.write(f'reporting-disabled = true\nbind-address = "127.0.0.1:{rpc_port}"\n'
                f'[meta]\n  dir = "{work}/meta"\n[data]\n  dir = "{work}/data"\n  wal-dir = "{work}/wal"\n'
                f'  query-log-enabled = false\n[http]\n  bind-address = "127.0.0.1:{influx_port}"\n'
                '  log-enabled = false\n[monitor]\n  store-enabled = false\n')
    servers = [
        subprocess.Popen(["mosquitto", "-c", f"{work}/mosquitto.conf"], stderr=subprocess.DEVNULL),
        subprocess.Popen(["influxd", "-config", f"{work}/influxdb.conf"], stderr=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL),
    ]
    try:
        wait_port(mqtt_port)
        wait_port(influx_port)
        influx = f"http://127.0.0.1:{influx_port}"
        for db in databases:
            for _ in range(100):
                try:
                    query(influx, f"CREATE DATABASE {db}")
                    break
                except OSError:
                    time.sleep(0.1)
    except BaseException:
        for process in servers:
            process.terminate()
        raise
    return mqtt_port, influx, servers


def run_historian(host, mqtt_port, batch, sink_args, payloads, n, work, label, servers):
    """Publishes the N readings through Mosquitto to a fresh `host historian`; returns the seconds
    until it reported all N written, the CPU shares of (historian, Mosquitto, InfluxDB) over that
    time, and the historian's peak memory in MiB."""
    log_path = f"{work}/historian-{label}.log"
    historian = subprocess.Popen(
        [host, "historian", "--mqtt", f"mqtt://127.0.0.1:{mqtt_port}", "--batch-size", str(batch),
         "--client-id", f"bench-historian-{label}", *sink_args],
        stderr=open(log_path, "w"), env={**os.environ, "RUST_LOG": LOG_FILTER})
    try:
        deadline = time.time() + 30
        while b"historian connected" not in open(log_path, "rb").read():
            if time.time() > deadline:
                raise SystemExit(f"the historian did not connect; see {log_path}")
            time.sleep(0.05)
        time.sleep(0.5)  # its SUBSCRIBE
        watched = [historian.pid, servers[0].pid, servers[1].pid]
        cpu_before = [proc_stats(pid)[0] for pid in watched]
        started = time.time()
        subprocess.run(["mosquitto_pub", "-p", str(mqtt_port), "-q", "0", "-t",
                        "toulouse/sensors/temperature/bench", "-l"], input=payloads.encode(), check=True)
        # The stage ends when the sink has taken the last point (for InfluxDB: acknowledged its
        # write); the historian logs each batch written. Polling InfluxDB with a count instead
        # would load the server under test (a count over 1,000 series takes it tens of ms).
        seconds = wait_for_written(log_path, n, started + 600) - started
        cpu_after = [proc_stats(pid)[0] for pid in watched]
        _, peak_mib = proc_stats(historian.pid)
        shares = tuple((after - before) / seconds for before, after in zip(cpu_before, cpu_after))
        return seconds, shares, peak_mib
    finally:
        historian.terminate()
        historian.wait()
        # End its persistent session (a clean connect under its id), or Mosquitto would queue
        # the next stage's messages for it.
        subprocess.run(["mosquitto_pub", "-p", str(mqtt_port), "-i", f"bench-historian-{label}",
                        "-t", "bench/end", "-m", "end"], check=False)


def main():
    host, n, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    packs = [a for a in sys.argv[4:] if a.startswith("--pack=")]
    extra = [a for a in sys.argv[4:] if not a.startswith("--pack=")]
    pack = int(packs[-1].split("=", 1)[1]) if packs else 1
    work = tempfile.mkdtemp(prefix="garonne-bench-")
    os.chmod(work, 0o777)
    mqtt_port, influx, servers = start_servers(work, inflight=10000, databases=("direct", "garonne"))
    try:
        # 1. Direct ingest, same lines, same batch size.
        lines = [line(i) for i in range(n)]
        influx_cpu_before = proc_stats(servers[1].pid)[0]
        started = time.perf_counter()
        for k in range(0, n, batch):
            body = ("\n".join(lines[k:k + batch]) + "\n").encode()
            http(f"{influx}/write?db=direct&precision=ms", body)
        direct_s = time.perf_counter() - started
        direct_influx_share = (proc_stats(servers[1].pid)[0] - influx_cpu_before) / direct_s
        assert count(influx, "direct") == n, "direct ingest lost points"

        # 2. The broker alone: the same messages to a plain QoS 1 subscriber (mosquitto_sub).
        if pack == 1:
            messages = [json.dumps(reading(i)) for i in range(n)]
        else:
            messages = [json.dumps([reading(i) for i in range(k, min(k + pack, n))]) for k in range(0, n, pack)]
        payloads = "\n".join(messages) + "\n"
        subscriber = subprocess.Popen(
            ["mosquitto_sub", "-p", str(mqtt_port), "-q", "1", "-t", "bench/#", "-C", str(len(messages))],
            stdout=subprocess.DEVNULL)
        time.sleep(0.5)
        started = time.perf_counter()
        subprocess.run(["mosquitto_pub", "-p", str(mqtt_port), "-q", "0", "-t", "bench/broker", "-l"],
                       input=payloads.encode(), check=True)
        subscriber.wait(timeout=600)
        broker_s = time.perf_counter() - started

        # 3. Through Mosquitto and the historian into InfluxDB.
        influx_args = ["--influx-url", influx, "--database", "garonne", "--spool-dir", f"{work}/spool"]
        historian_s, (cpu_share, mosquitto_share, influx_share), peak_mib = run_historian(
            host, mqtt_port, batch, influx_args + extra, payloads, n, work, "influx", servers)
        stored = count(influx, "garonne")
        for _ in range(20):
            if stored == n:
                break
            # Seen with InfluxDB 1.6: one point short for a moment after the last acknowledged
            # write, then all of them.
            print(f"count right after the last write: {stored}; counting again", file=sys.stderr)
            time.sleep(0.25)
            stored = count(influx, "garonne")
        assert stored == n, f"the historian stored {stored} of {n}"

        # 4. The historian's own ceiling: the same path into line-protocol files, no database.
        files_s, (files_cpu, _, _), _ = run_historian(
            host, mqtt_port, batch, ["--out-dir", f"{work}/out"] + extra, payloads, n, work, "files", servers)
        # Only the readings: the historian also stores the retained status messages it finds.
        in_files = sum(sum(1 for line in open(os.path.join(f"{work}/out", name)) if line.startswith("sensors,"))
                       for name in os.listdir(f"{work}/out"))
        assert in_files == n, f"the historian wrote {in_files} of {n} lines to files"

        direct_rate, historian_rate = n / direct_s, n / historian_s
        print(f"{n} points, batches of {batch}, {pack} reading(s) per message ({len(messages)} messages), "
              f"historian flags: {' '.join(extra) or 'none'}")
        print("| stage | points/s | historian CPU | historian peak memory |")
        print("|---|---|---|---|")
        print(f"| InfluxDB direct ingest (/write, same lines) | {direct_rate:,.0f} | | |")
        print(f"| Mosquitto alone (mosquitto_pub QoS 0 -> mosquitto_sub QoS 1) | {n / broker_s:,.0f} | | |")
        print(f"| Mosquitto -> host historian -> InfluxDB | {historian_rate:,.0f} | "
              f"{cpu_share * 100:.0f} % of a core | {peak_mib} MiB |")
        print(f"| Mosquitto -> host historian -> line-protocol files (no database) | {n / files_s:,.0f} | "
              f"{files_cpu * 100:.0f} % of a core | |")
        print(f"during the historian stage: Mosquitto {mosquitto_share * 100:.0f} % and InfluxDB "
              f"{influx_share * 100:.0f} % of a core; during direct ingest: InfluxDB "
              f"{direct_influx_share * 100:.0f} %")
        print(f"historian / direct = {historian_rate / direct_rate:.2f}; "
              f"historian / broker = {historian_rate * broker_s / n:.2f}; all {n} points stored")
    finally:
        for process in servers:
            process.terminate()
            process.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
