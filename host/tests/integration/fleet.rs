//! The simulated fleet: a fixed interval run as fast as it goes, the fleet multiplier, the
//! retained station metadata, and determinism by seed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use garonne::config::{PipelineConfig, PluginConfig};
use garonne::pipeline::RunningPipeline;
use serde_json::Value;

use crate::support::{Mosquitto, TestClient, plugin, temp_dir};

fn meteo_stations() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/stations/meteo.json")
}

fn station_ids() -> BTreeSet<String> {
    let text = std::fs::read_to_string(meteo_stations()).expect("stations file");
    let stations: Vec<Value> = serde_json::from_str(&text).expect("JSON");
    stations.iter().map(|s| s["id"].as_str().expect("id").to_owned()).collect()
}

fn interval_pipeline(url: String, fleet: u32) -> PipelineConfig {
    let mut model = PluginConfig::from_path(plugin("weather"));
    model.stations = Some(meteo_stations());
    model.interval_s = 900.0;
    model.fleet = fleet;
    let mut config = PipelineConfig::default();
    config.mqtt.url = Some(url);
    config.mqtt.client_id = format!("fleet-test-{}-{fleet}", std::process::id());
    config.runtime.cache_dir = Some(temp_dir("cache"));
    config.runtime.start = Some("2026-01-15T00:00:00Z".into());
    config.runtime.end = Some("2026-01-15T06:00:00Z".into());
    config.plugins = vec![model];
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_interval_runs_every_tick_once_for_every_station_and_then_finishes() {
    let mosquitto = Mosquitto::start();
    let mut client =
        TestClient::connect(mosquitto.port, &["toulouse/sensors/#", "toulouse/meta/stations/+"]).await;
    let mut pipeline = RunningPipeline::start(interval_pipeline(mosquitto.url(), 3)).await.expect("starts");
    tokio::time::timeout(Duration::from_secs(120), pipeline.simulation_finished())
        .await
        .expect("the models reach --to");
    let stations = station_ids();
    // 00:00 to 06:00 every 15 minutes: 25 ticks; 3 stations per real one (1 real, 2 virtual);
    // six kinds at the 61 full stations (ISS), two at the 16 others (TH).
    let expected = 25 * 3 * (61 * 6 + 16 * 2);
    let messages = client.collect_json(expected + stations.len(), Duration::from_secs(60), |_, _| true).await;
    pipeline.stop().await;

    let mut readings: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
    let mut metadata = BTreeMap::new();
    for (topic, json) in &messages {
        if topic.starts_with("toulouse/meta/stations/") {
            metadata.insert(json["station_id"].as_str().unwrap_or_default().to_owned(), json.clone());
            continue;
        }
        let ts = json["ts"].as_str().expect("ts");
        let ms = garonne::payload::parse_rfc3339(ts).expect("RFC 3339");
        let key = (
            json["sensor_id"].as_str().unwrap_or_default().to_owned(),
            json["kind"].as_str().unwrap_or_default().to_owned(),
        );
        readings.entry(key).or_default().push(ms);
    }
    assert_eq!(readings.values().map(Vec::len).sum::<usize>(), expected, "every reading once");
    let start = garonne::payload::parse_rfc3339("2026-01-15T00:00:00Z").expect("time");
    for (key, times) in &readings {
        let wanted: Vec<i64> = (0..25).map(|k| start + k * 900_000).collect();
        assert_eq!(times, &wanted, "ticks of {key:?}");
    }
    // Every real station with its real id, plus two virtual ones near it.
    for id in &stations {
        assert!(readings.contains_key(&(id.clone(), "temperature".into())), "{id} is missing");
        assert!(readings.contains_key(&(format!("{id}-v2"), "humidity".into())), "{id}-v2 is missing");
    }
    // Retained metadata for the real stations only, with their real position.
    assert_eq!(metadata.keys().cloned().collect::<BTreeSet<_>>(), stations);
    let compans = &metadata["42-station-meteo-toulouse-parc-compans-cafarelli"];
    // The open data's position, as published by Toulouse Métropole.
    assert_eq!(compans["lat"], 43.61245993, "{compans}");
    assert_eq!(compans["lon"], 1.431863473, "{compans}");
    assert_eq!(compans["sensors"].as_array().map(Vec::len), Some(6), "{compans}");
    assert_eq!(compans["attributes"]["type"], "ISS");
    // Every message has what the documented schema requires, with the documented types.
    let schema_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/station-metadata.schema.json");
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path).expect("schema")).expect("JSON");
    for (id, message) in &metadata {
        for key in schema["required"].as_array().expect("required") {
            let key = key.as_str().expect("a key");
            let wanted = schema["properties"][key]["type"].as_str().expect("a type");
            let ok = match wanted {
                "string" => message[key].is_string(),
                "number" => message[key].is_number(),
                "array" => message[key].is_array(),
                "object" => message[key].is_object(),
                other => panic!("type {other} not checked here"),
            };
            assert!(ok, "{id}: `{key}` should be a {wanted}: {message}");
        }
        let attributes = message["attributes"].as_object().expect("attributes");
        assert!(attributes.values().all(Value::is_string), "{id}: attributes are text");
    }
}

fn simulate(model: &str, seed: u64) -> String {
    let wasm = plugin(model);
    let output = Command::new(env!("CARGO_BIN_EXE_host"))
        .args(["plugin", "test", wasm.to_str().expect("utf-8")])
        .arg("--stations")
        .arg(meteo_stations())
        .args(["--from", "2026-07-01T00:00:00Z", "--to", "2026-07-02T00:00:00Z", "--interval-s", "3600"])
        .args(["--seed", &seed.to_string()])
        .output()
        .expect("run host");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8")
}

#[test]
fn the_same_seed_gives_the_same_readings_byte_for_byte_and_another_seed_differs() {
    for model in ["weather", "synthetic"] {
        let first = simulate(model, 7);
        assert!(first.lines().count() >= 25 * station_ids().len() * 2, "{model}");
        assert_eq!(first, simulate(model, 7), "{model}: same seed");
        assert_ne!(first, simulate(model, 8), "{model}: another seed");
    }
}
