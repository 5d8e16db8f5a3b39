"""The Python baseline: per-quartier means over tumbling windows, as the course starts it.

paho-mqtt + shapely, written as well as Python allows, so that it is a fair baseline for
`avg_quartier`: it does the same work the same way.

- subscribes to `{prefix}/sensors/#` (QoS from --qos);
- decodes each reading (docs/payload.schema.json: `ts` as integer ms or RFC 3339);
- places each sensor in its quartier once (a cache keyed by sensor and position, like the
  plugin's placement cache; misses go through a shapely STRtree of the polygons of
  data/geo/quartiers.geojson with an exact `contains` test);
- adds the value to the tumbling event-time window of its (quartier, kind): the watermark is the
  newest event time (or the wall clock, once a second) minus the allowed lateness, and a window
  closes once the watermark passes its end;
- publishes each closed window on `{prefix}/quartiers/{id}/{kind}` (mean as the value; fields
  mean, min, max, count, late, window_start, window_s; tags quartier and polygons; the
  quartier's centroid) and the count of readings in no quartier on `{prefix}/unassigned/{kind}`.

Instrumented for bench/load: every --stats-every seconds it publishes its counters
(`processed`, `published`, `late`, `errors`) as JSON on --stats-topic, and prints them on stdout
when it stops (SIGTERM or Ctrl-C).

  bench/load/.venv/bin/python bench/load/python_baseline.py --port 1883
"""

import argparse
import json
import os
import signal
import sys
import threading
import time
from datetime import datetime

import paho.mqtt.client as mqtt
from shapely import STRtree
from shapely.geometry import Point, shape
from shapely.prepared import prep

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


class Quartiers:
    """Point look-ups in the polygons: STRtree of the shapes, exact test on prepared geometries."""

    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            features = json.load(f)["features"]
        self.ids = [str(f["properties"]["id"]) for f in features]
        self.names = [str(f["properties"]["name"]) for f in features]
        shapes = [shape(f["geometry"]) for f in features]
        self.centroids = [(s.centroid.y, s.centroid.x) for s in shapes]
        self.prepared = [prep(s) for s in shapes]
        self.tree = STRtree(shapes)

    def locate(self, lat, lon):
        point = Point(lon, lat)
        for i in self.tree.query(point):
            if self.prepared[i].contains(point):
                return int(i)
        return None


def parse_ts(ts):
    if isinstance(ts, int):
        return ts
    if isinstance(ts, str):
        return int(datetime.fromisoformat(ts).timestamp() * 1000)
    raise ValueError(f"bad ts {ts!r}")


class AvgQuartier:
    def __init__(self, client, quartiers, prefix, qos, window_s, lateness_s, polygons_name):
        self.client, self.quartiers, self.prefix, self.qos = client, quartiers, prefix, qos
        self.window_ms = int(window_s * 1000)
        self.lateness_ms = int(lateness_s * 1000)
        self.polygons_name = polygons_name
        self.placements = {}  # (sensor_id, kind) -> (lat, lon, quartier index or None)
        self.open = {}  # window start -> {(quartier, kind): [count, sum, min, max]}
        self.late = {}  # (quartier, kind) -> readings too late for their window
        self.units = {}
        self.newest = None
        self.closed_until = None
        self.next_close = None  # end of the oldest open window + lateness: skip the check before it
        self.lock = threading.Lock()
        self.processed = self.published = self.late_total = self.errors = 0

    def on_message(self, client, userdata, message):
        try:
            decoded = json.loads(message.payload)
        except ValueError:
            self.errors += 1
            return
        # A pack (a JSON array of readings, as a gateway sends them) is taken reading by reading,
        # under one lock; a bad reading is counted and does not take the others with it.
        readings = []
        for reading in decoded if isinstance(decoded, list) else (decoded,):
            try:
                readings.append((str(reading["sensor_id"]), reading["kind"], float(reading["value"]),
                                 parse_ts(reading["ts"]), reading.get("lat"), reading.get("lon"), reading))
            except (ValueError, KeyError, TypeError, AttributeError):
                self.errors += 1
        if not readings:
            return
        with self.lock:
            for sensor_id, kind, value, ts, lat, lon, reading in readings:
                key = (sensor_id, kind)
                placement = self.placements.get(key)
                if placement is None or placement[0] != lat or placement[1] != lon:
                    quartier = self.quartiers.locate(lat, lon) if lat is not None and lon is not None else None
                    placement = (lat, lon, quartier)
                    self.placements[key] = placement
                    self.units.setdefault(kind, reading.get("unit", ""))
                group = (placement[2], kind)
                start = ts - ts % self.window_ms
                if self.closed_until is not None and start + self.window_ms <= self.closed_until:
                    self.late[group] = self.late.get(group, 0) + 1
                    self.late_total += 1
                else:
                    if self.newest is None or ts > self.newest:
                        self.newest = ts
                    windows = self.open.get(start)
                    if windows is None:
                        windows = self.open[start] = {}
                        if self.next_close is None or start + self.window_ms + self.lateness_ms < self.next_close:
                            self.next_close = start + self.window_ms + self.lateness_ms
                    aggregate = windows.get(group)
                    if aggregate is None:
                        windows[group] = [1, value, value, value]
                    else:
                        aggregate[0] += 1
                        aggregate[1] += value
                        if value < aggregate[2]:
                            aggregate[2] = value
                        if value > aggregate[3]:
                            aggregate[3] = value
                    if self.next_close is not None and self.newest >= self.next_close:
                        self.advance(None)
                self.processed += 1

    def advance(self, now_ms):
        """Closes the windows the watermark passed; the caller holds the lock."""
        times = [t for t in (self.newest, now_ms) if t is not None]
        if not times:
            return
        newest = max(times)
        watermark = newest - self.lateness_ms
        for start in sorted(self.open):
            if start + self.window_ms > watermark:
                break
            for group, aggregate in self.open.pop(start).items():
                self.publish(start, group, aggregate)
        until = watermark - watermark % self.window_ms
        self.closed_until = until if self.closed_until is None else max(self.closed_until, until)
        self.next_close = min(self.open) + self.window_ms + self.lateness_ms if self.open else None

    def publish(self, start, group, aggregate):
        quartier, kind = group
        count, total, low, high = aggregate
        late = self.late.pop(group, 0)
        end = start + self.window_ms
        fields = {"count": count, "late": late, "window_start": start, "window_s": self.window_ms / 1000}
        tags = {"polygons": self.polygons_name}
        if quartier is None:
            topic = f"{self.prefix}/unassigned/{kind}"
            body = {"sensor_id": "unassigned", "kind": kind, "value": count, "unit": "readings", "ts": end}
        else:
            mean = total / count
            lat, lon = self.quartiers.centroids[quartier]
            topic = f"{self.prefix}/quartiers/{self.quartiers.ids[quartier]}/{kind}"
            body = {"sensor_id": self.quartiers.ids[quartier], "kind": kind, "value": mean,
                    "unit": self.units.get(kind, ""), "ts": end, "lat": lat, "lon": lon}
            fields.update(mean=mean, min=low, max=high)
            tags["quartier"] = self.quartiers.names[quartier]
        body["fields"] = fields
        body["tags"] = tags
        self.client.publish(topic, json.dumps(body, separators=(",", ":")), qos=self.qos)
        self.published += 1

    def stats(self):
        return {"processed": self.processed, "published": self.published, "late": self.late_total,
                "errors": self.errors}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--qos", type=int, choices=(0, 1), default=0, help="subscription and publication QoS")
    parser.add_argument("--prefix", default="toulouse")
    parser.add_argument("--polygons", default=os.path.join(ROOT, "data/geo/quartiers.geojson"))
    parser.add_argument("--window-s", type=float, default=300.0)
    parser.add_argument("--lateness-s", type=float, default=60.0)
    parser.add_argument("--stats-topic", default="bench/python_baseline/stats")
    parser.add_argument("--stats-every", type=float, default=0.1, help="seconds; 0: never")
    args = parser.parse_args()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"python-baseline-{os.getpid()}")
    app = AvgQuartier(client, Quartiers(args.polygons), args.prefix, args.qos, args.window_s, args.lateness_s,
                      os.path.splitext(os.path.basename(args.polygons))[0])
    client.on_message = app.on_message
    subscribed = threading.Event()
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{args.prefix}/sensors/#", qos=args.qos)
    client.on_subscribe = lambda c, u, mid, codes, p: subscribed.set()
    client.connect(args.host, args.port, keepalive=60)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    client.loop_start()
    next_tick = time.monotonic() + 1.0
    while not stop.wait(args.stats_every if args.stats_every > 0 else 1.0):
        if time.monotonic() >= next_tick:
            next_tick += 1.0
            with app.lock:
                app.advance(int(time.time() * 1000))
        if args.stats_every > 0 and subscribed.is_set():
            client.publish(args.stats_topic, json.dumps(app.stats()))
    client.loop_stop()
    client.disconnect()
    print(json.dumps(app.stats()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
