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
/// a restart or a hot swap. Mark fields that come from the configuration `#[serde(skip)]`: `init`
/// is called again after `restore` to set them, so it should set configuration, not state.
pub trait Processor: Default + Serialize + DeserializeOwned + 'static {
    /// Called once with the `[plugin.config]` table; an error stops the pipeline at start.
    fn init(&mut self, _config: &Config) -> Result<(), String> {
        Ok(())
    }

    /// Called for each reading of each batch, in arrival order.
    fn on_reading(&mut self, reading: &Reading<'_>, out: &mut Output) -> Result<(), String>;

    /// Called as the virtual clock advances (about once a second): close time windows here.
    fn on_tick(&mut self, _now: i64, _out: &mut Output) -> Result<(), String> {
        Ok(())
    }

    fn snapshot(&self) -> Vec<u8> {
        // Serialising plain Rust data to JSON cannot fail short of a non-string map key, which
        // a plugin would see in its very first test; an empty state is the safe answer then.
        serde_json::to_vec(self).unwrap_or_default()
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), String> {
        let restored: Self =
            serde_json::from_slice(state).map_err(|e| format!("cannot restore the snapshot: {e}"))?;
        *self = restored;
        Ok(())
    }
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
    sensors: Vec<Sensor>,
}

impl<P: Processor> ProcessorRunner<P> {
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
fn register(registry: &mut Vec<Sensor>, first: u32, sensors: impl Iterator<Item = Sensor>) {
    for (offset, sensor) in sensors.enumerate() {
        let index = first as usize + offset;
        if index >= registry.len() {
            registry.resize(index + 1, Sensor::default());
        }
        registry[index] = sensor;
    }
}

/// Calls `f` for each reading of a column batch; an unknown sensor index is an error.
fn for_each_reading(
    registry: &[Sensor],
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

    #[test]
    fn sensors_are_placed_at_their_indices_and_replaced_when_sent_again() {
        let mut registry = Vec::new();
        register(&mut registry, 0, [sensor("a"), sensor("b")].into_iter());
        register(&mut registry, 1, [sensor("b2"), sensor("c")].into_iter());
        let ids: Vec<&str> = registry.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["a", "b2", "c"]);
    }

    #[test]
    fn column_batches_become_readings_in_order() {
        let registry = vec![sensor("a"), sensor("b")];
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
        let registry = vec![sensor("a")];
        let unknown = for_each_reading(&registry, &[5], &[1.0], &[0], |_| Ok(()));
        assert_eq!(unknown, Err("reading for unknown sensor index 5".into()));
        let ragged = for_each_reading(&registry, &[0, 0], &[1.0], &[0], |_| Ok(()));
        assert!(ragged.is_err());
    }
}
