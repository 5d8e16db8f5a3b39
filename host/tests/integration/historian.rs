//! The historian against real servers: Mosquitto, InfluxDB 1.6 and VictoriaMetrics. Every
//! test publishes N distinct readings and checks that exactly N points end up in the database,
//! whatever happens in between.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use garonne::config::MqttConfig;
use garonne::historian::{Historian, HistorianConfig, InfluxConfig};
use garonne::mqtt::BrokerAddress;
use serde_json::{Value, json};

use crate::databases::{InfluxDb, VictoriaMetrics};
use crate::support::{Mosquitto, TestClient, temp_dir};

/// 2026-11-01T00:00:00Z: in the past (VictoriaMetrics' export stops at now), and recent enough
/// for any retention period.
const T0: i64 = 1_793_491_200_000;
const WAIT: Duration = Duration::from_secs(60);

/// Reading `i`: one of ten stations, a distinct time and value, a tag that needs escaping.
fn reading(i: u64) -> (String, Value) {
    let station = format!("station-{}", i % 10);
    let payload = json!({
        "sensor_id": station, "kind": "temperature", "value": i as f64 / 4.0, "unit": "°C",
        "ts": T0 + i as i64 * 1_000, "lat": 43.6, "lon": 1.44,
        "tags": {"station_name": format!("parc, n°{}", i % 10)},
    });
    (format!("toulouse/sensors/temperature/{station}"), payload)
}

async fn publish(client: &mut TestClient, range: std::ops::Range<u64>) {
    for i in range {
        let (topic, payload) = reading(i);
        client.publish(&topic, payload.to_string()).await;
    }
}

fn config(influx: Option<InfluxConfig>, label: &str) -> HistorianConfig {
    HistorianConfig {
        client_id: format!("historian-test-{}-{label}", std::process::id()),
        spool_dir: Some(temp_dir("spool")),
        out_dir: temp_dir("history"),
        batch_size: 200,
        linger_ms: 200,
        influxdb: influx,
        // The streams only: the hosts' status (stored by default) would make the probe count
        // in `wait_until_storing` come true before the stream subscriptions are in place.
        topics: ["sensors", "quartiers", "alerts"].iter().map(|s| format!("toulouse/{s}/#")).collect(),
        ..HistorianConfig::default()
    }
}

fn influx_v1(db: &InfluxDb) -> InfluxConfig {
    InfluxConfig { url: db.url.clone(), database: Some("garonne".into()), ..InfluxConfig::default() }
}

fn broker(mosquitto: &Mosquitto) -> BrokerAddress {
    BrokerAddress { host: "127.0.0.1".into(), port: mosquitto.port }
}

/// The historian's subscription is in place once a probe published after start is stored.
async fn wait_until_storing(historian: &Historian, client: &mut TestClient) {
    for attempt in 0..200 {
        let probe = json!({"sensor_id": "probe", "kind": "probe", "value": attempt, "ts": T0});
        client.publish("toulouse/sensors/probe/probe", probe.to_string()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        if historian.metrics.snapshot().received > 0 {
            return;
        }
    }
    panic!("the historian never received a probe");
}

/// Publishes probes until one is in the database.
async fn wait_until_probe_stored(db: &InfluxDb, client: &mut TestClient) {
    for attempt in 0..200 {
        let probe = json!({"sensor_id": "probe", "kind": "probe", "value": attempt, "ts": T0});
        client.publish("toulouse/sensors/probe/probe", probe.to_string()).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        if db.count("sensors").await > 0 {
            return;
        }
    }
    panic!("no probe was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_round_trip_through_influxdb_1_6_value_by_value() {
    let mosquitto = Mosquitto::start();
    let db = InfluxDb::start().await;
    // The default topics: the streams and the hosts' status.
    let settings = HistorianConfig { topics: Vec::new(), ..config(Some(influx_v1(&db)), "v1") };
    let historian = Historian::start(settings, &MqttConfig::default(), &broker(&mosquitto))
        .await
        .expect("historian starts");
    let mut client = TestClient::connect(mosquitto.port, &[]).await;
    wait_until_probe_stored(&db, &mut client).await;
    const N: u64 = 500;
    publish(&mut client, 0..N).await;
    let aggregate = json!({"sensor_id": "5", "kind": "temperature", "value": 11.5, "unit": "°C", "ts": T0,
        "fields": {"min": 9.0, "max": 14.0, "count": 12.0}, "tags": {"quartier": "Rangueil / Sauzelong"}});
    client.publish("toulouse/quartiers/5/temperature", aggregate.to_string()).await;

    assert_eq!(db.wait_for_count("sensors", N + 1, WAIT).await, N + 1, "N readings and the probe");
    let rows = db.select("SELECT * FROM sensors WHERE kind = 'temperature' ORDER BY time").await;
    assert_eq!(rows.len() as u64, N);
    let mut rows_by_key: std::collections::HashMap<(String, i64), &serde_json::Map<String, Value>> = rows
        .iter()
        .map(|r| ((r["sensor_id"].as_str().unwrap_or("").to_owned(), r["time"].as_i64().unwrap_or(0)), r))
        .collect();
    for i in 0..N {
        let (_, sent) = reading(i);
        let key = (sent["sensor_id"].as_str().unwrap_or("").to_owned(), sent["ts"].as_i64().unwrap_or(0));
        let row = rows_by_key.remove(&key).unwrap_or_else(|| panic!("reading {i} is missing: {sent}"));
        assert_eq!(row["value"].as_f64(), sent["value"].as_f64(), "value of reading {i}");
        assert_eq!(row["unit"], "°C");
        assert_eq!(row["station_name"], sent["tags"]["station_name"], "tag of reading {i}");
        assert_eq!(row["lat"], 43.6);
    }
    let quartiers = db.select("SELECT * FROM quartiers").await;
    assert_eq!(quartiers.len(), 1, "{quartiers:?}");
    assert_eq!(quartiers[0]["quartier"], "Rangueil / Sauzelong");
    assert_eq!(quartiers[0]["max"], 14.0);
    assert_eq!(quartiers[0]["time"], T0);

    // The historian's own status is stored too, as metrics for the dashboards.
    let own = db.select("SELECT received, written FROM garonne_historian").await;
    assert!(!own.is_empty(), "the historian's status is stored as metrics");
    let metrics = historian.stop().await;
    // The readings, the aggregate, the probes (one point however many were sent) and one point
    // per status message.
    assert!(metrics.written >= N + 2 + own.len() as u64, "{metrics:?}");
    assert_eq!((metrics.rejected, metrics.spooled), (0, 0), "{metrics:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packs_of_readings_are_stored_reading_by_reading_and_a_bad_one_is_a_dead_letter() {
    let mosquitto = Mosquitto::start();
    let db = InfluxDb::start().await;
    let historian =
        Historian::start(config(Some(influx_v1(&db)), "packs"), &MqttConfig::default(), &broker(&mosquitto))
            .await
            .expect("historian starts");
    let mut client = TestClient::connect(mosquitto.port, &["garonne/dead-letter/historian"]).await;
    wait_until_probe_stored(&db, &mut client).await;
    const N: u64 = 500;
    let pack = |range: std::ops::Range<u64>| {
        let readings: Vec<Value> = range.map(|i| reading(i).1).collect();
        Value::from(readings).to_string()
    };
    for start in (0..N).step_by(25) {
        client.publish("toulouse/sensors/gateway", pack(start..start + 25)).await;
    }
    let bad = json!({"sensor_id": "s", "kind": "temperature", "value": "warm", "ts": T0});
    let (first, last) = (reading(N).1, reading(N + 1).1);
    client.publish("toulouse/sensors/gateway", format!("[{first},{bad},{last}]")).await;
    // A SenML pack (RFC 8428): a base name and time, one record relative to them.
    let senml = format!(
        r#"[{{"bn":"urn:dev:ow:gw:","bt":{},"bu":"%RH","n":"humidity","v":81}},{{"n":"humidity","v":82,"t":1}}]"#,
        T0 / 1000
    );
    client.publish("toulouse/sensors/gateway", senml).await;

    assert_eq!(db.wait_for_count("sensors", N + 5, WAIT).await, N + 5, "N + 4 readings and the probe");
    let humidity =
        db.select("SELECT value FROM sensors WHERE sensor_id = 'urn:dev:ow:gw' AND kind = 'humidity'").await;
    let humidity: Vec<f64> = humidity.iter().filter_map(|row| row["value"].as_f64()).collect();
    assert_eq!(humidity, [81.0, 82.0], "both SenML records, as readings of their sensor");
    let values = db.select("SELECT value FROM sensors WHERE kind = 'temperature'").await;
    let mut stored: Vec<f64> = values.iter().filter_map(|row| row["value"].as_f64()).collect();
    stored.sort_by(f64::total_cmp);
    let sent: Vec<f64> = (0..N + 2).map(|i| i as f64 / 4.0).collect();
    assert_eq!(stored, sent, "every reading of every pack, once");
    let letters = client.collect_json(1, WAIT, |topic, _| topic == "garonne/dead-letter/historian").await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].1["payload"], bad.to_string(), "the dead letter keeps the bad reading itself");
    let metrics = historian.stop().await;
    assert_eq!((metrics.dead_letters, metrics.rejected), (1, 0), "{metrics:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_round_trip_through_victoria_metrics_with_the_v2_api() {
    let mosquitto = Mosquitto::start();
    let vm = VictoriaMetrics::start();
    let influx = InfluxConfig {
        url: vm.url.clone(),
        org: Some("toulouse".into()),
        bucket: Some("garonne".into()),
        token: Some("not-checked-by-victoria-metrics".into()),
        ..InfluxConfig::default()
    };
    let historian = Historian::start(config(Some(influx), "v2"), &MqttConfig::default(), &broker(&mosquitto))
        .await
        .expect("historian starts");
    let mut client = TestClient::connect(mosquitto.port, &[]).await;
    wait_until_storing(&historian, &mut client).await;
    const N: u64 = 300;
    publish(&mut client, 0..N).await;
    let deadline = std::time::Instant::now() + WAIT;
    while historian.metrics.snapshot().written < N + 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let series = vm.export("sensors_value").await;
    let mut points = std::collections::HashMap::new();
    for (labels, values, times) in &series {
        if labels.get("kind").and_then(Value::as_str) != Some("temperature") {
            continue;
        }
        for (value, time) in values.iter().zip(times) {
            let sensor = labels["sensor_id"].as_str().unwrap_or_default().to_owned();
            assert!(points.insert((sensor, *time), (*value, labels.clone())).is_none(), "a duplicate point");
        }
    }
    assert_eq!(points.len() as u64, N, "every reading, once");
    for i in 0..N {
        let (_, sent) = reading(i);
        let key = (sent["sensor_id"].as_str().unwrap_or("").to_owned(), sent["ts"].as_i64().unwrap_or(0));
        let (value, labels) = points.get(&key).unwrap_or_else(|| panic!("reading {i} is missing"));
        assert_eq!(Some(*value), sent["value"].as_f64(), "value of reading {i}");
        assert_eq!(labels["station_name"], sent["tags"]["station_name"]);
    }
    historian.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_influxdb_outage_loses_nothing_the_spool_fills_then_replays() {
    let mosquitto = Mosquitto::start();
    let mut db = InfluxDb::start().await;
    let historian =
        Historian::start(config(Some(influx_v1(&db)), "outage"), &MqttConfig::default(), &broker(&mosquitto))
            .await
            .expect("historian starts");
    let mut client = TestClient::connect(mosquitto.port, &[]).await;
    wait_until_storing(&historian, &mut client).await;
    const N: u64 = 600;
    publish(&mut client, 0..200).await;
    db.wait_for_count("sensors", 201, WAIT).await;
    db.stop();
    publish(&mut client, 200..400).await;
    // The database is down: the points must reach the spool, and be acknowledged from there.
    let deadline = std::time::Instant::now() + WAIT;
    while historian.metrics.snapshot().spooled == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(historian.metrics.snapshot().spooled > 0, "{:?}", historian.metrics.snapshot());
    db.start_again();
    publish(&mut client, 400..N).await;
    assert_eq!(db.wait_for_count("sensors", N + 1, WAIT).await, N + 1, "{:?}", historian.metrics.snapshot());
    let metrics = historian.stop().await;
    assert!(metrics.replayed > 0, "{metrics:?}");
    assert_eq!(metrics.spool_batches, 0, "{metrics:?}");
    assert_eq!(db.count("sensors").await, N + 1, "nothing more after the stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_in_the_middle_loses_nothing() {
    let mut mosquitto = Mosquitto::start_persistent();
    let db = InfluxDb::start().await;
    let historian =
        Historian::start(config(Some(influx_v1(&db)), "broker"), &MqttConfig::default(), &broker(&mosquitto))
            .await
            .expect("historian starts");
    let mut client = TestClient::connect(mosquitto.port, &[]).await;
    wait_until_storing(&historian, &mut client).await;
    const N: u64 = 1_000;
    publish(&mut client, 0..N / 2).await;
    client.wait_acked(WAIT).await;
    // Some of these are still on their way to the historian, or in a batch not yet written.
    mosquitto.restart_cleanly();
    let mut client = TestClient::connect(mosquitto.port, &[]).await;
    publish(&mut client, N / 2..N).await;
    client.wait_acked(WAIT).await;
    assert_eq!(db.wait_for_count("sensors", N + 1, WAIT).await, N + 1, "{:?}", historian.metrics.snapshot());
    historian.stop().await;
    assert_eq!(db.count("sensors").await, N + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_historian_killed_or_stopped_with_sigterm_and_started_again_loses_nothing() {
    let mosquitto = Mosquitto::start();
    let db = InfluxDb::start().await;
    let spool = temp_dir("sigterm-spool");
    let client_id = format!("historian-sigterm-{}", std::process::id());
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_host"))
            .args(["historian", "--mqtt", &mosquitto.url(), "--influx-url", &db.url, "--database", "garonne"])
            // A long linger: when the process dies, a batch is still in memory, unwritten.
            .args(["--client-id", &client_id, "--linger-ms", "3000", "--idle-flush-ms", "0"])
            .arg("--spool-dir")
            .arg(&spool)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start `host historian`")
    };
    let mut first = start();
    let mut client = TestClient::connect(mosquitto.port, &[]).await;
    // The first probe that lands means the session and its subscription exist.
    for attempt in 0..300 {
        let probe = json!({"sensor_id": "probe", "kind": "probe", "value": attempt, "ts": T0 + attempt});
        client.publish("toulouse/sensors/probe/probe", probe.to_string()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        if db.count("sensors").await > 0 {
            break;
        }
    }
    assert!(db.count("sensors").await > 0, "the historian never stored a probe");
    const N: u64 = 900;
    // SIGKILL while a batch is held in memory: its messages were never acknowledged, so the
    // broker delivers them again to the next run.
    publish(&mut client, 0..N / 3).await;
    client.wait_acked(WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stored = db.select("SELECT count(value) FROM sensors WHERE kind = 'temperature'").await;
    assert!(stored.is_empty(), "the batch should still be in memory: {stored:?}");
    let _ = first.kill();
    let _ = first.wait();
    let second = start();
    publish(&mut client, N / 3..2 * N / 3).await;
    client.wait_acked(WAIT).await;
    // SIGTERM: what is in hand is written before the process exits.
    let _ = Command::new("kill").arg("-TERM").arg(second.id().to_string()).status();
    let output =
        tokio::task::spawn_blocking(move || second.wait_with_output()).await.expect("join").expect("wait");
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "the historian failed at SIGTERM:\n{log}");
    assert!(log.contains("Stopping"), "{log}");
    // While it is down the broker keeps what arrives for its session.
    publish(&mut client, 2 * N / 3..N).await;
    client.wait_acked(WAIT).await;
    let mut third = start();
    let count = async {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let rows = db.select("SELECT count(value) FROM sensors WHERE kind = 'temperature'").await;
            let count = rows.first().and_then(|r| r["count"].as_u64()).unwrap_or(0);
            if count >= N || std::time::Instant::now() > deadline {
                return count;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    .await;
    let _ = third.kill();
    let _ = third.wait();
    assert_eq!(count, N, "exactly N readings after a SIGKILL, a SIGTERM and two restarts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_that_are_not_readings_go_to_the_dead_letter_topic_and_the_rest_is_stored() {
    let mosquitto = Mosquitto::start();
    let out_dir = temp_dir("no-database");
    let mut settings = config(None, "dead");
    settings.out_dir = out_dir.clone();
    let historian = Historian::start(settings, &MqttConfig::default(), &broker(&mosquitto))
        .await
        .expect("historian starts");
    let mut client = TestClient::connect(mosquitto.port, &["garonne/dead-letter/historian"]).await;
    wait_until_storing(&historian, &mut client).await;
    let bad = [
        "not json".to_owned(),
        json!({"kind": "temperature", "value": 1.0, "ts": T0}).to_string(),
        json!({"sensor_id": "s", "kind": "temperature", "value": "warm", "ts": T0}).to_string(),
        r#"{"sensor_id": "s", "kind": "temperature", "value": NaN, "ts": 0}"#.to_owned(),
        format!(
            r#"{{"sensor_id": "s", "kind": "t", "value": 1, "ts": 0, "pad": "{}"}}"#,
            "x".repeat(1 << 20)
        ),
    ];
    for payload in &bad {
        client.publish("toulouse/sensors/temperature/s", payload.clone()).await;
    }
    publish(&mut client, 0..3).await;
    let letters =
        client.collect_json(bad.len(), WAIT, |topic, _| topic == "garonne/dead-letter/historian").await;
    assert_eq!(letters.len(), bad.len(), "{letters:?}");
    for (_, letter) in &letters {
        assert!(!letter["reason"].as_str().unwrap_or_default().is_empty(), "{letter}");
        assert_eq!(letter["topic"], "toulouse/sensors/temperature/s");
    }
    let metrics = historian.stop().await;
    assert_eq!(metrics.dead_letters, bad.len() as u64, "{metrics:?}");
    // With no database configured, the points are line-protocol files to import later.
    let files: Vec<PathBuf> =
        std::fs::read_dir(&out_dir).expect("out dir").flatten().map(|e| e.path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let text = std::fs::read_to_string(&files[0]).expect("read");
    let readings: Vec<&str> = text.lines().filter(|l| l.contains("kind=temperature")).collect();
    assert_eq!(readings.len(), 3, "{text}");
    assert!(
        readings[0].starts_with("sensors,kind=temperature,sensor_id=station-0,station_name=parc\\,\\ n°0,"),
        "{text}"
    );
    assert!(readings[0].ends_with(&format!(" {T0}")), "{text}");
}
