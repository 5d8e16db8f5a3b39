//! The historian: MQTT streams into InfluxDB, with nothing lost.
//!
//! ```text
//!  broker ──(QoS 1, persistent session, manual acks)──▶ decode ──▶ line protocol ──▶ batch
//!     ▲                                                   └─▶ garonne/dead-letter/historian
//!     └──── PUBACK once the batch is in the database, or on disk in the spool ◀──┘
//! ```
//!
//! A message is acknowledged to the broker only once the batch that holds it is written: to
//! the database, or, when the database is unreachable, to the on-disk [`spool`], which is
//! replayed in order when it is back. Until then the broker keeps the message (and sends it
//! again after a reconnection or a restart of the historian). Points are idempotent, so a
//! message delivered twice is stored once.
//!
//! A batch is written when it reaches `batch_size`, when its first point has waited
//! `linger_ms`, or as soon as the input pauses for `idle_flush_ms` (20 ms by default): a broker
//! sends only so many unacknowledged messages at once (Mosquitto's `max_inflight_messages`, 20
//! by default), so waiting for a full batch would stall the stream. Up to two writes to InfluxDB
//! are under way at once (`in_flight.rs`), settled in the order they started.

pub mod config;
mod in_flight;
pub mod line_protocol;
pub mod sink;
pub mod spool;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, Packet, Publish, QoS};
use serde::Serialize;
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::time::Instant;

use crate::config::MqttConfig;
use crate::mqtt::{self, BrokerAddress};
use crate::payload::{PackedReading, Readings};
use crate::topic;
pub use config::{HistorianConfig, InfluxConfig};
use in_flight::{Flights, InFlight};
use line_protocol::Mapping;
use sink::{FileWriter, InfluxWriter, Sink, WriteResult};
use spool::{Spool, SpoolError};

/// Attempts to write a batch before it goes to the spool, and the pauses between them.
const RETRY_PAUSES: [Duration; 2] = [Duration::from_millis(250), Duration::from_millis(1_000)];
/// The longest pause between two attempts to replay the spool.
const MAX_REPLAY_PAUSE: Duration = Duration::from_secs(30);
const STATUS_EVERY: Duration = Duration::from_secs(10);
/// At stop, input silent this long means what was published before has arrived.
const QUIET: Duration = Duration::from_millis(500);
/// How long [`Historian::stop`] waits for the input to go quiet; with a broker of its own, what
/// comes later stays in the historian's persistent session for its next start.
const QUIET_WAIT: Duration = Duration::from_secs(5);
const STOP_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum HistorianError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error(transparent)]
    Mqtt(#[from] mqtt::MqttError),
}

/// The historian's counters, in points.
#[derive(Default)]
pub struct Metrics {
    received: AtomicU64,
    written: AtomicU64,
    retried: AtomicU64,
    spooled: AtomicU64,
    replayed: AtomicU64,
    rejected: AtomicU64,
    dead_letters: AtomicU64,
    spool_batches: AtomicU64,
}

/// A copy of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MetricsSnapshot {
    /// Messages decoded into points.
    pub received: u64,
    /// Points the database took, directly or from the spool.
    pub written: u64,
    /// Points sent again after a failed write.
    pub retried: u64,
    /// Points put in the spool.
    pub spooled: u64,
    /// Spooled points written since.
    pub replayed: u64,
    /// Points the database refused (logged with the reason).
    pub rejected: u64,
    /// Messages that were not readings (sent to the dead-letter topic).
    pub dead_letters: u64,
    /// Batches waiting in the spool now.
    pub spool_batches: u64,
}

impl Metrics {
    pub fn snapshot(&self) -> MetricsSnapshot {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        MetricsSnapshot {
            received: get(&self.received),
            written: get(&self.written),
            retried: get(&self.retried),
            spooled: get(&self.spooled),
            replayed: get(&self.replayed),
            rejected: get(&self.rejected),
            dead_letters: get(&self.dead_letters),
            spool_batches: get(&self.spool_batches),
        }
    }

    fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// A point and the message it came from, acknowledged once the point is safe.
struct Pending {
    /// One point, or several for a status message.
    lines: Vec<String>,
    publish: Publish,
    /// The connection it arrived on: an acknowledgement on a later connection would name a
    /// packet id the broker may have given to another message since.
    connection: u64,
    /// Its share of the points the historian may hold, given back when it is acknowledged.
    _held: OwnedSemaphorePermit,
}

impl Pending {
    /// What it counts for in a batch: its points, and at least one, so that a batch of status
    /// messages that give no point is bounded too.
    fn weight(&self) -> usize {
        self.lines.len().max(1)
    }
}

enum Item {
    Point(Pending),
    Stop,
}

/// A historian running in the background: stop it with [`Historian::stop`].
pub struct Historian {
    pub metrics: Arc<Metrics>,
    shutdown: watch::Sender<bool>,
    writer: tokio::task::JoinHandle<()>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    client: AsyncClient,
    status_topic: String,
}

impl Historian {
    /// Opens the spool, connects to the broker and starts storing.
    pub async fn start(
        config: HistorianConfig,
        mqtt_config: &MqttConfig,
        broker: &BrokerAddress,
    ) -> Result<Self, HistorianError> {
        config.validate()?;
        let sink = match &config.influxdb {
            Some(influx) => Sink::Influx(Box::new(InfluxWriter::new(influx, config.gzip)?)),
            None => {
                Sink::Files(FileWriter { dir: config.out_dir.clone(), name: topic::level(&config.client_id) })
            }
        };
        let spool = Spool::open(&config.spool_dir(), config.spool_max_mib.saturating_mul(1 << 20))?;
        let topics = config.topics(&mqtt_config.prefix);
        announce(&sink, &spool, &topics, broker);

        // Room for a whole batch of acknowledgements (and more) in the request queue, so that
        // the writer never waits on an input task that waits on the writer.
        let capacity = config.batch_size.saturating_mul(2).saturating_add(1_000);
        let (client, events) = mqtt::connect_manual_acks(broker, mqtt_config, &config.client_id, capacity);
        let metrics = Arc::new(Metrics::default());
        let connection = Arc::new(AtomicU64::new(0));
        let (shutdown, _) = watch::channel(false);
        let (tx, rx) = mpsc::channel(config.batch_size.saturating_mul(2));
        // Points rather than messages bound what is held: a pack of 50 readings is one message,
        // and 10,000 queued packs held 120 MiB in the bench. Three batches: two writes in
        // flight and one filling.
        let held_points = config.batch_size.saturating_mul(3).clamp(1, Semaphore::MAX_PERMITS);
        let status_topic = topic::status(&config.client_id);
        let (subscribed_tx, mut subscribed) = watch::channel(false);

        let input = Input {
            client: client.clone(),
            topics,
            mapping: Mapping { measurement: config.measurement.clone(), prefix: mqtt_config.prefix.clone() },
            max_payload: mqtt_config.max_payload,
            metrics: metrics.clone(),
            connection: connection.clone(),
            queue: tx,
            held: Arc::new(Semaphore::new(held_points)),
            held_points,
            status_topic: status_topic.clone(),
            subscribed: subscribed_tx,
        };
        let writer = Writer {
            sink,
            spool,
            metrics: metrics.clone(),
            client: client.clone(),
            connection,
            batching: Batching {
                size: config.batch_size,
                linger: Duration::from_millis(config.linger_ms),
                idle_flush: (config.idle_flush_ms > 0).then(|| Duration::from_millis(config.idle_flush_ms)),
            },
            replay_pause: Duration::from_secs(1),
            next_replay: Instant::now(),
        };
        let writer = tokio::spawn(writer.run(rx));
        let tasks = vec![
            tokio::spawn(input.run(events, shutdown.subscribe())),
            tokio::spawn(report(metrics.clone(), client.clone(), status_topic.clone())),
        ];
        // Returning once subscribed lets the caller start the sensors without losing the
        // first readings of a run (the demo lost its first few hundred).
        mqtt::wait_until_subscribed(&mut subscribed, "the historian's").await;
        Ok(Self { metrics, shutdown, writer, tasks, client, status_topic })
    }

    /// Waits until no message arrived for a moment, writes (or spools) everything received,
    /// acknowledges it, and disconnects. Messages that arrive after that stay with the broker.
    pub async fn stop(self) -> MetricsSnapshot {
        self.wait_for_quiet_input(Some(QUIET_WAIT)).await;
        let _ = self.shutdown.send(true);
        let mut writer = self.writer;
        if tokio::time::timeout(STOP_WAIT, &mut writer).await.is_err() {
            tracing::error!(
                "the historian's writer did not finish within {STOP_WAIT:?}; what it held stays with the broker"
            );
            writer.abort();
        }
        let mut offline = self.metrics.snapshot_json();
        offline["state"] = "offline".into();
        let _ =
            self.client.publish(self.status_topic.clone(), QoS::AtLeastOnce, true, offline.to_string()).await;
        // Let the acknowledgements and the status go out before the disconnect.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = self.client.disconnect().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        for task in &self.tasks {
            task.abort();
        }
        self.metrics.snapshot()
    }

    /// Waits until no message arrived for a moment, however long that takes. An embedded
    /// broker forgets what it holds for the historian when the process ends: call this before
    /// [`Historian::stop`] when the producers have stopped, so that a historian that fell behind
    /// (the demo at `--speed 3000` in a debug build) still stores every message.
    pub async fn take_everything(&self) {
        self.wait_for_quiet_input(None).await;
    }

    async fn wait_for_quiet_input(&self, limit: Option<Duration>) {
        let mut last = self.metrics.snapshot();
        let mut quiet_since = Instant::now();
        let started = Instant::now();
        while limit.is_none_or(|limit| started.elapsed() < limit) && quiet_since.elapsed() < QUIET {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = self.metrics.snapshot();
            if (now.received, now.dead_letters) != (last.received, last.dead_letters) {
                last = now;
                quiet_since = Instant::now();
            }
        }
    }
}

impl Metrics {
    fn snapshot_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self.snapshot()).unwrap_or_else(|_| json!({}));
        value["state"] = "online".into();
        value["role"] = "historian".into();
        value["ts"] = crate::clock::wall_clock_millis().into();
        value
    }
}

fn announce(sink: &Sink, spool: &Spool, topics: &[String], broker: &BrokerAddress) {
    tracing::info!("historian: storing {} from {} into {}", topics.join(", "), broker.url(), sink.describe());
    if let Sink::Files(files) = sink {
        tracing::info!(
            "no InfluxDB configured: points go to {}/*.lp; import them later with \
             `influx write --bucket BUCKET --precision ms --file FILE` (InfluxDB 2.x) or configure \
             [historian.influxdb]",
            files.dir.display()
        );
    }
    if !spool.is_empty() {
        tracing::info!(
            "{} batches wait in the spool {}: replaying them first",
            spool.len(),
            spool.dir().display()
        );
    }
}

struct Input {
    client: AsyncClient,
    topics: Vec<String>,
    mapping: Mapping,
    max_payload: usize,
    metrics: Arc<Metrics>,
    connection: Arc<AtomicU64>,
    queue: mpsc::Sender<Item>,
    /// The points held between the broker and the database, and how many may be.
    held: Arc<Semaphore>,
    held_points: usize,
    status_topic: String,
    /// Set once the broker acknowledged the subscriptions.
    subscribed: watch::Sender<bool>,
}

impl Input {
    async fn run(self, mut events: EventLoop, mut shutdown: watch::Receiver<bool>) {
        let (mut failures, mut stopping) = (0, false);
        loop {
            let event = tokio::select! {
                event = events.poll() => event,
                _ = shutdown.changed(), if !stopping => {
                    // Keep polling after this: the writer's last acknowledgements go out here.
                    stopping = true;
                    let _ = self.queue.send(Item::Stop).await;
                    continue;
                }
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    failures = 0;
                    self.connection.fetch_add(1, Ordering::SeqCst);
                    tracing::info!("historian connected to the broker");
                    self.subscribe();
                }
                Ok(Event::Incoming(Packet::SubAck(suback))) => {
                    mqtt::report_refused(&self.topics, &suback, "the historian will store none of them");
                    let _ = self.subscribed.send(true);
                }
                // Not acknowledged after the stop: the broker sends it again next time.
                Ok(Event::Incoming(Packet::Publish(_))) if stopping => {}
                Ok(Event::Incoming(Packet::Publish(publish))) => self.take(publish).await,
                Ok(_) => {}
                Err(error) => {
                    if stopping {
                        return;
                    }
                    tracing::warn!("historian lost the broker: {error}; reconnecting");
                    tokio::time::sleep(mqtt::reconnect_delay(failures)).await;
                    failures += 1;
                }
            }
        }
    }

    fn subscribe(&self) {
        let online = self.metrics.snapshot_json().to_string();
        let _ = self.client.try_publish(self.status_topic.clone(), QoS::AtLeastOnce, true, online);
        mqtt::subscribe_all(&self.client, &self.topics, QoS::AtLeastOnce);
    }

    /// The points of a message (a reading or a pack of them, an aggregate, an alert, a host's
    /// status), and what of it cannot be stored, with why.
    fn points<'p>(&self, publish: &'p Publish) -> (Vec<String>, Vec<(String, &'p [u8])>) {
        let whole = |error: String| (Vec::new(), vec![(error, &publish.payload[..])]);
        if publish.topic.starts_with("garonne/status/") {
            return match serde_json::from_slice::<serde_json::Value>(&publish.payload) {
                Ok(status) => {
                    let now = crate::clock::wall_clock_millis();
                    (
                        line_protocol::status_lines(&publish.topic, &status, now).unwrap_or_default(),
                        Vec::new(),
                    )
                }
                Err(e) => whole(format!("status is not JSON: {e}")),
            };
        }
        let readings = match Readings::decode(&publish.payload, self.max_payload) {
            Ok(readings) => readings,
            Err(error) => return whole(error.to_string()),
        };
        let (mut lines, mut refused) = (Vec::with_capacity(readings.len()), Vec::new());
        for PackedReading { reading, text } in readings {
            match reading {
                Ok(payload) => lines.push(self.mapping.line(&publish.topic, &payload)),
                Err(error) => {
                    refused.push((error.to_string(), text.map_or(&publish.payload[..], str::as_bytes)))
                }
            }
        }
        (lines, refused)
    }

    async fn take(&self, publish: Publish) {
        let (lines, refused) = self.points(&publish);
        for (error, payload) in &refused {
            Metrics::add(&self.metrics.dead_letters, 1);
            tracing::warn!(topic = publish.topic, "message not stored: {error}");
            mqtt::publish_dead_letter(&self.client, "historian", &publish.topic, error, payload);
        }
        if lines.is_empty() && !refused.is_empty() {
            // Kept on the dead-letter topic: nothing more to wait for.
            let _ = self.client.try_ack(&publish);
            return;
        }
        Metrics::add(&self.metrics.received, 1);
        let connection = self.connection.load(Ordering::SeqCst);
        // Waits while the writer holds as many points as allowed; a message larger than that
        // takes them all. The semaphore is never closed.
        let share = u32::try_from(lines.len().min(self.held_points)).unwrap_or(u32::MAX);
        let Ok(_held) = self.held.clone().acquire_many_owned(share).await else { return };
        let _ = self.queue.send(Item::Point(Pending { lines, publish, connection, _held })).await;
    }
}

struct Writer {
    sink: Sink,
    spool: Spool,
    metrics: Arc<Metrics>,
    client: AsyncClient,
    connection: Arc<AtomicU64>,
    batching: Batching,
    replay_pause: Duration,
    next_replay: Instant,
}

impl Writer {
    async fn run(mut self, mut queue: mpsc::Receiver<Item>) {
        self.count_spool();
        let mut batch = Vec::new();
        let mut flights = Flights::default();
        loop {
            // The spool holds older points than any write under way: it waits for them (in
            // practice it is only filled by the serial path, which settles them first).
            if flights.is_empty() && !self.spool.is_empty() && Instant::now() >= self.next_replay {
                self.replay().await;
            }
            let first = tokio::select! {
                item = queue.recv() => item,
                _ = tokio::time::sleep_until(self.next_replay), if !self.spool.is_empty() => continue,
                // A write finishing while the input is quiet is acknowledged now: the broker
                // sends only so many unacknowledged messages, and would wait for these.
                (flight, result) = flights.oldest(), if !flights.is_empty() => {
                    self.settle(flight, result).await;
                    continue;
                }
            };
            let mut stop = true;
            if let Some(Item::Point(pending)) = first {
                batch.push(pending);
                stop = self.batching.fill(&mut batch, &mut queue).await;
            }
            if !batch.is_empty() {
                self.send(std::mem::take(&mut batch), &mut flights).await;
            }
            if stop {
                return self.settle_all(&mut flights).await;
            }
        }
    }

    /// Starts a batch's write beside the one under way when the sink allows it and nothing
    /// waits in the spool; otherwise settles the writes under way and delivers it in turn.
    async fn send(&mut self, mut batch: Vec<Pending>, flights: &mut Flights) {
        let concurrent = self.sink.concurrent().filter(|_| self.spool.is_empty());
        let Some(writer) = concurrent else {
            self.settle_all(flights).await;
            return self.deliver(batch).await;
        };
        if flights.is_full() {
            let (flight, result) = flights.oldest().await;
            self.settle(flight, result).await;
        }
        let lines: Vec<String> = batch.iter_mut().flat_map(|p| std::mem::take(&mut p.lines)).collect();
        if lines.is_empty() {
            return self.acknowledge(batch).await;
        }
        flights.start(writer, batch, lines);
    }

    async fn settle_all(&mut self, flights: &mut Flights) {
        while !flights.is_empty() {
            let (flight, result) = flights.oldest().await;
            self.settle(flight, result).await;
        }
    }

    /// A finished write: acknowledged if it went in, else through the usual path (retries,
    /// refused points found by halving, spool), which writes it again.
    async fn settle(&mut self, flight: InFlight, result: WriteResult) {
        if result == WriteResult::Written {
            self.count_written(flight.lines.len());
            return self.acknowledge(flight.batch).await;
        }
        self.deliver_lines(flight.batch, &flight.lines).await;
    }

    /// Writes a batch (or spools it), then acknowledges its messages.
    async fn deliver(&mut self, mut batch: Vec<Pending>) {
        // The lines move out of the batch: only the messages are needed to acknowledge it.
        let lines: Vec<String> = batch.iter_mut().flat_map(|p| std::mem::take(&mut p.lines)).collect();
        if lines.is_empty() {
            return self.acknowledge(batch).await;
        }
        self.deliver_lines(batch, &lines).await;
    }

    /// Writes the lines of a batch (or spools them), then acknowledges its messages.
    async fn deliver_lines(&mut self, batch: Vec<Pending>, lines: &[String]) {
        // While older batches wait in the spool, new ones queue behind them, in order.
        let direct = self.spool.is_empty();
        if direct {
            match self.write_with_retries(lines).await {
                Ok(()) => return self.acknowledge(batch).await,
                Err(reason) => tracing::warn!(
                    "{} unreachable ({reason}); keeping {} points in the spool {} until it is back",
                    self.sink.describe(),
                    lines.len(),
                    self.spool.dir().display()
                ),
            }
        }
        self.spool_or_hold(lines).await;
        self.acknowledge(batch).await;
    }

    async fn write_with_retries(&mut self, lines: &[String]) -> Result<(), String> {
        let mut outcome = self.write_checked(lines).await;
        for pause in RETRY_PAUSES {
            if outcome.is_ok() {
                break;
            }
            tokio::time::sleep(pause).await;
            Metrics::add(&self.metrics.retried, lines.len());
            outcome = self.write_checked(lines).await;
        }
        outcome
    }

    /// One write; points the database refuses are found by halving the batch, logged and
    /// counted, so that one bad point does not hold back the others. `Err`: unreachable.
    async fn write_checked(&mut self, lines: &[String]) -> Result<(), String> {
        match self.sink.write(lines).await {
            WriteResult::Written => {
                self.count_written(lines.len());
                Ok(())
            }
            WriteResult::Unavailable(reason) => Err(reason),
            WriteResult::Rejected(reason) if lines.len() == 1 => {
                Metrics::add(&self.metrics.rejected, 1);
                tracing::error!(point = lines[0], "the database refused this point: {reason}");
                Ok(())
            }
            WriteResult::Rejected(_) => {
                let (left, right) = lines.split_at(lines.len() / 2);
                Box::pin(self.write_checked(left)).await?;
                Box::pin(self.write_checked(right)).await
            }
        }
    }

    /// Puts a batch in the spool; when the spool is full, waits (holding the messages
    /// unacknowledged, so the broker keeps them) until the database or the spool takes it.
    async fn spool_or_hold(&mut self, lines: &[String]) {
        let mut pause = Duration::from_secs(1);
        loop {
            match self.spool.push(lines) {
                Ok(()) => {
                    Metrics::add(&self.metrics.spooled, lines.len());
                    self.count_spool();
                    return;
                }
                Err(error) => tracing::error!("{error}; holding {} points unacknowledged", lines.len()),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_REPLAY_PAUSE);
            self.next_replay = Instant::now();
            self.replay().await;
            if self.spool.is_empty() && self.write_checked(lines).await.is_ok() {
                return;
            }
        }
    }

    /// Writes the spooled batches, oldest first, until the spool is empty or a write fails.
    async fn replay(&mut self) {
        loop {
            let batch = match self.spool.oldest() {
                Ok(Some(batch)) => batch,
                Ok(None) => break,
                Err(error) => {
                    tracing::error!("{error}");
                    self.postpone_replay();
                    return;
                }
            };
            let count = batch.lines.len();
            if let Err(reason) = self.write_checked(&batch.lines).await {
                tracing::debug!("spool replay postponed: {reason}");
                self.postpone_replay();
                return;
            }
            Metrics::add(&self.metrics.replayed, count);
            if let Err(error) = self.spool.remove(batch) {
                tracing::error!("{error}");
            }
            self.count_spool();
            self.replay_pause = Duration::from_secs(1);
            if self.spool.is_empty() {
                tracing::info!("{} is back: the spool is replayed", self.sink.describe());
            }
        }
    }

    fn postpone_replay(&mut self) {
        self.next_replay = Instant::now() + self.replay_pause;
        self.replay_pause = (self.replay_pause * 2).min(MAX_REPLAY_PAUSE);
    }

    fn count_written(&self, points: usize) {
        Metrics::add(&self.metrics.written, points);
        // Benchmarks time the stage by this line (RUST_LOG=garonne::historian=debug).
        let written = self.metrics.written.load(Ordering::Relaxed);
        tracing::debug!(points, written, "historian: batch written");
    }

    fn count_spool(&self) {
        self.metrics.spool_batches.store(self.spool.len() as u64, Ordering::Relaxed);
    }

    async fn acknowledge(&self, batch: Vec<Pending>) {
        let current = self.connection.load(Ordering::SeqCst);
        for pending in batch.iter().filter(|p| p.connection == current) {
            if self.client.try_ack(&pending.publish).is_err() {
                let _ = self.client.ack(&pending.publish).await;
            }
        }
    }
}

/// When a batch is full: `size` points (not messages: a pack of readings is one message), or
/// `linger` after its first point, or `idle_flush` without a new point.
struct Batching {
    size: usize,
    linger: Duration,
    idle_flush: Option<Duration>,
}

impl Batching {
    /// Adds points until the batch is full, lingered long enough, or the input paused; returns
    /// whether the stop came.
    async fn fill(&self, batch: &mut Vec<Pending>, queue: &mut mpsc::Receiver<Item>) -> bool {
        let deadline = Instant::now() + self.linger;
        let mut points: usize = batch.iter().map(Pending::weight).sum();
        while points < self.size {
            let item = tokio::select! {
                item = queue.recv() => item,
                _ = tokio::time::sleep_until(deadline) => return false,
                _ = idle(self.idle_flush) => return false,
            };
            match item {
                Some(Item::Point(pending)) => {
                    points += pending.weight();
                    batch.push(pending);
                }
                Some(Item::Stop) | None => return true,
            }
        }
        false
    }
}

/// Resolves after `pause`, or never.
async fn idle(pause: Option<Duration>) {
    match pause {
        Some(pause) => tokio::time::sleep(pause).await,
        None => std::future::pending().await,
    }
}

async fn report(metrics: Arc<Metrics>, client: AsyncClient, topic: String) {
    let mut interval = tokio::time::interval(STATUS_EVERY);
    interval.tick().await;
    loop {
        interval.tick().await;
        let status = metrics.snapshot_json();
        tracing::info!("historian: {status}");
        let _ = client.try_publish(topic.clone(), QoS::AtLeastOnce, true, status.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(points: usize, held: &Arc<Semaphore>) -> Item {
        let lines = (0..points).map(|i| format!("sensors value={i} {i}")).collect();
        let publish = Publish::new("toulouse/sensors/gateway", QoS::AtLeastOnce, "[]");
        let share = u32::try_from(points).unwrap_or(u32::MAX);
        let _held = held.clone().try_acquire_many_owned(share).expect("points to hold");
        Item::Point(Pending { lines, publish, connection: 1, _held })
    }

    #[tokio::test]
    async fn a_batch_is_full_at_its_size_in_points_not_in_messages() {
        let held = Arc::new(Semaphore::new(1_000));
        let (tx, mut rx) = mpsc::channel(10);
        for _ in 0..3 {
            tx.send(pending(100, &held)).await.expect("queued");
        }
        let batching = Batching { size: 150, linger: Duration::from_secs(2), idle_flush: None };
        let mut batch = Vec::new();
        assert!(!batching.fill(&mut batch, &mut rx).await, "no stop");
        assert_eq!(batch.len(), 2, "two packs of 100 points fill a batch of 150");
        assert_eq!(held.available_permits(), 700);
        drop(batch);
        assert_eq!(held.available_permits(), 900, "acknowledged points are given back");
        // A status message gives no point, and still counts for one.
        for _ in 0..5 {
            tx.send(pending(0, &held)).await.expect("queued");
        }
        let batching = Batching { size: 4, ..batching };
        let (mut first, mut second) = (Vec::new(), Vec::new());
        batching.fill(&mut first, &mut rx).await;
        batching.fill(&mut second, &mut rx).await;
        assert_eq!(
            (first.len(), second.len()),
            (1, 4),
            "the pack of 100 left over, then four status messages"
        );
    }
}
