//! Plugins in a running pipeline: a new build swapped in under a steady stream without losing a
//! reading or resetting a window; a broken build refused while the old one goes on; and the CPU
//! deadline enforced for as long as the pipeline runs.

use std::path::Path;
use std::time::{Duration, Instant};

use garonne::config::{PipelineConfig, PluginConfig};
use garonne::pipeline::RunningPipeline;
use garonne::sandbox::PluginStats;
use serde_json::{Value, json};

use crate::support::{Mosquitto, TestClient, plugin, temp_dir};

const T0: i64 = 1_795_939_200_000; // 2026-11-29T08:00:00Z

fn pipeline(url: String, plugins: Vec<PluginConfig>, watch: bool) -> PipelineConfig {
    let mut config = PipelineConfig::default();
    config.mqtt.url = Some(url);
    config.mqtt.client_id = format!("swap-test-{}", crate::support::free_port());
    config.runtime.cache_dir = Some(temp_dir("cache"));
    // The virtual clock an hour before the readings (T0): windows close by the readings' own
    // times, never by a tick. With the default (now), these tests broke the day the wall clock
    // passed T0.
    config.runtime.start = Some("2026-11-29T07:00:00Z".into());
    config.runtime.watch = watch;
    config.plugins = plugins;
    config
}

/// Replaces `target` by `source` the way a build does: a new file renamed over the old one.
fn install(source: &Path, target: &Path) {
    let temp = target.with_extension("partial");
    std::fs::copy(source, &temp).expect("copy the build");
    std::fs::rename(&temp, target).expect("rename over the old build");
}

/// A reading of the Compans-Caffarelli station (in quartier 2, Amidonniers / Compans-Caffarelli), `i` seconds after T0.
fn reading(i: i64, value: f64) -> String {
    json!({"sensor_id": "42", "kind": "temperature", "value": value, "unit": "°C", "ts": T0 + i * 1000,
           "lat": 43.61245993, "lon": 1.431863473})
    .to_string()
}

async fn stats_until(
    running: &RunningPipeline,
    name: &str,
    ok: impl Fn(&PluginStats) -> bool,
) -> PluginStats {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats = running.stats.plugins().get(name).cloned().unwrap_or_default();
        if ok(&stats) || Instant::now() > deadline {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The window [start, start + 60 s) of quartier 2, from its published average.
async fn window(client: &mut TestClient, start: i64) -> Value {
    let end = garonne::payload::format_rfc3339(start + 60_000);
    let found = client
        .collect_json(1, Duration::from_secs(30), |_, json| {
            json["ts"] == end.as_str() && json["sensor_id"] == "2"
        })
        .await;
    found.into_iter().next().map(|(_, json)| json).unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_build_takes_over_mid_window_with_its_state_and_a_broken_one_is_refused() {
    let mosquitto = Mosquitto::start();
    let folder = temp_dir("builds");
    let live = folder.join("avg_quartier.wasm");
    install(&plugin("avg_quartier"), &live);
    let mut avg = PluginConfig::from_path(live.clone());
    avg.config.insert("window_s".into(), 60.into());
    avg.config.insert("lateness_s".into(), 0.into());
    let running = RunningPipeline::start(pipeline(mosquitto.url(), vec![avg], true)).await.expect("starts");
    let mut client = TestClient::connect(mosquitto.port, &["toulouse/quartiers/+/temperature"]).await;

    // The first half of a window, then a new build, then the second half.
    for i in 0..30 {
        client.publish("toulouse/sensors/temperature/42", reading(i, (i + 1) as f64)).await;
    }
    install(&plugin("avg_quartier"), &live);
    let stats = stats_until(&running, "avg_quartier", |s| s.swaps == 1).await;
    assert_eq!(stats.swaps, 1, "the new build took over: {stats:?}");
    for i in 30..60 {
        client.publish("toulouse/sensors/temperature/42", reading(i, (i + 1) as f64)).await;
    }
    // A reading past the window's end closes it.
    client.publish("toulouse/sensors/temperature/42", reading(61, 0.0)).await;
    let average = window(&mut client, T0).await;
    // What an uninterrupted run gives: 1..=60.
    assert_eq!(average["fields"]["count"], 60.0, "{average}");
    assert_eq!(average["value"], 30.5, "{average}");
    assert_eq!(
        (average["fields"]["min"].clone(), average["fields"]["max"].clone()),
        (json!(1.0), json!(60.0))
    );

    // A build that is not a plugin: refused at load, the old one goes on.
    install(&plugin("not_a_plugin"), &live);
    // A processor of another kind: it loads, but cannot take avg_quartier's state.
    tokio::time::sleep(Duration::from_secs(2)).await;
    install(&plugin("rolling_stats"), &live);
    let stats = stats_until(&running, "avg_quartier", |s| s.swap_failures == 1).await;
    assert_eq!((stats.swaps, stats.swap_failures), (1, 1), "{stats:?}");
    for i in 62..121 {
        client.publish("toulouse/sensors/temperature/42", reading(i, 2.0)).await;
    }
    client.publish("toulouse/sensors/temperature/42", reading(125, 0.0)).await;
    let next = window(&mut client, T0 + 60_000).await;
    // [60 s, 120 s): the closing reading at 61 s (0.0) and those from 62 s to 119 s (2.0).
    assert_eq!(next["fields"]["count"], 59.0, "the old build still averages: {next}");
    assert_eq!(next["fields"]["max"], 2.0, "{next}");
    let stats = running.stop().await;
    assert_eq!(stats["avg_quartier"].readings_in, 121, "every reading processed once: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_loop_in_a_running_pipeline_is_stopped_at_its_deadline() {
    let mosquitto = Mosquitto::start();
    let mut hostile = PluginConfig::from_path(plugin("hostile"));
    hostile.config.insert("mode".into(), "loop".into());
    hostile.config.insert("poison".into(), 13.0.into());
    hostile.limits.call_deadline_ms = 500;
    let running =
        RunningPipeline::start(pipeline(mosquitto.url(), vec![hostile], false)).await.expect("starts");
    let mut client =
        TestClient::connect(mosquitto.port, &["toulouse/count", "garonne/dead-letter/hostile"]).await;
    // The pipeline has been running a while: the deadline must hold for its whole life, not
    // only while it starts.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (i, value) in [1.0, 13.0, 2.0].into_iter().enumerate() {
        client.publish("toulouse/sensors/temperature/42", reading(i as i64, value)).await;
    }
    let seen = client.collect_json(3, Duration::from_secs(60), |_, _| true).await;
    let letter = seen.iter().find(|(topic, _)| topic.contains("dead-letter")).map(|(_, json)| json.clone());
    let letter =
        letter.unwrap_or_else(|| panic!("no dead letter: the loop was not interrupted; saw {seen:?}"));
    assert!(letter["reason"].as_str().is_some_and(|r| r.contains("CPU deadline")), "{letter}");
    let counts: Vec<&Value> =
        seen.iter().filter(|(t, _)| t == "toulouse/count").map(|(_, j)| &j["value"]).collect();
    assert_eq!(counts, [&json!(1.0), &json!(2.0)], "the readings around the poison are processed");
    running.stop().await;
}

/// With a state folder, a stopped host saves each processor's state, and the next start goes on
/// with the windows in progress and the readings the broker kept meanwhile: a planned restart
/// loses nothing. A state the plugin cannot use is set aside, never fatal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_a_state_folder_goes_on_mid_window_and_a_damaged_state_is_set_aside() {
    let mosquitto = Mosquitto::start();
    let state_dir = temp_dir("state");
    // One client id for every run: its persistent session keeps what comes while the host is down.
    let client_id = format!("restart-test-{}", crate::support::free_port());
    let config = || {
        let mut avg = PluginConfig::from_path(plugin("avg_quartier"));
        avg.config.insert("window_s".into(), 60.into());
        avg.config.insert("lateness_s".into(), 0.into());
        let mut config = pipeline(mosquitto.url(), vec![avg], false);
        config.mqtt.client_id = client_id.clone();
        config.runtime.state_dir = Some(state_dir.clone());
        // A checkpoint after every call, saved every 0.2 s while running.
        config.runtime.checkpoint_every = 1;
        config.runtime.state_save_s = 0.2;
        config
    };
    let mut client = TestClient::connect(mosquitto.port, &["toulouse/quartiers/+/temperature"]).await;
    let publish = |range: std::ops::Range<i64>, value: fn(i64) -> f64| {
        range.map(move |i| ("toulouse/sensors/temperature/42", reading(i, value(i))))
    };

    // The first half of a window, then a stop.
    let running = RunningPipeline::start(config()).await.expect("starts");
    for (topic, payload) in publish(0..30, |i| (i + 1) as f64) {
        client.publish(topic, payload).await;
    }
    stats_until(&running, "avg_quartier", |s| s.readings_in == 30).await;
    // Saved while running (a tick a second wakes the worker), before any stop.
    let saved = state_dir.join("avg_quartier.state");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !saved.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(saved.exists(), "the state is saved while the host runs");
    running.stop().await;

    // The second half comes while the host is down; the broker keeps it for the host's session.
    for (topic, payload) in publish(30..60, |i| (i + 1) as f64) {
        client.publish(topic, payload).await;
    }
    client.wait_acked(Duration::from_secs(10)).await;
    // A new host goes on: the window holds both halves, as an uninterrupted run gives.
    let running = RunningPipeline::start(config()).await.expect("starts again");
    client.publish("toulouse/sensors/temperature/42", reading(61, 0.0)).await;
    let average = window(&mut client, T0).await;
    assert_eq!(
        (average["fields"]["count"].clone(), average["value"].clone()),
        (json!(60.0), json!(30.5)),
        "{average}"
    );
    assert_eq!(
        (average["fields"]["min"].clone(), average["fields"]["max"].clone()),
        (json!(1.0), json!(60.0))
    );
    stats_until(&running, "avg_quartier", |s| s.readings_in == 31).await;
    running.stop().await;

    // A damaged file: set aside, and the plugin starts afresh (the reading at 61 s is forgotten).
    let text = std::fs::read(&saved).expect("the second stop saved the state");
    std::fs::write(&saved, &text[..text.len() / 2]).expect("damage it");
    let running = RunningPipeline::start(config()).await.expect("starts with a damaged state");
    for (topic, payload) in publish(62..71, |_| 2.0) {
        client.publish(topic, payload).await;
    }
    client.publish("toulouse/sensors/temperature/42", reading(125, 0.0)).await;
    let next = window(&mut client, T0 + 60_000).await;
    assert_eq!(next["fields"]["count"], 9.0, "a fresh start: only the readings since it: {next}");
    running.stop().await;
    let aside: Vec<_> = std::fs::read_dir(&state_dir)
        .expect("the state folder")
        .filter_map(|entry| entry.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|name| name.starts_with("avg_quartier.state.refused-"))
        .collect();
    assert_eq!(aside.len(), 1, "the damaged file is kept aside");
}
