//! Helpers for native tests of plugins (not built for wasm32): what the host does before it
//! calls a plugin, so that a test can do the same without it.

use crate::config::Config;
use crate::types::{Position, Station};

/// Stations from a stations file (`data/stations/*.json`), read as the host reads them:
/// attributes of any JSON type become text.
///
/// # Panics
/// When the text is not a stations file: a test's fixture is wrong.
pub fn stations(json: &str) -> Vec<Station> {
    let records: Vec<serde_json::Value> = serde_json::from_str(json).expect("a JSON array of stations");
    records
        .iter()
        .map(|r| Station {
            id: r["id"].as_str().expect("id").into(),
            name: r["name"].as_str().expect("name").into(),
            position: Position { lat: r["lat"].as_f64().expect("lat"), lon: r["lon"].as_f64().expect("lon") },
            altitude: r["altitude"].as_f64(),
            attributes: r["attributes"]
                .as_object()
                .expect("attributes")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                .collect(),
        })
        .collect()
}

/// A plugin configuration from `key = value` pairs, as a pipeline file's `[plugin.config]`.
pub fn config(pairs: &[(&str, &str)]) -> Config {
    Config::new(pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect())
}
