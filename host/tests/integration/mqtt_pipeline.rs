//! The whole chain over MQTT: readings in, plugin outputs out, against a real Mosquitto and
//! against the embedded broker.

use std::time::Duration;

use garonne::config::{PipelineConfig, PluginConfig};
use garonne::pipeline::RunningPipeline;
use serde_json::Value;

use crate::support::{Mosquitto, TestClient, plugin, reading, temp_dir};

const T0: i64 = 1_795_939_200_000; // 2026-11-29T08:00:00Z

fn rolling_stats(window_s: i64) -> PluginConfig {
    let mut config = PluginConfig::from_path(plugin("rolling_stats"));
    config.config.insert("window_s".into(), toml::Value::Integer(window_s));
    config
}

fn pipeline(mqtt_url: Option<String>, plugins: Vec<PluginConfig>) -> PipelineConfig {
    let mut config = PipelineConfig::default();
    config.mqtt.url = mqtt_url;
    config.mqtt.embedded_port = 0;
    config.mqtt.client_id = format!("garonne-test-{}", crate::support::free_port());
    config.runtime.cache_dir = Some(temp_dir("cache"));
    // The virtual clock an hour before the readings (T0): windows close by the readings' own
    // times, never by a tick. With the default (now), these tests broke the day the wall clock
    // passed T0.
    config.runtime.start = Some("2026-11-29T07:00:00Z".into());
    config.plugins = plugins;
    config
}

/// Publishes readings of a throw-away sensor until the processor answers: from then on the
/// pipeline's subscription is known to be active, and no test reading can be lost to the race
/// between its SUBSCRIBE and our PUBLISH.
async fn wait_until_processing(client: &mut TestClient) {
    for attempt in 0..100 {
        client
            .publish("toulouse/sensors/temperature/probe", reading("probe", "temperature", 0.0, T0 + attempt))
            .await;
        let answered =
            client.collect_json(1, Duration::from_millis(200), |_, json| json["sensor_id"] == "probe").await;
        if !answered.is_empty() {
            return;
        }
    }
    panic!("the pipeline never processed a probe reading");
}

/// The input lets QoS 1 readings gather only while that cannot hold the broker back, whatever
/// the linger: Mosquitto sends 20 unacknowledged messages at once by default (its window) and
/// drops what passes its queue for a client (1,000 by default), QoS 1 included. Waits of 50 ms
/// (the linger here) after QoS 1 reads would leave readings at the broker faster than it
/// sends them, and it dropped some in every run.
#[tokio::test(flavor = "multi_thread")]
async fn waits_for_qos_1_readings_to_gather_never_hold_the_broker_back_until_it_drops() {
    let mosquitto = Mosquitto::start_with_queues(20, 1_000);
    let mut config = pipeline(Some(mosquitto.url()), vec![rolling_stats(60)]);
    config.runtime.batch_linger_ms = 50;
    assert_eq!(config.mqtt.broker_inflight, 20, "Mosquitto's default window is the host's");
    let running = RunningPipeline::start(config).await.expect("pipeline starts");
    let mut client = TestClient::connect(mosquitto.port, &[]).await;
    // First as fast as the client goes, so that the input learns how many messages a full read
    // brings (it waits only after a read that brought fewer); they fit in the broker's queue.
    let (burst, readings) = (500, 6_500);
    for i in 0..readings {
        let sensor = format!("s{}", i % 40);
        let topic = format!("toulouse/sensors/temperature/{sensor}");
        client.publish(&topic, reading(&sensor, "temperature", 10.0, T0 + i)).await;
        if i >= burst && i % 20 == 19 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    client.wait_acked(Duration::from_secs(30)).await;
    let stats = running.stop().await;
    assert_eq!(stats["rolling_stats"].readings_in, readings as u64, "the broker dropped readings");
}

/// Sends 10, 20, 30 °C one second apart and checks the rolling mean/min/max/count.
async fn check_rolling_stats(port: u16) {
    check_rolling_stats_as(port, None).await;
}

async fn check_rolling_stats_as(port: u16, user: Option<(&str, &str)>) {
    let mut client = TestClient::connect_as(port, &["toulouse/stats/#"], user).await;
    wait_until_processing(&mut client).await;
    for (i, value) in [10.0, 20.0, 30.0].into_iter().enumerate() {
        client
            .publish(
                "toulouse/sensors/temperature/s1",
                reading("s1", "temperature", value, T0 + 1000 * i as i64),
            )
            .await;
    }
    let stats = client.collect_json(3, Duration::from_secs(10), |_, json| json["sensor_id"] == "s1").await;
    assert_eq!(stats.len(), 3, "expected three rolling stats for s1, got {stats:?}");
    let expected = [(10.0, 10.0, 10.0, 1.0), (15.0, 10.0, 20.0, 2.0), (20.0, 10.0, 30.0, 3.0)];
    for ((topic, json), (mean, min, max, count)) in stats.iter().zip(expected) {
        assert_eq!(topic, "toulouse/stats/temperature/s1");
        assert_eq!(json["value"], mean, "{json}");
        assert_eq!(json["fields"]["mean"], mean, "{json}");
        assert_eq!(json["fields"]["min"], min, "{json}");
        assert_eq!(json["fields"]["max"], max, "{json}");
        assert_eq!(json["fields"]["count"], count, "{json}");
        assert_eq!(json["unit"], "°C");
        assert_eq!(json["lat"], 43.6);
    }
    assert_eq!(stats[2].1["ts"], "2026-11-29T08:00:02.000Z");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_turns_readings_into_stats_through_a_real_mosquitto() {
    let mosquitto = Mosquitto::start();
    let running = RunningPipeline::start(pipeline(Some(mosquitto.url()), vec![rolling_stats(300)]))
        .await
        .expect("pipeline starts");
    assert!(running.embedded.is_none());
    check_rolling_stats(mosquitto.port).await;
    let stats = running.stop().await;
    assert_eq!(stats["rolling_stats"].failures(), 0);
}

/// Bursts of QoS 0 readings with pauses between them, so that the input often empties the
/// socket: after such a read it waits a little before the next (readings gather meanwhile), and
/// it must still take every reading, at QoS 0 where nothing is sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_qos_0_reading_of_a_bursty_stream_is_processed() {
    let mosquitto = Mosquitto::start();
    let running = RunningPipeline::start(pipeline(Some(mosquitto.url()), vec![rolling_stats(300)]))
        .await
        .expect("pipeline starts");
    let mut client = TestClient::connect(mosquitto.port, &["toulouse/stats/#"]).await;
    wait_until_processing(&mut client).await;
    let readings_in = || running.stats.plugins().get("rolling_stats").map_or(0, |s| s.readings_in);
    let before = readings_in();
    let (bursts, per_burst) = (20, 200);
    for n in 0..bursts * per_burst {
        let sensor = format!("s{}", n % 50);
        let json = reading(&sensor, "temperature", 20.0, T0 + 1000 * n as i64);
        client.publish_qos0(&format!("toulouse/sensors/temperature/{sensor}"), json).await;
        if n % per_burst == per_burst - 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let expected = before + (bursts * per_burst) as u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while readings_in() < expected && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(readings_in(), expected, "QoS 0 readings lost or counted twice");
    running.stop().await;
}

/// `RunningPipeline::start` returns once the broker has every subscription, so that a reading
/// published right after it is processed, whichever filter takes it. With a SUBSCRIBE packet per
/// filter, the first SubAck ended the wait while the later filters were still on their way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reading_published_as_soon_as_the_pipeline_starts_is_processed() {
    let mosquitto = Mosquitto::start();
    let mut stats = rolling_stats(300);
    // Sorted and sent in this order: the reading's filter, f39, goes last.
    stats.inputs = (0..40).map(|i| format!("toulouse/sensors/f{i:02}/#")).collect();
    let running =
        RunningPipeline::start(pipeline(Some(mosquitto.url()), vec![stats])).await.expect("pipeline starts");
    let mut client = TestClient::connect(mosquitto.port, &["toulouse/stats/#"]).await;
    client.publish("toulouse/sensors/f39/s1", reading("s1", "temperature", 10.0, T0)).await;
    let stats = client.collect_json(1, Duration::from_secs(5), |_, json| json["sensor_id"] == "s1").await;
    assert_eq!(stats.len(), 1, "the first reading was lost: the pipeline started before its subscription");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_turns_readings_into_stats_through_the_embedded_broker() {
    let running =
        RunningPipeline::start(pipeline(None, vec![rolling_stats(300)])).await.expect("pipeline starts");
    let embedded = running.embedded.expect("an embedded broker when no URL is given");
    check_rolling_stats(embedded.mqtt.port()).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_payloads_go_to_the_dead_letter_topic_and_processing_goes_on() {
    let mosquitto = Mosquitto::start();
    // Two processors read the topic: each decodes what it takes, but a bad payload is reported
    // once.
    let filter = PluginConfig::from_path(plugin("quality_filter"));
    let running = RunningPipeline::start(pipeline(Some(mosquitto.url()), vec![rolling_stats(300), filter]))
        .await
        .expect("pipeline starts");
    let mut client =
        TestClient::connect(mosquitto.port, &["toulouse/stats/#", "garonne/dead-letter/#"]).await;
    wait_until_processing(&mut client).await;
    let bad: [&[u8]; 6] = [
        b"not json",
        br#"{"sensor_id":"s1","kind":"temperature","ts":0}"#,
        br#"{"sensor_id":"s1","kind":"temperature","value":"hot","ts":0}"#,
        &[b' '; 1024 * 1024],
        br#"{"sensor_id":"s1","kind":"temperature","value":NaN,"ts":0}"#,
        br#"{"sensor_id":"s1","kind":"temperature","value":1e999,"ts":0}"#,
    ];
    for payload in bad {
        client.publish("toulouse/sensors/temperature/s1", payload.to_vec()).await;
    }
    client.publish("toulouse/sensors/temperature/s1", reading("s1", "temperature", 7.0, T0)).await;
    // More than the 7 expected, to see a report made twice: this waits the full 5 s.
    let seen = client
        .collect_json(14, Duration::from_secs(5), |topic, _| {
            topic == "garonne/dead-letter/decoder" || topic.starts_with("toulouse/stats/")
        })
        .await;
    let reasons: Vec<&Value> =
        seen.iter().filter(|(t, _)| t.contains("dead-letter")).map(|(_, j)| &j["reason"]).collect();
    assert_eq!(reasons.len(), 6, "{seen:?}");
    assert!(reasons[0].as_str().is_some_and(|r| r.contains("not valid JSON")), "{reasons:?}");
    assert!(reasons[1].as_str().is_some_and(|r| r.contains("value")), "{reasons:?}");
    assert!(reasons[3].as_str().is_some_and(|r| r.contains("larger than the limit")), "{reasons:?}");
    assert!(reasons[4].as_str().is_some_and(|r| r.contains("not valid JSON")), "NaN: {reasons:?}");
    assert!(reasons[5].as_str().is_some_and(|r| r.contains("out of range")), "infinity: {reasons:?}");
    assert!(seen.iter().any(|(t, j)| t == "toulouse/stats/temperature/s1" && j["value"] == 7.0), "{seen:?}");
    assert_eq!(running.stats.decode_errors(), 6);
    running.stop().await;
}

/// Up to `n` messages of the client's subscriptions within `wait`, the probes aside.
async fn outputs_and_dead_letters(client: &mut TestClient, n: usize, wait: Duration) -> Vec<(String, Value)> {
    client
        .collect_json(n, wait, |topic, json| {
            topic.starts_with("garonne/dead-letter/") || json["sensor_id"] != "probe"
        })
        .await
}

/// The value of the first message about `sensor`.
fn value_of<'a>(seen: &'a [(String, Value)], sensor: &str) -> Option<&'a Value> {
    seen.iter().find(|(_, j)| j["sensor_id"] == sensor).map(|(_, j)| &j["value"])
}

fn dead_letters(seen: &[(String, Value)]) -> Vec<&(String, Value)> {
    seen.iter().filter(|(t, _)| t.starts_with("garonne/dead-letter/")).collect()
}

/// Wide filters: `+/sensors/#` takes a topic that starts with a two-byte character, on which
/// `rumqttc::matches` panicked and stopped the input; `garonne/dead-letter/#` takes the host's
/// own dead letters, each of which was refused as a reading and made a new dead letter, forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wide_filters_read_any_topic_and_not_the_hosts_own_messages() {
    let mosquitto = Mosquitto::start();
    let mut stats = rolling_stats(300);
    stats.inputs = vec!["+/sensors/#".into(), "garonne/dead-letter/#".into()];
    let running =
        RunningPipeline::start(pipeline(Some(mosquitto.url()), vec![stats])).await.expect("pipeline starts");
    let mut client =
        TestClient::connect(mosquitto.port, &["toulouse/stats/#", "garonne/dead-letter/#"]).await;
    wait_until_processing(&mut client).await;
    client.publish("été/sensors/temperature/s2", reading("s2", "temperature", 5.0, T0)).await;
    client.publish("toulouse/sensors/temperature/s1", b"not json".to_vec()).await;
    client.publish("toulouse/sensors/temperature/s1", reading("s1", "temperature", 7.0, T0)).await;
    // More than the 3 expected, to see a dead letter made of a dead letter: this waits 5 s.
    let seen = outputs_and_dead_letters(&mut client, 6, Duration::from_secs(5)).await;
    assert_eq!(value_of(&seen, "s2"), Some(&Value::from(5.0)), "{seen:?}");
    assert_eq!(value_of(&seen, "s1"), Some(&Value::from(7.0)), "{seen:?}");
    let letters = dead_letters(&seen);
    assert_eq!(letters.len(), 1, "one dead letter for the one bad payload: {seen:?}");
    assert_eq!(letters[0].1["payload"], "not json");
    assert_eq!(running.stats.decode_errors(), 1);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pack_of_readings_in_one_message_is_processed_reading_by_reading() {
    let mosquitto = Mosquitto::start();
    let running = RunningPipeline::start(pipeline(Some(mosquitto.url()), vec![rolling_stats(300)]))
        .await
        .expect("pipeline starts");
    let mut client =
        TestClient::connect(mosquitto.port, &["toulouse/stats/#", "garonne/dead-letter/#"]).await;
    wait_until_processing(&mut client).await;
    let bad = r#"{"sensor_id":"g2","kind":"temperature","value":"warm","ts":0}"#;
    let pack = format!(
        "[{},{bad},{}]",
        reading("g1", "temperature", 4.0, T0),
        reading("g3", "temperature", 6.0, T0)
    );
    client.publish("toulouse/sensors/temperature/gateway", pack).await;
    let seen = outputs_and_dead_letters(&mut client, 3, Duration::from_secs(10)).await;
    assert_eq!(value_of(&seen, "g1"), Some(&Value::from(4.0)), "{seen:?}");
    assert_eq!(value_of(&seen, "g3"), Some(&Value::from(6.0)), "{seen:?}");
    let letters = dead_letters(&seen);
    assert_eq!(letters.len(), 1, "one dead letter for the one bad reading: {seen:?}");
    assert_eq!(letters[0].1["payload"], bad, "the dead letter keeps the bad reading itself");
    let reason = letters[0].1["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("reading 2 of the 3 in the array"), "{reason}");
    assert_eq!(running.stats.decode_errors(), 1);
    // A pack of good readings only is decoded in one pass and queued whole: each still comes out.
    let good =
        format!("[{},{}]", reading("g4", "temperature", 7.0, T0), reading("g5", "temperature", 8.0, T0));
    client.publish("toulouse/sensors/temperature/gateway", good).await;
    let seen = outputs_and_dead_letters(&mut client, 2, Duration::from_secs(10)).await;
    assert_eq!(value_of(&seen, "g4"), Some(&Value::from(7.0)), "{seen:?}");
    assert_eq!(value_of(&seen, "g5"), Some(&Value::from(8.0)), "{seen:?}");
    assert_eq!(running.stats.decode_errors(), 1);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_senml_pack_is_resolved_into_readings_and_a_record_it_cannot_read_is_a_dead_letter() {
    let mosquitto = Mosquitto::start();
    let running = RunningPipeline::start(pipeline(Some(mosquitto.url()), vec![rolling_stats(300)]))
        .await
        .expect("pipeline starts");
    let mut client =
        TestClient::connect(mosquitto.port, &["toulouse/stats/#", "garonne/dead-letter/#"]).await;
    wait_until_processing(&mut client).await;
    // Base name, time and unit carried over; a position given as `lat`/`lon` records (RFC 8428
    // §12.1); a boolean value, which is not a reading.
    let door = r#"{"n":"door","vb":true}"#;
    let pack = format!(
        r#"[{{"bn":"urn:dev:ow:senml-g1:","bt":{},"bu":"Cel","n":"temperature","v":4.0}},
            {{"n":"lat","u":"lat","v":43.61}},{{"n":"lon","u":"lon","v":1.45}},{door},
            {{"bn":"urn:dev:ow:senml-g3:","n":"temperature","v":6.5,"t":-30}}]"#,
        T0 / 1000
    );
    client.publish("toulouse/sensors/temperature/gateway", pack).await;
    let seen = outputs_and_dead_letters(&mut client, 3, Duration::from_secs(10)).await;
    let g1 = seen.iter().find(|(_, j)| j["sensor_id"] == "urn:dev:ow:senml-g1").map(|(_, j)| j);
    let g1 = g1.unwrap_or_else(|| panic!("no output for g1: {seen:?}"));
    assert_eq!((g1["value"].as_f64(), g1["unit"].as_str()), (Some(4.0), Some("Cel")), "{g1}");
    assert_eq!((g1["lat"].as_f64(), g1["lon"].as_f64()), (Some(43.61), Some(1.45)), "{g1}");
    assert_eq!(g1["ts"], "2026-11-29T08:00:00.000Z");
    assert_eq!(value_of(&seen, "urn:dev:ow:senml-g3"), Some(&Value::from(6.5)), "{seen:?}");
    let letters = dead_letters(&seen);
    assert_eq!(letters.len(), 1, "one dead letter for the one boolean record: {seen:?}");
    assert_eq!(letters[0].1["payload"], door, "the dead letter keeps the record itself");
    let reason = letters[0].1["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("reading 4 of the 5 in the array") && reason.contains("`vb`"), "{reason}");
    assert_eq!(running.stats.decode_errors(), 1);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sensor_model_feeds_a_processor_end_to_end() {
    let mut model = PluginConfig::from_path(plugin("synthetic"));
    model.stations =
        Some(std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/stations/meteo.json"));
    model.interval_s = 60.0;
    let mut config = pipeline(None, vec![model, rolling_stats(3600)]);
    config.runtime.speed = 600.0; // a tick every 0.1 s of real time
    let running = RunningPipeline::start(config).await.expect("pipeline starts");
    let port = running.embedded.expect("embedded broker").mqtt.port();
    let station = "toulouse/sensors/temperature/00-station-meteo-toulouse-valade";
    let stats_topic = "toulouse/stats/temperature/00-station-meteo-toulouse-valade";
    let mut client = TestClient::connect(port, &[station, stats_topic]).await;
    let seen = client.collect_json(6, Duration::from_secs(20), |_, _| true).await;
    let readings: Vec<&Value> = seen.iter().filter(|(t, _)| t == station).map(|(_, j)| j).collect();
    let stats: Vec<&Value> = seen.iter().filter(|(t, _)| t == stats_topic).map(|(_, j)| j).collect();
    assert!(!readings.is_empty() && !stats.is_empty(), "{seen:?}");
    for reading in &readings {
        let value = reading["value"].as_f64().expect("a number");
        assert!((-20.0..50.0).contains(&value), "implausible temperature {reading}");
        assert_eq!(reading["lat"], 43.6046192);
    }
    let count = stats.last().and_then(|s| s["fields"]["count"].as_f64()).expect("a count");
    assert!(count >= 1.0);
    let counters = running.stop().await;
    let published = counters["synthetic"].messages_out;
    assert!(published > 0);
    assert_eq!(counters["rolling_stats"].readings_in, published, "a stop loses no reading in flight");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_reconnects_and_resubscribes_after_the_broker_restarts() {
    let mut mosquitto = Mosquitto::start();
    let running = RunningPipeline::start(pipeline(Some(mosquitto.url()), vec![rolling_stats(300)]))
        .await
        .expect("pipeline starts");
    let mut client = TestClient::connect(mosquitto.port, &["toulouse/stats/#"]).await;
    wait_until_processing(&mut client).await;

    // A crash of the broker: no persistence, so every session and subscription is gone.
    mosquitto.restart();
    // The pipeline's and the test client's reconnections both take a moment; the probe keeps
    // publishing until a stat comes back, which needs the pipeline to have subscribed again.
    wait_until_processing(&mut client).await;
    client.publish("toulouse/sensors/temperature/s9", reading("s9", "temperature", 21.0, T0)).await;
    let after = client.collect_json(1, Duration::from_secs(10), |_, json| json["sensor_id"] == "s9").await;
    assert_eq!(after.len(), 1, "no output after the broker restarted");
    assert_eq!(after[0].1["value"], 21.0);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_logs_in_to_a_broker_that_requires_a_password() {
    let mosquitto = Mosquitto::start_with_user("garonne", "s3cret");
    let mut config = pipeline(Some(mosquitto.url()), vec![rolling_stats(300)]);
    // As `host run` does from GARONNE_MQTT_USERNAME and GARONNE_MQTT_PASSWORD.
    config.apply_env(|key| match key {
        "GARONNE_MQTT_USERNAME" => Some("garonne".into()),
        "GARONNE_MQTT_PASSWORD" => Some("s3cret".into()),
        _ => None,
    });
    let running = RunningPipeline::start(config).await.expect("pipeline starts");
    check_rolling_stats_as(mosquitto.port, Some(("garonne", "s3cret"))).await;
    running.stop().await;
}

fn processor(name: &str, inputs: &[&str], config: &[(&str, toml::Value)]) -> PluginConfig {
    let mut plugin = PluginConfig::from_path(plugin(name));
    plugin.inputs = inputs.iter().map(|s| s.to_string()).collect();
    for (key, value) in config {
        plugin.config.insert(key.to_string(), value.clone());
    }
    plugin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_processors_filters_averages_and_alerts_in_one_host() {
    let mosquitto = Mosquitto::start();
    let above: toml::Table = toml::from_str("temperature = 30").expect("toml");
    let chain = vec![
        processor("quality_filter", &["toulouse/sensors/#"], &[]),
        processor(
            "avg_quartier",
            &["toulouse/clean/#"],
            &[("window_s", toml::Value::Integer(60)), ("lateness_s", toml::Value::Integer(0))],
        ),
        processor("thresholds", &["toulouse/quartiers/#"], &[("above", toml::Value::Table(above))]),
    ];
    let running =
        RunningPipeline::start(pipeline(Some(mosquitto.url()), chain)).await.expect("pipeline starts");
    let mut client = TestClient::connect(
        mosquitto.port,
        &["toulouse/quartiers/#", "toulouse/alerts/#", "toulouse/rejected/#"],
    )
    .await;
    // Two stations of quartier 5 (Le Busca, Nakache) and the feed's faulty sentinel value.
    let busca = |value: f64, t: i64| {
        serde_json::json!({"sensor_id": "busca", "kind": "temperature", "value": value, "unit": "°C",
                           "ts": T0 + t, "lat": 43.58843456, "lon": 1.452060306})
        .to_string()
    };
    let nakache = |value: f64, t: i64| {
        serde_json::json!({"sensor_id": "nakache", "kind": "temperature", "value": value, "unit": "°C",
                           "ts": T0 + t, "lat": 43.58807645, "lon": 1.43638064})
        .to_string()
    };
    // The pipeline's subscriptions are in place once start() returned with a real broker only
    // after the first SUBACK; publish until the rejection of a sentinel proves the chain's head
    // is listening, then send the window.
    for attempt in 0..50 {
        client.publish("toulouse/sensors/temperature/busca", busca(-50.0, attempt)).await;
        if !client
            .collect_json(1, Duration::from_millis(200), |t, _| t.starts_with("toulouse/rejected/"))
            .await
            .is_empty()
        {
            break;
        }
    }
    client.publish("toulouse/sensors/temperature/busca", busca(30.0, 10_000)).await;
    client.publish("toulouse/sensors/temperature/nakache", nakache(32.0, 20_000)).await;
    client.publish("toulouse/sensors/temperature/busca", busca(-50.0, 30_000)).await;
    // The first reading of the next minute closes the window [T0, T0 + 60 s).
    client.publish("toulouse/sensors/temperature/busca", busca(20.0, 70_000)).await;

    let seen = client
        .collect_json(2, Duration::from_secs(15), |t, _| {
            t == "toulouse/quartiers/5/temperature" || t.starts_with("toulouse/alerts/")
        })
        .await;
    let average =
        seen.iter().find(|(t, _)| t == "toulouse/quartiers/5/temperature").expect("a quartier average");
    assert_eq!(average.1["value"], 31.0, "the sentinel was filtered out before the average: {average:?}");
    assert_eq!(average.1["fields"]["count"], 2.0);
    let alert = seen.iter().find(|(t, _)| t == "toulouse/alerts/temperature").expect("an alert");
    assert_eq!(alert.1["sensor_id"], "5");
    assert_eq!(alert.1["tags"]["state"], "start");
    assert_eq!(alert.1["value"], 31.0);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_pipeline_of_the_readme_runs_and_publishes_quartier_averages() {
    // The same file `cargo xtask demo` runs.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines/demo.toml");
    let mut config = PipelineConfig::load(&path).expect("demo.toml loads");
    config.validate().expect("demo.toml is valid");
    // As in the demo, but on a free port and ten times faster, so a window closes every 0.5 s.
    config.mqtt.embedded_port = 0;
    config.runtime.speed *= 10.0;
    config.runtime.cache_dir = Some(temp_dir("cache"));
    let running = RunningPipeline::start(config).await.expect("the demo starts");
    let port = running.embedded.expect("the demo uses the embedded broker").mqtt.port();
    let mut client = TestClient::connect(port, &["toulouse/quartiers/+/temperature"]).await;
    let averages = client.collect_json(20, Duration::from_secs(30), |_, _| true).await;
    assert_eq!(averages.len(), 20, "one average per quartier: {averages:?}");
    for (topic, json) in &averages {
        let value = json["value"].as_f64().expect("a number");
        assert!((-10.0..40.0).contains(&value), "{topic}: {json}");
    }
    let counters = running.stop().await;
    assert_eq!(counters.len(), 7, "three sensor models and four processors: {counters:?}");
    assert!(counters.values().all(|c| c.failures() == 0), "{counters:?}");
}
