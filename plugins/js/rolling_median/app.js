/**
 * Rolling median: a Garonne processor written in JavaScript (plugins/js/rolling_median/app.js).
 *
 * For each reading, publishes on `medians/{kind}/{sensor_id}` the median of the sensor's last
 * `window` readings, in the order they arrived: the value is the median, the fields are `median`,
 * `count` (readings in the window, fewer than `window` at first) and `window`; the time is the
 * reading's, the unit, position and tags the sensor's. Unlike a mean, a median shrugs off a
 * lone spike (a bad NO2 reading, a bike station that briefly reports 0).
 *
 * Config ([plugin.config] of the pipeline file):
 *   window         readings per sensor, a whole number >= 1 (default 5)
 *   debug_loop_on  TEST HOOK, never in production: a reading with exactly this value makes
 *                  on-readings loop forever, so that the tests can check the host interrupts it.
 *
 * Limits: it runs within the host's defaults, but a reading costs about 0.1 ms (40 times a Rust
 * plugin: a batch of 1000 takes half the 200 ms deadline) and the engine's heap is collected
 * lazily (it can reach the 64 MiB cap). In a pipeline, give it some room:
 *   [plugin.limits]
 *   memory_mib = 128
 *   call_deadline_ms = 1000
 *
 * Build (componentize-js, wit/v0.1.0, world `processor`) and test, from the repository's root:
 *   cargo xtask build-plugins
 *   cargo run --bin host -- plugin test plugins/target/wasm32-wasip2/release/rolling_median.wasm \
 *     --input plugins/js/rolling_median/testdata/input.jsonl \
 *     --config plugins/js/rolling_median/testdata/config.toml \
 *     --expect plugins/js/rolling_median/testdata/expected.jsonl
 *
 * How the WIT contract looks from JavaScript: the exported interface `processor-api` is the
 * object `processorApi`, its functions and record fields are camelCase (`onReadings`,
 * `sensorId`), s64 numbers are BigInts (`times`, `time`), list<u8> is a Uint8Array, and a thrown
 * string is the `err` of a result.
 */

const sensors = []; // sensor index -> { id, kind, unit, position, tags }, from onSensors
let windows = {}; // sensor index -> its last values, oldest first: what snapshots keep
let size = 5; // `window`, set by init
let loopOn = null; // `debug_loop_on`, set by init

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

export const processorApi = {
  init(config) {
    const given = Object.fromEntries(config);
    size = Number(given.window ?? '5');
    if (!Number.isInteger(size) || size < 1) {
      throw `config \`window\` must be a whole number >= 1, not ${given.window}`;
    }
    loopOn = 'debug_loop_on' in given ? Number(given.debug_loop_on) : null;
  },

  onSensors(first, described) {
    described.forEach((sensor, offset) => {
      sensors[first + offset] = sensor;
    });
  },

  onReadings(batch) {
    const out = [];
    for (let i = 0; i < batch.sensors.length; i++) {
      const [index, value, time] = [batch.sensors[i], batch.values[i], batch.times[i]];
      while (value === loopOn) {} // the test hook: an endless loop that the host must interrupt
      const sensor = sensors[index];
      if (sensor === undefined) throw `reading for unknown sensor index ${index}`;
      const window = (windows[index] ??= []);
      window.push(value);
      if (window.length > size) window.splice(0, window.length - size);
      const m = median(window);
      out.push({
        topic: `medians/${sensor.kind}/${sensor.id}`,
        sensorId: sensor.id,
        kind: sensor.kind,
        value: m,
        unit: sensor.unit,
        time,
        position: sensor.position,
        fields: [['median', m], ['count', window.length], ['window', size]],
        tags: sensor.tags,
      });
    }
    return out;
  },

  onTick(now) {
    return [];
  },

  snapshot() {
    return new TextEncoder().encode(JSON.stringify(windows));
  },

  restore(state) {
    try {
      windows = JSON.parse(new TextDecoder().decode(state));
    } catch (error) {
      throw `cannot restore the snapshot: ${error}`;
    }
  },
};
