//! The Grafana dashboards against real data (scratch).

use std::path::PathBuf;
use std::time::Duration;

use garonne::config::{MqttConfig, PipelineConfig};
use garonne::historian::{Historian, HistorianConfig, InfluxConfig};
use garonne::mqtt::BrokerAddress;
use garonne::pipeline::RunningPipeline;

use crate::databases::InfluxDb;
use crate::support::{Mosquitto, TestClient, plugin, temp_dir};

const FROM: &str = "2026-01-15T00:00:00Z";
const TO: &str = "2026-01-15T06:00:00Z";
const PROBE_TOPIC: &str = "toulouse/garonne-test-probe/probe";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn pipeline(url: String) -> PipelineConfig {
    let text = format!(
        r#"
        [mqtt]
        url = "{url}"
        client_id = "grafana-test-{pid}"
        [runtime]
        start = "{FROM}"
        end = "{TO}"
        seed = 7
        cache_dir = "{cache}"
        [[plugin]]
        path = "{weather}"
        stations = "{stations}"
        interval_s = 600
        [[plugin]]
        path = "{quality_filter}"
        inputs = ["toulouse/sensors/#"]
        [[plugin]]
        path = "{avg_quartier}"
        inputs = ["toulouse/clean/#"]
        [plugin.config]
        polygons = "quartiers"
        window_s = 1800
        lateness_s = 0
        [[plugin]]
        path = "{thresholds}"
        inputs = ["toulouse/quartiers/#"]
        [plugin.config]
        below.temperature = 30
        "#,
        pid = std::process::id(),
        cache = temp_dir("cache").display(),
        weather = plugin("weather").display(),
        stations = root().join("data/stations/meteo.json").display(),
        quality_filter = plugin("quality_filter").display(),
        avg_quartier = plugin("avg_quartier").display(),
        thresholds = plugin("thresholds").display(),
    );
    toml::from_str(&text).expect("the test pipeline parses")
}

/// InfluxDB 1.6 filled by the historian from a simulated run of the weather stations.
async fn filled_database() -> (InfluxDb, Mosquitto) {
    let mosquitto = Mosquitto::start();
    let db = InfluxDb::start().await;
    let mut topics: Vec<String> =
        ["sensors", "quartiers", "alerts"].iter().map(|s| format!("toulouse/{s}/#")).collect();
    topics.push(PROBE_TOPIC.into());
    let config = HistorianConfig {
        topics,
        client_id: format!("grafana-test-historian-{}", std::process::id()),
        spool_dir: Some(temp_dir("spool")),
        out_dir: temp_dir("history"),
        batch_size: 2_000,
        linger_ms: 200,
        influxdb: Some(InfluxConfig {
            url: db.url.clone(),
            database: Some("garonne".into()),
            ..InfluxConfig::default()
        }),
        ..HistorianConfig::default()
    };
    let broker = BrokerAddress { host: "127.0.0.1".into(), port: mosquitto.port };
    let historian =
        Historian::start(config, &MqttConfig::default(), &broker).await.expect("historian starts");
    let mut client = TestClient::connect(mosquitto.port, &[]).await;
    for attempt in 0.. {
        assert!(attempt < 200, "the historian never stored a probe");
        let probe = serde_json::json!({"sensor_id": "probe", "kind": "probe", "value": attempt, "ts": 0});
        client.publish(PROBE_TOPIC, probe.to_string()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        if historian.metrics.snapshot().received > 0 {
            break;
        }
    }
    let mut running = RunningPipeline::start(pipeline(mosquitto.url())).await.expect("pipeline starts");
    tokio::time::timeout(Duration::from_secs(120), running.simulation_finished())
        .await
        .expect("the simulation reaches its end within 2 minutes");
    running.stop().await;
    let metrics = historian.stop().await;
    assert_eq!(metrics.written, metrics.received, "{metrics:?}");
    assert_eq!((metrics.rejected, metrics.dead_letters), (0, 0), "{metrics:?}");
    (db, mosquitto)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_scratch() {
    let started = std::time::Instant::now();
    let (db, _m) = filled_database().await;
    eprintln!("filled in {:?}", started.elapsed());
    for q in [
        "SHOW MEASUREMENTS",
        "SELECT count(value) FROM sensors, quartiers, alerts",
        "SHOW TAG KEYS",
        "SHOW FIELD KEYS",
        "SELECT * FROM sensors LIMIT 3",
        "SELECT * FROM quartiers LIMIT 3",
        "SELECT * FROM alerts LIMIT 3",
        "SHOW TAG VALUES FROM quartiers WITH KEY = kind",
        "SHOW TAG VALUES FROM quartiers WITH KEY = quartier",
        "SELECT count(value) FROM quartiers GROUP BY quartier, kind",
    ] {
        eprintln!("{q}: {:?}", db.select(q).await);
    }
}
