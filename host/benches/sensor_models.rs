//! Readings generated per second by the weather model in WASM and the same crate compiled
//! natively, for the 77 real stations and for a fleet of about 100,000 virtual sensors.
//!
//! Run with `cargo xtask build-plugins && cargo bench -p garonne-host --bench sensor_models`.

use std::path::PathBuf;

use divan::{Bencher, counter::ItemsCount};
use garonne::clock::VirtualClock;
use garonne::sandbox::{Limits, PluginEngine, SensorModelSandbox, Station};
use garonne_sdk::__private::SensorModelRunner;
use garonne_sdk::sensor_model_bindings::exports::garonne::plugin::sensor_model_api as api;
use garonne_sdk::sensor_model_bindings::garonne::plugin::types as guest_types;

fn main() {
    divan::main();
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// 1: the 77 stations (398 sensors); 252: about 100,000 sensors.
const FLEETS: [u32; 2] = [1, 252];
/// Fifteen minutes between ticks, as the real feed.
const STEP_MS: i64 = 900_000;
const START: i64 = 1_782_864_000_000; // 2026-07-01T00:00:00Z

fn stations(fleet: u32) -> Vec<Station> {
    let real = garonne::stations::load(&root().join("data/stations/meteo.json")).expect("stations");
    garonne::stations::multiply(&real, fleet)
}

#[divan::bench(args = FLEETS, sample_count = 20)]
fn wasm_weather(bencher: Bencher, fleet: u32) {
    let engine = PluginEngine::new(None).expect("engine");
    let path = root().join("plugins/target/wasm32-wasip2/release/weather.wasm");
    let plugin = engine.load(&path).expect("run `cargo xtask build-plugins` first");
    let limits =
        Limits { memory_mib: 1024, call_deadline_ms: 60_000, init_deadline_ms: 60_000, ..Limits::default() };
    let mut sandbox =
        SensorModelSandbox::instantiate(&plugin, &limits, VirtualClock::manual(START), 1).expect("instance");
    let sensors = sandbox.init(&[], &stations(fleet)).expect("init");
    let mut now = START;
    bencher.counter(ItemsCount::new(sensors.len())).bench_local(|| {
        now += STEP_MS;
        sandbox.tick(now).expect("tick").values.len()
    });
}

#[divan::bench(args = FLEETS, sample_count = 20)]
fn native_weather(bencher: Bencher, fleet: u32) {
    let stations: Vec<api::Station> = stations(fleet)
        .into_iter()
        .map(|s| api::Station {
            id: s.id,
            name: s.name,
            position: guest_types::Position { lat: s.position.lat, lon: s.position.lon },
            altitude: s.altitude,
            attributes: s.attributes,
        })
        .collect();
    let mut runner = SensorModelRunner::<weather::Weather>::new();
    let sensors = runner.init(Vec::new(), stations).expect("init");
    let mut now = START;
    bencher.counter(ItemsCount::new(sensors.len())).bench_local(|| {
        now += STEP_MS;
        runner.tick(now).expect("tick").values.len()
    });
}
