//! The example plugins written in Python (`plugins/python/ewma_anomaly`, componentize-py) and
//! JavaScript (`plugins/js/rolling_median`, componentize-js), built by `cargo xtask build-plugins`
//! against the same WIT world as the Rust ones: they pass their own test data, run in a pipeline
//! against a real Mosquitto, and stay in the sandbox (an endless loop is stopped at the deadline).
//!
//! Compiling one of them takes 15 to 40 s (each carries a whole Python or JavaScript engine), so
//! these tests share one compiled-code cache, also given to the `host` processes they start, and
//! compile each guest into it once before any test uses it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use garonne::clock::VirtualClock;
use garonne::config::{PipelineConfig, PluginConfig, flat_config};
use garonne::pipeline::RunningPipeline;
use garonne::replay::matches;
use garonne::sandbox::{Limits, Outcome, PluginEngine, ProcessorSupervisor};
use serde_json::Value;

use crate::support::{Mosquitto, TestClient, free_port, plugin, readings};

/// A guest: its plugin name (`NAME.wasm`) and its folder under `plugins/`.
#[derive(Clone, Copy)]
struct Guest {
    name: &'static str,
    folder: &'static str,
}

const PYTHON: Guest = Guest { name: "ewma_anomaly", folder: "python/ewma_anomaly" };
const JS: Guest = Guest { name: "rolling_median", folder: "js/rolling_median" };

/// What `host plugin test` and `host run` use when `XDG_CACHE_HOME` is this folder.
fn cache_home() -> PathBuf {
    std::env::temp_dir().join("garonne-guests-cache")
}

fn cache_dir() -> PathBuf {
    cache_home().join("garonne")
}

impl Guest {
    /// The `.wasm`, compiled into the shared cache first: tests that need it at the same time
    /// wait for one compilation instead of each doing its own.
    fn wasm(self) -> PathBuf {
        static COMPILED: Mutex<Vec<&str>> = Mutex::new(Vec::new());
        let path = plugin(self.name);
        let mut compiled = COMPILED.lock().unwrap_or_else(PoisonError::into_inner);
        if !compiled.contains(&self.name) {
            let engine = PluginEngine::new(Some(&cache_dir())).expect("engine");
            engine.load(&path).unwrap_or_else(|e| panic!("{} does not load: {e}", self.name));
            compiled.push(self.name);
        }
        path
    }

    fn testdata(self, file: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins").join(self.folder).join("testdata").join(file)
    }

    /// `testdata/config.toml` as the plugin's `[plugin.config]` table.
    fn config(self) -> toml::Table {
        let text = std::fs::read_to_string(self.testdata("config.toml")).expect("config.toml");
        toml::from_str(&text).expect("config.toml is a TOML table")
    }

    /// The JSON objects of a testdata file, comments and blank lines skipped.
    fn lines(self, file: &str) -> Vec<Value> {
        let text = std::fs::read_to_string(self.testdata(file)).expect("testdata file");
        text.lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| serde_json::from_str(line).expect("a JSON object per line"))
            .collect()
    }
}

/// `host plugin test` on the guest's testdata, with the host's default limits.
fn plugin_test(guest: Guest) -> Output {
    Command::new(env!("CARGO_BIN_EXE_host"))
        .args(["plugin", "test"])
        .arg(guest.wasm())
        .arg("--input")
        .arg(guest.testdata("input.jsonl"))
        .arg("--config")
        .arg(guest.testdata("config.toml"))
        .arg("--expect")
        .arg(guest.testdata("expected.jsonl"))
        .env("XDG_CACHE_HOME", cache_home())
        .output()
        .expect("cannot run the host binary")
}

fn passes_its_own_testdata(guest: Guest, messages: usize) {
    let output = plugin_test(guest);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{}: {stderr}", guest.name);
    // The count guards against an expectation file that lost its lines.
    assert!(stderr.contains(&format!("ok: the {messages} messages match")), "{}: {stderr}", guest.name);
    assert!(!stderr.contains("dead letter"), "{}: {stderr}", guest.name);
}

#[test]
fn the_python_example_passes_its_own_testdata() {
    passes_its_own_testdata(PYTHON, 3);
}

#[test]
fn the_javascript_example_passes_its_own_testdata() {
    passes_its_own_testdata(JS, 8);
}

/// The guest alone in a pipeline, with its testdata config and `limits`, against a real
/// Mosquitto: the readings of its `input.jsonl`, published over MQTT, give the messages of its
/// `expected.jsonl`.
async fn runs_in_a_pipeline_against_mosquitto(guest: Guest, limits: Limits, outputs: &str) {
    let mosquitto = Mosquitto::start();
    let mut config = PipelineConfig::default();
    config.mqtt.url = Some(mosquitto.url());
    config.mqtt.client_id = format!("garonne-guests-{}", free_port());
    config.runtime.cache_dir = Some(cache_dir());
    let mut plugin = PluginConfig::from_path(guest.wasm());
    plugin.config = guest.config();
    plugin.limits = limits;
    config.plugins.push(plugin);
    // `start` returns once the broker acknowledged the pipeline's one subscription, and
    // `connect` once it acknowledged ours: no reading below can be lost to a race.
    let running = RunningPipeline::start(config).await.expect("pipeline starts");
    let mut client = TestClient::connect(mosquitto.port, &[outputs]).await;
    for input in guest.lines("input.jsonl") {
        let field = |key: &str| input[key].as_str().expect("kind and sensor_id are text").to_owned();
        let topic = format!("toulouse/sensors/{}/{}", field("kind"), field("sensor_id"));
        client.publish(&topic, input.to_string()).await;
    }
    let expected = guest.lines("expected.jsonl");
    let received = client.collect_json(expected.len(), Duration::from_secs(20), |_, _| true).await;
    assert_eq!(received.len(), expected.len(), "{}: {received:?}", guest.name);
    for ((topic, payload), expected) in received.iter().zip(&expected) {
        let mut expected = expected.clone();
        let relative = expected.as_object_mut().and_then(|o| o.remove("topic")).expect("a topic");
        assert_eq!(topic, &format!("toulouse/{}", relative.as_str().expect("text")), "{}", guest.name);
        assert!(matches(&expected, payload), "{}: expected {expected}, got {payload}", guest.name);
    }
    // Nothing more (a message per reading where the expectation wants fewer would show here).
    assert!(client.next(Duration::from_millis(300)).await.is_none(), "{}: an extra message", guest.name);
    let stats = running.stop().await;
    assert_eq!(stats[guest.name].failures(), 0, "{}", guest.name);
    assert_eq!(stats[guest.name].dead_letters, 0, "{}", guest.name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_example_runs_in_a_pipeline_against_mosquitto() {
    // The default limits suit it (it needs 16 MiB; a reading with a message costs 30 µs).
    runs_in_a_pipeline_against_mosquitto(PYTHON, Limits::default(), "toulouse/anomalies/#").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_javascript_example_runs_in_a_pipeline_against_mosquitto() {
    // What its docstring advises: its heap is collected lazily and can reach the default 64 MiB,
    // and a batch of 1000 readings takes about 100 ms of the default 200 ms deadline.
    let limits = Limits { memory_mib: 128, call_deadline_ms: 1_000, ..Limits::default() };
    runs_in_a_pipeline_against_mosquitto(JS, limits, "toulouse/medians/#").await;
}

const POISON: f64 = 13.0;

/// A supervisor of `guest` with its testdata config, looping forever on a `POISON` reading.
fn looping(guest: Guest, engine: &PluginEngine) -> ProcessorSupervisor {
    let loaded = Arc::new(engine.load(&guest.wasm()).expect("loads"));
    let mut config = flat_config(&guest.config());
    config.push(("debug_loop_on".into(), POISON.to_string()));
    // Long enough that a loaded CI machine never interrupts an ordinary call by mistake.
    let limits = Limits { call_deadline_ms: 500, init_deadline_ms: 20_000, ..Limits::default() };
    ProcessorSupervisor::start(loaded, config, limits, VirtualClock::new(0, 1.0), 7)
        .expect("starts")
        .with_checkpoint_every(1)
}

fn values(outcome: &Outcome) -> Vec<f64> {
    outcome.messages.iter().map(|m| m.payload.value).collect()
}

/// Feeds `[a, b, POISON, c]`: the loop is interrupted at the deadline (once for the batch, once
/// for the poison reading alone), only the poison reading is dead-lettered, the plugin comes back
/// from its snapshot with what `a` and `b` taught it, and goes on with the next batch.
fn an_endless_loop_is_interrupted(guest: Guest, batch: [f64; 3], after: f64) -> (Outcome, Outcome) {
    let engine = PluginEngine::new(Some(&cache_dir())).expect("engine");
    let mut looper = looping(guest, &engine);
    let started = Instant::now();
    let outcome = looper.on_readings(&readings(&[batch[0], batch[1], POISON, batch[2]]));
    // Not a speed check: an endless loop that was not interrupted would never get here.
    assert!(started.elapsed() < Duration::from_secs(60));
    let dead: Vec<f64> =
        outcome.dead_letters.iter().flat_map(|d| d.readings.iter().map(|r| r.value)).collect();
    assert_eq!(dead, vec![POISON], "{}: only the poison reading is dead-lettered", guest.name);
    let reason = &outcome.dead_letters[0].reason;
    assert!(reason.contains("CPU deadline of 500 ms"), "{}: {reason}", guest.name);
    assert_eq!(looper.stats().deadline_failures, 2, "{}", guest.name);
    assert!(looper.stats().restarts >= 2, "{}", guest.name);
    let next = looper.on_readings(&readings(&[after]));
    assert!(next.dead_letters.is_empty(), "{}: {:?}", guest.name, next.dead_letters);
    (outcome, next)
}

#[test]
fn an_endless_loop_in_the_python_example_is_stopped_at_the_deadline() {
    // alpha 0.5, k 3, warm-up 2: after 10 and 14 the mean is 12 and sigma 2, so 20 is an
    // anomaly only if the state survived the restarts (as a first reading it would not be).
    let (outcome, next) = an_endless_loop_is_interrupted(PYTHON, [10.0, 14.0, 20.0], 0.0);
    assert_eq!(values(&outcome), vec![20.0]);
    assert_eq!(
        outcome.messages[0].payload.fields,
        [("mean", 12.0), ("sigma", 2.0), ("deviation", 8.0)]
            .into_iter()
            .map(|(k, v)| (k.into(), v))
            .collect()
    );
    // Then mean 16 and sigma sqrt(18) = 4.24: 0 is 16 away, more than 3 sigma.
    assert_eq!(values(&next), vec![0.0]);
}

#[test]
fn an_endless_loop_in_the_javascript_example_is_stopped_at_the_deadline() {
    // A window of 3: the medians of [10], [10, 14] and [10, 14, 20], then of [14, 20, 30]; a lost
    // state would give 20 and then 25.
    let (outcome, next) = an_endless_loop_is_interrupted(JS, [10.0, 14.0, 20.0], 30.0);
    assert_eq!(values(&outcome), vec![10.0, 12.0, 14.0]);
    assert_eq!(values(&next), vec![20.0]);
}
