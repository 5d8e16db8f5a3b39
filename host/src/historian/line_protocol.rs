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

/// The points of a host's or a historian's status message (`garonne/status/{instance}`), so
/// that dashboards can chart them: `garonne_host` (readings in, decode errors),
/// `garonne_plugin` (per plugin: calls, readings, messages, failures by cause, restarts, dead
/// letters), `garonne_plugin_metric` (per plugin: what it reports itself with `host.metric`),
/// `garonne_historian` (received, written, retried, spooled, rejected, ...). Every number
/// becomes a float field. The time is the status's own `ts` (ms), so that a retained status
/// received again after a reconnection is the same point, not a new one; `now` for statuses of
/// older hosts without it. None: not a status this knows.
pub fn status_lines(topic: &str, status: &serde_json::Value, now: i64) -> Option<Vec<String>> {
    let instance = topic.strip_prefix("garonne/status/")?;
    let time = status.get("ts").and_then(serde_json::Value::as_i64).unwrap_or(now);
    let mut lines = Vec::new();
    let mut push = |measurement: &str, tags: &[(&str, &str)], object: &serde_json::Value| {
        let mut line = String::from(measurement);
        for (key, value) in tags {
            line.push(',');
            line.push_str(key);
            line.push('=');
            escape_into(&mut line, value, &[',', '=', ' ']);
        }
        let numbers = object
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| *k != "ts")
            .filter_map(|(k, v)| Some((k, v.as_f64()?)));
        let mut separator = ' ';
        for (key, value) in numbers {
            line.push(separator);
            separator = ',';
            escape_into(&mut line, key, &[',', '=', ' ']);
            line.push('=');
            push_float(&mut line, value);
        }
        if separator == ',' {
            let _ = write!(line, " {time}");
            lines.push(line);
        }
    };
    if let Some(plugins) = status.get("plugins").and_then(|p| p.as_object()) {
        push("garonne_host", &[("instance", instance)], status);
        for (plugin, counters) in plugins {
            let tags = [("instance", instance), ("plugin", plugin.as_str())];
            push("garonne_plugin", &tags, counters);
            if let Some(metrics) = counters.get("metrics") {
                push("garonne_plugin_metric", &tags, metrics);
            }
        }
    } else if status.get("role").and_then(|r| r.as_str()) == Some("historian") {
        push("garonne_historian", &[("instance", instance)], status);
    } else {
        return None;
    }
    Some(lines)
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
    use super::*;
    use crate::payload::{Fields, Tags};

    fn payload() -> Payload {
        Payload {
            sensor_id: "42-station".into(),
            kind: "temperature".into(),
            value: 12.5,
            unit: "°C".into(),
            time: 1_764_403_200_000,
            position: Some((43.6, 1.44)),
            fields: Fields::from_iter([("min".into(), 11.0), ("value".into(), 99.0)]),
            tags: Tags::from_iter([
                ("station_name".into(), "parc compans, cafarelli".into()),
                ("empty".into(), "".into()),
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
    fn a_plugins_own_metrics_become_points_of_their_own_at_the_status_time() {
        let host = serde_json::json!({"ts": 42, "readings_in": 10, "plugins": {"quality_filter":
            {"calls": 3, "metrics": {"accepted": 9, "frozen": 1}}}});
        let lines = status_lines("garonne/status/h", &host, 5).expect("a host status");
        assert_eq!(
            lines,
            [
                "garonne_host,instance=h readings_in=10.0 42",
                "garonne_plugin,instance=h,plugin=quality_filter calls=3.0 42",
                "garonne_plugin_metric,instance=h,plugin=quality_filter accepted=9.0,frozen=1.0 42"
            ]
        );
    }

    #[test]
    fn host_and_historian_statuses_become_metric_points() {
        let host = serde_json::json!({"state": "online", "readings_in": 10, "decode_errors": 1,
            "plugins": {"avg quartier": {"calls": 3, "restarts": 0}}});
        let lines = status_lines("garonne/status/host-1", &host, 5).expect("a host status");
        assert_eq!(
            lines,
            [
                "garonne_host,instance=host-1 decode_errors=1.0,readings_in=10.0 5",
                "garonne_plugin,instance=host-1,plugin=avg\\ quartier calls=3.0,restarts=0.0 5"
            ]
        );
        let historian = serde_json::json!({"role": "historian", "state": "online", "written": 7});
        let lines = status_lines("garonne/status/h", &historian, 5).expect("a historian status");
        assert_eq!(lines, ["garonne_historian,instance=h written=7.0 5"]);
        let stamped = serde_json::json!({"role": "historian", "written": 7, "ts": 1_700_000_000_000_i64});
        let lines = status_lines("garonne/status/h", &stamped, 5).expect("a historian status");
        assert_eq!(
            lines,
            ["garonne_historian,instance=h written=7.0 1700000000000"],
            "its own time, not a field"
        );
        assert_eq!(status_lines("garonne/status/x", &serde_json::json!({"state": "offline"}), 5), None);
        assert_eq!(status_lines("toulouse/sensors/t/1", &host, 5), None);
    }

    #[test]
    fn equal_signs_and_newlines_cannot_break_a_line() {
        let mut p = payload();
        p.tags = Tags::from_iter([("a=b".into(), "x\ny z".into())]);
        p.fields.clear();
        p.position = None;
        let line = mapping("{stream}").line("toulouse/sensors/t/1", &p);
        assert!(!line.contains('\n'));
        assert!(line.contains(",a\\=b=x\\ y\\ z,"), "{line}");
    }
}
