//! avg_quartier against independent expectations: the hand-checked table of the quartier of each
//! weather station, and the recovery of a window interrupted by a trap.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use garonne::payload::Payload;
use garonne::replay::{ReplayOptions, replay_readings};
use garonne::sandbox::{Limits, PluginEngine};
use serde_json::Value;

use crate::support::{plugin, temp_dir};

const T0: i64 = 1_795_939_200_000; // 2026-11-29T08:00:00Z, a multiple of five minutes

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn options(config: &[(&str, &str)]) -> ReplayOptions {
    ReplayOptions {
        config: config.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        limits: Limits { call_deadline_ms: 20_000, init_deadline_ms: 20_000, ..Limits::default() },
        batch: 10,
        ..ReplayOptions::default()
    }
}

fn run(readings: &[Payload], options: &ReplayOptions) -> garonne::replay::ReplayOutput {
    let engine = PluginEngine::new(Some(&temp_dir("cache"))).expect("engine");
    let loaded = Arc::new(engine.load(&plugin("avg_quartier")).expect("avg_quartier loads"));
    replay_readings(loaded, readings, options).expect("replay")
}

fn reading(id: &str, lat: f64, lon: f64, value: f64, time: i64) -> Payload {
    Payload {
        sensor_id: id.into(),
        kind: "temperature".into(),
        value,
        unit: "°C".into(),
        time,
        position: Some((lat, lon)),
        fields: Default::default(),
        tags: Default::default(),
    }
}

/// (station id, quartier id or "") from host/tests/fixtures/station-quartiers.csv.
fn hand_checked_table() -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(root().join("host/tests/fixtures/station-quartiers.csv")).expect("fixture");
    text.lines()
        .skip(1)
        .map(|line| {
            let mut cells = line.splitn(3, ',');
            let station = cells.next().unwrap_or_default().to_owned();
            (station, cells.next().unwrap_or_default().to_owned())
        })
        .collect()
}

#[test]
fn every_weather_station_lands_in_its_hand_checked_quartier() {
    let stations: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(root().join("data/stations/meteo.json")).expect("stations"),
    )
    .expect("stations JSON");
    let positions: HashMap<&str, (f64, f64)> = stations
        .iter()
        .filter_map(|s| Some((s["id"].as_str()?, (s["lat"].as_f64()?, s["lon"].as_f64()?))))
        .collect();
    let table = hand_checked_table();
    assert_eq!(table.len(), 77);

    // Station n reads n °C: each quartier's mean, min, max and count then tell exactly which
    // stations the plugin put in it.
    let readings: Vec<Payload> = table
        .iter()
        .enumerate()
        .map(|(n, (id, _))| {
            let (lat, lon) = positions[id.as_str()];
            reading(id, lat, lon, n as f64, T0 + n as i64 * 1000)
        })
        .collect();
    let mut expected: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (n, (_, quartier)) in table.iter().enumerate() {
        expected.entry(quartier.clone()).or_default().push(n as f64);
    }

    let output = run(&readings, &options(&[("window_s", "300"), ("lateness_s", "0")]));
    assert!(output.dead_letters.is_empty(), "{:?}", output.dead_letters);
    let outside = expected.remove("").expect("stations outside Toulouse");
    assert_eq!(outside.len(), 20);
    let unassigned =
        output.lines.iter().find(|l| l["topic"] == "unassigned/temperature").expect("unassigned");
    assert_eq!(
        unassigned["value"], 20.0,
        "stations in other communes are reported, not forced into a quartier"
    );

    assert_eq!(expected.len(), 20, "every quartier has a station");
    for (quartier, values) in &expected {
        let topic = format!("quartiers/{quartier}/temperature");
        let line = output
            .lines
            .iter()
            .find(|l| l["topic"] == topic.as_str())
            .unwrap_or_else(|| panic!("no {topic}"));
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let fields = &line["fields"];
        assert_eq!(fields["count"], values.len() as f64, "{topic}");
        assert_eq!(fields["min"], values[0], "{topic}");
        assert_eq!(fields["max"], values[values.len() - 1], "{topic}");
        assert!((line["value"].as_f64().unwrap_or(f64::NAN) - mean).abs() < 1e-9, "{topic}: {line}");
    }
    assert_eq!(output.lines.len(), 21);
}

/// Three windows of readings from two quartiers, in arrival order with some disorder.
fn stream() -> Vec<Payload> {
    let busca = (43.58843456, 1.452060306); // quartier 5
    let valade = (43.6046192, 1.438051307); // quartier 1
    (0..90)
        .map(|i| {
            let (lat, lon) = if i % 3 == 0 { valade } else { busca };
            let jitter = if i % 7 == 3 { -20_000 } else { 0 };
            reading(
                if i % 3 == 0 { "valade" } else { "busca" },
                lat,
                lon,
                (i % 17) as f64,
                T0 + i * 10_000 + jitter,
            )
        })
        .collect()
}

#[test]
fn a_crash_in_the_middle_of_a_window_leaves_its_result_unchanged() {
    let config = [("window_s", "300"), ("lateness_s", "60"), ("fault_value", "999")];
    let uninterrupted = run(&stream(), &options(&config));
    assert_eq!(uninterrupted.lines.len(), 6, "three windows, two quartiers");

    let mut with_crash = stream();
    // Half-way through the second window: the plugin panics on this reading.
    with_crash.insert(45, reading("busca", 43.58843456, 1.452060306, 999.0, T0 + 450_000));
    let recovered = run(&with_crash, &options(&config));

    assert_eq!(recovered.lines, uninterrupted.lines, "the windows are as if the crash never happened");
    assert_eq!(recovered.dead_letters.len(), 1);
    assert_eq!(recovered.dead_letters[0].readings[0].value, 999.0);
    assert!(
        recovered.dead_letters[0].reason.contains("fault injected"),
        "{}",
        recovered.dead_letters[0].reason
    );
}
