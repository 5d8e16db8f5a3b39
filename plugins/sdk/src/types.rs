//! The SDK's own data types, so that plugin authors never meet generated bindings.

use crate::processor_bindings::garonne::plugin::types as p;
use crate::sensor_model_bindings::garonne::plugin::types as s;

/// A point in WGS 84 (GPS) coordinates.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    pub lat: f64,
    pub lon: f64,
}

/// One measured quantity at one place: see `sensor` in the WIT contract.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Sensor {
    pub id: String,
    pub kind: String,
    pub unit: String,
    pub position: Option<Position>,
    pub tags: Vec<(String, String)>,
}

impl Sensor {
    /// The value of a tag, if the sensor has it.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// A station from the open data, given to sensor models.
#[derive(Debug, Clone, PartialEq)]
pub struct Station {
    pub id: String,
    pub name: String,
    pub position: Position,
    pub altitude: Option<f64>,
    pub attributes: Vec<(String, String)>,
}

impl Station {
    /// The value of an attribute (`lcz`, `type`), if the station has it.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// A message to publish under the host's topic prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub topic: String,
    pub sensor_id: String,
    pub kind: String,
    pub value: f64,
    pub unit: String,
    pub time: i64,
    pub position: Option<Position>,
    pub fields: Vec<(String, f64)>,
    pub tags: Vec<(String, String)>,
}

impl Message {
    /// A message with no position, fields or tags; add them with the builder methods.
    pub fn new(
        topic: impl Into<String>,
        sensor_id: &str,
        kind: &str,
        value: f64,
        unit: &str,
        time: i64,
    ) -> Self {
        Self {
            topic: topic.into(),
            sensor_id: sensor_id.to_owned(),
            kind: kind.to_owned(),
            value,
            unit: unit.to_owned(),
            time,
            position: None,
            fields: Vec::new(),
            tags: Vec::new(),
        }
    }

    pub fn with_value(mut self, value: f64) -> Self {
        self.value = value;
        self
    }

    pub fn position(mut self, position: Option<Position>) -> Self {
        self.position = position;
        self
    }

    pub fn field(mut self, name: &str, value: f64) -> Self {
        self.fields.push((name.to_owned(), value));
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
}

impl From<p::Sensor> for Sensor {
    fn from(s: p::Sensor) -> Self {
        Self {
            id: s.id,
            kind: s.kind,
            unit: s.unit,
            position: s.position.map(|p| Position { lat: p.lat, lon: p.lon }),
            tags: s.tags,
        }
    }
}

impl From<Message> for p::Message {
    fn from(m: Message) -> Self {
        Self {
            topic: m.topic,
            sensor_id: m.sensor_id,
            kind: m.kind,
            value: m.value,
            unit: m.unit,
            time: m.time,
            position: m.position.map(|p| p::Position { lat: p.lat, lon: p.lon }),
            fields: m.fields,
            tags: m.tags,
        }
    }
}

impl From<crate::series::Series> for p::Series {
    fn from(series: crate::series::Series) -> Self {
        Self {
            topic: series.topic,
            sensor_id: series.sensor_id,
            kind: series.kind,
            unit: series.unit,
            position: series.position.map(|p| p::Position { lat: p.lat, lon: p.lon }),
            field_names: series.field_names,
            tags: series.tags,
        }
    }
}

impl From<s::Station> for Station {
    fn from(st: s::Station) -> Self {
        Self {
            id: st.id,
            name: st.name,
            position: Position { lat: st.position.lat, lon: st.position.lon },
            altitude: st.altitude,
            attributes: st.attributes,
        }
    }
}

impl From<Sensor> for s::Sensor {
    fn from(sensor: Sensor) -> Self {
        Self {
            id: sensor.id,
            kind: sensor.kind,
            unit: sensor.unit,
            position: sensor.position.map(|p| s::Position { lat: p.lat, lon: p.lon }),
            tags: sensor.tags,
        }
    }
}
