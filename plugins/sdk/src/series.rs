//! Series (WIT 0.3.0): a processor that publishes message after message about the same subject
//! describes the subject once, and then sends numbers only.
//!
//! A [`Message`] carries a dozen strings, which the plugin allocates, the host copies and checks,
//! and the plugin frees again: for a processor that publishes a message per reading, most of
//! what a call costs. [`Output::point`](crate::Output::point) sends a value, a time and the
//! fields' numbers; the host makes the message from the [`Series`] it was given the first time.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::processor::Reading;
use crate::types::{Message, Position};

/// What every message of a series has in common: all of a [`Message`] but its value, its time
/// and the numbers of its fields, whose names (in order) are `field_names`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Series {
    pub topic: String,
    pub sensor_id: String,
    pub kind: String,
    pub unit: String,
    pub position: Option<Position>,
    pub field_names: Vec<String>,
    pub tags: Vec<(String, String)>,
}

impl Series {
    /// A series with no position, fields or tags; add them with the builder methods.
    pub fn new(topic: impl Into<String>, sensor_id: &str, kind: &str, unit: &str) -> Self {
        Self {
            topic: topic.into(),
            sensor_id: sensor_id.to_owned(),
            kind: kind.to_owned(),
            unit: unit.to_owned(),
            ..Self::default()
        }
    }

    /// The series of messages about `reading`'s sensor: its id, kind, unit, position and tags,
    /// on `topic` (the series counterpart of [`Message::about`]).
    pub fn about(topic: impl Into<String>, reading: &Reading<'_>) -> Self {
        let sensor = reading.sensor();
        Self::new(topic, &sensor.id, &sensor.kind, &sensor.unit).position(sensor.position).tags(&sensor.tags)
    }

    pub fn position(mut self, position: Option<Position>) -> Self {
        self.position = position;
        self
    }

    /// The names of the numbers every point of the series carries, in the order the points give
    /// them.
    pub fn fields(mut self, names: &[&str]) -> Self {
        self.field_names.extend(names.iter().map(|&name| name.to_owned()));
        self
    }

    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.tags.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn tags(mut self, tags: &[(String, String)]) -> Self {
        self.tags.extend_from_slice(tags);
        self
    }

    /// The message that a point of this series stands for.
    pub fn message(&self, value: f64, time: i64, fields: &[f64]) -> Message {
        Message {
            topic: self.topic.clone(),
            sensor_id: self.sensor_id.clone(),
            kind: self.kind.clone(),
            value,
            unit: self.unit.clone(),
            time,
            position: self.position,
            fields: self.field_names.iter().cloned().zip(fields.iter().copied()).collect(),
            tags: self.tags.clone(),
        }
    }
}

/// The plugin's series keys and the host's series indices, and what a call declared and
/// published, until the SDK hands them to the host at the end of the call.
#[derive(Default)]
pub(crate) struct SeriesBook {
    keys: HashMap<u64, Entry, BuildHasherDefault<KeyHasher>>,
    /// Bumped when the host describes a known sensor anew: a series made from a sensor's
    /// metadata may have changed, so each one is described again at its next point.
    generation: u32,
    /// Indices given so far; the next new series gets this one.
    declared: u32,
    /// Declarations not yet sent to the host, in order.
    pending: Vec<(u32, Series)>,
    points: Columns,
    /// Natively there is no host: the SDK keeps the descriptions and makes the messages itself,
    /// as the host would (native tests, benchmarks against the WebAssembly build).
    #[cfg(not(target_arch = "wasm32"))]
    described: Vec<Series>,
}

struct Entry {
    index: u32,
    fields: usize,
    generation: u32,
}

/// Points in the columns of WIT's `points` record.
#[derive(Default)]
pub(crate) struct Columns {
    series: Vec<u32>,
    values: Vec<f64>,
    times: Vec<i64>,
    fields: Vec<f64>,
}

impl SeriesBook {
    pub(crate) fn point(
        &mut self,
        key: u64,
        value: f64,
        time: i64,
        fields: &[f64],
        describe: impl FnOnce() -> Series,
    ) {
        let (index, expected) = match self.keys.get(&key) {
            Some(entry) if entry.generation == self.generation => (entry.index, entry.fields),
            known => {
                let index = known.map_or(self.declared, |entry| entry.index);
                self.declared = self.declared.max(index + 1);
                let series = describe();
                let expected = series.field_names.len();
                self.keys.insert(key, Entry { index, fields: expected, generation: self.generation });
                self.pending.push((index, series));
                (index, expected)
            }
        };
        // A programming error in the plugin, found by its first test: the trap says which series.
        assert_eq!(
            fields.len(),
            expected,
            "a point of series key {key} has {} fields, but its series names {expected}",
            fields.len()
        );
        self.points.series.push(index);
        self.points.values.push(value);
        self.points.times.push(time);
        self.points.fields.extend_from_slice(fields);
    }

    pub(crate) fn len(&self) -> usize {
        self.points.series.len()
    }

    pub(crate) fn sensors_changed(&mut self) {
        self.generation = self.generation.wrapping_add(1);
    }

    /// Forgets the points of a call that failed: the host publishes nothing of it. Its
    /// declarations stay pending, since this side counts them as made: they go with the next
    /// call that succeeds.
    pub(crate) fn discard_points(&mut self) {
        self.points.clear();
    }
}

impl Columns {
    fn clear(&mut self) {
        self.series.clear();
        self.values.clear();
        self.times.clear();
        self.fields.clear();
    }
}

#[cfg(target_arch = "wasm32")]
impl SeriesBook {
    /// Sends the pending declarations, then publishes the pending points and `messages`, in
    /// that order, through the host.
    pub(crate) fn send(&mut self, messages: &[crate::processor_bindings::garonne::plugin::types::Message]) {
        use crate::processor_bindings::garonne::plugin::{host, types as p};
        for (index, series) in self.pending.drain(..) {
            host::declare_series(index, &series.into());
        }
        // The columns move into the record and back, so their buffers serve the next call.
        let c = &mut self.points;
        let points = p::Points {
            series: std::mem::take(&mut c.series),
            values: std::mem::take(&mut c.values),
            times: std::mem::take(&mut c.times),
            fields: std::mem::take(&mut c.fields),
        };
        host::publish(&points, messages);
        *c = Columns {
            series: points.series,
            values: points.values,
            times: points.times,
            fields: points.fields,
        };
        c.clear();
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl SeriesBook {
    /// Natively, where no host exists: appends to `out` the messages the host would make of the
    /// pending points.
    pub(crate) fn expand_into(&mut self, out: &mut Vec<Message>) {
        for (index, series) in self.pending.drain(..) {
            match self.described.get_mut(index as usize) {
                Some(known) => *known = series,
                None => self.described.push(series),
            }
        }
        let c = &mut self.points;
        let mut fields = c.fields.as_slice();
        out.reserve(c.series.len());
        for i in 0..c.series.len() {
            let series = &self.described[c.series[i] as usize];
            let (own, rest) = fields.split_at(series.field_names.len());
            fields = rest;
            out.push(series.message(c.values[i], c.times[i], own));
        }
        c.clear();
    }
}

/// Keys are the plugin's own numbers (sensor indices, groups), not input from outside: a
/// multiply-and-fold hash is enough, and much cheaper in WebAssembly than SipHash.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, n: u64) {
        let product = u128::from(self.0 ^ n) * 0x9E37_79B9_7F4A_7C15;
        self.0 = (product as u64) ^ ((product >> 64) as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

// Natively only: the tests read the messages the SDK makes where no host exists.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    fn flush(book: &mut SeriesBook) -> Vec<Message> {
        let mut out = Vec::new();
        book.expand_into(&mut out);
        out
    }

    fn described(topic: &str) -> Series {
        Series::new(topic, "42", "temperature", "°C").fields(&["min"]).tag("quartier", "Capitole")
    }

    #[test]
    fn points_are_the_messages_of_their_series() {
        let mut book = SeriesBook::default();
        book.point(7, 1.5, 10, &[1.0], || described("a"));
        book.point(9, 2.5, 20, &[2.0], || described("b"));
        book.point(7, 3.5, 30, &[3.0], || unreachable!("series 7 is known"));
        let messages = flush(&mut book);
        assert_eq!(
            messages,
            vec![
                described("a").message(1.5, 10, &[1.0]),
                described("b").message(2.5, 20, &[2.0]),
                described("a").message(3.5, 30, &[3.0]),
            ]
        );
        assert_eq!(messages[0].fields, vec![("min".to_owned(), 1.0)]);
        assert_eq!(book.len(), 0);
        book.point(9, 4.5, 40, &[4.0], || unreachable!("still known after a flush"));
        assert_eq!(flush(&mut book), vec![described("b").message(4.5, 40, &[4.0])]);
    }

    #[test]
    fn a_changed_sensor_has_every_series_described_again_under_its_index() {
        let mut book = SeriesBook::default();
        book.point(1, 0.0, 0, &[0.0], || described("old"));
        book.point(2, 0.0, 0, &[0.0], || described("other"));
        flush(&mut book);
        book.sensors_changed();
        book.point(1, 5.0, 50, &[5.0], || described("new"));
        assert_eq!(book.pending.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0], "same index");
        assert_eq!(flush(&mut book), vec![described("new").message(5.0, 50, &[5.0])]);
        assert_eq!(book.declared, 2);
    }

    #[test]
    fn a_failed_call_publishes_nothing_but_its_declarations_still_go() {
        let mut book = SeriesBook::default();
        book.point(1, 1.0, 0, &[0.0], || described("a"));
        book.discard_points();
        assert!(flush(&mut book).is_empty());
        assert!(book.pending.is_empty(), "sent with the flush");
        book.point(1, 2.0, 0, &[0.0], || unreachable!("declared"));
        assert_eq!(flush(&mut book), vec![described("a").message(2.0, 0, &[0.0])]);
    }

    #[test]
    #[should_panic(expected = "has 2 fields, but its series names 1")]
    fn a_point_with_the_wrong_number_of_fields_is_a_bug_in_the_plugin() {
        let mut book = SeriesBook::default();
        book.point(1, 1.0, 0, &[0.0, 1.0], || described("a"));
    }
}
