//! Station metadata from `data/`, handed to sensor models at `init`.
//!
//! The file format is the one `data/prepare.py` writes from the open data: a JSON array of
//! `{"id", "name", "lat", "lon", "altitude"?, "attributes": {"key": "value"}}`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::sandbox::{Position, Station};

#[derive(Debug, thiserror::Error)]
pub enum StationsError {
    #[error("cannot read the stations file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the stations file {path} is not a JSON array of stations: {message}")]
    Format { path: PathBuf, message: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StationRecord {
    id: String,
    name: String,
    lat: f64,
    lon: f64,
    #[serde(default)]
    altitude: Option<f64>,
    #[serde(default)]
    attributes: BTreeMap<String, serde_json::Value>,
}

/// Reads a stations file.
pub fn load(path: &Path) -> Result<Vec<Station>, StationsError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| StationsError::Read { path: path.into(), source })?;
    parse(&text).map_err(|message| StationsError::Format { path: path.into(), message })
}

fn parse(text: &str) -> Result<Vec<Station>, String> {
    let records: Vec<StationRecord> = serde_json::from_str(text).map_err(|e| e.to_string())?;
    Ok(records
        .into_iter()
        .map(|r| Station {
            id: r.id,
            name: r.name,
            position: Position { lat: r.lat, lon: r.lon },
            altitude: r.altitude,
            attributes: r
                .attributes
                .into_iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => (k, s),
                    other => (k, other.to_string()),
                })
                .collect(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_of_any_json_type_become_text() {
        let stations = parse(
            r#"[{"id":"42","name":"Compans","lat":43.6,"lon":1.43,
                "attributes":{"lcz":2,"type":"ISS"}}]"#,
        )
        .expect("valid stations");
        assert_eq!(stations[0].attributes, vec![("lcz".into(), "2".into()), ("type".into(), "ISS".into())]);
        assert_eq!(stations[0].altitude, None);
    }

    #[test]
    fn a_malformed_file_is_refused() {
        assert!(parse(r#"{"id":"42"}"#).is_err());
        assert!(parse(r#"[{"id":"42","name":"x","lat":"north","lon":1}]"#).is_err());
    }
}
