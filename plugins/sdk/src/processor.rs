//! The [`Processor`] trait and the glue that runs it behind the WIT exports.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::Config;
use crate::processor_bindings::exports::garonne::plugin::processor_api as api;
use crate::series::{Series, SeriesBook};
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
///
/// Two ways, for the same messages on the wire, published in the order the plugin gives them:
/// - [`emit`](Self::emit) a [`Message`]: simplest, for what is published now and then (an
///   alert);
/// - [`point`](Self::point) of a series: for message after message about the same subject (a
///   sensor's clean readings, a quartier's averages), where the strings of a `Message` would
///   cost more than the plugin's own work. The plugin names the subject with a key of its own;
///   the first point of a key describes the series, and later ones send numbers only.
#[derive(Default)]
pub struct Output {
    /// Emitted messages not handed over yet; while there are any, no point is pending.
    messages: Vec<Message>,
    series: SeriesBook,
    /// Messages and points handed over during the call (to the host, or natively to
    /// `published`).
    sent: usize,
    #[cfg(not(target_arch = "wasm32"))]
    published: Vec<Message>,
}

impl Output {
    pub fn emit(&mut self, message: Message) {
        if self.series.len() > 0 {
            self.publish_points();
        }
        self.messages.push(message);
    }

    /// Publishes a message of the series `key`: `describe` gives what its messages have in
    /// common, `value`, `time` and `fields` (one number per name of the series' fields, in
    /// order) what this one adds.
    ///
    /// `key` is any number that names one subject for the plugin's lifetime: a sensor index
    /// (`reading.sensor_index()`), a group. `describe` runs for the first point of a key, and
    /// again after the host describes a known sensor anew (a sensor moved), so that a series made
    /// from a sensor's metadata follows it; other points allocate nothing.
    ///
    /// # Panics
    /// When `fields` does not have one number per field name of the series: a bug in the plugin,
    /// which its first test shows.
    pub fn point(
        &mut self,
        key: u64,
        value: f64,
        time: i64,
        fields: &[f64],
        describe: impl FnOnce() -> Series,
    ) {
        if !self.messages.is_empty() {
            self.publish_messages();
        }
        self.series.point(key, value, time, fields, describe);
    }

    /// Messages and points so far in this call.
    pub fn len(&self) -> usize {
        self.sent + self.messages.len() + self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn with_series(series: SeriesBook) -> Self {
        Self { series, ..Self::default() }
    }

    fn publish_points(&mut self) {
        self.sent += self.series.len();
        #[cfg(target_arch = "wasm32")]
        self.series.send(&[]);
        #[cfg(not(target_arch = "wasm32"))]
        self.series.expand_into(&mut self.published);
    }

    fn publish_messages(&mut self) {
        self.sent += self.messages.len();
        #[cfg(target_arch = "wasm32")]
        {
            let messages: Vec<api::Message> = self.messages.drain(..).map(Into::into).collect();
            self.series.send(&messages);
        }
        #[cfg(not(target_arch = "wasm32"))]
        self.published.append(&mut self.messages);
    }

    /// Ends a call: publishes the pending points (the pending messages are what the call
    /// returns, which the host publishes last), and gives the series book back to the runner.
    /// A failed call publishes nothing: the host drops what it was handed during the call.
    fn finish(mut self, result: Result<(), String>) -> (Result<Vec<api::Message>, String>, SeriesBook) {
        if let Err(error) = result {
            self.series.discard_points();
            return (Err(error), self.series);
        }
        if self.series.len() > 0 {
            self.publish_points();
        }
        #[cfg(not(target_arch = "wasm32"))]
        let messages = self.published.into_iter().chain(self.messages).map(Into::into).collect();
        #[cfg(target_arch = "wasm32")]
        let messages = self.messages.into_iter().map(Into::into).collect();
        (Ok(messages), self.series)
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
    /// The series of this instance: kept across calls, never in a snapshot (a new instance
    /// declares its series again).
    series: SeriesBook,
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
        if register(&mut self.sensors, first, sensors.into_iter().map(Sensor::from)) {
            self.series.sensors_changed();
        }
    }

    pub fn on_readings(&mut self, batch: api::Readings) -> Result<Vec<api::Message>, String> {
        self.with_output(|plugin, sensors, out| {
            for_each_reading(sensors, &batch.sensors, &batch.values, &batch.times, |reading| {
                plugin.on_reading(&reading, out)
            })
        })
    }

    pub fn on_tick(&mut self, now: i64) -> Result<Vec<api::Message>, String> {
        self.with_output(|plugin, _, out| plugin.on_tick(now, out))
    }

    /// Runs one call with an `Output` that holds the instance's series book, and takes the book
    /// back after it.
    fn with_output(
        &mut self,
        f: impl FnOnce(&mut P, &[Option<Sensor>], &mut Output) -> Result<(), String>,
    ) -> Result<Vec<api::Message>, String> {
        let mut out = Output::with_series(std::mem::take(&mut self.series));
        let result = f(&mut self.plugin, &self.sensors, &mut out);
        let (messages, series) = out.finish(result);
        self.series = series;
        messages
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
/// Returns whether a known sensor was replaced.
fn register(registry: &mut Vec<Option<Sensor>>, first: u32, sensors: impl Iterator<Item = Sensor>) -> bool {
    let mut replaced = false;
    for (offset, sensor) in sensors.enumerate() {
        let index = first as usize + offset;
        if index >= registry.len() {
            // Indices are dense, so a gap is unusual; it stays `None`, never a made-up sensor.
            registry.resize(index + 1, None);
        }
        replaced |= registry[index].replace(sensor).is_some();
    }
    replaced
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
        assert!(!register(&mut registry, 0, [sensor("a"), sensor("b")].into_iter()), "nothing replaced");
        assert!(register(&mut registry, 1, [sensor("b2"), sensor("c")].into_iter()), "b replaced");
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

    /// Publishes a point of its sensor's series for each reading, and a message for a negative
    /// one; fails the call on a value below -100.
    #[derive(Default, serde::Serialize, serde::Deserialize)]
    struct Mixed;

    impl Processor for Mixed {
        fn on_reading(&mut self, reading: &Reading<'_>, out: &mut Output) -> Result<(), String> {
            let (value, time) = (reading.value(), reading.time());
            if value < -100.0 {
                return Err("far too low".into());
            }
            if value < 0.0 {
                out.emit(Message::new("negative", "x", "alert", value, "", time));
                return Ok(());
            }
            out.point(reading.sensor_index().into(), value, time, &[value * 2.0], || {
                Series::about("series", reading).fields(&["double"])
            });
            Ok(())
        }
    }

    fn mixed() -> ProcessorRunner<Mixed> {
        let mut runner = ProcessorRunner::<Mixed>::default();
        runner.init(vec![]).expect("init");
        runner.on_sensors(
            0,
            vec![api::Sensor {
                id: "s".into(),
                kind: "temperature".into(),
                unit: "°C".into(),
                position: None,
                tags: vec![],
            }],
        );
        runner
    }

    fn topics_and_values(messages: &[api::Message]) -> Vec<(&str, f64)> {
        messages.iter().map(|m| (m.topic.as_str(), m.value)).collect()
    }

    #[test]
    fn points_and_messages_come_out_in_the_order_the_plugin_gave_them() {
        let mut runner = mixed();
        let batch =
            api::Readings { sensors: vec![0; 4], values: vec![1.0, -1.0, 2.0, 3.0], times: vec![0; 4] };
        let messages = runner.on_readings(batch).expect("valid batch");
        assert_eq!(
            topics_and_values(&messages),
            [("series", 1.0), ("negative", -1.0), ("series", 2.0), ("series", 3.0)]
        );
        assert_eq!(messages[2].fields, vec![("double".to_owned(), 4.0)]);
        assert_eq!((messages[0].kind.as_str(), messages[0].unit.as_str()), ("temperature", "°C"));
    }

    #[test]
    fn a_failed_call_leaves_no_point_behind_for_the_next() {
        let mut runner = mixed();
        let failing = api::Readings { sensors: vec![0; 2], values: vec![5.0, -200.0], times: vec![0; 2] };
        assert_eq!(runner.on_readings(failing).err(), Some("far too low".to_owned()));
        let next = api::Readings { sensors: vec![0], values: vec![6.0], times: vec![0] };
        assert_eq!(topics_and_values(&runner.on_readings(next).expect("valid")), [("series", 6.0)]);
    }

    #[test]
    fn a_sensor_described_anew_changes_the_messages_of_its_series() {
        let mut runner = mixed();
        let one = || api::Readings { sensors: vec![0], values: vec![1.0], times: vec![0] };
        assert_eq!(runner.on_readings(one()).expect("valid")[0].unit, "°C");
        let moved = api::Sensor {
            id: "s".into(),
            kind: "temperature".into(),
            unit: "K".into(),
            position: None,
            tags: vec![],
        };
        runner.on_sensors(0, vec![moved]);
        assert_eq!(runner.on_readings(one()).expect("valid")[0].unit, "K");
    }
}
