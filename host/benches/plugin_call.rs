//! Cost of a plugin call per reading, WASM against the same computation in native Rust.
//!
//! Run with `cargo xtask build-plugins && cargo bench -p garonne-host --bench plugin_call`.
//! Results and how to read them: BENCHMARKS.md.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use divan::{Bencher, black_box, counter::ItemsCount};
use garonne::clock::VirtualClock;
use garonne::sandbox::{Limits, LoadedPlugin, PluginEngine, PluginSandbox, Position, Readings, Sensor};

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
    sandbox
}

/// One `on-readings` call of rolling_stats.wasm (one output message per reading).
#[divan::bench(args = [1, 100, 1000])]
fn wasm_rolling_stats(bencher: Bencher, size: usize) {
    let mut sandbox = sandbox();
    let mut n = 0;
    bencher.counter(ItemsCount::new(size)).bench_local(|| {
        n += 1;
        let out = sandbox.on_readings(&batch(n, size)).expect("call");
        black_box(out)
    });
}

/// The same sliding window computed natively, producing the same messages.
#[divan::bench(args = [1, 100, 1000])]
fn native_rolling_stats(bencher: Bencher, size: usize) {
    let sensors = sensors();
    let mut windows: HashMap<u32, VecDeque<(i64, f64)>> = HashMap::new();
    let mut n = 0;
    bencher.counter(ItemsCount::new(size)).bench_local(|| {
        n += 1;
        let readings = batch(n, size);
        let mut out = Vec::with_capacity(size);
        for i in 0..readings.sensors.len() {
            let (index, value, time) = (readings.sensors[i], readings.values[i], readings.times[i]);
            let window = windows.entry(index).or_default();
            window.push_back((time, value));
            while window.front().is_some_and(|&(t, _)| t <= time - 300_000) {
                window.pop_front();
            }
            let (mut sum, mut min, mut max) = (0.0, f64::INFINITY, f64::NEG_INFINITY);
            for &(_, v) in window.iter() {
                sum += v;
                min = min.min(v);
                max = max.max(v);
            }
            let sensor = &sensors[index as usize];
            let mut fields = BTreeMap::new();
            fields.insert("mean", sum / window.len() as f64);
            fields.insert("min", min);
            fields.insert("max", max);
            out.push((format!("stats/{}/{}", sensor.kind, sensor.id), sensor.unit.clone(), fields));
        }
        black_box(out)
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
