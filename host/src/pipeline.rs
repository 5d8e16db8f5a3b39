//! Wires plugins to MQTT: readings in, messages out, one worker thread per plugin.
//!
//! ```text
//!  broker ──(in connection)──▶ decode ──▶ bounded queue ──▶ processor worker ─┐
//!                                   └─▶ garonne/dead-letter/decoder            │
//!  sensor-model worker ───────────────────────────────────────────────────────┤
//!  broker ◀─(out connection)── publisher ◀────────────────────────────────────┘
//!                                  └─▶ queues of the processors that read the plugin in process
//! ```
//!
//! Two connections keep input and output apart: when a processor falls behind, its full queue
//! stops the input connection from reading (back-pressure up to the broker), while the output
//! connection keeps draining what the workers publish, so the two can never wait on each other.
//!
//! A processor with a `plugin:NAME` input gets NAME's output from NAME's worker, straight into
//! its queue, besides the broker copy that the map and the historian read: one broker trip
//! less per stage. A full queue blocks NAME's worker (back-pressure, nothing dropped); the
//! configuration refuses cycles, so a blocked worker always waits on one that makes progress.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, ClientError, Event, EventLoop, Packet, QoS, Request};
use serde_json::json;
use tokio::sync::watch;

use crate::broker::{self, BrokerError, EmbeddedBroker};
use crate::clock::VirtualClock;
use crate::config::{ConfigError, Input as InputSpec, PipelineConfig, PluginConfig};
use crate::mqtt::{self, BrokerAddress, MqttError};
use crate::payload::{self, PackedReading, Payload, PayloadError, Readings};
use crate::queue::{self, Held};
use crate::sandbox::{
    CallError, DeadLetter, LoadError, LoadedPlugin, Outcome, PluginEngine, PluginStats, ProcessorSupervisor,
    Published, SavedState, SensorModelSupervisor, World,
};
use crate::state_store::{StateError, StateStore};
use crate::stations::{self, StationsError};
use crate::topic::{self, TopicFilters};

/// How often the host logs and publishes its counters.
const STATUS_EVERY: Duration = Duration::from_secs(10);
/// How long the start waits for the broker to acknowledge the processors' subscriptions.
/// At stop, how long the input may keep delivering readings already published (a fast run can
/// leave a backlog of seconds in the broker; a live stream that never pauses ends it here).
const DRAIN_WAIT: Duration = Duration::from_secs(60);
/// How long a stop waits for the output connection to hand the broker what is queued.
const OUTPUT_DRAIN: Duration = Duration::from_secs(30);
/// Input silent this long at stop means the readings in flight have arrived (loopback delivers
/// in well under a millisecond; the margin is for a loaded machine).
const QUIET: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error(transparent)]
    Mqtt(#[from] MqttError),
    #[error(transparent)]
    Stations(#[from] StationsError),
    #[error("plugin `{plugin}` failed to start: {error}. Check its [plugin.config] in the pipeline file")]
    PluginStart { plugin: String, error: CallError },
    #[error(
        "sensor model `{0}` needs stations: give --stations FILE (data/stations/meteo.json, air.json or bikes.json), or `stations = \"...\"` in its [[plugin]]"
    )]
    NoStations(String),
    #[error(
        "plugin `{plugin}` is a sensor model: it makes readings and reads none, so its inputs {inputs:?} would be ignored. Remove them; to feed its readings to a processor, give that processor `inputs = [\"plugin:{plugin}\"]`"
    )]
    SensorModelInputs { plugin: String, inputs: Vec<String> },
    #[error("cannot start a worker thread: {0}")]
    Thread(std::io::Error),
    #[error("{0}. Check runtime.state_dir (--state-dir)")]
    State(#[from] StateError),
}

/// Counters of the whole host, shared between the workers and the status task.
#[derive(Default)]
pub struct StatsBoard {
    plugins: Mutex<BTreeMap<String, PluginStats>>,
    decode_errors: AtomicU64,
    readings_in: AtomicU64,
}

impl StatsBoard {
    fn update(&self, name: &str, stats: &PluginStats) {
        if let Ok(mut plugins) = self.plugins.lock() {
            plugins.insert(name.to_owned(), stats.clone());
        }
    }

    /// A copy of every plugin's counters.
    pub fn plugins(&self) -> BTreeMap<String, PluginStats> {
        self.plugins.lock().map(|p| p.clone()).unwrap_or_default()
    }

    pub fn decode_errors(&self) -> u64 {
        self.decode_errors.load(Ordering::Relaxed)
    }

    /// The status message; each processor's entry also says how many bytes its queue holds
    /// (`queued_bytes`): a backlog that grows is a processor that cannot keep up.
    fn to_json(&self, queues: &[(String, queue::Sender<Work>)]) -> serde_json::Value {
        let mut plugins = json!(self.plugins());
        for (name, queue) in queues {
            if let Some(entry) = plugins.get_mut(name).and_then(|e| e.as_object_mut()) {
                entry.insert("queued_bytes".into(), queue.bytes_held().into());
            }
        }
        json!({
            "state": "online",
            // The historian stores a status at this time, so a retained one read again is one point.
            "ts": crate::clock::wall_clock_millis(),
            "readings_in": self.readings_in.load(Ordering::Relaxed),
            "decode_errors": self.decode_errors(),
            "plugins": plugins,
        })
    }
}

/// A reading on its way to processors: one copy, shared by every processor that reads it. A copy
/// for each cost an allocation per string and tag, and held as many copies in full queues.
type Shared = Arc<Payload>;

enum Work {
    Reading(Shared),
    /// What one call of a plugin read in process emitted, in one slot and one wake-up.
    Readings(Vec<Shared>),
    Tick(i64),
    /// A new build of the plugin (hot swap), taken between two batches.
    Swap(Arc<LoadedPlugin>),
    Stop,
}

/// A processor that reads a plugin's output in process (its `plugin:NAME` inputs).
struct Consumer {
    name: String,
    /// The filters of its `plugin:NAME:FILTER` inputs; empty: every message.
    filters: TopicFilters,
    /// Its topic filters: a message they match reaches it through the broker already, so it is
    /// not handed over too (each message once per reader).
    broker_filters: TopicFilters,
    queue: queue::Sender<Work>,
}

impl Consumer {
    /// Whether a message on `topic` is handed over to this reader; `published`: whether it went
    /// to the broker, through which the reader's own topic filters may take it already.
    fn wants(&self, topic: &str, published: bool) -> bool {
        (self.filters.is_empty() || self.filters.matches(topic))
            && !(published && self.broker_filters.matches(topic))
    }

    /// Waits for room in the queue: a slow reader slows its upstream down, nothing is dropped.
    fn send(&self, payloads: Vec<Shared>) {
        let cost =
            payloads.iter().map(|p| p.footprint()).sum::<usize>() + payloads.capacity() * size_of::<Shared>();
        if self.queue.blocking_send(Work::Readings(payloads), cost).is_err() {
            tracing::warn!(plugin = self.name, "stopped: messages were not handed over to it");
        }
    }
}

/// The messages of one call (a batch, a tick) for each in-process reader, handed over together:
/// one queue slot and one wake-up of the reader per call, not per message, which is what the
/// broker path cost.
struct Handover<'a> {
    readers: &'a [Consumer],
    batches: Vec<Vec<Shared>>,
}

impl<'a> Handover<'a> {
    fn new(readers: &'a [Consumer]) -> Self {
        Self { readers, batches: readers.iter().map(|_| Vec::new()).collect() }
    }

    /// The readers that take a message on `topic`, by their place in the handover.
    fn readers_of<'t>(&self, topic: &'t str, published: bool) -> impl Iterator<Item = usize> + use<'a, 't> {
        let readers = self.readers;
        (0..readers.len()).filter(move |&i| readers[i].wants(topic, published))
    }

    fn add(&mut self, topic: &str, payload: Payload, published: bool) {
        let readers = self.readers_of(topic, published);
        self.add_to(readers, payload);
    }

    fn add_to(&mut self, readers: impl IntoIterator<Item = usize>, payload: Payload) {
        let mut readers = readers.into_iter().peekable();
        if readers.peek().is_none() {
            return;
        }
        let payload = Arc::new(payload);
        for reader in readers {
            self.batches[reader].push(Arc::clone(&payload));
        }
    }

    fn send(self) {
        for (reader, batch) in self.readers.iter().zip(self.batches) {
            if !batch.is_empty() {
                reader.send(batch);
            }
        }
    }
}

/// Publishes what the workers produce, from their own threads, and hands it over to the
/// processors that read the plugin in process.
#[derive(Clone)]
struct Publisher {
    client: AsyncClient,
    runtime: tokio::runtime::Handle,
    prefix: String,
    qos: QoS,
    /// The readers of this plugin's output in process (none for the shared publisher).
    downstream: Arc<Vec<Consumer>>,
    /// The plugin's `publish` filters; `None`: every message goes to the broker.
    publish: Option<Arc<TopicFilters>>,
}

impl Publisher {
    /// The publisher of one plugin's worker.
    fn for_plugin(&self, downstream: Vec<Consumer>, plugin: Option<&PluginConfig>) -> Self {
        let publish = plugin.and_then(PluginConfig::publish_filters).map(|f| Arc::new(TopicFilters::new(f)));
        Self { downstream: Arc::new(downstream), publish, ..self.clone() }
    }

    /// Whether a message on `topic` goes to the broker (the plugin's `publish` filters).
    fn publishes(&self, topic: &str) -> bool {
        self.publish.as_ref().is_none_or(|filters| filters.matches(topic))
    }

    /// Queues a message for the output connection. A `try_publish` is a push on rumqttc's
    /// request channel; `block_on` for every message cost this thread a park and a wake-up per
    /// message (the load bench's `perf`), so it is kept for when the channel is full.
    fn publish(&self, topic: String, bytes: Vec<u8>, retain: bool) {
        let result = match self.client.try_publish(topic, self.qos, retain, bytes) {
            Err(ClientError::TryRequest(Request::Publish(publish))) => self
                .runtime
                .block_on(self.client.publish_bytes(publish.topic, self.qos, retain, publish.payload)),
            other => other,
        };
        if let Err(error) = result {
            tracing::error!("cannot queue a message for the broker: {error}");
        }
    }

    /// A sensor model's readings of one tick.
    fn readings(&self, plugin: &str, readings: Vec<Payload>) {
        let mut handover = Handover::new(&self.downstream);
        for reading in readings {
            let topic = topic::reading(&self.prefix, &reading.kind, &reading.sensor_id);
            self.publish_and_hand_over(plugin, topic, reading, &mut handover);
        }
        handover.send();
    }

    fn message(
        &self,
        plugin: &str,
        message: Published,
        handover: &mut Handover,
        destinations: &mut Destinations,
    ) {
        let destination = destinations.of(&message.topic, || self.destination(&message.topic, handover));
        let Some(topic) = &destination.topic else {
            tracing::warn!(plugin, "message not published: invalid topic {:?}", message.topic);
            return;
        };
        let Some(bytes) = self.checked(plugin, topic, &message.payload, destination.published) else {
            return;
        };
        if let Some(bytes) = bytes {
            self.publish(topic.clone(), bytes, false);
        }
        handover.add_to(destination.readers.iter().copied(), message.payload);
    }

    /// Where a plugin's messages on `relative` go.
    fn destination(&self, relative: &str, handover: &Handover) -> Destination {
        let Some(topic) = topic::under_prefix(&self.prefix, relative) else {
            return Destination { topic: None, published: false, readers: Vec::new() };
        };
        let published = self.publishes(&topic);
        let readers = handover.readers_of(&topic, published).collect();
        Destination { topic: Some(topic), published, readers }
    }

    /// The message's bytes if it is published (`Some(None)`: it is not, but is good to hand
    /// over); `None`, said in the log, for a message JSON cannot carry.
    fn checked(
        &self,
        plugin: &str,
        topic: &str,
        payload: &Payload,
        published: bool,
    ) -> Option<Option<Vec<u8>>> {
        let checked = if published { payload.encode().map(Some) } else { payload.check().map(|()| None) };
        checked.map_err(|error| tracing::warn!(plugin, "message on {topic} not published: {error}")).ok()
    }

    /// The broker gets the messages the plugin's `publish` filters take (by default all, so
    /// that the map and the historian see every stage); the in-process readers get those their
    /// filters take, without a trip through the broker. A message is encoded only if published.
    fn publish_and_hand_over(&self, plugin: &str, topic: String, payload: Payload, handover: &mut Handover) {
        let published = self.publishes(&topic);
        let Some(bytes) = self.checked(plugin, &topic, &payload, published) else { return };
        if let Some(bytes) = bytes {
            if self.downstream.is_empty() {
                return self.publish(topic, bytes, false);
            }
            self.publish(topic.clone(), bytes, false);
        }
        handover.add(&topic, payload, published);
    }

    fn dead_letter(&self, plugin: &str, letter: &DeadLetter) {
        let readings: Vec<serde_json::Value> = letter
            .readings
            .iter()
            .filter_map(|r| r.encode().ok())
            .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
            .collect();
        let body =
            json!({"plugin": plugin, "reason": letter.reason, "readings": readings, "tick": letter.tick});
        self.publish(topic::dead_letter(plugin), body.to_string().into_bytes(), false);
    }

    fn outcome(&self, plugin: &str, outcome: Outcome, destinations: &mut Destinations) {
        for letter in &outcome.dead_letters {
            self.dead_letter(plugin, letter);
        }
        let mut handover = Handover::new(&self.downstream);
        for message in outcome.messages {
            self.message(plugin, message, &mut handover, destinations);
        }
        handover.send();
    }
}

/// Where a plugin's messages on one topic go: the topic under the prefix, whether the broker
/// gets them, and which in-process readers.
struct Destination {
    /// `None`: the plugin's topic is not valid (a wildcard, an empty level).
    topic: Option<String>,
    published: bool,
    readers: Vec<usize>,
}

/// The destinations of one plugin's topics, worked out once per topic. A plugin publishes on
/// the same topics again and again (each sensor's series, each quartier's average): checking
/// each message's topic and matching it against every filter was a tenth of the host's CPU in
/// `perf` (packs of 10 readings, 120,000 readings/s), and a look-up by the topic costs a hash.
#[derive(Default)]
struct Destinations(hashbrown::HashMap<String, Destination>);

impl Destinations {
    /// More topics than this and the table starts again rather than grow: an entry is about 200
    /// bytes, and a plugin may make topics anew (an id in each). The load bench's fleet takes
    /// 3,980, one series per sensor.
    const MOST: usize = 10_000;

    /// One hash a look-up: std's `HashMap` has no entry API taking a `&str`, and its
    /// `contains_key` then index hashed the topic twice (half of this table's cost in `perf`).
    fn of(&mut self, relative: &str, work_out: impl FnOnce() -> Destination) -> &Destination {
        if self.0.len() >= Self::MOST && !self.0.contains_key(relative) {
            self.0.clear();
        }
        self.0.entry_ref(relative).or_insert_with(work_out)
    }
}

/// A pipeline running in the background: stop it with [`RunningPipeline::stop`].
pub struct RunningPipeline {
    /// The broker in use (the embedded one when no URL was given).
    pub broker: BrokerAddress,
    pub embedded: Option<EmbeddedBroker>,
    pub stats: Arc<StatsBoard>,
    shutdown: watch::Sender<bool>,
    processor_queues: Vec<(String, queue::Sender<Work>)>,
    model_stops: Vec<std::sync::mpsc::Sender<()>>,
    model_workers: Vec<JoinHandle<()>>,
    workers: Vec<ProcessorWorker>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The output connection's event loop: it must run until the disconnect goes out.
    output: Option<tokio::task::JoinHandle<()>>,
    out_client: AsyncClient,
    status_topic: String,
    /// Sensor models done with a fixed interval, and how many there are.
    models_finished: Option<(watch::Receiver<usize>, usize)>,
    /// Kept alive for the run: its epoch ticker is what interrupts a plugin past its deadline.
    _engine: Arc<PluginEngine>,
}

struct StartedPlugins {
    /// Kept for the whole run: its epoch ticker enforces every CPU deadline, and hot swaps
    /// compile with it.
    engine: Arc<PluginEngine>,
    /// Each processor with its topic filters (read from the broker).
    processors: Vec<(ProcessorSupervisor, Vec<String>)>,
    models: Vec<(SensorModelSupervisor, f64)>,
    /// Where the processors' state is saved (`runtime.state_dir`), if anywhere.
    store: Option<StateStore>,
}

/// A processor's worker thread, and where it stands in the `plugin:` chains.
struct ProcessorWorker {
    /// 0 for a processor that reads no other processor in process, else one more than the
    /// deepest processor it reads: the order of the stop.
    stage: usize,
    queue: queue::Sender<Work>,
    thread: JoinHandle<()>,
}

/// A run over a fixed interval (`runtime.end`): the models tick as fast as they can, and the
/// virtual clock follows the slowest of them.
#[derive(Clone)]
struct FastRun {
    end: i64,
    /// The last tick of each model.
    progress: Arc<Vec<std::sync::atomic::AtomicI64>>,
    finished: Arc<watch::Sender<usize>>,
}

impl FastRun {
    fn advance(&self, model: usize, now: i64, clock: &VirtualClock) {
        self.progress[model].store(now, Ordering::SeqCst);
        let slowest = self.progress.iter().map(|p| p.load(Ordering::SeqCst)).min().unwrap_or(now);
        clock.set(slowest);
    }

    fn finish(&self) {
        self.finished.send_modify(|done| *done += 1);
    }
}

impl RunningPipeline {
    /// Loads every plugin, connects to the broker (or starts the embedded one) and starts the
    /// workers. Fails before anything runs if a plugin cannot load or start.
    pub async fn start(config: PipelineConfig) -> Result<Self, PipelineError> {
        Self::prepare(config).await?.start_sensors().await
    }

    /// Starts everything but the sensor models: the broker, the processors and their
    /// subscriptions. Whatever else must read the first readings of a run (the historian)
    /// subscribes before [`PreparedPipeline::start_sensors`].
    pub async fn prepare(config: PipelineConfig) -> Result<PreparedPipeline, PipelineError> {
        config.validate()?;
        let (clock, end) = virtual_clock(&config)?;
        let plugins = tokio::task::block_in_place(|| start_plugins(&config, &clock))?;

        let (broker, embedded, window) = match &config.mqtt.url {
            Some(url) => (BrokerAddress::parse(url)?, None, config.mqtt.broker_inflight),
            None => {
                let ws = (config.mqtt.embedded_ws_port != 0).then_some(config.mqtt.embedded_ws_port);
                let embedded = broker::start(config.mqtt.embedded_port, ws)?;
                let address = BrokerAddress { host: "127.0.0.1".into(), port: embedded.mqtt.port() };
                (address, Some(embedded), broker::MAX_INFLIGHT)
            }
        };

        let client_id = config.mqtt.client_id.clone();
        let (out_client, out_loop) = mqtt::connect(&broker, &config.mqtt, &client_id);
        let (in_client, in_loop) = mqtt::connect_pausing(&broker, &config.mqtt, &format!("{client_id}-in"));
        let (shutdown, _) = watch::channel(false);
        let stats = Arc::new(StatsBoard::default());
        let publisher = Publisher {
            client: out_client.clone(),
            runtime: tokio::runtime::Handle::current(),
            prefix: config.mqtt.prefix.clone(),
            qos: mqtt::qos(config.mqtt.qos),
            downstream: Arc::new(Vec::new()),
            publish: None,
        };
        let status_topic = topic::status(&client_id);

        let mut pipeline = Self {
            broker,
            embedded,
            stats: stats.clone(),
            shutdown,
            processor_queues: Vec::new(),
            model_stops: Vec::new(),
            model_workers: Vec::new(),
            workers: Vec::new(),
            tasks: Vec::new(),
            output: None,
            out_client: out_client.clone(),
            status_topic: status_topic.clone(),
            models_finished: None,
            _engine: plugins.engine.clone(),
        };
        let status = json!({"state": "online"}).to_string();
        let (ready, ready_rx) = watch::channel(false);
        pipeline.output = Some(tokio::spawn(drive_output(
            out_loop,
            OnlineStatus { topic: status_topic.clone(), text: status, ready: ready_rx },
            out_client.clone(),
            pipeline.shutdown.subscribe(),
        )));

        // Every queue exists before any worker starts: a worker's publisher holds the queues of
        // the processors that read it in process.
        let (queues, receivers): (BTreeMap<_, _>, Vec<_>) = plugins
            .processors
            .iter()
            .map(|(supervisor, _)| {
                let (tx, rx) = queue::bounded(config.runtime.queue_capacity, config.runtime.queue_bytes);
                ((supervisor.name().to_owned(), tx), rx)
            })
            .unzip();
        let processor_names = queues.keys().cloned().collect();
        let mut routes = Vec::new();
        let mut watched = Vec::new();
        let StartedPlugins { processors, store, models, .. } = plugins;
        for ((supervisor, filters), rx) in processors.into_iter().zip(receivers) {
            let name = supervisor.name().to_owned();
            let tx = queues[&name].clone();
            if config.runtime.watch
                && let Some(plugin) = config.plugin(&name)
            {
                watched.push(Watched { name: plugin.name(), path: plugin.path.clone(), queue: tx.clone() });
            }
            let own = publisher.for_plugin(consumers_of(&name, &config, &queues), config.plugin(&name));
            let batching = Batching {
                max: config.runtime.batch_max,
                linger: Duration::from_millis(config.runtime.batch_linger_ms),
            };
            let saving = store.clone().map(|store| StateSaving {
                store,
                every: Duration::from_secs_f64(config.runtime.state_save_s),
                last_written: None,
            });
            let thread = spawn_processor(supervisor, rx, own, batching, saving, stats.clone())?;
            let stage = stage_of(&name, &config, &processor_names);
            pipeline.workers.push(ProcessorWorker { stage, queue: tx.clone(), thread });
            // A processor with only `plugin:` inputs subscribes to nothing.
            if !filters.is_empty() {
                routes.push(Route { filters: TopicFilters::new(filters), queue: tx.clone() });
            }
            pipeline.processor_queues.push((name, tx));
        }
        let (subscribed_tx, mut subscribed) = watch::channel(routes.is_empty());
        let input = Input {
            routes: Arc::new(routes),
            client: in_client,
            publisher: publisher.clone(),
            stats: stats.clone(),
            max_payload: config.mqtt.max_payload,
            subscribed: subscribed_tx,
        };
        let pacing = mqtt::ReadPacing::new(Duration::from_millis(config.runtime.batch_linger_ms), window);
        pipeline.tasks.push(tokio::spawn(drive_input(in_loop, input, pacing, pipeline.shutdown.subscribe())));
        // The sensor models start once the processors' subscriptions are in place, so that the
        // first readings of a run reach them.
        mqtt::wait_until_subscribed(&mut subscribed, "the processors'").await;
        let _ = ready.send(true);
        Ok(PreparedPipeline { pipeline, models, clock, end, publisher, queues, watched, config })
    }

    /// Stops the workers after they finished what they hold, and returns their counters.
    ///
    /// The order keeps what is in flight: the sensor models stop first, then the input goes on
    /// until the readings they published last have arrived, then the processors finish their
    /// queues, stage by stage along the `plugin:` chains (a reader stops only once the plugins
    /// it reads have stopped, so it takes in their last output), and only then does the output
    /// connection close.
    pub async fn stop(mut self) -> BTreeMap<String, PluginStats> {
        self.model_stops.clear();
        if !self.model_workers.is_empty() {
            join(std::mem::take(&mut self.model_workers)).await;
            self.wait_for_quiet_input().await;
        }
        let _ = self.shutdown.send(true);
        let mut workers = std::mem::take(&mut self.workers);
        while !workers.is_empty() {
            let first = workers.iter().map(|w| w.stage).min().unwrap_or_default();
            let (now, later): (Vec<_>, Vec<_>) = workers.into_iter().partition(|w| w.stage == first);
            for worker in &now {
                let _ = worker.queue.send(Work::Stop, 0).await;
            }
            join(now.into_iter().map(|w| w.thread).collect()).await;
            workers = later;
        }
        let offline = json!({"state": "offline"}).to_string();
        let _ = self.out_client.publish(self.status_topic.clone(), QoS::AtLeastOnce, true, offline).await;
        // The disconnect queues behind every publish the workers made, and the event loop writes
        // requests in order: once it has gone out, so has everything before it. Aborting the
        // loop after a fixed delay lost the last messages of a fast run (bench/chain: the last
        // 12 quartier averages of 252).
        let _ = self.out_client.disconnect().await;
        if let Some(output) = self.output.take() {
            let abort = output.abort_handle();
            if tokio::time::timeout(OUTPUT_DRAIN, output).await.is_err() {
                tracing::warn!(
                    "the broker took more than {} s to take the last messages; some may be lost",
                    OUTPUT_DRAIN.as_secs()
                );
                abort.abort();
            }
        }
        for task in &self.tasks {
            task.abort();
        }
        self.stats.plugins()
    }
}

/// A pipeline whose processors are subscribed and whose sensor models have not started yet.
pub struct PreparedPipeline {
    pipeline: RunningPipeline,
    models: Vec<(SensorModelSupervisor, f64)>,
    clock: VirtualClock,
    end: Option<i64>,
    publisher: Publisher,
    queues: BTreeMap<String, queue::Sender<Work>>,
    watched: Vec<Watched>,
    config: PipelineConfig,
}

impl PreparedPipeline {
    /// The broker in use (the embedded one when no URL was given).
    pub fn broker(&self) -> &BrokerAddress {
        &self.pipeline.broker
    }

    /// Starts the sensor models (and the ticks and the status reports): the run begins.
    pub async fn start_sensors(self) -> Result<RunningPipeline, PipelineError> {
        let Self { mut pipeline, models, clock, end, publisher, queues, watched, config } = self;
        let out_client = pipeline.out_client.clone();
        let stats = pipeline.stats.clone();
        let status_topic = pipeline.status_topic.clone();
        let fast = end.map(|end| {
            let origin = clock.now();
            let progress = models.iter().map(|_| std::sync::atomic::AtomicI64::new(origin)).collect();
            let (finished, receiver) = watch::channel(0);
            pipeline.models_finished = Some((receiver, models.len()));
            FastRun { end, progress: Arc::new(progress), finished: Arc::new(finished) }
        });
        for (index, (supervisor, interval_s)) in models.into_iter().enumerate() {
            publish_station_metadata(&out_client, &config.mqtt.prefix, &supervisor).await;
            let (stop_tx, stop_rx) = std::sync::mpsc::channel();
            let name = supervisor.name();
            let own = publisher.for_plugin(consumers_of(name, &config, &queues), config.plugin(name));
            let model = ModelRun {
                supervisor,
                interval_s,
                clock: clock.clone(),
                stop: stop_rx,
                publisher: own,
                stats: stats.clone(),
                fast: fast.clone().map(|fast| (fast, index)),
            };
            pipeline.model_workers.push(spawn_model(model)?);
            pipeline.model_stops.push(stop_tx);
        }
        pipeline.tasks.push(tokio::spawn(tick_processors(
            pipeline.processor_queues.clone(),
            clock,
            Duration::from_millis(config.runtime.tick_ms),
        )));
        let queues = pipeline.processor_queues.clone();
        pipeline.tasks.push(tokio::spawn(report_status(stats, queues, out_client, status_topic)));
        if !watched.is_empty() {
            pipeline.tasks.push(tokio::spawn(watch_builds(pipeline._engine.clone(), watched)));
        }
        Ok(pipeline)
    }
}

impl RunningPipeline {
    /// Resolves once every sensor model has reached `runtime.end`; never without one.
    pub async fn simulation_finished(&mut self) {
        match &mut self.models_finished {
            Some((finished, models)) => {
                let models = *models;
                let _ = finished.wait_for(|done| *done >= models).await;
            }
            None => std::future::pending().await,
        }
    }

    /// Waits until no reading arrived for a moment (at most `DRAIN_WAIT`).
    async fn wait_for_quiet_input(&self) {
        let started = tokio::time::Instant::now();
        let mut last = self.stats.readings_in.load(Ordering::Relaxed);
        let mut quiet_since = tokio::time::Instant::now();
        while started.elapsed() < DRAIN_WAIT {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = self.stats.readings_in.load(Ordering::Relaxed);
            if now != last {
                last = now;
                quiet_since = tokio::time::Instant::now();
            } else if quiet_since.elapsed() >= QUIET {
                return;
            }
        }
    }
}

async fn join(workers: Vec<JoinHandle<()>>) {
    let _ = tokio::task::spawn_blocking(move || {
        for worker in workers {
            let _ = worker.join();
        }
    })
    .await;
}

/// The clock, and the end of a fixed interval if there is one (then the clock is manual: the
/// models move it).
fn virtual_clock(config: &PipelineConfig) -> Result<(VirtualClock, Option<i64>), ConfigError> {
    let time = |key: &str, text: &str| {
        payload::parse_rfc3339(text).map_err(|e| ConfigError::Invalid(format!("runtime.{key}: {e}")))
    };
    let origin = match &config.runtime.start {
        Some(text) => time("start", text)?,
        None => crate::clock::wall_clock_millis(),
    };
    match &config.runtime.end {
        Some(text) => {
            let end = time("end", text)?;
            if end < origin {
                return Err(ConfigError::Invalid(
                    "runtime.end (--to) is before runtime.start (--from)".into(),
                ));
            }
            Ok((VirtualClock::manual(origin), Some(end)))
        }
        None => Ok((VirtualClock::new(origin, config.runtime.speed), None)),
    }
}

fn start_plugins(config: &PipelineConfig, clock: &VirtualClock) -> Result<StartedPlugins, PipelineError> {
    let store = config.runtime.state_dir.as_deref().map(StateStore::open).transpose()?;
    let cache_dir = config.runtime.cache_dir.clone().or_else(default_cache_dir);
    let engine = Arc::new(PluginEngine::new(cache_dir.as_deref())?.compiling_apart());
    let mut started =
        StartedPlugins { engine: engine.clone(), processors: Vec::new(), models: Vec::new(), store: None };
    for plugin_config in &config.plugins {
        let mut loaded = engine.load(&plugin_config.path)?;
        loaded.info.name = plugin_config.name();
        let plugin = Arc::new(loaded);
        let name = plugin.info.name.clone();
        let start_error = |error| PipelineError::PluginStart { plugin: name.clone(), error };
        let seed = config.runtime.seed;
        match plugin.info.world {
            World::Processor => {
                let mut supervisor = ProcessorSupervisor::start(
                    plugin.clone(),
                    plugin_config.flat_config(),
                    plugin_config.limits.clone(),
                    clock.clone(),
                    seed,
                )
                .map_err(start_error)?
                .with_adaptive_checkpoints(config.runtime.checkpoint_every);
                if let Some(store) = &store {
                    resume_saved_state(&mut supervisor, store);
                }
                started.processors.push((supervisor, topic_filters(plugin_config, &config.mqtt.prefix)));
            }
            World::SensorModel => {
                if !plugin_config.inputs.is_empty() {
                    let inputs = plugin_config.inputs.clone();
                    return Err(PipelineError::SensorModelInputs { plugin: name, inputs });
                }
                let path =
                    plugin_config.stations.as_ref().ok_or_else(|| PipelineError::NoStations(name.clone()))?;
                let stations = stations::multiply(&stations::load(path)?, plugin_config.fleet);
                let supervisor = SensorModelSupervisor::start(
                    plugin.clone(),
                    plugin_config.flat_config(),
                    stations,
                    plugin_config.limits.clone(),
                    clock.clone(),
                    seed,
                )
                .map_err(start_error)?;
                tracing::info!(plugin = name, "simulating {} sensors", supervisor.sensors().len());
                started.models.push((supervisor, plugin_config.interval_s));
            }
        }
        tracing::info!(
            plugin = name,
            world = plugin.info.world.name(),
            "loaded {}",
            plugin.info.path.display()
        );
        // Said at start, so that nobody looks on the broker for what stays inside.
        if let Some(filters) = plugin_config.publish_filters() {
            let published = if filters.is_empty() { "nothing".into() } else { filters.join(", ") };
            tracing::info!(
                plugin = name,
                "publishes {published} to the broker; the rest of its output goes only to the plugins that read it in process"
            );
        }
    }
    started.store = store;
    Ok(started)
}

/// The topic filters a processor reads from the broker: its inputs that are not `plugin:`
/// ones, or every reading when it names no input at all.
fn topic_filters(plugin: &PluginConfig, prefix: &str) -> Vec<String> {
    if plugin.inputs.is_empty() {
        return vec![format!("{prefix}/sensors/#")];
    }
    let topics = plugin.inputs.iter().filter(|t| matches!(InputSpec::parse(t), InputSpec::Topic(_)));
    topics.cloned().collect()
}

/// The processors that read `upstream` in process, with their queues.
fn consumers_of(
    upstream: &str,
    config: &PipelineConfig,
    queues: &BTreeMap<String, queue::Sender<Work>>,
) -> Vec<Consumer> {
    let mut consumers = Vec::new();
    for plugin in &config.plugins {
        let name = plugin.name();
        let Some(queue) = queues.get(&name) else { continue };
        // `plugin:NAME` alone takes everything: as the filter `#` (topics never start with `$`).
        let filters: Vec<&str> = plugin
            .inputs
            .iter()
            .filter_map(|text| match InputSpec::parse(text) {
                InputSpec::Plugin { name, filter } if name == upstream => Some(filter.unwrap_or("#")),
                _ => None,
            })
            .collect();
        if !filters.is_empty() {
            let broker_filters = TopicFilters::new(topic_filters(plugin, &config.mqtt.prefix));
            let filters = TopicFilters::new(filters);
            consumers.push(Consumer { name, filters, broker_filters, queue: queue.clone() });
        }
    }
    consumers
}

/// How deep a processor sits in the `plugin:` chains of processors (the configuration has no
/// cycle); sensor models stop before every processor, so they do not count.
fn stage_of(name: &str, config: &PipelineConfig, processors: &std::collections::BTreeSet<String>) -> usize {
    let upstreams = config.plugin(name).into_iter().flat_map(PluginConfig::upstreams);
    upstreams
        .filter(|u| processors.contains(*u))
        .map(|u| 1 + stage_of(u, config, processors))
        .max()
        .unwrap_or(0)
}

/// `$XDG_CACHE_HOME/garonne` or `~/.cache/garonne`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("garonne"))
}

struct Route {
    filters: TopicFilters,
    queue: queue::Sender<Work>,
}

struct Input {
    routes: Arc<Vec<Route>>,
    client: AsyncClient,
    publisher: Publisher,
    stats: Arc<StatsBoard>,
    max_payload: usize,
    subscribed: watch::Sender<bool>,
}

impl Input {
    fn filters(&self) -> impl Iterator<Item = &String> {
        self.routes.iter().flat_map(|r| r.filters.iter())
    }

    fn subscribe_all(&self) {
        mqtt::subscribe_all(&self.client, self.filters(), QoS::AtLeastOnce);
    }

    async fn route(&self, topic: &str, bytes: &[u8]) {
        // The host's own status and dead letters are not readings. A filter that takes them
        // (`#`) made each refused payload a dead letter, refused in turn: an endless loop.
        if topic::is_hosts_own(topic) {
            return;
        }
        let readings = match Readings::decode(bytes, self.max_payload) {
            Ok(readings) => readings,
            Err(error) => return self.refuse(topic, &error, bytes),
        };
        for PackedReading { reading, text } in readings {
            match reading {
                Ok(reading) => self.deliver(topic, reading).await,
                Err(error) => self.refuse(topic, &error, text.map_or(bytes, str::as_bytes)),
            }
        }
    }

    /// Counts a refused payload (or reading of a pack) and keeps it on the dead-letter topic.
    fn refuse(&self, topic: &str, error: &PayloadError, bytes: &[u8]) {
        self.stats.decode_errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(topic, "payload refused: {error}");
        mqtt::publish_dead_letter(&self.publisher.client, "decoder", topic, &error.to_string(), bytes);
    }

    async fn deliver(&self, topic: &str, reading: Payload) {
        self.stats.readings_in.fetch_add(1, Ordering::Relaxed);
        // The broker sends only what some route subscribed to: the reading is nearly always wanted.
        let cost = reading.footprint();
        let reading = Arc::new(reading);
        for route in self.routes.iter() {
            if route.filters.matches(topic) {
                let _ = route.queue.send(Work::Reading(Arc::clone(&reading)), cost).await;
            }
        }
    }
}

/// Reads the input connection, letting messages gather in the socket between reads as `pacing`
/// says (`runtime.batch_linger_ms`, the broker's window).
async fn drive_input(
    mut events: EventLoop,
    input: Input,
    mut pacing: mqtt::ReadPacing,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut failures = 0;
    loop {
        // With no event queued, the next poll reads the connection.
        if events.state.events.is_empty()
            && let Some(wait) = pacing.next_wait()
        {
            tokio::select! {
                _ = shutdown.changed() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
        let event = tokio::select! {
            _ = shutdown.changed() => return,
            event = events.poll() => event,
        };
        if let Ok(Event::Incoming(packet)) = &event {
            pacing.received(packet);
        }
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                failures = 0;
                tracing::info!("input connection to the broker established");
                input.subscribe_all();
            }
            Ok(Event::Incoming(Packet::SubAck(suback))) => {
                mqtt::report_refused(input.filters(), &suback, "their readings will not be processed");
                let _ = input.subscribed.send(true);
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                input.route(&publish.topic, &publish.payload).await
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!("input connection lost: {error}; reconnecting");
                tokio::time::sleep(mqtt::reconnect_delay(failures)).await;
                failures += 1;
            }
        }
    }
}

/// The retained status that says a host is online, and whether it may say so yet.
struct OnlineStatus {
    topic: String,
    text: String,
    /// True once the processors' subscriptions are in place: a publisher that waits for
    /// "online" (the benches, a test) would otherwise lose its first readings.
    ready: watch::Receiver<bool>,
}

impl OnlineStatus {
    fn publish(&self, client: &AsyncClient) {
        if *self.ready.borrow() {
            let _ = client.try_publish(self.topic.clone(), QoS::AtLeastOnce, true, self.text.clone());
        }
    }
}

async fn drive_output(
    mut events: EventLoop,
    mut online: OnlineStatus,
    client: AsyncClient,
    mut shutdown: watch::Receiver<bool>,
) {
    let (mut failures, mut connected) = (0, false);
    loop {
        let event = tokio::select! {
            // After shutdown, go on delivering what is queued until the disconnect goes out.
            event = events.poll() => event,
            _ = shutdown.changed(), if !*shutdown.borrow() => continue,
            Ok(()) = online.ready.changed(), if !*online.ready.borrow() => {
                if connected {
                    online.publish(&client);
                }
                continue;
            }
        };
        if *shutdown.borrow() && event.is_err() {
            return;
        }
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                (failures, connected) = (0, true);
                online.publish(&client);
            }
            Ok(_) => {}
            Err(error) => {
                connected = false;
                tracing::warn!("output connection lost: {error}; reconnecting");
                tokio::time::sleep(mqtt::reconnect_delay(failures)).await;
                failures += 1;
            }
        }
    }
}

async fn tick_processors(queues: Vec<(String, queue::Sender<Work>)>, clock: VirtualClock, every: Duration) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        interval.tick().await;
        let now = clock.now();
        for (_, queue) in &queues {
            // A tick only says what time it is: if a queue is full, the next one will do.
            queue.try_send_free(Work::Tick(now));
        }
    }
}

async fn report_status(
    stats: Arc<StatsBoard>,
    queues: Vec<(String, queue::Sender<Work>)>,
    client: AsyncClient,
    topic: String,
) {
    let mut interval = tokio::time::interval(STATUS_EVERY);
    interval.tick().await;
    loop {
        interval.tick().await;
        let report = stats.to_json(&queues);
        tracing::info!("status: {report}");
        let _ = client.try_publish(topic.clone(), QoS::AtLeastOnce, true, report.to_string());
    }
}

/// Hands a processor the state a former run saved. A state it cannot use is set aside (kept
/// for a person to look at) and the processor starts afresh: the host must start either way.
fn resume_saved_state(supervisor: &mut ProcessorSupervisor, store: &StateStore) {
    let name = supervisor.name().to_owned();
    let refused = match store.load(&name) {
        Ok(None) => return,
        Ok(Some(saved)) => {
            let sensors = saved.sensors.len();
            match supervisor.resume(saved) {
                Ok(()) => {
                    tracing::info!(plugin = name, sensors, "resumed from {}", store.path(&name).display());
                    return;
                }
                Err(error) => format!("the plugin refused it: {error}"),
            }
        }
        Err(error) => error.to_string(),
    };
    match store.set_aside(&name) {
        Ok(aside) => tracing::error!(
            plugin = name,
            "saved state not used ({refused}); starting afresh, the file is kept as {}",
            aside.display()
        ),
        Err(error) => tracing::error!(plugin = name, "saved state not used ({refused}); {error}"),
    }
}

/// Where and how often a processor's worker saves its state.
#[derive(Clone)]
struct StateSaving {
    store: StateStore,
    every: Duration,
    /// A digest of the last state written: an idle plugin's state is not written again every
    /// interval (a city's night on a Raspberry Pi's SD card).
    last_written: Option<u64>,
}

impl StateSaving {
    fn save(&mut self, name: &str, saved: Option<SavedState>) {
        let Some(saved) = saved else { return };
        let digest = {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            (&saved.state, saved.rng, saved.sensors.len()).hash(&mut hasher);
            hasher.finish()
        };
        if self.last_written == Some(digest) {
            return;
        }
        match self.store.save(name, &saved) {
            Ok(()) => self.last_written = Some(digest),
            Err(error) => tracing::error!(plugin = name, "{error}"),
        }
    }
}

/// How a processor's worker gathers readings into calls.
#[derive(Clone, Copy)]
struct Batching {
    max: usize,
    linger: Duration,
}

fn spawn_processor(
    mut supervisor: ProcessorSupervisor,
    mut queue: queue::Receiver<Work>,
    publisher: Publisher,
    batching: Batching,
    mut saving: Option<StateSaving>,
    stats: Arc<StatsBoard>,
) -> Result<JoinHandle<()>, PipelineError> {
    let name = supervisor.name().to_owned();
    std::thread::Builder::new()
        .name(format!("plugin-{name}"))
        .spawn(move || {
            let mut batch = Vec::with_capacity(batching.max);
            let mut destinations = Destinations::default();
            let mut last_save = Instant::now();
            while let Some(first) = queue.blocking_recv() {
                let mut next = Next::default();
                next.take(first, &mut batch);
                next.gather(&mut queue, &mut batch, batching.max);
                // A short batch waits a little for more: while this thread sleeps, the input
                // queues readings without waking it, one wake-up per batch instead of per
                // reading. Ticks, swaps and stops do not wait.
                if next.is_readings_only() && batch.len() < batching.max && !batching.linger.is_zero() {
                    std::thread::sleep(batching.linger);
                    next.gather(&mut queue, &mut batch, batching.max);
                }
                let Next { tick, swap, stop, held } = next;
                if !batch.is_empty() {
                    let outcome = supervisor.on_readings(&batch);
                    publisher.outcome(&name, outcome, &mut destinations);
                    batch.clear();
                }
                // The batch's bytes count until the plugin is done with it and its output has
                // been handed on: what this worker holds is part of its queue's budget.
                drop(held);
                if let Some(now) = tick {
                    publisher.outcome(&name, supervisor.on_tick(now), &mut destinations);
                }
                if let Some(plugin) = swap {
                    // Logged and counted by the supervisor; the old build goes on if it fails.
                    let _ = supervisor.swap(plugin);
                }
                stats.update(&name, supervisor.stats());
                if stop {
                    // Everything queued before the stop is processed: the state holds it all.
                    if let Some(saving) = &mut saving {
                        match supervisor.saved_state() {
                            Ok(saved) => saving.save(&name, Some(saved)),
                            Err(error) => {
                                tracing::error!(plugin = name, "state not saved at the stop: {error}")
                            }
                        }
                    }
                    break;
                }
                // While running, the last checkpoint is saved: no extra call to the plugin.
                if let Some(saving) = &mut saving
                    && last_save.elapsed() >= saving.every
                {
                    saving.save(&name, supervisor.checkpointed_state());
                    last_save = Instant::now();
                }
            }
        })
        .map_err(PipelineError::Thread)
}

/// A sensor model and what its worker thread needs.
struct ModelRun {
    supervisor: SensorModelSupervisor,
    interval_s: f64,
    clock: VirtualClock,
    stop: std::sync::mpsc::Receiver<()>,
    publisher: Publisher,
    stats: Arc<StatsBoard>,
    /// A fixed interval, and this model's place in it.
    fast: Option<(FastRun, usize)>,
}

/// What a processor worker does after its batch.
#[derive(Default)]
struct Next {
    tick: Option<i64>,
    swap: Option<Arc<LoadedPlugin>>,
    stop: bool,
    /// The bytes of the batch's readings, given back to the queue after the call.
    held: Held,
}

impl Next {
    /// Natural batching: whatever queued up while the last call ran goes in the next; a new
    /// build takes over after the readings queued before it.
    fn gather(&mut self, queue: &mut queue::Receiver<Work>, batch: &mut Vec<Shared>, max: usize) {
        while batch.len() < max && self.swap.is_none() {
            match queue.try_recv() {
                Some(work) => self.take(work, batch),
                None => break,
            }
        }
    }

    fn is_readings_only(&self) -> bool {
        self.tick.is_none() && self.swap.is_none() && !self.stop
    }

    fn take(&mut self, (work, held): (Work, Held), batch: &mut Vec<Shared>) {
        self.held.merge(held);
        match work {
            Work::Reading(reading) => batch.push(reading),
            Work::Readings(mut readings) => batch.append(&mut readings),
            Work::Tick(now) => self.tick = Some(now),
            Work::Swap(plugin) => self.swap = Some(plugin),
            Work::Stop => self.stop = true,
        }
    }
}

fn spawn_model(mut run: ModelRun) -> Result<JoinHandle<()>, PipelineError> {
    let name = run.supervisor.name().to_owned();
    let interval_ms = ((run.interval_s * 1000.0) as i64).max(1);
    std::thread::Builder::new()
        .name(format!("plugin-{name}"))
        .spawn(move || {
            let mut next = run.clock.now();
            loop {
                if let Some((fast, _)) = &run.fast
                    && next > fast.end
                {
                    tracing::info!(plugin = name, "reached the end of the interval");
                    fast.finish();
                    break;
                }
                let (readings, dead_letter) = run.supervisor.tick(next);
                run.publisher.readings(&name, readings);
                if let Some(letter) = dead_letter {
                    run.publisher.dead_letter(&name, &letter);
                }
                run.stats.update(&name, run.supervisor.stats());
                if let Some((fast, index)) = &run.fast {
                    fast.advance(*index, next, &run.clock);
                }
                next += interval_ms;
                // As fast as it goes over a fixed interval; otherwise in step with the clock.
                let wait_ms = match &run.fast {
                    Some(_) => 0.0,
                    None => ((next - run.clock.now()) as f64 / run.clock.speed()).max(0.0),
                };
                match run.stop.recv_timeout(Duration::from_millis(wait_ms as u64)) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    _ => break,
                }
            }
        })
        .map_err(PipelineError::Thread)
}

/// A processor's `.wasm` file, watched for new builds.
struct Watched {
    name: String,
    path: PathBuf,
    queue: queue::Sender<Work>,
}

/// How often the watched files are looked at. Polling a handful of files costs nothing and
/// needs no platform notification API.
const WATCH_EVERY: Duration = Duration::from_millis(500);

/// The identity of a file version: modification time and size.
fn version_of(path: &std::path::Path) -> Option<(std::time::SystemTime, u64)> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

/// Hot swap (`runtime.watch`): when a processor's file changes and then stays the same for one
/// more look (the build has finished writing it), loads it and hands it to the worker, which
/// swaps between two batches. A build that cannot load is reported and the old one goes on.
async fn watch_builds(engine: Arc<PluginEngine>, watched: Vec<Watched>) {
    let mut seen: Vec<_> = watched.iter().map(|w| version_of(&w.path)).collect();
    let mut pending: Vec<Option<(std::time::SystemTime, u64)>> = vec![None; watched.len()];
    let mut interval = tokio::time::interval(WATCH_EVERY);
    loop {
        interval.tick().await;
        for (i, plugin) in watched.iter().enumerate() {
            let now = version_of(&plugin.path);
            if now.is_none() || now == seen[i] {
                pending[i] = None;
                continue;
            }
            if pending[i] != now {
                pending[i] = now;
                continue;
            }
            seen[i] = now;
            pending[i] = None;
            tracing::info!(plugin = plugin.name, "new build of {}: loading it", plugin.path.display());
            let (engine, path) = (engine.clone(), plugin.path.clone());
            match tokio::task::spawn_blocking(move || engine.load(&path)).await {
                Ok(Ok(mut loaded)) if loaded.info.world == World::Processor => {
                    loaded.info.name = plugin.name.clone();
                    let _ = plugin.queue.send(Work::Swap(Arc::new(loaded)), 0).await;
                }
                Ok(Ok(loaded)) => tracing::error!(
                    plugin = plugin.name,
                    "the new build is a {} plugin, not a processor; the old one keeps running",
                    loaded.info.world.name()
                ),
                Ok(Err(error)) => {
                    tracing::error!(
                        plugin = plugin.name,
                        "the new build cannot load: {error}; the old one keeps running"
                    )
                }
                Err(error) => tracing::error!(plugin = plugin.name, "loading the new build failed: {error}"),
            }
        }
    }
}

/// Publishes, retained, the metadata of each real station a model simulates, on
/// `{prefix}/meta/stations/{station_id}`: what a map or a dashboard needs to show a station
/// before (or without) its readings. Virtual stations of a fleet are left out.
async fn publish_station_metadata(client: &AsyncClient, prefix: &str, model: &SensorModelSupervisor) {
    for station in model.stations().iter().filter(|s| !stations::is_virtual(s)) {
        let sensors: Vec<serde_json::Value> = model
            .sensors()
            .iter()
            .filter(|sensor| sensor.id == station.id)
            .map(|sensor| json!({"kind": sensor.kind, "unit": sensor.unit}))
            .collect();
        let attributes: serde_json::Map<String, serde_json::Value> =
            station.attributes.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect();
        let mut body = json!({
            "station_id": station.id,
            "name": station.name,
            "lat": station.position.lat,
            "lon": station.position.lon,
            "sensors": sensors,
            "attributes": attributes,
            "model": model.name(),
        });
        if let Some(altitude) = station.altitude {
            body["altitude"] = altitude.into();
        }
        let topic = format!("{prefix}/meta/stations/{}", topic::level(&station.id));
        if let Err(error) = client.publish(topic, QoS::AtLeastOnce, true, body.to_string()).await {
            tracing::warn!("station metadata not published: {error}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topics_destination_is_worked_out_once_and_the_table_stays_bounded() {
        let mut destinations = Destinations::default();
        let worked_out = std::cell::Cell::new(0);
        let of = |destinations: &mut Destinations, relative: &str| {
            let readers = destinations
                .of(relative, || {
                    worked_out.set(worked_out.get() + 1);
                    Destination { topic: Some(format!("p/{relative}")), published: true, readers: vec![0] }
                })
                .readers
                .clone();
            assert_eq!(readers, [0]);
        };
        for _ in 0..3 {
            of(&mut destinations, "stats/t/1");
        }
        of(&mut destinations, "stats/t/2");
        assert_eq!((worked_out.get(), destinations.0.len()), (2, 2));
        for i in 0..Destinations::MOST {
            of(&mut destinations, &format!("id/{i}"));
        }
        assert!(destinations.0.len() <= Destinations::MOST, "{}", destinations.0.len());
        assert!(destinations.0.contains_key(&format!("id/{}", Destinations::MOST - 1)));
    }

    #[test]
    fn an_unchanged_state_is_not_written_again() {
        let dir = std::env::temp_dir().join(format!("garonne-saving-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = StateStore::open(&dir).expect("a temp folder");
        let mut saving = StateSaving { store: store.clone(), every: Duration::ZERO, last_written: None };
        let state = |bytes: &[u8]| Some(SavedState { sensors: Vec::new(), state: bytes.to_vec(), rng: 1 });
        saving.save("p", state(b"one"));
        assert!(store.path("p").exists());
        std::fs::remove_file(store.path("p")).expect("removed");
        saving.save("p", state(b"one"));
        assert!(!store.path("p").exists(), "the same state again: not written");
        saving.save("p", state(b"two"));
        assert_eq!(store.load("p").expect("reads").map(|s| s.state), Some(b"two".to_vec()));
        saving.save("p", None);
        assert!(store.path("p").exists(), "no checkpoint yet: nothing written, nothing removed");
    }
}
