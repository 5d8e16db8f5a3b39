//! Real time-series databases for the historian's tests: InfluxDB 1.6 (Debian's `influxdb`)
//! and VictoriaMetrics (Debian's `victoria-metrics`), each on free loopback ports in a temp
//! folder, stopped when dropped; and a small HTTP client to query them.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::support::{free_port, temp_dir};

/// `(status, body)` of an HTTP request; `body` None for a GET.
pub async fn http(method: &str, url: &str, body: Option<String>) -> (u16, String) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let request = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .expect("valid request");
    let response = tokio::time::timeout(Duration::from_secs(20), client.request(request))
        .await
        .expect("HTTP request timed out")
        .expect("HTTP request failed");
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.expect("HTTP body").to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn wait_until_up(url: &str) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        let address = url.trim_start_matches("http://");
        if std::net::TcpStream::connect(address).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing answers at {url} after 30 s");
}

fn terminate(child: &mut Child) {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();
}

/// InfluxDB 1.6 with one database, `garonne`.
pub struct InfluxDb {
    child: Child,
    conf: PathBuf,
    pub url: String,
}

impl InfluxDb {
    pub async fn start() -> Self {
        let dir = temp_dir("influxdb");
        let (port, rpc) = (free_port(), free_port());
        let conf = dir.join("influxdb.conf");
        let text = format!(
            "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n\
             [meta]\n  dir = \"{d}/meta\"\n\
             [data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n\
             [http]\n  bind-address = \"127.0.0.1:{port}\"\n  log-enabled = false\n\
             [monitor]\n  store-enabled = false\n\
             [continuous_queries]\n  enabled = false\n",
            d = dir.display()
        );
        std::fs::write(&conf, text).expect("cannot write influxdb.conf");
        let url = format!("http://127.0.0.1:{port}");
        let db = Self { child: spawn_influxd(&conf), conf, url };
        wait_until_up(&db.url);
        db.query_until_ok("CREATE DATABASE garonne").await;
        db
    }

    /// Stops it (SIGTERM) as an operator or a crash of the machine's service would.
    pub fn stop(&mut self) {
        terminate(&mut self.child);
    }

    /// Starts it again on the same port and data.
    pub fn start_again(&mut self) {
        self.child = spawn_influxd(&self.conf);
        wait_until_up(&self.url);
    }

    async fn query_until_ok(&self, q: &str) -> Value {
        let start = Instant::now();
        loop {
            let (status, body) = http("POST", &format!("{}/query", self.url), Some(form(q))).await;
            if status == 200 {
                return serde_json::from_str(&body).expect("InfluxDB answers JSON");
            }
            assert!(start.elapsed() < Duration::from_secs(20), "InfluxDB refuses {q}: {status} {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Rows of an InfluxQL query on `garonne`, as column name → value maps, times in ms.
    pub async fn select(&self, q: &str) -> Vec<serde_json::Map<String, Value>> {
        let url = format!("{}/query?db=garonne&epoch=ms", self.url);
        let (status, body) = http("POST", &url, Some(form(q))).await;
        assert_eq!(status, 200, "{q}: {body}");
        let json: Value = serde_json::from_str(&body).expect("JSON");
        let mut rows = Vec::new();
        for series in json["results"][0]["series"].as_array().into_iter().flatten() {
            let columns: Vec<String> = series["columns"]
                .as_array()
                .expect("columns")
                .iter()
                .map(|c| c.as_str().unwrap_or_default().to_owned())
                .collect();
            for values in series["values"].as_array().into_iter().flatten() {
                let row =
                    columns.iter().cloned().zip(values.as_array().expect("row").iter().cloned()).collect();
                rows.push(row);
            }
        }
        rows
    }

    /// `count(value)` of a measurement (0 when it does not exist yet).
    pub async fn count(&self, measurement: &str) -> u64 {
        let rows = self.select(&format!("SELECT count(value) FROM \"{measurement}\"")).await;
        rows.first().and_then(|r| r.get("count")).and_then(Value::as_u64).unwrap_or(0)
    }

    /// Waits until `measurement` holds `n` points (and fails if it holds more).
    pub async fn wait_for_count(&self, measurement: &str, n: u64, wait: Duration) -> u64 {
        let deadline = Instant::now() + wait;
        loop {
            let count = self.count(measurement).await;
            if count >= n || Instant::now() > deadline {
                return count;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for InfluxDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_influxd(conf: &std::path::Path) -> Child {
    Command::new("influxd")
        .arg("-config")
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start influxd: install it with `apt-get install influxdb`")
}

fn form(q: &str) -> String {
    format!("q={}", percent_encoding::utf8_percent_encode(q, percent_encoding::NON_ALPHANUMERIC))
}

/// VictoriaMetrics, with a retention long enough for any test timestamp.
pub struct VictoriaMetrics {
    child: Child,
    pub url: String,
}

impl VictoriaMetrics {
    pub fn start() -> Self {
        let dir = temp_dir("victoria");
        let port = free_port();
        let child = Command::new("victoria-metrics")
            .arg(format!("-storageDataPath={}", dir.display()))
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg("-retentionPeriod=100y")
            .arg("-search.latencyOffset=0s")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start victoria-metrics: install it with `apt-get install victoria-metrics`");
        let vm = Self { child, url: format!("http://127.0.0.1:{port}") };
        wait_until_up(&vm.url);
        vm
    }

    /// Every series whose name matches `regex`, as (labels, values, timestamps in ms).
    pub async fn export(&self, regex: &str) -> Vec<(serde_json::Map<String, Value>, Vec<f64>, Vec<i64>)> {
        let (status, _) = http("GET", &format!("{}/internal/force_flush", self.url), None).await;
        assert_eq!(status, 200, "force_flush");
        let selector = format!("{{__name__=~\"{regex}\"}}");
        let url = format!(
            "{}/api/v1/export?match[]={}",
            self.url,
            percent_encoding::utf8_percent_encode(&selector, percent_encoding::NON_ALPHANUMERIC)
        );
        let (status, body) = http("GET", &url, None).await;
        assert_eq!(status, 200, "{body}");
        body.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let json: Value = serde_json::from_str(line).expect("export line is JSON");
                let labels = json["metric"].as_object().cloned().unwrap_or_default();
                let values =
                    json["values"].as_array().expect("values").iter().filter_map(Value::as_f64).collect();
                let times =
                    json["timestamps"].as_array().expect("times").iter().filter_map(Value::as_i64).collect();
                (labels, values, times)
            })
            .collect()
    }
}

impl Drop for VictoriaMetrics {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
