"""Load generator and counting subscriber for bench/load, on raw MQTT 3.1.1 sockets.

Both roles speak just enough MQTT over a plain TCP socket to be cheap: on two shared cores every
microsecond the load tools spend is taken from Mosquitto and the host under test. paho-mqtt
reads a message with three or more recv() calls and a select(); here one recv() brings hundreds.
Neither role is trusted blindly: the driver checks every message arrived (a bitmap of message
indices at the subscriber, PUBACK counts at the QoS 1 publisher).

Message `i` of a run is the reading of sensor `i % N` of the fleet with event time
`base_ts + i * step_ms`: the subscriber recovers `i` from the `ts` of any reading (the input
format, integer ms, or the host's output format, RFC 3339 with ms), so the host's outputs can be
matched to their inputs without adding anything to the readings.

  python mqttload.py pub --port P --qos 1 --rate 20000 --duration 5 --first 0 --base-ts T --step-ms 75 \
      --log batches.bin
  python mqttload.py sub --port P --qos 1 --sub 'toulouse/clean/#' --decode toulouse/clean/ \
      --first 0 --count 100000 --base-ts T --step-ms 75 --out recv.bin

`sub` prints `ready` once subscribed, then `progress GOT OTHER` lines, and on `stop` (stdin)
writes the receive times and prints one JSON summary line. `pub` prints one JSON summary line.
"""

import argparse
import calendar
import itertools
import json
import math
import os
import select
import socket
import sys
import time
from array import array

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# The kinds of the weather model (plugins/weather): a full `ISS` station has six, a `TH` station
# the first two. Values stay well inside quality_filter's accepted ranges.
KINDS = [
    ("temperature", "°C", 0.0, 30.0),
    ("humidity", "%", 20.0, 80.0),
    ("pressure", "Pa", 99_000.0, 4_000.0),
    ("rain", "mm", 0.0, 5.0),
    ("wind_speed", "km/h", 0.0, 60.0),
    ("wind_gust", "km/h", 0.0, 90.0),
]
METRES_PER_DEGREE = 111_320.0
FLEET_RADIUS_M = 500.0
GOLDEN_ANGLE = 2.399_963_229_728_653
# Value of reading i: base + span * ((i * 7919) % 10007) / 10007. Two readings of one sensor,
# N apart, get the same value only if N is a multiple of 10007 (checked), so quality_filter never
# sees a frozen sensor.
VALUE_MUL, VALUE_MOD = 7919, 10007
# Packs of readings (--pack) travel on the topics of this many gateways.
GATEWAYS = 100


def fleet_sensors(stations_path, fleet):
    """The sensors of the weather stations and `fleet - 1` virtual copies of each, placed as the
    host's `--fleet` places them (host/src/stations.rs): (sensor_id, station_name, lat, lon, kind index)."""
    with open(stations_path, encoding="utf-8") as f:
        stations = json.load(f)
    sensors = []
    for st in stations:
        kinds = range(2) if (st.get("attributes") or {}).get("type") == "TH" else range(len(KINDS))
        copies = [(st["id"], st["name"], st["lat"], st["lon"])]
        for k in range(1, fleet):
            radius = FLEET_RADIUS_M * math.sqrt(k / fleet)
            angle = k * GOLDEN_ANGLE
            lat = st["lat"] + radius * math.sin(angle) / METRES_PER_DEGREE
            lon = st["lon"] + radius * math.cos(angle) / (METRES_PER_DEGREE * math.cos(math.radians(st["lat"])))
            copies.append((f"{st['id']}-v{k}", f"{st['name']} (virtual {k})", lat, lon))
        for sid, name, lat, lon in copies:
            for kind in kinds:
                sensors.append((sid, name, lat, lon, kind))
    if len(sensors) % VALUE_MOD == 0:
        raise SystemExit("fleet size is a multiple of 10007: values would repeat")
    return sensors


def step_ms_for(n_sensors, interval_s):
    """Event-time step between two consecutive readings so that each sensor reports every
    `interval_s` of event time."""
    return max(1, round(interval_s * 1000 / n_sensors))


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def mqtt_str(text):
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        data += chunk
    return data


def connect(port, client_id, keepalive=3600):
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    body = mqtt_str("MQTT") + bytes([4, 0x02]) + keepalive.to_bytes(2, "big") + mqtt_str(client_id)
    sock.sendall(b"\x10" + varint(len(body)) + body)
    ack = recv_exact(sock, 4)
    if ack[0] != 0x20 or ack[3] != 0:
        raise ConnectionError(f"CONNACK refused: {ack!r}")
    return sock


def subscribe(sock, filters, qos):
    body = (1).to_bytes(2, "big") + b"".join(mqtt_str(f) + bytes([qos]) for f in filters)
    sock.sendall(b"\x82" + varint(len(body)) + body)
    head = recv_exact(sock, 2)
    rest = recv_exact(sock, head[1])
    if head[0] != 0x90 or any(code == 0x80 for code in rest[2:]):
        raise ConnectionError(f"SUBACK refused: {head + rest!r}")


class Fleet:
    """Builds the MQTT PUBLISH packet of reading `i`, fast."""

    def __init__(self, stations_path, fleet, base_ts, step_ms, qos, prefix="toulouse"):
        self.sensors = fleet_sensors(stations_path, fleet)
        self.n = len(self.sensors)
        self.base_ts, self.step_ms, self.qos = base_ts, step_ms, qos
        self.topics, self.prefixes, self.kinds = [], [], []
        for sid, name, lat, lon, kind in self.sensors:
            kname, unit, base, span = KINDS[kind]
            self.topics.append(mqtt_str(f"{prefix}/sensors/{kname}/{sid}"))
            head = {"sensor_id": sid, "kind": kname, "unit": unit, "lat": round(lat, 7), "lon": round(lon, 7),
                    "tags": {"station_name": name}}
            self.prefixes.append(json.dumps(head, ensure_ascii=False, separators=(",", ":"))[:-1].encode() + b",")
            self.kinds.append((base, span / VALUE_MOD))
        self.header = 0x32 if qos else 0x30

    def payload(self, i):
        s = i % self.n
        base, scale = self.kinds[s]
        return self.prefixes[s] + b'"value":%.3f,"ts":%d}' % (
            base + scale * ((i * VALUE_MUL) % VALUE_MOD), self.base_ts + i * self.step_ms)

    def packet(self, i, packet_id=0, pack=1):
        """Reading `i` alone on its sensor's topic, or readings i .. i + pack - 1 as a pack (a JSON
        array) on a gateway's topic, as a gateway sends what it buffered."""
        if pack == 1:
            payload, topic = self.payload(i), self.topics[i % self.n]
        else:
            payload = b"[" + b",".join(self.payload(i + k) for k in range(pack)) + b"]"
            topic = mqtt_str(f"toulouse/sensors/gateway/g{(i // pack) % GATEWAYS}")
        if self.qos:
            topic = topic + packet_id.to_bytes(2, "big")
        size = len(topic) + len(payload)
        return bytes((self.header,)) + varint(size) + topic + payload


def run_pub(args):
    fleet = Fleet(args.stations, args.fleet, args.base_ts, args.step_ms, args.qos)
    sock = connect(args.port, f"bench-pub-{os.getpid()}")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    pack = args.pack
    # In readings, a whole number of packs; the rate and the log are in readings, the rest in
    # messages.
    readings = -(-int(round(args.rate * args.duration)) // pack) * pack
    total = readings // pack
    # Every packet is built before the clock starts: sending is then a slice of one buffer, and
    # the publisher's own CPU stays out of the way of the broker and the process under test.
    packet, first = fleet.packet, args.first
    packets = [packet(first + k * pack, k % 65535 + 1, pack) for k in range(total)]
    offsets = array("q", itertools.accumulate(map(len, packets), initial=0))
    blob = memoryview(b"".join(packets))
    packet_bytes = len(blob) / max(1, total)
    del packets
    log = array("q")
    sent = acked = 0
    pending = b""
    rate = args.rate / pack  # messages per second
    rate_ns = rate / 1e9
    max_batch = max(1, int(rate * 0.005))  # at most 5 ms of messages per write
    print("start", flush=True)
    cpu0 = time.process_time()
    t0 = time.monotonic_ns()

    def read_acks(block):
        nonlocal acked, pending
        ready = select.select([sock], [], [], 0.5 if block else 0)[0]
        if not ready:
            return
        data = pending + sock.recv(1 << 16)
        whole = len(data) - len(data) % 4
        # Each PUBACK is 0x40 0x02 ID ID.
        acked += whole // 4
        pending = data[whole:]

    while sent < total:
        now = time.monotonic_ns()
        due = min(total, int((now - t0) * rate_ns) + 1)
        if due <= sent:
            time.sleep(min(0.001, (sent + 1 - (now - t0) * rate_ns) / rate))
            if args.qos:
                read_acks(False)
            continue
        count = min(due - sent, max_batch)
        if args.qos:
            read_acks(False)
            room = args.window - (sent - acked)
            if room <= 0:
                read_acks(True)
                continue
            count = min(count, room)
        log.append(sent * pack)
        log.append(time.monotonic_ns())
        sock.sendall(blob[offsets[sent]:offsets[sent + count]])
        sent += count
    t_end = time.monotonic_ns()
    if args.flush_ts is not None:
        # On the same connection, so that it comes after every reading of the run, in order.
        body = json.dumps({"sensor_id": "bench-flush", "kind": "temperature", "value": 10 + args.flush_ts % 997 / 100,
                           "unit": "°C", "ts": args.flush_ts}).encode()
        topic = mqtt_str("toulouse/sensors/temperature/bench-flush")
        sock.sendall(b"\x30" + varint(len(topic) + len(body)) + topic + body)
    cpu = time.process_time() - cpu0
    if args.qos:
        deadline = time.monotonic() + 15
        while acked < sent and time.monotonic() < deadline:
            read_acks(True)
    sock.sendall(b"\xe0\x00")  # DISCONNECT
    sock.close()
    with open(args.log, "wb") as f:
        log.tofile(f)
    elapsed = (t_end - t0) / 1e9
    print(json.dumps({"sent": sent * pack, "acked": acked * pack if args.qos else None, "elapsed_s": elapsed,
                      "rate": sent * pack / elapsed if elapsed else 0.0, "t0_ns": t0, "t_end_ns": t_end,
                      "packet_bytes": packet_bytes, "messages": sent, "cpu_s": cpu}), flush=True)


class TsDecoder:
    """Recovers the message index from the `"ts":` of a reading."""

    def __init__(self, base_ts, step_ms):
        self.base_ts, self.step_ms = base_ts, step_ms
        self.minutes = {}

    def index(self, buf, start, end):
        """The index of the first reading from `start` on, or None if it is off the grid, and where
        to look for the next; None if there is none (a pack holds several)."""
        p = buf.find(b'"ts":', start, end)
        if p < 0:
            return None
        p += 5
        return self.index_at(buf, p), p

    def index_at(self, buf, p):
        if buf[p] == 0x22:  # "YYYY-MM-DDTHH:MM:SS.mmmZ"
            text = bytes(buf[p + 1:p + 25])
            minute = self.minutes.get(text[:16])
            if minute is None:
                minute = calendar.timegm(time.strptime(text[:16].decode(), "%Y-%m-%dT%H:%M")) * 1000
                self.minutes[text[:16]] = minute
            ts = minute + int(text[17:19]) * 1000 + int(text[20:23])
        else:
            q = p
            while buf[q] in b"-0123456789":
                q += 1
            ts = int(buf[p:q])
        offset = ts - self.base_ts
        if offset % self.step_ms:
            return None
        return offset // self.step_ms


def run_sub(args):
    sock = connect(args.port, f"bench-sub-{os.getpid()}")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
    subscribe(sock, args.sub, args.qos)
    print("ready", flush=True)
    decoder = TsDecoder(args.base_ts, args.step_ms)
    n = args.count
    first = args.first
    seen = bytearray(n)
    recv_ns = array("q", bytes(8 * n))
    decode = [p.encode() for p in args.decode]
    keep = {t.encode(): None for t in args.keep}
    windows = [p.encode() for p in args.windows]
    window_count = window_late = window_messages = 0
    got = dup = foreign = undecodable = other = 0
    counts = {}
    buf = bytearray()
    stdin = sys.stdin.fileno()
    last_progress = 0.0
    running = True
    while running:
        ready = select.select([sock, stdin], [], [], 0.1)[0]
        if stdin in ready:
            line = os.read(stdin, 100)
            if not line or b"stop" in line:
                running = False
        if sock in ready:
            data = sock.recv(1 << 18)
            if not data:
                raise SystemExit("the broker closed the subscriber's connection")
            now = time.monotonic_ns()
            buf += data
            pos, size = 0, len(buf)
            acks = bytearray()
            while pos + 2 <= size:
                header = buf[pos]
                # Remaining length: up to four bytes.
                length = 0
                shift = 0
                q = pos + 1
                complete = False
                while q < size:
                    byte = buf[q]
                    length |= (byte & 0x7F) << shift
                    q += 1
                    if not byte & 0x80:
                        complete = True
                        break
                    shift += 7
                if not complete:
                    break
                end = q + length
                if end > size:
                    break
                if header >> 4 == 3:
                    topic_start = q + 2
                    topic_end = topic_start + ((buf[q] << 8) | buf[q + 1])
                    body = topic_end
                    if header & 0x06:
                        acks += b"\x40\x02" + buf[topic_end:topic_end + 2]
                        body += 2
                    for prefix in decode:
                        if buf.startswith(prefix, topic_start, topic_end):
                            hit = decoder.index(buf, body, end)
                            if hit is None:
                                undecodable += 1
                            # Every reading of the message: one, or those of a pack.
                            while hit is not None:
                                i, at = hit
                                if i is None:
                                    undecodable += 1
                                else:
                                    r = i - first
                                    if 0 <= r < n:
                                        if seen[r]:
                                            dup += 1
                                        else:
                                            seen[r] = 1
                                            recv_ns[r] = now
                                            got += 1
                                    else:
                                        foreign += 1
                                hit = decoder.index(buf, at, end)
                            break
                    else:
                        topic = bytes(buf[topic_start:topic_end])
                        for prefix in windows:
                            if topic.startswith(prefix):
                                fields = json.loads(bytes(buf[body:end])).get("fields") or {}
                                start = fields.get("window_start")
                                if fields.get("late") and os.environ.get("BENCH_DEBUG"):
                                    print(topic.decode(), bytes(buf[body:end]).decode(), file=sys.stderr, flush=True)
                                if start is not None and args.window_from <= start <= args.window_to:
                                    window_count += int(round(fields.get("count", 0)))
                                    window_late += int(round(fields.get("late", 0)))
                                    window_messages += 1
                                break
                        if topic in keep:
                            payload = bytes(buf[body:end])
                            if payload != keep[topic]:
                                keep[topic] = payload
                                print("kept", topic.decode(), payload.decode(errors="replace"), flush=True)
                        other += 1
                        folder = topic.split(b"/", 2)[:2]
                        key = b"/".join(folder).decode(errors="replace")
                        counts[key] = counts.get(key, 0) + 1
                pos = end
            del buf[:pos]
            if acks:
                sock.sendall(acks)
        t = time.monotonic()
        if t - last_progress >= 0.1:
            last_progress = t
            print(f"progress {got} {other} {window_count}", flush=True)
    with open(args.out, "wb") as f:
        recv_ns.tofile(f)
    sock.sendall(b"\xe0\x00")
    sock.close()
    kept = {k.decode(): (v.decode() if v is not None else None) for k, v in keep.items()}
    print(json.dumps({"got": got, "dup": dup, "foreign": foreign, "undecodable": undecodable, "other": other,
                      "counts": counts, "kept": kept, "window_count": window_count, "window_late": window_late,
                      "window_messages": window_messages, "cpu_s": time.process_time()}), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    roles = parser.add_subparsers(dest="role", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--port", type=int, required=True)
    common.add_argument("--qos", type=int, choices=(0, 1), default=0)
    common.add_argument("--first", type=int, default=0, help="index of the first message of the run")
    common.add_argument("--base-ts", type=int, required=True, help="event time of message 0, ms")
    common.add_argument("--step-ms", type=int, required=True, help="event time between two messages")
    pub = roles.add_parser("pub", parents=[common])
    pub.add_argument("--stations", default=os.path.join(ROOT, "data/stations/meteo.json"))
    pub.add_argument("--fleet", type=int, default=10)
    pub.add_argument("--rate", type=float, required=True, help="readings per second")
    pub.add_argument("--pack", type=int, default=1, help="readings per message (a JSON array when more than 1)")
    pub.add_argument("--duration", type=float, required=True, help="seconds")
    pub.add_argument("--window", type=int, default=1000, help="QoS 1: PUBLISHes awaiting their PUBACK")
    pub.add_argument("--flush-ts", type=int, help="then one more reading at this event time (closes windows)")
    pub.add_argument("--log", required=True, help="file for the (first index, send time) of every write")
    sub = roles.add_parser("sub", parents=[common])
    sub.add_argument("--sub", action="append", required=True, help="topic filter (repeatable)")
    sub.add_argument("--decode", action="append", default=[], help="topic prefix of indexed readings")
    sub.add_argument("--keep", action="append", default=[], help="topic whose last payload is reported")
    sub.add_argument("--windows", action="append", default=[],
                     help="topic prefix of window aggregates whose `count` fields are summed")
    sub.add_argument("--window-from", type=int, default=0, help="sum windows starting at or after this time, ms")
    sub.add_argument("--window-to", type=int, default=0, help="... and at or before this one")
    sub.add_argument("--count", type=int, required=True, help="messages expected")
    sub.add_argument("--out", required=True, help="file for the receive time of every message")
    args = parser.parse_args()
    (run_pub if args.role == "pub" else run_sub)(args)


if __name__ == "__main__":
    main()
