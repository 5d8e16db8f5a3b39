//! From a message on the wire to one InfluxDB point in the line protocol.
//!
//! The mapping, for a message on `{prefix}/{stream}/...`:
//! - measurement: the `measurement` template with `{stream}` (`sensors`, `quartiers`,
//!   `alerts`, ...) and `{kind}` filled in; default `{stream}`;
//! - tags: `sensor_id`, `kind`, `unit` and every tag of the message (`quartier`,
//!   `station_name`, `state`, ...), empty values left out;
//! - fields: `value`, the message's `fields` (`min`, `max`, `count`, ...), and `lat`/`lon` when
//!   it has a position;
//! - timestamp: the event time in milliseconds (write with `precision=ms`).
//!
//! Same sensor, kind and event time give the same series and timestamp, so a message delivered
//! twice is stored once.

use std::fmt::Write as _;

use crate::payload::Payload;

/// How messages become points.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// `{stream}` and `{kind}` are replaced.
    pub measurement: String,
    /// The topic prefix, stripped before taking the stream.
    pub prefix: String,
}

impl Mapping {
    /// One line of the line protocol, without the newline.
    pub fn line(&self, topic: &str, payload: &Payload) -> String {
        let stream = stream_of(topic, &self.prefix);
        let measurement = self.measurement.replace("{stream}", stream).replace("{kind}", &payload.kind);
        let mut line = String::with_capacity(128);
        escape_into(&mut line, &measurement, &[',', ' ']);
        let mut tags: Vec<(&str, &str)> =
            vec![("sensor_id", &payload.sensor_id), ("kind", &payload.kind), ("unit", &payload.unit)];
        tags.extend(payload.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        // InfluxDB wants tags sorted by key for the fastest writes; a message's own tag never
        // replaces one of the three above.
        tags.sort_by(|a, b| a.0.cmp(b.0));
        tags.dedup_by(|later, earlier| later.0 == earlier.0);
        for (key, value) in tags.into_iter().filter(|(k, v)| !k.is_empty() && !v.is_empty()) {
            line.push(',');
            escape_into(&mut line, key, &[',', '=', ' ']);
            line.push('=');
            escape_into(&mut line, value, &[',', '=', ' ']);
        }
        line.push(' ');
        line.push_str("value=");
        push_float(&mut line, payload.value);
        let position = payload.position.iter().flat_map(|&(lat, lon)| [("lat", lat), ("lon", lon)]);
        let extra = payload.fields.iter().map(|(k, v)| (k.as_str(), *v)).chain(position);
        for (key, value) in extra.filter(|(k, v)| *k != "value" && !k.is_empty() && v.is_finite()) {
            line.push(',');
            escape_into(&mut line, key, &[',', '=', ' ']);
            line.push('=');
            push_float(&mut line, value);
        }
        let _ = write!(line, " {}", payload.time);
        line
    }
}

/// `sensors` for `toulouse/sensors/temperature/42` under prefix `toulouse`.
fn stream_of<'t>(topic: &'t str, prefix: &str) -> &'t str {
    let rest = topic.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')).unwrap_or(topic);
    match rest.split('/').next() {
        Some(stream) if !stream.is_empty() => stream,
        _ => "messages",
    }
}

/// Backslash-escapes `special` characters and backslashes; newlines become spaces, since a
/// line-protocol line cannot hold one.
fn escape_into(out: &mut String, text: &str, special: &[char]) {
    for c in text.chars() {
        match c {
            '\n' | '\r' => out.push_str("\\ "),
            '\\' => out.push_str("\\\\"),
            c if special.contains(&c) => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
}

/// A float field. Whole numbers keep a decimal point, so the field stays a float in InfluxDB
/// (`12` alone would still be a float, but `12.0` says it to a human reader too).
fn push_float(out: &mut String, value: f64) {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        let _ = write!(out, "{value:.1}");
    } else {
        let _ = write!(out, "{value}");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn payload() -> Payload {
        Payload {
            sensor_id: "42-station".into(),
            kind: "temperature".into(),
            value: 12.5,
            unit: "°C".into(),
            time: 1_764_403_200_000,
            position: Some((43.6, 1.44)),
            fields: BTreeMap::from([("min".into(), 11.0), ("value".into(), 99.0)]),
            tags: BTreeMap::from([
                ("station_name".into(), "parc compans, cafarelli".into()),
                ("empty".into(), String::new()),
                ("kind".into(), "spoofed".into()),
            ]),
        }
    }

    fn mapping(measurement: &str) -> Mapping {
        Mapping { measurement: measurement.into(), prefix: "toulouse".into() }
    }

    #[test]
    fn a_reading_becomes_one_escaped_line() {
        let line = mapping("{stream}").line("toulouse/sensors/temperature/42-station", &payload());
        assert_eq!(
            line,
            "sensors,kind=temperature,sensor_id=42-station,station_name=parc\\ compans\\,\\ cafarelli,\
             unit=°C value=12.5,min=11.0,lat=43.6,lon=1.44 1764403200000"
        );
    }

    #[test]
    fn the_measurement_template_takes_the_stream_and_the_kind() {
        let line = mapping("garonne_{kind}").line("toulouse/quartiers/5/temperature", &payload());
        assert!(line.starts_with("garonne_temperature,"), "{line}");
        let line = mapping("{stream}").line("elsewhere/alerts/no2", &payload());
        assert!(line.starts_with("elsewhere,"), "{line}");
    }

    #[test]
    fn equal_signs_and_newlines_cannot_break_a_line() {
        let mut p = payload();
        p.tags = BTreeMap::from([("a=b".into(), "x\ny z".into())]);
        p.fields.clear();
        p.position = None;
        let line = mapping("{stream}").line("toulouse/sensors/t/1", &p);
        assert!(!line.contains('\n'));
        assert!(line.contains(",a\\=b=x\\ y\\ z,"), "{line}");
    }
}
