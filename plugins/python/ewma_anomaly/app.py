r"""EWMA anomaly detector: a Garonne processor written in Python.

Per sensor, it keeps an exponentially weighted moving mean and variance of the values. Once a
sensor has had `warmup` readings, a reading further than `k` standard deviations from the mean
*before* it is published on `anomalies/{kind}/{sensor_id}`: the value is the reading's, the
fields are `mean`, `sigma` and `deviation` (value - mean). Every reading, anomalies included,
then updates the mean and the variance. A sensor that never moved has sigma = 0: its first
change after the warm-up is an anomaly.

Config ([plugin.config] of the pipeline file):
    alpha   weight of a new reading, 0 < alpha <= 1 (default 0.1)
    k       threshold, in standard deviations (default 3)
    warmup  readings of a sensor before it is judged (default 10)
    debug_loop_on  TEST HOOK, never in production: a reading with exactly this value makes
            on-readings loop forever, so that the tests can check the host interrupts it.

Limits: the host's defaults suit it (it needs 16 MiB; a reading costs 3 to 30 microseconds,
ten times a Rust plugin when each gives a message).

Build (componentize-py, wit/v0.1.0, world `processor`) and test, from the repository's root:
    cargo xtask build-plugins
    cargo run --bin host -- plugin test plugins/target/wasm32-wasip2/release/ewma_anomaly.wasm \
        --input plugins/python/ewma_anomaly/testdata/input.jsonl \
        --config plugins/python/ewma_anomaly/testdata/config.toml \
        --expect plugins/python/ewma_anomaly/testdata/expected.jsonl
"""

import json
import math

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports.types import Message


# componentize-py makes a new ProcessorApi object for every call: what must last lives here.
sensors = {}  # sensor index -> Sensor (id, kind, unit, position, tags), from on_sensors
state = {}  # sensor index -> [count, mean, variance]: what snapshots keep
config = {}  # alpha, k, warmup, loop_on: set by init


class ProcessorApi(exports.ProcessorApi):
    def init(self, pairs):
        given = dict(pairs)
        try:
            config["alpha"] = float(given.get("alpha", "0.1"))
            config["k"] = float(given.get("k", "3"))
            config["warmup"] = int(given.get("warmup", "10"))
            config["loop_on"] = float(given["debug_loop_on"]) if "debug_loop_on" in given else None
        except ValueError as error:
            raise Err(f"bad config: {error}")
        if not 0 < config["alpha"] <= 1:
            raise Err(f"config `alpha` must be in (0, 1], not {config['alpha']}")

    def on_sensors(self, first, described):
        for offset, sensor in enumerate(described):
            sensors[first + offset] = sensor

    def on_readings(self, batch):
        alpha, k, out = config["alpha"], config["k"], []
        for index, value, time in zip(batch.sensors, batch.values, batch.times):
            while value == config["loop_on"]:
                pass  # the test hook: an endless loop that the host must interrupt
            sensor = sensors.get(index)
            if sensor is None:
                raise Err(f"reading for unknown sensor index {index}")
            count, mean, variance = state.get(index, (0, value, 0.0))
            sigma = math.sqrt(variance)
            if count >= config["warmup"] and abs(value - mean) > k * sigma:
                fields = [("mean", mean), ("sigma", sigma), ("deviation", value - mean)]
                topic = f"anomalies/{sensor.kind}/{sensor.id}"
                out.append(Message(topic, sensor.id, sensor.kind, value, sensor.unit, time,
                                   sensor.position, fields, sensor.tags))
            diff = value - mean  # the incremental EWMA of the mean and of the variance
            mean += alpha * diff
            variance = (1 - alpha) * (variance + alpha * diff * diff)
            state[index] = [count + 1, mean, variance]
        return out

    def on_tick(self, now):
        return []

    def snapshot(self):
        return json.dumps(state).encode()  # JSON turns the int keys into strings

    def restore(self, snapshot):
        try:
            restored = {int(index): entry for index, entry in json.loads(snapshot).items()}
        except (ValueError, AttributeError) as error:
            raise Err(f"cannot restore the snapshot: {error}")
        state.clear()
        state.update(restored)
