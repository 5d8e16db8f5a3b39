//! Cost of a plugin call per reading, WASM against the same plugin crate compiled natively.
//!
//! Run with `cargo xtask build-plugins && cargo bench -p garonne-host --bench plugin_call`.
//! Results and how to read them: BENCHMARKS.md.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use divan::{Bencher, black_box, counter::ItemsCount};
use garonne::clock::VirtualClock;
use garonne::sandbox::{Limits, LoadedPlugin, PluginEngine, PluginSandbox, Position, Readings, Sensor};
use garonne_sdk::__private::ProcessorRunner;
use garonne_sdk::processor_bindings::exports::garonne::plugin::processor_api as api;
use garonne_sdk::processor_bindings::garonne::plugin::types as guest_types;
use rolling_stats::RollingStats;

const SENSORS: u32 = 100;

fn main() {
    divan::main();
}

fn engine() -> &'static PluginEngine {
    static ENGINE: OnceLock<PluginEngine> = OnceLock::new();
    ENGINE.get_or_init(|| PluginEngine::new(None).expect("engine"))
}

fn rolling_stats() -> &'static Arc<LoadedPlugin> {
    static PLUGIN: OnceLock<Arc<LoadedPlugin>> = OnceLock::new();
    PLUGIN.get_or_init(|| {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../plugins/target/wasm32-wasip2/release/rolling_stats.wasm");
        Arc::new(engine().load(&path).expect("run `cargo xtask build-plugins` first"))
    })
}

fn sensors() -> Vec<Sensor> {
    (0..SENSORS)
        .map(|i| Sensor {
            id: format!("sensor-{i}"),
            kind: "temperature".into(),
            unit: "°C".into(),
            position: Some(Position { lat: 43.6, lon: 1.44 }),
            tags: vec![],
        })
        .collect()
}

/// Batch number `n` of `size` readings, spread over the sensors, one second apart.
fn batch(n: usize, size: usize) -> Readings {
    let start = n * size;
    Readings {
        sensors: (start..start + size).map(|i| i as u32 % SENSORS).collect(),
        values: (start..start + size).map(|i| (i % 40) as f64).collect(),
        times: (start..start + size).map(|i| i as i64 * 1000).collect(),
    }
}

fn sandbox() -> PluginSandbox {
    let limits = Limits { call_deadline_ms: 10_000, ..Limits::default() };
    let mut sandbox =
        PluginSandbox::instantiate(rolling_stats(), &limits, VirtualClock::new(0, 1.0), 1).expect("instance");
    sandbox.init(&[("window_s".into(), "300".into())]).expect("init");
    sandbox.on_sensors(0, &sensors()).expect("sensors");
    // Every sensor once before measuring, as in a running pipeline: the first reading of a sensor
    // also declares its series (WIT 0.3.0), which would otherwise be all that batches of 1 measure.
    sandbox.on_readings(&batch(0, SENSORS as usize)).expect("warm-up call");
    sandbox
}

/// One `on-readings` call of rolling_stats.wasm (one output message per reading).
#[divan::bench(args = [1, 100, 1000])]
fn wasm_rolling_stats(bencher: Bencher, size: usize) {
    let mut sandbox = sandbox();
    let mut n = SENSORS as usize;
    bencher.counter(ItemsCount::new(size)).bench_local(|| {
        n += 1;
        let out = sandbox.on_readings(&batch(n, size)).expect("call");
        black_box(out)
    });
}

/// The very same rolling_stats crate compiled natively, through the SDK's runner: the same
/// messages, without the sandbox.
#[divan::bench(args = [1, 100, 1000])]
fn native_rolling_stats(bencher: Bencher, size: usize) {
    let mut runner = ProcessorRunner::<RollingStats>::default();
    runner.init(vec![("window_s".into(), "300".into())]).expect("init");
    let sensors = sensors()
        .into_iter()
        .map(|s| api::Sensor {
            id: s.id,
            kind: s.kind,
            unit: s.unit,
            position: s.position.map(|p| guest_types::Position { lat: p.lat, lon: p.lon }),
            tags: s.tags,
        })
        .collect();
    runner.on_sensors(0, sensors);
    let call = |runner: &mut ProcessorRunner<RollingStats>, readings: Readings| {
        let Readings { sensors, values, times } = readings;
        runner.on_readings(api::Readings { sensors, values, times }).expect("call")
    };
    black_box(call(&mut runner, batch(0, SENSORS as usize)));
    let mut n = SENSORS as usize;
    bencher.counter(ItemsCount::new(size)).bench_local(|| {
        n += 1;
        black_box(call(&mut runner, batch(n, size)))
    });
}

/// A new instance from the pre-linked component, as after a trap.
#[divan::bench]
fn instantiate_from_instance_pre(bencher: Bencher) {
    let limits = Limits::default();
    bencher.bench_local(|| {
        PluginSandbox::instantiate(rolling_stats(), &limits, VirtualClock::new(0, 1.0), 1).expect("instance")
    });
}
