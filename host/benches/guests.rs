//! Plugins written in Python and JavaScript against the same processor in Rust: per-reading
//! cost, instantiation, and the time of a hot swap (issue 9's figures).
//!
//! The three give one message per reading: `rolling_stats` (Rust: mean, min and max over a
//! window), `ewma_anomaly` (Python, with `k = 0` so that every reading is an "anomaly") and
//! `rolling_median` (JavaScript). Their components are 0.2 MB, 18 MB and 12 MB, and Cranelift takes
//! 20 to 50 s to compile each of the last two, so the engine keeps its compiled code in
//! `target/bench-cache` between runs: only the first run pays it.
//!
//! Run with `cargo xtask build-plugins && cargo bench -p garonne-host --bench guests`.
//! Results and how to read them: BENCHMARKS.md.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use divan::{Bencher, black_box, counter::ItemsCount};
use garonne::clock::VirtualClock;
use garonne::payload::Payload;
use garonne::sandbox::{Limits, LoadedPlugin, PluginEngine, PluginSandbox, ProcessorSupervisor};

const SENSORS: usize = 100;
const GUESTS: &[&str] = &["rolling_stats", "ewma_anomaly", "rolling_median"];

fn main() {
    for name in GUESTS {
        let size = std::fs::metadata(path(name)).map(|m| m.len()).unwrap_or(0);
        eprintln!("{name}.wasm: {:.1} MB", size as f64 / 1e6);
    }
    divan::main();
}

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../plugins/target/wasm32-wasip2/release/{name}.wasm"))
}

fn engine() -> &'static PluginEngine {
    static ENGINE: OnceLock<PluginEngine> = OnceLock::new();
    let cache = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-cache");
    ENGINE.get_or_init(|| PluginEngine::new(Some(&cache)).expect("engine"))
}

fn plugin(name: &str) -> Arc<LoadedPlugin> {
    static PLUGINS: OnceLock<Vec<Arc<LoadedPlugin>>> = OnceLock::new();
    let loaded = PLUGINS.get_or_init(|| {
        GUESTS
            .iter()
            .map(|name| Arc::new(engine().load(&path(name)).expect("run `cargo xtask build-plugins` first")))
            .collect()
    });
    let index = GUESTS.iter().position(|g| *g == name).expect("a known guest");
    loaded[index].clone()
}

/// Room for the interpreters: the JavaScript engine's heap is collected lazily.
fn limits() -> Limits {
    Limits { memory_mib: 256, call_deadline_ms: 20_000, init_deadline_ms: 60_000, ..Limits::default() }
}

/// Each guest's configuration for one message per reading.
fn config(name: &str) -> Vec<(String, String)> {
    let pairs: &[(&str, &str)] = match name {
        "rolling_stats" => &[("window_s", "300")],
        "ewma_anomaly" => &[("k", "0"), ("warmup", "0")],
        _ => &[("window", "5")],
    };
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Batch number `n` of `size` readings, spread over the sensors, one second apart.
fn batch(n: usize, size: usize) -> Vec<Payload> {
    (n * size..(n + 1) * size)
        .map(|i| Payload {
            sensor_id: format!("sensor-{}", i % SENSORS).into(),
            kind: "temperature".into(),
            value: 10.0 + (i % 40) as f64 * 0.25,
            unit: "°C".into(),
            time: i as i64 * 1000,
            position: Some((43.6, 1.44)),
            fields: Default::default(),
            tags: Default::default(),
        })
        .collect()
}

/// A supervisor that has seen every sensor and a few readings of each, so that the state a swap
/// hands over is a real one.
fn warmed_up(name: &str) -> ProcessorSupervisor {
    let mut supervisor =
        ProcessorSupervisor::start(plugin(name), config(name), limits(), VirtualClock::new(0, 1.0), 1)
            .expect("the guest starts");
    for n in 0..5 {
        let outcome = supervisor.on_readings(&batch(n, SENSORS));
        // ewma_anomaly has nothing to compare a sensor's first reading with.
        if n > 0 {
            assert_eq!(outcome.messages.len(), SENSORS, "{name} gives one message per reading");
        }
    }
    supervisor
}

/// Readings through the supervisor, as `host run` gives them: one `on-readings` call per batch,
/// messages back, the checkpoint every 16 calls included.
#[divan::bench(args = GUESTS, consts = [1, 100, 1000])]
fn per_reading<const SIZE: usize>(bencher: Bencher, name: &str) {
    let mut supervisor = warmed_up(name);
    let mut n = 10;
    bencher.counter(ItemsCount::new(SIZE)).bench_local(|| {
        n += 1;
        black_box(supervisor.on_readings(&batch(n, SIZE)))
    });
    assert_eq!(supervisor.stats().failures(), 0, "{name} failed during the bench");
}

/// A new instance from the pre-linked component (what a trap or a swap costs before `init`).
#[divan::bench(args = GUESTS)]
fn instantiate(bencher: Bencher, name: &str) {
    let loaded = plugin(name);
    let limits = limits();
    bencher.bench_local(|| {
        PluginSandbox::instantiate(&loaded, &limits, VirtualClock::new(0, 1.0), 1).expect("instance")
    });
}

/// A hot swap, between two batches: snapshot of the running instance, a new instance of the new
/// build, its `init`, its sensors, and `restore`. (The new build's compilation is not in it: the
/// host compiles it on another thread before the swap.)
#[divan::bench(args = GUESTS, sample_count = 20)]
fn hot_swap(bencher: Bencher, name: &str) {
    let mut supervisor = warmed_up(name);
    bencher.bench_local(|| supervisor.swap(plugin(name)).expect("the swap succeeds"));
}
