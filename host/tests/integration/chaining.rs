//! In-process chaining (`plugin:NAME` inputs) against a real Mosquitto: the same results as the
//! chain through the broker, every reading processed once, and a stop that loses nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use garonne::config::{PipelineConfig, PluginConfig};
use garonne::pipeline::RunningPipeline;
use garonne::sandbox::PluginStats;

use crate::support::{Mosquitto, TestClient, plugin, temp_dir};

const T0: i64 = 1_795_939_200_000; // 2026-11-29T08:00:00Z
/// One in this many readings is the real feed's −50 °C sentinel, for quality_filter to reject.
const SENTINEL_EVERY: usize = 41;

/// A closed window: (topic, window start) → (count, late, value, min, max); no min and max for
/// the unassigned counts.
type Windows = BTreeMap<(String, i64), (f64, f64, f64, Option<f64>, Option<f64>)>;
/// Event time of the reading that closes every window: past any window's lateness.
const FLUSH_TS: i64 = T0 + 3 * 86_400_000;

fn stations() -> Vec<serde_json::Value> {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/stations/meteo.json");
    let text = std::fs::read_to_string(path).expect("meteo.json");
    serde_json::from_str(&text).expect("a list of stations")
}

/// The recorded readings every run gets: a temperature from each of the 77 weather stations
/// every minute of event time, the sentinel now and then. Returns them and how many are clean.
fn recorded_readings(minutes: i64) -> (Vec<(String, String)>, usize) {
    let stations = stations();
    let mut readings = Vec::new();
    let mut clean = 0;
    for minute in 0..minutes {
        for (s, station) in stations.iter().enumerate() {
            let i = readings.len();
            let sentinel = i % SENTINEL_EVERY == 7;
            let value = if sentinel { -50.0 } else { 12.0 + ((i * 37) % 100) as f64 / 10.0 };
            clean += usize::from(!sentinel);
            let id = station["id"].as_str().expect("an id");
            let json = serde_json::json!({"sensor_id": id, "kind": "temperature", "value": value,
                "unit": "°C", "ts": T0 + minute * 60_000 + s as i64 * 100,
                "lat": station["lat"], "lon": station["lon"]});
            readings.push((format!("toulouse/sensors/temperature/{id}"), json.to_string()));
        }
    }
    (readings, clean)
}

fn chain(filter_inputs: &[&str], avg_inputs: &[&str]) -> PipelineConfig {
    let mut filter = PluginConfig::from_path(plugin("quality_filter"));
    filter.inputs = filter_inputs.iter().map(|s| s.to_string()).collect();
    let mut avg = PluginConfig::from_path(plugin("avg_quartier"));
    avg.inputs = avg_inputs.iter().map(|s| s.to_string()).collect();
    avg.config.insert("window_s".into(), toml::Value::Integer(300));
    avg.config.insert("lateness_s".into(), toml::Value::Integer(60));
    let mut config = PipelineConfig::default();
    config.mqtt.client_id = format!("garonne-chain-{}", crate::support::free_port());
    config.runtime.cache_dir = Some(temp_dir("cache"));
    // The virtual clock starts with the readings, so no tick closes a window before they come.
    config.runtime.start = Some("2026-11-29T08:00:00Z".into());
    config.plugins = vec![filter, avg];
    config
}

/// Runs `config` over the recorded readings, then one reading days ahead that closes every
/// window; returns the closed windows once their counts add up to `clean` (or after 60 s), and
/// the plugins' counters.
async fn run(
    mosquitto: &Mosquitto,
    mut config: PipelineConfig,
    minutes: i64,
) -> (Windows, BTreeMap<String, PluginStats>) {
    config.mqtt.url = Some(mosquitto.url());
    let (readings, clean) = recorded_readings(minutes);
    let running = RunningPipeline::start(config).await.expect("pipeline starts");
    let mut client =
        TestClient::connect(mosquitto.port, &["toulouse/quartiers/#", "toulouse/unassigned/#"]).await;
    for (topic, json) in &readings {
        client.publish(topic, json.clone()).await;
    }
    let (flush_topic, flush) = &readings[0];
    let flush = flush.replace(&format!("\"ts\":{T0}"), &format!("\"ts\":{FLUSH_TS}"));
    client.publish(flush_topic, flush).await;
    let mut windows = Windows::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while windows.values().map(|w| w.0).sum::<f64>() < clean as f64 && tokio::time::Instant::now() < deadline
    {
        for (topic, json) in client.collect_json(1, Duration::from_millis(500), |_, _| true).await {
            let fields = &json["fields"];
            let number = |key: &str| fields[key].as_f64();
            let start = number("window_start").expect("a window start") as i64;
            let count = number("count").expect("a count");
            let late = number("late").expect("a late count");
            let value = json["value"].as_f64().expect("a value");
            let window = (count, late, value, number("min"), number("max"));
            assert!(
                windows.insert((topic.clone(), start), window).is_none(),
                "{topic} at {start} came twice"
            );
        }
    }
    (windows, running.stop().await)
}

fn total(windows: &Windows) -> f64 {
    windows.values().map(|w| w.0).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_in_process_gives_the_same_quartier_averages_as_through_the_broker() {
    let mosquitto = Mosquitto::start();
    let minutes = 20;
    let broker = chain(&["toulouse/sensors/#"], &["toulouse/clean/#"]);
    let (through_broker, _) = run(&mosquitto, broker, minutes).await;
    let in_process = chain(&["toulouse/sensors/#"], &["plugin:quality_filter:toulouse/clean/#"]);
    let (chained, stats) = run(&mosquitto, in_process, minutes).await;

    let (_, clean) = recorded_readings(minutes);
    assert_eq!(total(&through_broker), clean as f64, "the broker chain lost or doubled readings");
    assert!(through_broker.len() > 20, "several quartiers and windows: {through_broker:?}");
    assert!(through_broker.values().all(|w| w.1 == 0.0), "readings in order, none late: {through_broker:?}");
    let differ: Vec<_> = through_broker
        .keys()
        .chain(chained.keys())
        .filter(|key| through_broker.get(*key) != chained.get(*key))
        .map(|key| (key, through_broker.get(key), chained.get(key)))
        .collect();
    assert!(differ.is_empty(), "windows that differ (broker, in process): {differ:?}");
    // quality_filter's rejections reached the broker but not avg_quartier.
    assert_eq!(stats["avg_quartier"].readings_in, clean as u64 + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reading_is_processed_once_through_overlapping_inputs_and_full_queues() {
    let mosquitto = Mosquitto::start();
    // Queues of 16 readings, so that quality_filter waits for room in avg_quartier's all the
    // time, and inputs that all match the clean readings: a reading taken by any two of them,
    // or dropped at a full queue, changes the counts.
    let minutes = 160;
    let inputs =
        ["plugin:quality_filter:toulouse/clean/#", "plugin:quality_filter:toulouse/clean/temperature/+"];
    let mut config = chain(&["toulouse/sensors/#"], &inputs);
    config.runtime.queue_capacity = 16;
    // A broker filter that matches some of them too: those come from the broker, not in
    // process, and later than the others (behind the raw readings on the input connection):
    // a day of lateness keeps them in their windows.
    config.plugins[1].config.insert("lateness_s".into(), toml::Value::Integer(86_400));
    config.plugins[1].inputs.push("toulouse/clean/temperature/00-station-meteo-toulouse-valade".into());
    let (windows, stats) = run(&mosquitto, config, minutes).await;
    let (readings, clean) = recorded_readings(minutes);
    assert_eq!(total(&windows), clean as f64, "each clean reading in exactly one window, once");
    assert_eq!(stats["quality_filter"].readings_in, readings.len() as u64 + 1);
    assert_eq!(
        stats["avg_quartier"].readings_in,
        clean as u64 + 1,
        "avg_quartier took each clean reading once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_bounded_in_bytes_below_one_batch_still_lose_nothing() {
    let mosquitto = Mosquitto::start();
    // 1,500 bytes: three or four readings from the broker, less than most of what one call of
    // quality_filter hands over to avg_quartier. An item larger than the budget must wait for an
    // empty queue, not forever, and a sender waiting for bytes must not drop what it holds.
    let minutes = 60;
    let mut config = chain(&["toulouse/sensors/#"], &["plugin:quality_filter:toulouse/clean/#"]);
    config.runtime.queue_bytes = 1_500;
    let (windows, stats) = run(&mosquitto, config, minutes).await;
    let (readings, clean) = recorded_readings(minutes);
    assert_eq!(total(&windows), clean as f64, "each clean reading in exactly one window");
    assert_eq!(stats["quality_filter"].readings_in, readings.len() as u64 + 1);
    assert_eq!(stats["avg_quartier"].readings_in, clean as u64 + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_kept_in_process_reaches_its_reader_and_not_the_broker() {
    let mosquitto = Mosquitto::start();
    let minutes = 20;
    // quality_filter publishes only its rejections; avg_quartier takes the clean readings in
    // process, and one station's through a topic filter too: since the broker never gets them,
    // they must be handed over in process as well, or that station would be missing.
    let station = "toulouse/clean/temperature/00-station-meteo-toulouse-valade";
    let mut config = chain(&["toulouse/sensors/#"], &["plugin:quality_filter:toulouse/clean/#", station]);
    config.plugins[0].publish = vec!["toulouse/rejected/#".into()];
    let mut watcher = TestClient::connect(mosquitto.port, &["toulouse/clean/#", "toulouse/rejected/#"]).await;
    let (windows, stats) = run(&mosquitto, config, minutes).await;

    let (readings, clean) = recorded_readings(minutes);
    assert_eq!(total(&windows), clean as f64, "every clean reading in exactly one window");
    assert_eq!(stats["avg_quartier"].readings_in, clean as u64 + 1);
    let seen = watcher.collect_json(readings.len(), Duration::from_secs(2), |_, _| true).await;
    let rejected = seen.iter().filter(|(topic, _)| topic.starts_with("toulouse/rejected/")).count();
    assert_eq!(rejected, readings.len() - clean, "the rejections were published");
    assert_eq!(seen.len(), rejected, "no clean reading went to the broker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_hands_every_reading_down_the_chain_before_the_readers_stop() {
    let mosquitto = Mosquitto::start();
    let mut model = PluginConfig::from_path(plugin("synthetic"));
    model.stations =
        Some(std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/stations/meteo.json"));
    model.interval_s = 60.0;
    let mut config = chain(&["plugin:synthetic"], &["plugin:quality_filter"]);
    config.plugins.insert(0, model);
    // A second reader of the model: each gets its own copy of every reading.
    let mut stats_plugin = PluginConfig::from_path(plugin("rolling_stats"));
    stats_plugin.inputs = vec!["plugin:synthetic".into()];
    config.plugins.push(stats_plugin);
    config.mqtt.url = Some(mosquitto.url());
    config.runtime.start = None;
    config.runtime.speed = 6000.0; // a tick every 10 ms of real time
    config.runtime.queue_capacity = 16; // full queues at the stop too
    let running = RunningPipeline::start(config).await.expect("pipeline starts");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats = running.stop().await;
    let made = stats["synthetic"].messages_out;
    assert!(made > 1000, "the model ran: {made} readings");
    assert_eq!(stats["quality_filter"].readings_in, made, "quality_filter got every reading in process");
    assert_eq!(stats["rolling_stats"].readings_in, made, "and so did rolling_stats");
    let filtered = stats["quality_filter"].messages_out;
    assert_eq!(
        stats["avg_quartier"].readings_in, filtered,
        "avg_quartier got every message of quality_filter"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_with_a_backlog_stops_the_readers_after_the_plugins_they_read() {
    let mosquitto = Mosquitto::start();
    // The JavaScript plugin is slower than the readings come: it holds a backlog at the stop,
    // which it must hand over to rolling_stats before rolling_stats is told to stop.
    let mut median = PluginConfig::from_path(plugin("rolling_median"));
    median.inputs = vec!["toulouse/sensors/#".into()];
    let mut stats_plugin = PluginConfig::from_path(plugin("rolling_stats"));
    stats_plugin.inputs = vec!["plugin:rolling_median".into()];
    let mut config = chain(&[], &[]);
    config.plugins = vec![median, stats_plugin];
    config.mqtt.url = Some(mosquitto.url());
    let running = RunningPipeline::start(config).await.expect("pipeline starts");
    let mut client = TestClient::connect(mosquitto.port, &[]).await;
    let (readings, _) = recorded_readings(12);
    for (topic, json) in &readings {
        client.publish(topic, json.clone()).await;
    }
    client.wait_acked(Duration::from_secs(30)).await;
    let stats = running.stop().await;
    let medians = stats["rolling_median"].messages_out;
    assert!(medians > 0, "rolling_median processed nothing");
    assert_eq!(stats["rolling_stats"].readings_in, medians, "rolling_stats got all rolling_median's output");
}

/// Waits until `ok` holds for the counters of `name` (at most 30 s).
async fn wait_stats(running: &RunningPipeline, name: &str, ok: impl Fn(&PluginStats) -> bool) -> PluginStats {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let stats = running.stats.plugins().get(name).cloned().unwrap_or_default();
        if ok(&stats) || tokio::time::Instant::now() > deadline {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_builds_of_both_ends_of_a_chain_take_over_without_losing_a_reading() {
    let mosquitto = Mosquitto::start();
    let folder = temp_dir("chain-builds");
    let mut config = chain(&["toulouse/sensors/#"], &["plugin:quality_filter:toulouse/clean/#"]);
    for plugin_config in &mut config.plugins {
        let live = folder.join(plugin_config.path.file_name().expect("a file name"));
        std::fs::copy(&plugin_config.path, &live).expect("copy the build");
        plugin_config.path = live;
    }
    let builds: Vec<_> = config.plugins.iter().map(|p| p.path.clone()).collect();
    config.mqtt.url = Some(mosquitto.url());
    config.runtime.watch = true;
    let running = RunningPipeline::start(config).await.expect("pipeline starts");
    let mut client =
        TestClient::connect(mosquitto.port, &["toulouse/quartiers/#", "toulouse/unassigned/#"]).await;
    let (readings, clean) = recorded_readings(20);
    let (first, second) = readings.split_at(readings.len() / 2);
    for (topic, json) in first {
        client.publish(topic, json.clone()).await;
    }
    // New builds of both, as a build writes them: a new file renamed over the old one.
    for live in &builds {
        let temp = live.with_extension("partial");
        std::fs::copy(live, &temp).expect("copy");
        std::fs::rename(&temp, live).expect("rename");
    }
    for name in ["quality_filter", "avg_quartier"] {
        let stats = wait_stats(&running, name, |s| s.swaps == 1).await;
        assert_eq!(stats.swaps, 1, "{name} took its new build: {stats:?}");
    }
    for (topic, json) in second {
        client.publish(topic, json.clone()).await;
    }
    let flush = readings[0].1.replace(&format!("\"ts\":{T0}"), &format!("\"ts\":{FLUSH_TS}"));
    client.publish(&readings[0].0, flush).await;
    let mut total = 0.0;
    while total < clean as f64 {
        let got = client.collect_json(1, Duration::from_secs(10), |_, _| true).await;
        let Some((_, json)) = got.into_iter().next() else { break };
        total += json["fields"]["count"].as_f64().expect("a count");
    }
    assert_eq!(total, clean as f64, "every clean reading in the windows once, across both swaps");
    let stats = running.stop().await;
    assert_eq!(stats["avg_quartier"].readings_in, clean as u64 + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sensor_model_given_inputs_is_refused_with_the_way_out() {
    let mut weather = PluginConfig::from_path(plugin("weather"));
    weather.stations =
        Some(std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/stations/meteo.json"));
    weather.inputs = vec!["toulouse/clean/#".into()];
    let mut config = chain(&["plugin:weather"], &[]);
    config.plugins.push(weather);
    let error = match RunningPipeline::start(config).await {
        Ok(running) => {
            running.stop().await;
            panic!("a sensor model with inputs started")
        }
        Err(error) => error.to_string(),
    };
    assert!(error.contains("`weather` is a sensor model"), "{error}");
    assert!(error.contains("[\"toulouse/clean/#\"]"), "the inputs it would ignore: {error}");
    assert!(error.contains("inputs = [\"plugin:weather\"]"), "the way out: {error}");
}
