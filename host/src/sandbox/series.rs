//! Series (WIT 0.3.0): what every message of a processor about one subject has in common,
//! declared once per instance, so that each message after that crosses the sandbox as numbers.
//!
//! A `message` carries a dozen strings. Returned by the guest, each one is allocated and filled
//! by the plugin, then copied and checked as UTF-8 by the host, then freed by the plugin again:
//! for a processor that publishes a message per reading, most of the cost of a call. A point of
//! a declared series carries three numbers and its fields; the host makes the message from the
//! series it keeps, in its own form ([`Published`]), whose short strings are kept inline: a
//! point costs the host an allocation for its topic and one for its tags, not one per string.

use super::bindings::v0_3_0::types::{Message, Points, Series};
use super::published::Published;
use crate::payload::Text;

/// The most memory the series of one instance may take on the host's side. A series is meant
/// for a subject (a sensor, a quartier and a measure), of which a pipeline has thousands; a
/// plugin that declared one per message would otherwise grow the host without bound, outside
/// its own memory cap.
pub(crate) const MAX_SERIES_BYTES: usize = 16 * 1024 * 1024;

/// Why a declaration or a publication breaks the contract. Each one traps the call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SeriesError {
    #[error(
        "declared series {index}, but only {declared} are declared: indices are dense, so the next \
         new series is {declared}"
    )]
    OutOfOrder { index: u32, declared: u32 },
    #[error(
        "declaring series {index} would take the series of this instance past {MAX_SERIES_BYTES} \
         bytes: declare a series per subject (a sensor, a group) and reuse it, not one per message"
    )]
    TooLarge { index: u32 },
    #[error(
        "the columns of the points differ in length ({series} series, {values} values, {times} \
         times)"
    )]
    Ragged { series: usize, values: usize, times: usize },
    #[error("point {at} names series {series}, which is not declared (series 0 to {declared} are)")]
    Undeclared { at: usize, series: u32, declared: u32 },
    #[error(
        "`fields` holds {given} numbers, but the points' series name {needed} fields in all \
         (`field-names` of each point's series, in order)"
    )]
    Fields { given: usize, needed: usize },
    #[error(
        "`publish` was called outside `on-readings` and `on-tick`: a processor publishes while it \
         handles readings or a tick (and may declare its series at any time); a sensor model \
         returns its readings from `tick`"
    )]
    OutsideCall,
}

/// The series one instance declared, by index.
#[derive(Debug, Default)]
pub(crate) struct SeriesTable {
    series: Vec<DeclaredSeries>,
    bytes: usize,
}

/// A series as the host keeps it: each of its messages, but for the numbers.
#[derive(Debug)]
struct DeclaredSeries {
    template: Published,
    field_names: Vec<Text>,
    /// What the declaration counts for in the table's budget.
    bytes: usize,
}

impl From<Series> for DeclaredSeries {
    fn from(series: Series) -> Self {
        let bytes = footprint(&series);
        let field_names = series.field_names.into_iter().map(Text::from).collect();
        // The message of a point of value 0 at time 0, made as a returned message is.
        let template = Published::from(Message {
            topic: series.topic,
            sensor_id: series.sensor_id,
            kind: series.kind,
            value: 0.0,
            unit: series.unit,
            time: 0,
            position: series.position,
            fields: Vec::new(),
            tags: series.tags,
        });
        DeclaredSeries { template, field_names, bytes }
    }
}

impl SeriesTable {
    /// Declares series `index`, or replaces its description if it exists.
    pub fn declare(&mut self, index: u32, series: Series) -> Result<(), SeriesError> {
        let declared = self.series.len() as u32;
        if index > declared {
            return Err(SeriesError::OutOfOrder { index, declared });
        }
        let replaced = self.series.get(index as usize).map_or(0, |known| known.bytes);
        let bytes = self.bytes - replaced + footprint(&series);
        if bytes > MAX_SERIES_BYTES {
            return Err(SeriesError::TooLarge { index });
        }
        self.bytes = bytes;
        let series = DeclaredSeries::from(series);
        match self.series.get_mut(index as usize) {
            Some(known) => *known = series,
            None => self.series.push(series),
        }
        Ok(())
    }

    /// Appends to `out` the messages that `points` stand for, in order, until `out` holds
    /// `max_len`; returns how many points did not fit. Checks every point first, so that a bad
    /// publication adds nothing. (The cap comes before the messages are made: a point takes a
    /// few bytes of the guest's memory and its message hundreds of the host's.)
    pub fn expand(
        &self,
        points: &Points,
        out: &mut Vec<Published>,
        max_len: usize,
    ) -> Result<usize, SeriesError> {
        let n = points.series.len();
        if points.values.len() != n || points.times.len() != n {
            return Err(SeriesError::Ragged {
                series: n,
                values: points.values.len(),
                times: points.times.len(),
            });
        }
        let mut needed = 0;
        for (at, &index) in points.series.iter().enumerate() {
            let series = self.series.get(index as usize).ok_or(SeriesError::Undeclared {
                at,
                series: index,
                declared: self.series.len() as u32,
            })?;
            needed += series.field_names.len();
        }
        if points.fields.len() != needed {
            return Err(SeriesError::Fields { given: points.fields.len(), needed });
        }
        let kept = n.min(max_len.saturating_sub(out.len()));
        out.reserve(kept);
        let mut fields = points.fields.as_slice();
        for i in 0..kept {
            let series = &self.series[points.series[i] as usize];
            let (own, rest) = fields.split_at(series.field_names.len());
            fields = rest;
            out.push(series.message(points.values[i], points.times[i], own));
        }
        Ok(n - kept)
    }
}

impl DeclaredSeries {
    fn message(&self, value: f64, time: i64, fields: &[f64]) -> Published {
        let mut message = self.template.clone();
        message.payload.value = value;
        message.payload.time = time;
        if !fields.is_empty() {
            message.payload.fields = self.field_names.iter().cloned().zip(fields.iter().copied()).collect();
        }
        message
    }
}

/// What a series takes on the host's side: its strings, and the vectors and headers that hold
/// them (a rough count that errs on the high side).
fn footprint(series: &Series) -> usize {
    const HEADER: usize = std::mem::size_of::<String>();
    let strings = [&series.topic, &series.sensor_id, &series.kind, &series.unit]
        .into_iter()
        .chain(&series.field_names)
        .chain(series.tags.iter().flat_map(|(k, v)| [k, v]));
    std::mem::size_of::<Series>() + strings.map(|s| s.len() + HEADER).sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::Position;

    fn series(topic: &str, field_names: &[&str]) -> Series {
        Series {
            topic: topic.into(),
            sensor_id: "42".into(),
            kind: "temperature".into(),
            unit: "°C".into(),
            position: Some(Position { lat: 43.6, lon: 1.44 }),
            field_names: field_names.iter().map(|&f| f.into()).collect(),
            tags: vec![("quartier".into(), "Capitole".into())],
        }
    }

    fn points(series: &[u32], fields: &[f64]) -> Points {
        Points {
            series: series.to_vec(),
            values: series.iter().map(|&s| f64::from(s) + 0.5).collect(),
            times: series.iter().map(|&s| i64::from(s) * 1000).collect(),
            fields: fields.to_vec(),
        }
    }

    #[test]
    fn points_become_the_messages_of_their_series_in_order() {
        let mut table = SeriesTable::default();
        table.declare(0, series("clean/temperature/42", &[])).expect("first");
        table.declare(1, series("quartiers/1/temperature", &["min", "max"])).expect("second");
        let mut out = Vec::new();
        let dropped = table.expand(&points(&[1, 0, 1], &[1.0, 2.0, 3.0, 4.0]), &mut out, 10).expect("valid");
        assert_eq!(dropped, 0);
        let topics: Vec<&str> = out.iter().map(|m| m.topic.as_str()).collect();
        assert_eq!(topics, ["quartiers/1/temperature", "clean/temperature/42", "quartiers/1/temperature"]);
        let fields = |m: &Published| -> Vec<(String, f64)> {
            m.payload.fields.iter().map(|(name, value)| (name.to_string(), *value)).collect()
        };
        assert_eq!((out[0].payload.value, out[0].payload.time), (1.5, 1000));
        assert_eq!(fields(&out[0]), [("max".to_owned(), 2.0), ("min".to_owned(), 1.0)]);
        assert!(out[1].payload.fields.is_empty());
        assert_eq!(fields(&out[2]), [("max".to_owned(), 4.0), ("min".to_owned(), 3.0)]);
        let tags: Vec<(&str, &str)> =
            out[1].payload.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(tags, [("quartier", "Capitole")]);
        let payload = &out[1].payload;
        assert_eq!((&*payload.sensor_id, &*payload.kind, &*payload.unit), ("42", "temperature", "°C"));
        assert_eq!(payload.position, Some((43.6, 1.44)));
    }

    #[test]
    fn a_series_described_anew_changes_the_messages_after_it() {
        let mut table = SeriesTable::default();
        table.declare(0, series("old", &[])).expect("declared");
        table.declare(0, series("new", &[])).expect("replaced");
        let mut out = Vec::new();
        table.expand(&points(&[0], &[]), &mut out, 10).expect("valid");
        assert_eq!(out[0].topic, "new");
        assert_eq!(table.bytes, footprint(&series("new", &[])), "the old description is not counted");
    }

    #[test]
    fn indices_must_be_dense() {
        let mut table = SeriesTable::default();
        assert_eq!(
            table.declare(1, series("t", &[])),
            Err(SeriesError::OutOfOrder { index: 1, declared: 0 })
        );
    }

    #[test]
    fn bad_points_publish_nothing_and_say_why() {
        let mut table = SeriesTable::default();
        table.declare(0, series("t", &["min"])).expect("declared");
        let mut out = Vec::new();
        let undeclared = table.expand(&points(&[0, 3], &[1.0, 2.0]), &mut out, 10);
        assert_eq!(undeclared, Err(SeriesError::Undeclared { at: 1, series: 3, declared: 1 }));
        let short = table.expand(&points(&[0, 0], &[1.0]), &mut out, 10);
        assert_eq!(short, Err(SeriesError::Fields { given: 1, needed: 2 }));
        let long = table.expand(&points(&[0], &[1.0, 2.0]), &mut out, 10);
        assert_eq!(long, Err(SeriesError::Fields { given: 2, needed: 1 }));
        let mut ragged = points(&[0, 0], &[1.0, 2.0]);
        ragged.times.pop();
        assert!(matches!(table.expand(&ragged, &mut out, 10), Err(SeriesError::Ragged { .. })));
        assert!(out.is_empty());
    }

    #[test]
    fn points_past_the_message_cap_are_counted_not_made() {
        let mut table = SeriesTable::default();
        table.declare(0, series("t", &[])).expect("declared");
        let mut out = Vec::new();
        assert_eq!(table.expand(&points(&[0, 0, 0], &[]), &mut out, 4), Ok(0));
        assert_eq!(table.expand(&points(&[0, 0, 0], &[]), &mut out, 4), Ok(2), "one more fits");
        assert_eq!(out.len(), 4);
    }

    #[test]
    fn the_series_of_an_instance_have_a_memory_budget() {
        let mut table = SeriesTable::default();
        let big = |i: u32| Series { topic: format!("{i:06}/{}", "x".repeat(64 * 1024)), ..series("", &[]) };
        let fit = MAX_SERIES_BYTES / footprint(&big(0));
        for i in 0..fit as u32 {
            table.declare(i, big(i)).expect("within the budget");
        }
        let index = fit as u32;
        assert_eq!(table.declare(index, big(index)), Err(SeriesError::TooLarge { index }));
        table.declare(0, big(0)).expect("replacing a series by one of the same size still fits");
    }
}
