//! avg_quartier in WASM against the very same crate compiled natively, and the quartier index
//! against a linear scan of the polygons.
//!
//! Run with `cargo xtask build-plugins && cargo bench -p garonne-host --bench quartiers`.

use std::path::PathBuf;
use std::sync::OnceLock;

use avg_quartier::AvgQuartier;
use avg_quartier::index::QuartierIndex;
use divan::{Bencher, black_box, counter::ItemsCount};
use garonne::clock::VirtualClock;
use garonne::sandbox::{Limits, LoadedPlugin, PluginEngine, PluginSandbox, Position, Readings, Sensor};
use garonne_sdk::__private::ProcessorRunner;
use garonne_sdk::processor_bindings::exports::garonne::plugin::processor_api as api;
use garonne_sdk::processor_bindings::garonne::plugin::types as guest_types;

fn main() {
    divan::main();
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The weather stations inside Toulouse's quartiers, as (id, lat, lon).
fn stations() -> Vec<(String, f64, f64)> {
    let fixture =
        std::fs::read_to_string(root().join("host/tests/fixtures/station-quartiers.csv")).expect("fixture");
    let inside: Vec<&str> = fixture
        .lines()
        .skip(1)
        .filter(|l| !l.split(',').nth(1).unwrap_or("").is_empty())
        .map(|l| l.split(',').next().unwrap_or(""))
        .collect();
    let text = std::fs::read_to_string(root().join("data/stations/meteo.json")).expect("stations");
    let all: Vec<serde_json::Value> = serde_json::from_str(&text).expect("stations JSON");
    all.iter()
        .filter_map(|s| Some((s["id"].as_str()?.to_owned(), s["lat"].as_f64()?, s["lon"].as_f64()?)))
        .filter(|(id, _, _)| inside.contains(&id.as_str()))
        .collect()
}

/// Batch `n` of `size` readings over the stations, one second apart: each station reports about
/// once a minute, and a five-minute window closes every 300 readings with one message per
/// quartier (about one message per 15 readings), as in a live stream.
fn batch(n: usize, size: usize, stations: usize) -> (Vec<u32>, Vec<f64>, Vec<i64>) {
    let start = n * size;
    let sensors = (start..start + size).map(|i| (i % stations) as u32).collect();
    let values = (start..start + size).map(|i| (i % 40) as f64).collect();
    let times = (start..start + size).map(|i| 1_795_939_200_000 + i as i64 * 1_000).collect();
    (sensors, values, times)
}

/// The component, compiled once for all batch sizes (so that a profile of this bench shows
/// the calls, not Cranelift).
fn avg_quartier_wasm() -> &'static LoadedPlugin {
    static PLUGIN: OnceLock<(PluginEngine, LoadedPlugin)> = OnceLock::new();
    let (_, plugin) = PLUGIN.get_or_init(|| {
        let engine = PluginEngine::new(None).expect("engine");
        let path = root().join("plugins/target/wasm32-wasip2/release/avg_quartier.wasm");
        let plugin = engine.load(&path).expect("run `cargo xtask build-plugins` first");
        (engine, plugin)
    });
    plugin
}

/// Five-minute windows: one closes every 300 readings of the bench's stream.
const WINDOW_S: &str = "300";
/// A window longer than the run: no window closes, so only the reading path is measured.
const NEVER_CLOSES_S: &str = "1000000000";

fn config(window_s: &str) -> Vec<(String, String)> {
    vec![("window_s".into(), window_s.into()), ("lateness_s".into(), "0".into())]
}

#[divan::bench(args = [1, 100, 1000])]
fn wasm_avg_quartier(bencher: Bencher, size: usize) {
    wasm(bencher, size, WINDOW_S);
}

#[divan::bench(args = [1, 100, 1000])]
fn native_avg_quartier(bencher: Bencher, size: usize) {
    native(bencher, size, WINDOW_S);
}

/// The reading path alone (placement, window update), in batches of 1,000.
#[divan::bench]
fn wasm_reading_path(bencher: Bencher) {
    wasm(bencher, 1000, NEVER_CLOSES_S);
}

#[divan::bench]
fn native_reading_path(bencher: Bencher) {
    native(bencher, 1000, NEVER_CLOSES_S);
}

fn wasm(bencher: Bencher, size: usize, window_s: &str) {
    let limits = Limits { call_deadline_ms: 10_000, ..Limits::default() };
    let mut sandbox = PluginSandbox::instantiate(avg_quartier_wasm(), &limits, VirtualClock::new(0, 1.0), 1)
        .expect("instance");
    sandbox.init(&config(window_s)).expect("init");
    let stations = stations();
    let sensors: Vec<Sensor> = stations
        .iter()
        .map(|(id, lat, lon)| Sensor {
            id: id.clone(),
            kind: "temperature".into(),
            unit: "°C".into(),
            position: Some(Position { lat: *lat, lon: *lon }),
            tags: vec![],
        })
        .collect();
    sandbox.on_sensors(0, &sensors).expect("sensors");
    let mut n = 0;
    bencher.counter(ItemsCount::new(size)).bench_local(|| {
        n += 1;
        let (sensors, values, times) = batch(n, size, stations.len());
        black_box(sandbox.on_readings(&Readings { sensors, values, times }).expect("call"))
    });
}

fn native(bencher: Bencher, size: usize, window_s: &str) {
    let mut runner = ProcessorRunner::<AvgQuartier>::default();
    runner.init(config(window_s)).expect("init");
    let stations = stations();
    let sensors: Vec<api::Sensor> = stations
        .iter()
        .map(|(id, lat, lon)| api::Sensor {
            id: id.clone(),
            kind: "temperature".into(),
            unit: "°C".into(),
            position: Some(guest_types::Position { lat: *lat, lon: *lon }),
            tags: vec![],
        })
        .collect();
    runner.on_sensors(0, sensors);
    let mut n = 0;
    bencher.counter(ItemsCount::new(size)).bench_local(|| {
        n += 1;
        let (sensors, values, times) = batch(n, size, stations.len());
        black_box(runner.on_readings(api::Readings { sensors, values, times }).expect("call"))
    });
}

fn index(set: &str) -> QuartierIndex {
    let text = std::fs::read_to_string(root().join(format!("data/geo/{set}.geojson"))).expect("polygons");
    QuartierIndex::from_geojson(&text).expect("valid polygons")
}

/// Points on a grid over Toulouse, inside and outside the polygons.
fn points() -> Vec<(f64, f64)> {
    (0..1000).map(|i| (43.53 + (i % 40) as f64 * 0.0035, 1.35 + (i / 40) as f64 * 0.0066)).collect()
}

#[divan::bench(args = ["quartiers", "grands-quartiers"])]
fn locate_with_index(bencher: Bencher, set: &str) {
    let index = index(set);
    let points = points();
    bencher
        .counter(ItemsCount::new(points.len()))
        .bench_local(|| points.iter().filter(|(lat, lon)| index.locate(*lat, *lon).is_some()).count());
}

#[divan::bench(args = ["quartiers", "grands-quartiers"])]
fn locate_linear_scan(bencher: Bencher, set: &str) {
    let index = index(set);
    let points = points();
    bencher
        .counter(ItemsCount::new(points.len()))
        .bench_local(|| points.iter().filter(|(lat, lon)| index.locate_linear(*lat, *lon).is_some()).count());
}
