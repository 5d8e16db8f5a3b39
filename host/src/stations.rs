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
    #[error("cannot read the stations file {path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
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
        std::fs::read_to_string(path).map_err(|error| StationsError::Read { path: path.into(), error })?;
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

/// Metres per degree of latitude.
const METRES_PER_DEGREE: f64 = 111_320.0;
/// Virtual stations stay within this distance of their real one.
const FLEET_RADIUS_M: f64 = 500.0;

/// The stations, each followed by `fleet - 1` virtual copies for load tests: ids `{id}-v{k}`,
/// positions spread on a golden-angle spiral within 500 m of the real station, the same
/// attributes plus `virtual_of`. The copies are the same for every run.
pub fn multiply(stations: &[Station], fleet: u32) -> Vec<Station> {
    let mut all = Vec::with_capacity(stations.len() * fleet.max(1) as usize);
    for station in stations {
        all.push(station.clone());
        for k in 1..fleet {
            let radius = FLEET_RADIUS_M * (k as f64 / fleet as f64).sqrt();
            let angle = k as f64 * 2.399_963_229_728_653; // the golden angle, in radians
            let lat = station.position.lat + radius * angle.sin() / METRES_PER_DEGREE;
            let lon = station.position.lon
                + radius * angle.cos() / (METRES_PER_DEGREE * station.position.lat.to_radians().cos());
            let mut attributes = station.attributes.clone();
            attributes.push(("virtual_of".into(), station.id.clone()));
            all.push(Station {
                id: format!("{}-v{k}", station.id),
                name: format!("{} (virtual {k})", station.name),
                position: Position { lat, lon },
                altitude: station.altitude,
                attributes,
            });
        }
    }
    all
}

/// Whether a station is a virtual copy made by [`multiply`].
pub fn is_virtual(station: &Station) -> bool {
    station.attributes.iter().any(|(key, _)| key == "virtual_of")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fleet_multiplies_each_station_nearby_and_keeps_the_real_one_first() {
        let stations =
            parse(r#"[{"id":"42","name":"Compans","lat":43.6,"lon":1.43,"attributes":{"lcz":2}}]"#)
                .expect("valid stations");
        let fleet = multiply(&stations, 100);
        assert_eq!(fleet.len(), 100);
        assert_eq!(fleet[0], stations[0]);
        assert!(!is_virtual(&fleet[0]) && is_virtual(&fleet[99]));
        assert_eq!(fleet[7].id, "42-v7");
        let mut ids: Vec<&str> = fleet.iter().map(|s| s.id.as_str()).collect();
        ids.dedup();
        assert_eq!(ids.len(), 100);
        for station in &fleet[1..] {
            let dy = (station.position.lat - 43.6) * METRES_PER_DEGREE;
            let dx = (station.position.lon - 1.43) * METRES_PER_DEGREE * 43.6f64.to_radians().cos();
            let distance = (dx * dx + dy * dy).sqrt();
            assert!(distance > 1.0 && distance <= FLEET_RADIUS_M + 1.0, "{distance} m");
            assert!(station.attributes.contains(&("lcz".into(), "2".into())));
        }
        assert_eq!(multiply(&stations, 1), stations);
        assert_eq!(multiply(&stations, 0), stations);
    }

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
