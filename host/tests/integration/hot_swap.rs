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
