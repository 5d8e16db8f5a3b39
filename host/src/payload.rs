//! The JSON message format of every reading, aggregate and alert on the wire.
//!
//! ```json
//! {"sensor_id": "42", "kind": "temperature", "value": 12.5, "unit": "°C",
//!  "ts": "2026-11-29T08:00:00.000Z", "lat": 43.6, "lon": 1.44,
//!  "fields": {"min": 11.0}, "tags": {"quartier": "Capitole"}}
//! ```
//!
//! `ts` is RFC 3339 or milliseconds since the epoch on input, RFC 3339 in UTC with milliseconds
//! on output. `unit`, `lat`/`lon`, `fields` and `tags` are optional. Unknown fields are ignored
//! so that older hosts read newer messages.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::clock::Millis;

/// Payloads above this size are refused before parsing, so that one huge message cannot take the
/// host's memory.
pub const DEFAULT_MAX_PAYLOAD: usize = 64 * 1024;

/// One message on the wire, decoded and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    pub sensor_id: String,
    pub kind: String,
    pub value: f64,
    pub unit: String,
    pub time: Millis,
    pub position: Option<(f64, f64)>,
    pub fields: BTreeMap<String, f64>,
    pub tags: BTreeMap<String, String>,
}

/// Why a payload was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PayloadError {
    #[error("payload of {size} bytes is larger than the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("payload is not valid JSON for a reading: {0}")]
    Invalid(String),
    #[error("`{0}` must be a finite number (NaN and infinities are not allowed)")]
    NotFinite(String),
    #[error("`{0}` must not be empty")]
    Empty(&'static str),
    #[error("`ts` {0:?} is neither RFC 3339 (2026-11-29T08:00:00Z) nor milliseconds since 1970")]
    BadTime(String),
    #[error("`lat` and `lon` must be given together, with lat in [-90, 90] and lon in [-180, 180]")]
    BadPosition,
}

#[derive(Deserialize, Serialize)]
struct Wire {
    sensor_id: Id,
    kind: String,
    value: f64,
    #[serde(default)]
    unit: String,
    ts: Time,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lat: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lon: Option<f64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    fields: BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    tags: BTreeMap<String, String>,
}

/// Station ids in the open data are numbers; accept them as such.
#[derive(Deserialize, Serialize)]
#[serde(untagged)]
enum Id {
    Text(String),
    Number(u64),
}

#[derive(Deserialize, Serialize)]
#[serde(untagged)]
enum Time {
    Millis(i64),
    Text(String),
}

impl Payload {
    /// Decodes and checks one payload.
    pub fn decode(bytes: &[u8], max_size: usize) -> Result<Self, PayloadError> {
        if bytes.len() > max_size {
            return Err(PayloadError::TooLarge { size: bytes.len(), max: max_size });
        }
        let wire: Wire = serde_json::from_slice(bytes).map_err(|e| PayloadError::Invalid(e.to_string()))?;
        let payload = Payload {
            sensor_id: match wire.sensor_id {
                Id::Text(s) => s,
                Id::Number(n) => n.to_string(),
            },
            kind: wire.kind,
            value: wire.value,
            unit: wire.unit,
            time: match wire.ts {
                Time::Millis(ms) => ms,
                Time::Text(text) => parse_rfc3339(&text)?,
            },
            position: match (wire.lat, wire.lon) {
                (Some(lat), Some(lon)) => Some((lat, lon)),
                (None, None) => None,
                _ => return Err(PayloadError::BadPosition),
            },
            fields: wire.fields,
            tags: wire.tags,
        };
        payload.check()?;
        Ok(payload)
    }

    /// Checks what JSON alone cannot: finite numbers, non-empty names, a valid position.
    pub fn check(&self) -> Result<(), PayloadError> {
        if self.sensor_id.is_empty() {
            return Err(PayloadError::Empty("sensor_id"));
        }
        if self.kind.is_empty() {
            return Err(PayloadError::Empty("kind"));
        }
        if !self.value.is_finite() {
            return Err(PayloadError::NotFinite("value".into()));
        }
        if let Some((name, _)) = self.fields.iter().find(|(_, v)| !v.is_finite()) {
            return Err(PayloadError::NotFinite(format!("fields.{name}")));
        }
        if let Some((lat, lon)) = self.position
            && (!(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon))
        {
            return Err(PayloadError::BadPosition);
        }
        Ok(())
    }

    /// Encodes the payload; fails only on values JSON cannot carry (NaN, infinities).
    pub fn encode(&self) -> Result<Vec<u8>, PayloadError> {
        self.check()?;
        let wire = Wire {
            sensor_id: Id::Text(self.sensor_id.clone()),
            kind: self.kind.clone(),
            value: self.value,
            unit: self.unit.clone(),
            ts: Time::Text(format_rfc3339(self.time)),
            lat: self.position.map(|p| p.0),
            lon: self.position.map(|p| p.1),
            fields: self.fields.clone(),
            tags: self.tags.clone(),
        };
        serde_json::to_vec(&wire).map_err(|e| PayloadError::Invalid(e.to_string()))
    }
}

impl Payload {
    /// A reading of `sensor`.
    pub fn of_sensor(sensor: &crate::sandbox::Sensor, value: f64, time: Millis) -> Self {
        Payload {
            sensor_id: sensor.id.clone(),
            kind: sensor.kind.clone(),
            value,
            unit: sensor.unit.clone(),
            time,
            position: sensor.position.map(|p| (p.lat, p.lon)),
            fields: BTreeMap::new(),
            tags: sensor.tags.iter().cloned().collect(),
        }
    }
}

/// What a plugin emitted, in the wire format (its topic aside).
impl From<crate::sandbox::Message> for Payload {
    fn from(message: crate::sandbox::Message) -> Self {
        Payload {
            sensor_id: message.sensor_id,
            kind: message.kind,
            value: message.value,
            unit: message.unit,
            time: message.time,
            position: message.position.map(|p| (p.lat, p.lon)),
            fields: message.fields.into_iter().collect(),
            tags: message.tags.into_iter().collect(),
        }
    }
}

/// Parses an RFC 3339 time into ms since the epoch.
pub fn parse_rfc3339(text: &str) -> Result<Millis, PayloadError> {
    let time = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| PayloadError::BadTime(text.to_owned()))?;
    Ok((time.unix_timestamp_nanos() / 1_000_000) as Millis)
}

/// Formats ms since the epoch as RFC 3339 in UTC with milliseconds.
pub fn format_rfc3339(ms: Millis) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    let Ok(time) = OffsetDateTime::from_unix_timestamp_nanos(nanos) else {
        return ms.to_string();
    };
    let (y, mo, d) = (time.year(), u8::from(time.month()), time.day());
    let (h, mi, s, milli) = (time.hour(), time.minute(), time.second(), time.millisecond());
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(text: &str) -> Result<Payload, PayloadError> {
        Payload::decode(text.as_bytes(), DEFAULT_MAX_PAYLOAD)
    }

    #[test]
    fn a_full_reading_round_trips() {
        let text = r#"{"sensor_id":"42","kind":"temperature","value":12.5,"unit":"°C",
            "ts":"2026-11-29T08:00:00.250Z","lat":43.6,"lon":1.44,
            "fields":{"min":11.0},"tags":{"quartier":"Capitole"}}"#;
        let payload = decode(text).expect("valid payload");
        assert_eq!(payload.time, 1_795_939_200_250);
        let again = Payload::decode(&payload.encode().expect("encodable"), DEFAULT_MAX_PAYLOAD);
        assert_eq!(again, Ok(payload));
    }

    #[test]
    fn numeric_ids_and_millisecond_times_are_accepted() {
        let payload = decode(r#"{"sensor_id":42,"kind":"t","value":1,"ts":1000}"#).expect("valid payload");
        assert_eq!(payload.sensor_id, "42");
        assert_eq!(payload.time, 1000);
        assert_eq!(payload.unit, "");
    }

    #[test]
    fn bad_payloads_are_refused_with_a_reason() {
        assert!(matches!(decode("not json"), Err(PayloadError::Invalid(_))));
        assert!(matches!(decode(r#"{"kind":"t","value":1,"ts":0}"#), Err(PayloadError::Invalid(_))));
        assert!(matches!(
            decode(r#"{"sensor_id":"a","kind":"t","value":"12","ts":0}"#),
            Err(PayloadError::Invalid(_))
        ));
        assert_eq!(
            decode(r#"{"sensor_id":"a","kind":"t","value":1,"ts":"yesterday"}"#),
            Err(PayloadError::BadTime("yesterday".into()))
        );
        assert_eq!(
            decode(r#"{"sensor_id":"","kind":"t","value":1,"ts":0}"#),
            Err(PayloadError::Empty("sensor_id"))
        );
        assert_eq!(
            decode(r#"{"sensor_id":"a","kind":"t","value":1,"ts":0,"lat":91,"lon":0}"#),
            Err(PayloadError::BadPosition)
        );
        let huge = vec![b' '; DEFAULT_MAX_PAYLOAD + 1];
        assert!(matches!(Payload::decode(&huge, DEFAULT_MAX_PAYLOAD), Err(PayloadError::TooLarge { .. })));
    }

    #[test]
    fn non_finite_values_are_not_encoded() {
        let payload = Payload {
            sensor_id: "a".into(),
            kind: "t".into(),
            value: f64::NAN,
            unit: String::new(),
            time: 0,
            position: None,
            fields: BTreeMap::new(),
            tags: BTreeMap::new(),
        };
        assert_eq!(payload.encode(), Err(PayloadError::NotFinite("value".into())));
    }

    #[test]
    fn times_format_as_utc_with_milliseconds() {
        assert_eq!(format_rfc3339(1_795_939_200_250), "2026-11-29T08:00:00.250Z");
        assert_eq!(parse_rfc3339("2026-11-29T09:00:00+01:00"), Ok(1_795_939_200_000));
    }
}
