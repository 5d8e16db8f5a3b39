//! The [`Processor`] trait and the glue that runs it behind the WIT exports.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::Config;
use crate::processor_bindings::exports::garonne::plugin::processor_api as api;
use crate::types::{Message, Sensor};

/// A plugin that turns readings into messages.
///
/// Only `on_reading` is required. The struct itself is the plugin's state: the default
/// `snapshot`/`restore` serialise it (as JSON), so that the host can bring it back after a trap,
/// a restart or a hot swap.
///
/// Mark fields that come from the configuration `#[serde(skip)]`: they are not state, and a
/// restored value brings them back as their `Default`. The host calls `init` before `restore`,
/// and the SDK calls `init` once more right after a successful `restore` so that those fields
/// are set again; `init` should therefore set configuration and leave state alone.
///
/// An `Err` from `on_reading` stops the batch: the host reports the error and dead-letters the
/// whole batch, and the messages of that batch are not published, but the instance is kept
/// (with whatever state the earlier readings of the batch changed). Return `Ok` and skip a
/// reading you merely cannot use.
pub trait Processor: Default + Serialize + DeserializeOwned + 'static {
    /// Called once with the `[plugin.config]` table; an error stops the pipeline at start.
    fn init(&mut self, _config: &Config) -> Result<(), String> {
        Ok(())
    }

    /// Called for each reading of each batch, in arrival order (not necessarily time order).
    fn on_reading(&mut self, reading: &Reading<'_>, out: &mut Output) -> Result<(), String>;

    /// Called as the virtual clock advances to `now` (ms): close time windows here.
    fn on_tick(&mut self, _now: i64, _out: &mut Output) -> Result<(), String> {
        Ok(())
    }

    /// The state to keep; by default the struct as JSON (without its `#[serde(skip)]` fields).
    fn snapshot(&self) -> Vec<u8> {
        // Serialising plain Rust data to JSON cannot fail short of a non-string map key, which
        // a plugin would see in its very first test; an empty state is the safe answer then
        // (restoring it is an error the host reports, not a trap).
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Replaces the state with one from `snapshot`; by default `*self` = the decoded JSON.
    fn restore(&mut self, state: &[u8]) -> Result<(), String> {
        *self = decode_state(state)?;
        Ok(())
    }
}

/// Decodes a JSON snapshot; bad bytes are an error, never a panic.
pub(crate) fn decode_state<T: DeserializeOwned>(state: &[u8]) -> Result<T, String> {
    serde_json::from_slice(state).map_err(|e| format!("cannot restore the snapshot: {e}"))
}

/// One reading: a value of a sensor at a time.
pub struct Reading<'a> {
    sensor: &'a Sensor,
    index: u32,
    value: f64,
    time: i64,
}

impl<'a> Reading<'a> {
    pub fn sensor(&self) -> &'a Sensor {
        self.sensor
    }
    /// The sensor's index: stable for the plugin's lifetime, handy as a map key.
    pub fn sensor_index(&self) -> u32 {
        self.index
    }
    pub fn value(&self) -> f64 {
        self.value
    }
    /// Event time, ms since the Unix epoch.
    pub fn time(&self) -> i64 {
        self.time
    }
}

impl Message {
    /// A message about `reading`: its sensor's id, kind, unit, position and tags, its value and
    /// its time, on `topic`. Change what differs with the builder methods (`with_value`, ...).
    pub fn about(topic: impl Into<String>, reading: &Reading<'_>) -> Self {
        let sensor = reading.sensor();
        Message::new(topic, &sensor.id, &sensor.kind, reading.value(), &sensor.unit, reading.time())
            .position(sensor.position)
            .tags(&sensor.tags)
    }
}

/// Where a processor puts the messages it wants published.
#[derive(Default)]
pub struct Output {
    messages: Vec<Message>,
}

impl Output {
    pub fn emit(&mut self, message: Message) {
        self.messages.push(message);
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    fn into_wit(self) -> Vec<api::Message> {
        self.messages.into_iter().map(Into::into).collect()
    }
}

/// Keeps the plugin and the sensors the host described, and turns column batches into
/// [`Reading`]s.
#[derive(Default)]
pub struct ProcessorRunner<P> {
    plugin: P,
    config: Config,
    /// By sensor index; `None` for an index the host has not described (yet).
    sensors: Vec<Option<Sensor>>,
}

impl<P: Processor> ProcessorRunner<P> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn init(&mut self, config: Vec<(String, String)>) -> Result<(), String> {
        self.config = Config::new(config);
        self.plugin.init(&self.config)
    }

    pub fn on_sensors(&mut self, first: u32, sensors: Vec<api::Sensor>) {
        register(&mut self.sensors, first, sensors.into_iter().map(Sensor::from));
    }

    pub fn on_readings(&mut self, batch: api::Readings) -> Result<Vec<api::Message>, String> {
        let mut out = Output::default();
        for_each_reading(&self.sensors, &batch.sensors, &batch.values, &batch.times, |reading| {
            self.plugin.on_reading(&reading, &mut out)
        })?;
        Ok(out.into_wit())
    }

    pub fn on_tick(&mut self, now: i64) -> Result<Vec<api::Message>, String> {
        let mut out = Output::default();
        self.plugin.on_tick(now, &mut out)?;
        Ok(out.into_wit())
    }

    pub fn snapshot(&self) -> Vec<u8> {
        self.plugin.snapshot()
    }

    pub fn restore(&mut self, state: &[u8]) -> Result<(), String> {
        self.plugin.restore(state)?;
        // Fields skipped by serde come back as their defaults: give init another go at them.
        self.plugin.init(&self.config)
    }
}

/// Places `sensors` at indices `first..`, replacing known ones and growing the registry.
fn register(registry: &mut Vec<Option<Sensor>>, first: u32, sensors: impl Iterator<Item = Sensor>) {
    for (offset, sensor) in sensors.enumerate() {
        let index = first as usize + offset;
        if index >= registry.len() {
            // Indices are dense, so a gap is unusual; it stays `None`, never a made-up sensor.
            registry.resize(index + 1, None);
        }
        registry[index] = Some(sensor);
    }
}

/// Calls `f` for each reading of a column batch; an unknown sensor index is an error.
fn for_each_reading(
    registry: &[Option<Sensor>],
    sensors: &[u32],
    values: &[f64],
    times: &[i64],
    mut f: impl FnMut(Reading<'_>) -> Result<(), String>,
) -> Result<(), String> {
    if sensors.len() != values.len() || sensors.len() != times.len() {
        return Err(format!(
            "malformed batch: {} sensors, {} values, {} times",
            sensors.len(),
            values.len(),
            times.len()
        ));
    }
    for i in 0..sensors.len() {
        let index = sensors[i];
        let sensor = registry
            .get(index as usize)
            .and_then(Option::as_ref)
            .ok_or_else(|| format!("reading for unknown sensor index {index}"))?;
        f(Reading { sensor, index, value: values[i], time: times[i] })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sensor(id: &str) -> Sensor {
        Sensor { id: id.into(), kind: "temperature".into(), ..Sensor::default() }
    }

    fn registry_of(ids: &[&str]) -> Vec<Option<Sensor>> {
        ids.iter().map(|id| Some(sensor(id))).collect()
    }

    #[test]
    fn sensors_are_placed_at_their_indices_and_replaced_when_sent_again() {
        let mut registry = Vec::new();
        register(&mut registry, 0, [sensor("a"), sensor("b")].into_iter());
        register(&mut registry, 1, [sensor("b2"), sensor("c")].into_iter());
        let ids: Vec<&str> = registry.iter().flatten().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["a", "b2", "c"]);
    }

    #[test]
    fn column_batches_become_readings_in_order() {
        let registry = registry_of(&["a", "b"]);
        let mut seen = Vec::new();
        for_each_reading(&registry, &[1, 0], &[2.5, 3.5], &[10, 20], |r| {
            seen.push((r.sensor().id.clone(), r.sensor_index(), r.value(), r.time()));
            Ok(())
        })
        .expect("valid batch");
        assert_eq!(seen, vec![("b".into(), 1, 2.5, 10), ("a".into(), 0, 3.5, 20)]);
    }

    #[test]
    fn an_unknown_sensor_or_a_ragged_batch_is_an_error_not_a_panic() {
        let registry = registry_of(&["a"]);
        let unknown = for_each_reading(&registry, &[5], &[1.0], &[0], |_| Ok(()));
        assert_eq!(unknown, Err("reading for unknown sensor index 5".into()));
        let ragged = for_each_reading(&registry, &[0, 0], &[1.0], &[0], |_| Ok(()));
        assert!(ragged.is_err());
    }

    #[test]
    fn an_index_skipped_by_the_host_stays_unknown() {
        let mut registry = Vec::new();
        register(&mut registry, 2, [sensor("c")].into_iter());
        let skipped = for_each_reading(&registry, &[0], &[1.0], &[0], |_| Ok(()));
        assert_eq!(skipped, Err("reading for unknown sensor index 0".into()));
        assert!(for_each_reading(&registry, &[2], &[1.0], &[0], |_| Ok(())).is_ok());
    }

    #[test]
    fn the_plugins_error_stops_the_batch_and_is_returned() {
        let registry = registry_of(&["a"]);
        let mut calls = 0;
        let result = for_each_reading(&registry, &[0, 0, 0], &[1.0, 2.0, 3.0], &[0, 1, 2], |r| {
            calls += 1;
            if r.value() == 2.0 { Err("bad value".into()) } else { Ok(()) }
        });
        assert_eq!(result, Err("bad value".into()));
        assert_eq!(calls, 2);
    }

    /// A processor that counts readings and scales values by a configured factor.
    #[derive(Default, serde::Serialize, serde::Deserialize)]
    struct Scaler {
        seen: u64,
        #[serde(skip)]
        factor: f64,
    }

    impl Processor for Scaler {
        fn init(&mut self, config: &Config) -> Result<(), String> {
            self.factor = config.f64_or("factor", 1.0)?;
            Ok(())
        }

        fn on_reading(&mut self, reading: &Reading<'_>, out: &mut Output) -> Result<(), String> {
            self.seen += 1;
            let sensor = reading.sensor();
            let value = reading.value() * self.factor;
            out.emit(Message::new("scaled", &sensor.id, &sensor.kind, value, &sensor.unit, reading.time()));
            Ok(())
        }
    }

    fn started_scaler() -> ProcessorRunner<Scaler> {
        let mut runner = ProcessorRunner::<Scaler>::default();
        runner.init(vec![("factor".into(), "2".into())]).expect("valid config");
        let wit_sensor = api::Sensor {
            id: "a".into(),
            kind: "temperature".into(),
            unit: "°C".into(),
            position: None,
            tags: Vec::new(),
        };
        runner.on_sensors(0, vec![wit_sensor]);
        runner
    }

    #[test]
    fn a_batch_runs_through_the_plugin_and_comes_back_as_messages() {
        let mut runner = started_scaler();
        let batch = api::Readings { sensors: vec![0, 0], values: vec![1.5, 4.0], times: vec![10, 20] };
        let messages = runner.on_readings(batch).expect("known sensor");
        let values: Vec<(f64, i64)> = messages.iter().map(|m| (m.value, m.time)).collect();
        assert_eq!(values, vec![(3.0, 10), (8.0, 20)]);
        assert_eq!(messages[0].topic, "scaled");
        assert_eq!(messages[0].unit, "°C");
    }

    #[test]
    fn restore_brings_back_the_state_and_init_sets_the_configuration_again() {
        let mut runner = started_scaler();
        let batch = api::Readings { sensors: vec![0], values: vec![1.0], times: vec![0] };
        runner.on_readings(batch).expect("known sensor");
        let state = runner.snapshot();

        let mut fresh = started_scaler();
        fresh.restore(&state).expect("own snapshot");
        assert_eq!(fresh.plugin.seen, 1);
        assert_eq!(fresh.plugin.factor, 2.0, "the skipped field is set again by init");
    }

    #[test]
    fn bad_snapshot_bytes_are_an_error_and_leave_the_state_alone() {
        let mut runner = started_scaler();
        runner.plugin.seen = 7;
        let error = runner.restore(b"\xff not json").expect_err("garbage");
        assert!(error.starts_with("cannot restore the snapshot"), "{error}");
        assert_eq!(runner.plugin.seen, 7);
    }
}
