//! The WIT contract across versions: plugins built against 0.1.0 and 0.2.0 (`contract_v0_1` and
//! `contract_v0_2`, straight from the frozen `wit/v0.1.0` and `wit/v0.2.0`) load and run beside
//! plugins built against 0.3.0, and what 0.2.0 added (`host.metric`) reaches the plugin's
//! counters. What 0.3.0 added (series) is checked by every SDK plugin's own tests, since the SDK
//! publishes through it, and its misuse in `sandbox.rs`.

use std::sync::Arc;

use garonne::clock::VirtualClock;
use garonne::sandbox::{Limits, PluginEngine, ProcessorSupervisor};

use crate::support::{plugin, readings, temp_dir};

fn engine() -> PluginEngine {
    PluginEngine::new(Some(&temp_dir("cache"))).expect("engine")
}

fn relaxed() -> Limits {
    Limits { call_deadline_ms: 20_000, init_deadline_ms: 20_000, ..Limits::default() }
}

fn start(engine: &PluginEngine, name: &str, config: &[(&str, &str)]) -> ProcessorSupervisor {
    let loaded = Arc::new(engine.load(&plugin(name)).unwrap_or_else(|e| panic!("{name} loads: {e}")));
    let config = config.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    ProcessorSupervisor::start(loaded, config, relaxed(), VirtualClock::new(0, 1.0), 3)
        .unwrap_or_else(|e| panic!("{name} starts: {e}"))
}

#[test]
fn one_engine_loads_plugins_of_every_version_and_says_which() {
    let engine = engine();
    for (name, version) in
        [("contract_v0_1", "0.1.0"), ("contract_v0_2", "0.2.0"), ("quality_filter", "0.3.0")]
    {
        let loaded = engine.load(&plugin(name)).unwrap_or_else(|e| panic!("{name} loads: {e}"));
        assert_eq!(loaded.info.version, version, "{name}");
        let host = format!("garonne:plugin/host@{version}");
        assert!(loaded.info.imports.contains(&host), "{name}: {:?}", loaded.info.imports);
    }
}

#[test]
fn a_plugin_of_0_1_0_computes_and_keeps_its_state_in_a_host_of_0_3_0() {
    let engine = engine();
    let mut legacy = start(&engine, "contract_v0_1", &[("factor", "3")]);
    let first = legacy.on_readings(&readings(&[1.0, 2.5]));
    // Its snapshot and restore, through 0.1.0's exports: a new build takes over with the count.
    let rebuilt = Arc::new(engine.load(&plugin("contract_v0_1")).expect("loads again"));
    legacy.swap(rebuilt).expect("the swap succeeds");
    let second = legacy.on_readings(&readings(&[-4.0]));
    let got: Vec<(String, f64, f64)> = first
        .messages
        .iter()
        .chain(&second.messages)
        .map(|m| (m.topic.clone(), m.payload.value, m.payload.fields.get("seen").copied().unwrap_or(-1.0)))
        .collect();
    let expected = vec![
        ("legacy/temperature/s1".to_owned(), 3.0, 1.0),
        ("legacy/temperature/s1".to_owned(), 7.5, 2.0),
        ("legacy/temperature/s1".to_owned(), -12.0, 3.0),
    ];
    assert_eq!(got, expected);
    assert_eq!(first.messages[0].payload.kind, "temperature_scaled");
    assert_eq!(legacy.stats().failures(), 0);
    assert!(legacy.stats().metrics.is_empty(), "0.1.0 has no metrics: {:?}", legacy.stats().metrics);
}

#[test]
fn a_plugin_of_0_2_0_computes_and_sets_its_metric_in_a_host_of_0_3_0() {
    let engine = engine();
    let mut older = start(&engine, "contract_v0_2", &[("factor", "3")]);
    let outcome = older.on_readings(&readings(&[1.0, 2.5]));
    let values: Vec<f64> = outcome.messages.iter().map(|m| m.payload.value).collect();
    assert_eq!(values, vec![3.0, 7.5]);
    assert_eq!(outcome.messages[1].topic, "legacy/temperature/s1");
    assert_eq!(older.stats().metrics.get("factor"), Some(&3.0), "{:?}", older.stats().metrics);
    assert_eq!(older.stats().failures(), 0);
}

#[test]
fn a_bad_config_of_a_0_1_0_plugin_is_its_own_message() {
    let engine = engine();
    let loaded = Arc::new(engine.load(&plugin("contract_v0_1")).expect("loads"));
    let config = vec![("factor".to_owned(), "three".to_owned())];
    let error = ProcessorSupervisor::start(loaded, config, relaxed(), VirtualClock::new(0, 1.0), 3)
        .err()
        .expect("a bad factor stops the start");
    assert!(error.to_string().contains("`factor` = \"three\" is not a number"), "{error}");
}

#[test]
fn metrics_of_a_plugin_count_what_it_saw_and_survive_a_hot_swap() {
    let engine = engine();
    let mut filter = start(&engine, "quality_filter", &[]);
    // -60 °C is out of range; the others pass.
    filter.on_readings(&readings(&[10.0, 11.0, -60.0, 12.0]));
    assert!(filter.stats().metrics.is_empty(), "quality_filter reports at ticks, none yet");
    filter.on_tick(10_000);
    let metrics = filter.stats().metrics.clone();
    assert_eq!(metrics.get("accepted"), Some(&3.0), "{metrics:?}");
    assert_eq!(metrics.get("out_of_range"), Some(&1.0), "{metrics:?}");
    assert_eq!(metrics.get("frozen"), Some(&0.0), "{metrics:?}");

    // A new build of the same plugin takes over with the state: the counters go on from there.
    let rebuilt = Arc::new(engine.load(&plugin("quality_filter")).expect("loads again"));
    filter.swap(rebuilt).expect("the swap succeeds");
    filter.on_readings(&readings(&[99.0, 13.0]));
    filter.on_tick(20_000);
    let metrics = &filter.stats().metrics;
    assert_eq!(metrics.get("accepted"), Some(&4.0), "{metrics:?}");
    assert_eq!(metrics.get("out_of_range"), Some(&2.0), "{metrics:?}");
}
