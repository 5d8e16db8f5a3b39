//! Test fixtures: plugin paths, a real Mosquitto, an MQTT test client.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use tokio::sync::mpsc;

/// A plugin built by `cargo xtask build-plugins`.
pub fn plugin(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/target/wasm32-wasip2/release")
        .join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask build-plugins` (or `cargo xtask test`)",
        path.display()
    );
    path
}

/// A fresh empty folder under the system's temp folder.
pub fn temp_dir(label: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("garonne-test-{}-{label}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("cannot create a temp folder");
    dir
}

/// The lock file that `host run`s on the default embedded broker port (1883) take, in the tests
/// and in the tutorial's script (with `flock`), so that they never start at the same time: two
/// hosts that both find 1883 free both try to bind it, and one of them then waits in vain.
pub fn default_port_lock_path() -> PathBuf {
    std::env::temp_dir().join("garonne-test-default-port.lock")
}

/// Holds the default port's lock until dropped.
pub fn default_port_lock() -> std::fs::File {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(default_port_lock_path())
        .expect("cannot open the default port's lock file");
    file.lock().expect("cannot lock the default port's lock file");
    file
}

pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("no free port");
    listener.local_addr().expect("no local address").port()
}

fn wait_for_port(port: u16) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on 127.0.0.1:{port} after 10 s");
}

/// A real Mosquitto on a free loopback port, stopped when dropped.
pub struct Mosquitto {
    child: Child,
    conf: PathBuf,
    pub port: u16,
}

impl Mosquitto {
    pub fn start() -> Self {
        Self::start_with("allow_anonymous true\n", None)
    }

    /// A broker with Mosquitto's own window, or another (`max_inflight_messages`), and a short
    /// queue per client (`max_queued_messages`), past which it drops, QoS 1 included.
    pub fn start_with_queues(inflight: u32, queued: u32) -> Self {
        Self::launch("allow_anonymous true\n", None, (inflight, queued))
    }

    /// A broker that keeps sessions and queued messages across a clean restart, as a
    /// production broker does (`persistence true`).
    pub fn start_persistent() -> Self {
        let dir = temp_dir("mosquitto-db");
        // Mosquitto started as root drops to its own user, which must be able to write here.
        let _ = Command::new("chmod").arg("0777").arg(&dir).status();
        let settings = format!(
            "allow_anonymous true\npersistence true\npersistence_location {}/\nautosave_interval 0\n",
            dir.display()
        );
        Self::start_with(&settings, None)
    }

    /// A broker that only lets `user` in, with `password`.
    pub fn start_with_user(user: &str, password: &str) -> Self {
        Self::start_with("allow_anonymous false\n", Some((user, password)))
    }

    fn start_with(access: &str, user: Option<(&str, &str)>) -> Self {
        // A historian acknowledges a batch at a time: let the broker send it that many.
        Self::launch(access, user, (1_000, 100_000))
    }

    fn launch(access: &str, user: Option<(&str, &str)>, (inflight, queued): (u32, u32)) -> Self {
        let dir = temp_dir("mosquitto");
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        let mut access = access.to_owned();
        if let Some((user, password)) = user {
            let file = dir.join("passwords");
            let status = Command::new("mosquitto_passwd")
                .args(["-b", "-c"])
                .arg(&file)
                .args([user, password])
                .status()
                .expect("cannot run mosquitto_passwd (package mosquitto)");
            assert!(status.success(), "mosquitto_passwd failed");
            access.push_str(&format!("password_file {}\n", file.display()));
        }
        let persistence = if access.contains("persistence true") { "" } else { "persistence false\n" };
        let text = format!(
            "listener {port} 127.0.0.1\n{access}{persistence}log_dest stdout\n\
             max_queued_messages {queued}\nmax_inflight_messages {inflight}\n"
        );
        std::fs::write(&conf, text).expect("cannot write mosquitto.conf");
        let child = spawn_mosquitto(&conf);
        wait_for_port(port);
        Self { child, conf, port }
    }

    /// Kills the broker (as a crash would) and starts a new one on the same port.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(300));
        self.child = spawn_mosquitto(&self.conf);
        wait_for_port(self.port);
    }

    /// Stops the broker as an operator would (SIGTERM: it saves its sessions when persistent)
    /// and starts it again on the same port.
    pub fn restart_cleanly(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
        self.child = spawn_mosquitto(&self.conf);
        wait_for_port(self.port);
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

fn spawn_mosquitto(conf: &std::path::Path) -> Child {
    Command::new(mosquitto_binary())
        .arg("-c")
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start mosquitto: install it with `apt-get install mosquitto`")
}

fn mosquitto_binary() -> PathBuf {
    ["/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("mosquitto"))
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An MQTT client for tests: publishes, and collects what its subscriptions receive.
pub struct TestClient {
    client: AsyncClient,
    received: mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    published: usize,
    acked: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl TestClient {
    /// Connects and returns once every subscription is acknowledged.
    pub async fn connect(port: u16, filters: &[&str]) -> Self {
        Self::connect_as(port, filters, None).await
    }

    pub async fn connect_as(port: u16, filters: &[&str], user: Option<(&str, &str)>) -> Self {
        let id = format!("test-{}-{}", std::process::id(), free_port());
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        if let Some((user, password)) = user {
            options.set_credentials(user, password);
        }
        options.set_max_packet_size(4 << 20, 4 << 20);
        let (client, mut events) = AsyncClient::new(options, 1000);
        let (tx, received) = mpsc::unbounded_channel();
        let (suback_tx, mut suback_rx) = mpsc::unbounded_channel();
        let resubscribe = client.clone();
        let acked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let acked_by_broker = acked.clone();
        let owned: Vec<String> = filters.iter().map(|f| f.to_string()).collect();
        tokio::spawn(async move {
            let mut connections = 0;
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        connections += 1;
                        // After a broker restart the session is gone: subscribe again.
                        if connections > 1 {
                            for filter in &owned {
                                let _ = resubscribe.try_subscribe(filter.clone(), QoS::AtLeastOnce);
                            }
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = tx.send((p.topic.clone(), p.payload.to_vec()));
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = suback_tx.send(());
                    }
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        acked_by_broker.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        for filter in filters {
            client.subscribe(*filter, QoS::AtLeastOnce).await.expect("subscribe");
        }
        for _ in filters {
            tokio::time::timeout(Duration::from_secs(10), suback_rx.recv())
                .await
                .expect("no SUBACK within 10 s");
        }
        Self { client, received, published: 0, acked }
    }

    pub async fn publish(&mut self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client.publish(topic, QoS::AtLeastOnce, false, payload.into()).await.expect("publish");
        self.published += 1;
    }

    /// Publishes at QoS 0: no acknowledgement, so the broker delivers it at QoS 0 too.
    pub async fn publish_qos0(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client.publish(topic, QoS::AtMostOnce, false, payload.into()).await.expect("publish");
    }

    /// Waits until the broker has acknowledged every message this client published.
    pub async fn wait_acked(&self, wait: Duration) {
        let deadline = Instant::now() + wait;
        while self.acked.load(std::sync::atomic::Ordering::SeqCst) < self.published {
            assert!(Instant::now() < deadline, "the broker did not acknowledge every publish in {wait:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn publish_retained(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client.publish(topic, QoS::AtLeastOnce, true, payload.into()).await.expect("publish");
    }

    /// The next message, if one comes within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<(String, Vec<u8>)> {
        tokio::time::timeout(wait, self.received.recv()).await.ok().flatten()
    }

    /// Messages whose JSON satisfies `keep`, until `count` of them arrived or `wait` passed.
    pub async fn collect_json(
        &mut self,
        count: usize,
        wait: Duration,
        keep: impl Fn(&str, &Value) -> bool,
    ) -> Vec<(String, Value)> {
        let deadline = Instant::now() + wait;
        let mut kept = Vec::new();
        while kept.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some((topic, bytes)) = self.next(left).await else { break };
            let Ok(json) = serde_json::from_slice::<Value>(&bytes) else { continue };
            if keep(&topic, &json) {
                kept.push((topic, json));
            }
        }
        kept
    }
}

/// A reading in the wire format.
pub fn reading(sensor: &str, kind: &str, value: f64, ts: i64) -> String {
    serde_json::json!({"sensor_id": sensor, "kind": kind, "value": value, "unit": "°C", "ts": ts,
                       "lat": 43.6, "lon": 1.44})
    .to_string()
}

/// Temperatures of one sensor `s1`, one second apart from time 0, for supervisor tests.
pub fn readings(values: &[f64]) -> Vec<garonne::payload::Payload> {
    values
        .iter()
        .enumerate()
        .map(|(i, &value)| garonne::payload::Payload {
            sensor_id: "s1".into(),
            kind: "temperature".into(),
            value,
            unit: "°C".into(),
            time: 1_000 * i as i64,
            position: None,
            fields: Default::default(),
            tags: Default::default(),
        })
        .collect()
}
