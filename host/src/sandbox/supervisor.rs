//! Keeps a plugin alive: restarts a failed instance with back-off, restores its state, isolates
//! the input that made it fail, and counts everything.
//!
//! State survives failures by checkpoint and journal: every `checkpoint_every` calls the host
//! takes a `snapshot` (or less often when snapshots are costly, see [`CHECKPOINT_SHARE`]), and
//! it journals the calls made since. After a trap, a new instance gets
//! `init`, the sensors, `restore(checkpoint)` and the journal replayed (outputs discarded, since
//! they were published already), so it ends in the state the lost instance had before the
//! failing call. The failing batch is then retried one reading at a time, so that only the
//! readings that really make the plugin fail go to the dead-letter topic.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::bindings::v0_3_0::types::{Readings, Sensor, Station};
use super::call_size::CallSize;
use super::engine::LoadedPlugin;
use super::instance::{CallError, Failure, PluginSandbox, SensorModelSandbox};
use super::limits::Limits;
use super::published::Published;
use super::sensor_registry::{MAX_SENSORS, SensorRegistry};
use super::state::MAX_METRICS;
use crate::clock::VirtualClock;
use crate::payload::Payload;

/// Under adaptive pacing, the calls between two checkpoints take at least this many times what
/// the last checkpoint cost: snapshots then take at most about a tenth of a plugin's time,
/// however large its state (a 400 KB state costs 11 calls' worth per checkpoint; every 16 calls,
/// that was 70 % of the plugin's time).
pub const CHECKPOINT_SHARE: u32 = 10;
/// ... but the journal never holds more readings than this: it bounds the journal's memory and
/// the time of a replay after a trap.
pub const MAX_JOURNAL_READINGS: usize = 100_000;

/// Recoveries tried in a row before the call that needed the instance is given up.
const MAX_RECOVERY_ATTEMPTS: u32 = 5;

/// Counters of one plugin, reported in the log and on the status topic.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct PluginStats {
    pub calls: u64,
    pub readings_in: u64,
    pub messages_out: u64,
    pub messages_dropped: u64,
    pub guest_errors: u64,
    pub deadline_failures: u64,
    pub memory_failures: u64,
    pub trap_failures: u64,
    pub restarts: u64,
    pub dead_letters: u64,
    /// Hot swaps to a new build that took over, and those refused (the old build kept running).
    pub swaps: u64,
    pub swap_failures: u64,
    /// What the plugin itself reports with `host.metric` (WIT 0.2.0), latest value per name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, f64>,
}

impl PluginStats {
    pub fn failures(&self) -> u64 {
        self.deadline_failures + self.memory_failures + self.trap_failures
    }

    /// Keeps the latest value of each metric an instance set, across restarts and swaps.
    fn merge_metrics(&mut self, changed: Option<&BTreeMap<String, f64>>) {
        for (name, value) in changed.into_iter().flatten() {
            if self.metrics.len() < MAX_METRICS || self.metrics.contains_key(name) {
                self.metrics.insert(name.clone(), *value);
            }
        }
    }

    fn count_failure(&mut self, failure: &Failure) {
        match failure {
            Failure::Deadline { .. } => self.deadline_failures += 1,
            Failure::MemoryCap { .. } => self.memory_failures += 1,
            Failure::Trap(_) | Failure::WrongWorld { .. } => self.trap_failures += 1,
        }
    }
}

/// Input a plugin could not process, kept for a human: published on `garonne/dead-letter/…`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub reason: String,
    /// The readings of the failed call (empty for a tick).
    pub readings: Vec<Payload>,
    /// The virtual time of a failed tick.
    pub tick: Option<i64>,
}

/// What one call to a supervisor produced.
#[derive(Debug, Default)]
pub struct Outcome {
    pub messages: Vec<Published>,
    pub dead_letters: Vec<DeadLetter>,
}

enum Call {
    Readings(Readings),
    Tick(i64),
}

impl Call {
    /// Readings in the call (a tick counts as one, since it cannot be split).
    fn len(&self) -> usize {
        match self {
            Call::Readings(batch) => batch.sensors.len(),
            Call::Tick(_) => 1,
        }
    }
}

/// When the next checkpoint is due.
#[derive(Default)]
struct Pacing {
    adaptive: bool,
    /// Time spent in calls, and readings journaled, since the last checkpoint.
    calls_time: Duration,
    readings: usize,
    /// What the last snapshot took.
    last_cost: Duration,
}

impl Pacing {
    fn due(&self, calls: usize, every: usize) -> bool {
        if calls < every {
            return false;
        }
        !self.adaptive
            || self.calls_time >= self.last_cost * CHECKPOINT_SHARE
            || self.readings >= MAX_JOURNAL_READINGS
    }

    fn checkpointed(&mut self, cost: Duration) {
        *self = Self { adaptive: self.adaptive, last_cost: cost, ..Self::default() };
    }
}

/// What a processor needs to go on where it was, in another process: the sensors it had been
/// told of, in their order (its state refers to them by index), its snapshot and its random state.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedState {
    pub sensors: Vec<Sensor>,
    pub state: Vec<u8>,
    pub rng: u64,
}

/// The last snapshot and the host-side random state that goes with it.
#[derive(Default, Clone)]
struct Checkpoint {
    state: Option<Vec<u8>>,
    rng: u64,
}

/// Runs one processor plugin and keeps it alive.
pub struct ProcessorSupervisor {
    plugin: Arc<LoadedPlugin>,
    config: Vec<(String, String)>,
    limits: Limits,
    clock: VirtualClock,
    seed: u64,
    checkpoint_every: usize,
    pacing: Pacing,
    instance: Option<PluginSandbox>,
    registry: SensorRegistry,
    checkpoint: Checkpoint,
    journal: Vec<Call>,
    consecutive_failures: u32,
    stats: PluginStats,
    /// How many readings a call carries.
    call_size: CallSize,
}

impl ProcessorSupervisor {
    /// Starts the plugin: a failure here (bad config, trap in `init`) is returned, since a
    /// pipeline with a plugin that cannot start should not start at all.
    pub fn start(
        plugin: Arc<LoadedPlugin>,
        config: Vec<(String, String)>,
        limits: Limits,
        clock: VirtualClock,
        seed: u64,
    ) -> Result<Self, CallError> {
        let mut supervisor = Self {
            plugin,
            config,
            limits,
            clock,
            seed,
            checkpoint_every: 16,
            pacing: Pacing::default(),
            instance: None,
            registry: SensorRegistry::default(),
            checkpoint: Checkpoint { state: None, rng: seed },
            journal: Vec::new(),
            consecutive_failures: 0,
            stats: PluginStats::default(),
            call_size: CallSize::default(),
        };
        let instance = supervisor.fresh_instance(false)?;
        supervisor.instance = Some(instance);
        Ok(supervisor)
    }

    /// Takes a snapshot every `calls` calls exactly (1: after every call, the safest and
    /// slowest).
    pub fn with_checkpoint_every(mut self, calls: usize) -> Self {
        self.checkpoint_every = calls.max(1);
        self.pacing.adaptive = false;
        self
    }

    /// Takes a snapshot after `calls` calls at the least, and later when snapshots are costly:
    /// once the calls since the last one took `CHECKPOINT_SHARE` times its cost, or the
    /// journal holds `MAX_JOURNAL_READINGS`. What `host run` does.
    pub fn with_adaptive_checkpoints(mut self, calls: usize) -> Self {
        self.checkpoint_every = calls.max(1);
        self.pacing.adaptive = true;
        self
    }

    pub fn name(&self) -> &str {
        &self.plugin.info.name
    }

    pub fn stats(&self) -> &PluginStats {
        &self.stats
    }

    /// Feeds a batch of readings to the plugin: owned, or shared with the other processors that
    /// read the same topic.
    pub fn on_readings<R: std::borrow::Borrow<Payload>>(&mut self, readings: &[R]) -> Outcome {
        let mut outcome = Outcome::default();
        let n = readings.len();
        let mut batch = Readings {
            sensors: Vec::with_capacity(n),
            values: Vec::with_capacity(n),
            times: Vec::with_capacity(n),
        };
        for reading in readings.iter().map(R::borrow) {
            match self.registry.index_of(reading) {
                Some(index) => {
                    batch.sensors.push(index);
                    batch.values.push(reading.value);
                    batch.times.push(reading.time);
                }
                None => outcome.dead_letters.push(DeadLetter {
                    reason: format!("more than {MAX_SENSORS} distinct sensors; reading refused"),
                    readings: vec![reading.clone()],
                    tick: None,
                }),
            }
        }
        self.stats.readings_in += batch.sensors.len() as u64;
        self.run_in_calls(batch, &mut outcome);
        self.stats.dead_letters += outcome.dead_letters.len() as u64;
        outcome
    }

    /// Hands `batch` over in calls of the size [`CallSize`] says, in order.
    fn run_in_calls(&mut self, mut batch: Readings, outcome: &mut Outcome) {
        while !batch.sensors.is_empty() {
            let limit = self.call_size.limit(self.limits.call_deadline());
            let rest = if batch.sensors.len() > limit {
                Readings {
                    sensors: batch.sensors.split_off(limit),
                    values: batch.values.split_off(limit),
                    times: batch.times.split_off(limit),
                }
            } else {
                Readings { sensors: Vec::new(), values: Vec::new(), times: Vec::new() }
            };
            self.run(Call::Readings(batch), outcome);
            batch = rest;
        }
    }

    /// Tells the plugin the virtual clock reached `now`.
    pub fn on_tick(&mut self, now: i64) -> Outcome {
        let mut outcome = Outcome::default();
        self.run(Call::Tick(now), &mut outcome);
        self.stats.dead_letters += outcome.dead_letters.len() as u64;
        outcome
    }

    /// The plugin's current state, for a hot swap or a clean shutdown.
    pub fn snapshot(&mut self) -> Result<Vec<u8>, CallError> {
        let instance = self.live_instance()?;
        instance.snapshot()
    }

    /// The plugin's state now, with its sensors: a snapshot is taken (for a stop).
    pub fn saved_state(&mut self) -> Result<SavedState, CallError> {
        let state = self.snapshot()?;
        let rng = self.instance.as_ref().map_or(self.checkpoint.rng, PluginSandbox::rng_state);
        Ok(SavedState { sensors: self.registry.sensors.clone(), state, rng })
    }

    /// The state of the last checkpoint, with the sensors known now (those it refers to come
    /// first): no call to the plugin, for saves while it runs. `None` before the first checkpoint.
    pub fn checkpointed_state(&self) -> Option<SavedState> {
        let state = self.checkpoint.state.clone()?;
        Some(SavedState { sensors: self.registry.sensors.clone(), state, rng: self.checkpoint.rng })
    }

    /// Goes on from `saved` (a state from an earlier run of the host): a new instance gets
    /// `init`, the saved sensors and the saved snapshot. If the plugin refuses it (a build whose
    /// state has another shape), the running instance is kept as it was, and the error says why.
    pub fn resume(&mut self, saved: SavedState) -> Result<(), CallError> {
        let mut instance =
            PluginSandbox::instantiate(&self.plugin, &self.limits, self.clock.clone(), self.seed)
                .map_err(CallError::Failed)?;
        instance.init(&self.config)?;
        if !saved.sensors.is_empty() {
            instance.on_sensors(0, &saved.sensors)?;
        }
        instance.restore(&saved.state)?;
        instance.set_rng_state(saved.rng);
        self.instance = Some(instance);
        self.registry = SensorRegistry::known(saved.sensors);
        self.checkpoint = Checkpoint { state: Some(saved.state), rng: saved.rng };
        self.clear_journal();
        Ok(())
    }

    /// Replaces the running build by `plugin`, between two calls: the new instance gets `init`,
    /// every known sensor and the old instance's snapshot, then takes over. If any step fails
    /// (wrong world, `init` or `restore` refused, a trap) the old build keeps running, and the
    /// error says why.
    pub fn swap(&mut self, plugin: Arc<LoadedPlugin>) -> Result<(), CallError> {
        let result = self.try_swap(plugin);
        match &result {
            Ok(()) => {
                self.stats.swaps += 1;
                tracing::info!(plugin = self.name(), "swapped to the new build, state carried over");
            }
            Err(error) => {
                self.stats.swap_failures += 1;
                tracing::error!(
                    plugin = self.name(),
                    "the new build was refused: {error}; the old one keeps running"
                );
            }
        }
        result
    }

    fn try_swap(&mut self, plugin: Arc<LoadedPlugin>) -> Result<(), CallError> {
        let state = self.snapshot()?;
        let rng = self.instance.as_ref().map_or(self.checkpoint.rng, PluginSandbox::rng_state);
        let mut instance = PluginSandbox::instantiate(&plugin, &self.limits, self.clock.clone(), self.seed)
            .map_err(CallError::Failed)?;
        instance.init(&self.config)?;
        if !self.registry.sensors.is_empty() {
            instance.on_sensors(0, &self.registry.sensors)?;
        }
        instance.restore(&state)?;
        instance.set_rng_state(rng);
        self.plugin = plugin;
        self.instance = Some(instance);
        self.registry.announced = self.registry.sensors.len() as u32;
        self.registry.changed.clear();
        self.checkpoint = Checkpoint { state: Some(state), rng };
        self.clear_journal();
        Ok(())
    }

    fn run(&mut self, call: Call, outcome: &mut Outcome) {
        self.stats.calls += 1;
        match self.attempt(&call) {
            Ok(messages) => {
                self.consecutive_failures = 0;
                // The points the sandbox already cut at the cap, before making their messages.
                let mut cut = 0;
                if let Some(instance) = self.instance.as_mut() {
                    self.stats.merge_metrics(instance.changed_metrics());
                    cut = instance.published_past_cap();
                }
                self.publish(messages, cut, outcome);
                self.journal(call);
            }
            // An error for a batch leaves the instance with the effect of the readings before
            // the bad one, and says nothing of those after it: go back to the checkpoint and
            // take the readings one by one, as after a trap.
            Err(CallError::Guest(message)) if call.len() > 1 => {
                self.stats.guest_errors += 1;
                tracing::warn!(
                    plugin = self.name(),
                    "plugin returned an error: {message}; retrying reading by reading"
                );
                self.instance = None;
                self.retry_one_by_one(call, outcome);
            }
            Err(CallError::Guest(message)) => {
                self.stats.guest_errors += 1;
                tracing::warn!(plugin = self.name(), "plugin returned an error: {message}");
                outcome.dead_letters.push(self.dead_letter(&call, format!("plugin error: {message}")));
                self.journal(call);
            }
            Err(CallError::Failed(failure)) => {
                self.instance = None;
                self.consecutive_failures += 1;
                self.stats.count_failure(&failure);
                tracing::error!(plugin = self.name(), "plugin {failure}; restarting it");
                if call.len() > 1 {
                    // One poison reading must not take the others of its batch with it.
                    self.retry_one_by_one(call, outcome);
                } else {
                    outcome.dead_letters.push(self.dead_letter(&call, format!("plugin {failure}")));
                }
            }
        }
    }

    fn retry_one_by_one(&mut self, call: Call, outcome: &mut Outcome) {
        let Call::Readings(batch) = call else { return };
        for i in 0..batch.sensors.len() {
            let single = Readings {
                sensors: vec![batch.sensors[i]],
                values: vec![batch.values[i]],
                times: vec![batch.times[i]],
            };
            self.run(Call::Readings(single), outcome);
        }
    }

    fn attempt(&mut self, call: &Call) -> Result<Vec<Published>, CallError> {
        let instance = self.live_instance()?;
        let started = Instant::now();
        let result = match call {
            Call::Readings(batch) => instance.on_readings(batch),
            Call::Tick(now) => instance.on_tick(*now),
        };
        let took = started.elapsed();
        self.pacing.calls_time += took;
        if let (Call::Readings(batch), Ok(_)) = (call, &result) {
            self.call_size.observe(batch.sensors.len(), took);
        }
        result
    }

    /// The live instance, told about every sensor; recovered first if it was lost.
    fn live_instance(&mut self) -> Result<&mut PluginSandbox, CallError> {
        if self.instance.is_none() {
            let instance = self.recover()?;
            self.instance = Some(instance);
        }
        let registry = &mut self.registry;
        let Some(instance) = self.instance.as_mut() else {
            return Err(CallError::Failed(Failure::Trap("no instance".into())));
        };
        let total = registry.sensors.len() as u32;
        if registry.announced < total {
            let first = registry.announced;
            instance.on_sensors(first, &registry.sensors[first as usize..])?;
            registry.announced = total;
        }
        for index in std::mem::take(&mut registry.changed) {
            instance.on_sensors(index, std::slice::from_ref(&registry.sensors[index as usize]))?;
        }
        Ok(instance)
    }

    /// Starts a new instance in the state the lost one had, with back-off between attempts.
    fn recover(&mut self) -> Result<PluginSandbox, CallError> {
        let mut last_error = None;
        for attempt in 0..MAX_RECOVERY_ATTEMPTS {
            std::thread::sleep(backoff(self.consecutive_failures + attempt));
            // A journal that made the plugin fail once is dropped from the next attempt:
            // losing the last few calls' effect beats never coming back.
            let replay = attempt == 0;
            match self.fresh_instance(replay) {
                Ok(instance) => {
                    self.stats.restarts += 1;
                    tracing::info!(plugin = self.name(), "plugin restarted and restored");
                    return Ok(instance);
                }
                Err(error) => {
                    tracing::error!(plugin = self.name(), "restart failed: {error}");
                    last_error = Some(error);
                }
            }
        }
        if !self.journal.is_empty() {
            tracing::warn!(plugin = self.name(), "dropping {} journaled calls", self.journal.len());
            self.clear_journal();
        }
        Err(last_error.unwrap_or(CallError::Failed(Failure::Trap("restart failed".into()))))
    }

    fn fresh_instance(&mut self, replay: bool) -> Result<PluginSandbox, CallError> {
        let mut instance =
            PluginSandbox::instantiate(&self.plugin, &self.limits, self.clock.clone(), self.seed)
                .map_err(CallError::Failed)?;
        instance.init(&self.config)?;
        if !self.registry.sensors.is_empty() {
            instance.on_sensors(0, &self.registry.sensors)?;
        }
        self.registry.announced = self.registry.sensors.len() as u32;
        self.registry.changed.clear();
        if let Some(state) = &self.checkpoint.state {
            instance.restore(state)?;
        }
        instance.set_rng_state(self.checkpoint.rng);
        if replay {
            for call in &self.journal {
                let replayed = match call {
                    Call::Readings(batch) => instance.on_readings(batch),
                    Call::Tick(now) => instance.on_tick(*now),
                };
                // A guest error is the answer the call gave the first time. A failure (a
                // deadline, the memory cap, a trap) leaves an instance wasmtime will not enter
                // again: kept, it failed the next call with "cannot enter component instance"
                // and made a dead letter of a good reading (a slow JavaScript plugin replaying
                // its journal on a busy machine). The next attempt starts without the journal.
                if let Err(CallError::Failed(failure)) = replayed {
                    return Err(CallError::Failed(failure));
                }
            }
        } else {
            self.clear_journal();
        }
        Ok(instance)
    }

    /// Forgets the journal, and what it cost, when a new checkpoint makes it useless.
    fn clear_journal(&mut self) {
        self.journal.clear();
        self.pacing.checkpointed(self.pacing.last_cost);
    }

    fn journal(&mut self, call: Call) {
        self.pacing.readings += call.len();
        self.journal.push(call);
        if !self.pacing.due(self.journal.len(), self.checkpoint_every) {
            return;
        }
        let Some(instance) = self.instance.as_mut() else { return };
        let rng = instance.rng_state();
        let started = Instant::now();
        match instance.snapshot() {
            Ok(state) => {
                self.checkpoint = Checkpoint { state: Some(state), rng };
                self.journal.clear();
                self.pacing.checkpointed(started.elapsed());
            }
            Err(error) => {
                // The journal is kept: the next recovery replays it from the older checkpoint.
                tracing::error!(plugin = self.name(), "snapshot failed: {error}");
                if let CallError::Failed(failure) = &error {
                    self.stats.count_failure(failure);
                    self.instance = None;
                }
            }
        }
    }

    /// Publishes what a call gave, at most `limits.max_messages`; `cut` is what the sandbox
    /// already dropped past the cap (points, before their messages were made).
    fn publish(&mut self, mut messages: Vec<Published>, cut: u64, outcome: &mut Outcome) {
        let dropped = cut + messages.len().saturating_sub(self.limits.max_messages) as u64;
        if dropped > 0 {
            tracing::warn!(
                plugin = self.name(),
                "plugin gave {} messages and points in one call; kept the first {} (limits.max_messages)",
                messages.len() as u64 + cut,
                self.limits.max_messages
            );
            messages.truncate(self.limits.max_messages);
            self.stats.messages_dropped += dropped;
        }
        self.stats.messages_out += messages.len() as u64;
        // Usually the outcome has no message yet: taking the vector whole saves copying a batch
        // of messages (over 100 KiB for 1,000) into a new one.
        if outcome.messages.is_empty() {
            outcome.messages = messages;
        } else {
            outcome.messages.extend(messages);
        }
    }

    fn dead_letter(&self, call: &Call, reason: String) -> DeadLetter {
        match call {
            Call::Readings(batch) => DeadLetter {
                reason,
                readings: (0..batch.sensors.len())
                    .filter_map(|i| self.registry.payload(batch.sensors[i], batch.values[i], batch.times[i]))
                    .collect(),
                tick: None,
            },
            Call::Tick(now) => DeadLetter { reason, readings: Vec::new(), tick: Some(*now) },
        }
    }
}

/// 0 for the first failure, then 10 ms doubling up to 5 s: a plugin that keeps failing does not
/// take a core, and one that failed once comes back at once.
fn backoff(failures: u32) -> Duration {
    if failures <= 1 {
        return Duration::ZERO;
    }
    let ms = 10u64.saturating_mul(1u64 << (failures - 2).min(16));
    Duration::from_millis(ms.min(5_000))
}

/// Runs one sensor-model plugin and keeps it alive.
pub struct SensorModelSupervisor {
    plugin: Arc<LoadedPlugin>,
    config: Vec<(String, String)>,
    stations: Vec<Station>,
    limits: Limits,
    clock: VirtualClock,
    seed: u64,
    instance: Option<SensorModelSandbox>,
    sensors: Vec<Sensor>,
    checkpoint: Checkpoint,
    consecutive_failures: u32,
    stats: PluginStats,
}

impl SensorModelSupervisor {
    /// Starts the model; its `init` says which sensors it simulates.
    pub fn start(
        plugin: Arc<LoadedPlugin>,
        config: Vec<(String, String)>,
        stations: Vec<Station>,
        limits: Limits,
        clock: VirtualClock,
        seed: u64,
    ) -> Result<Self, CallError> {
        let mut instance = SensorModelSandbox::instantiate(&plugin, &limits, clock.clone(), seed)
            .map_err(CallError::Failed)?;
        let sensors = instance.init(&config, &stations)?;
        Ok(Self {
            plugin,
            config,
            stations,
            limits,
            clock,
            seed,
            instance: Some(instance),
            sensors,
            checkpoint: Checkpoint { state: None, rng: seed },
            consecutive_failures: 0,
            stats: PluginStats::default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.plugin.info.name
    }

    pub fn sensors(&self) -> &[Sensor] {
        &self.sensors
    }

    /// The stations given to `init`.
    pub fn stations(&self) -> &[Station] {
        &self.stations
    }

    pub fn stats(&self) -> &PluginStats {
        &self.stats
    }

    /// The readings of one tick, as payloads ready to publish; a failed tick yields a dead
    /// letter and no readings, and the model resumes from its last checkpoint.
    pub fn tick(&mut self, now: i64) -> (Vec<Payload>, Option<DeadLetter>) {
        self.stats.calls += 1;
        let result = self.live_instance().and_then(|instance| instance.tick(now));
        match result {
            Ok(batch) => {
                self.consecutive_failures = 0;
                if let Some(instance) = self.instance.as_mut() {
                    self.stats.merge_metrics(instance.changed_metrics());
                }
                self.checkpoint_now();
                let payloads = self.payloads(&batch);
                self.stats.messages_out += payloads.len() as u64;
                (payloads, None)
            }
            Err(error) => {
                if let CallError::Failed(failure) = &error {
                    self.stats.count_failure(failure);
                    self.instance = None;
                    self.consecutive_failures += 1;
                } else {
                    self.stats.guest_errors += 1;
                }
                tracing::error!(plugin = self.name(), "tick at {now} failed: {error}");
                self.stats.dead_letters += 1;
                let letter = DeadLetter { reason: error.to_string(), readings: Vec::new(), tick: Some(now) };
                (Vec::new(), Some(letter))
            }
        }
    }

    fn live_instance(&mut self) -> Result<&mut SensorModelSandbox, CallError> {
        if self.instance.is_none() {
            std::thread::sleep(backoff(self.consecutive_failures));
            let mut instance =
                SensorModelSandbox::instantiate(&self.plugin, &self.limits, self.clock.clone(), self.seed)
                    .map_err(CallError::Failed)?;
            instance.init(&self.config, &self.stations)?;
            if let Some(state) = &self.checkpoint.state {
                instance.restore(state)?;
            }
            instance.set_rng_state(self.checkpoint.rng);
            self.stats.restarts += 1;
            self.instance = Some(instance);
        }
        self.instance.as_mut().ok_or(CallError::Failed(Failure::Trap("no instance".into())))
    }

    fn checkpoint_now(&mut self) {
        let Some(instance) = self.instance.as_mut() else { return };
        let rng = instance.rng_state();
        if let Ok(state) = instance.snapshot() {
            self.checkpoint = Checkpoint { state: Some(state), rng };
        }
    }

    fn payloads(&mut self, batch: &Readings) -> Vec<Payload> {
        let n = batch.sensors.len().min(batch.values.len()).min(batch.times.len());
        let mut payloads = Vec::with_capacity(n);
        for i in 0..n {
            let Some(sensor) = self.sensors.get(batch.sensors[i] as usize) else {
                self.stats.guest_errors += 1;
                continue;
            };
            payloads.push(Payload::of_sensor(sensor, batch.values[i], batch.times[i]));
        }
        payloads
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_costly_checkpoint_waits_for_ten_times_its_cost_in_calls_or_a_full_journal() {
        let ms = Duration::from_millis;
        let mut pacing = Pacing { adaptive: true, ..Pacing::default() };
        assert!(!pacing.due(15, 16), "never before the minimum of calls");
        assert!(pacing.due(16, 16), "the first checkpoint comes at the minimum");
        pacing.checkpointed(ms(8));
        pacing.calls_time = ms(79);
        assert!(!pacing.due(40, 16), "79 ms of calls for an 8 ms snapshot: not yet");
        pacing.calls_time = ms(80);
        assert!(pacing.due(40, 16));
        pacing.checkpointed(ms(8));
        pacing.readings = MAX_JOURNAL_READINGS;
        assert!(pacing.due(16, 16), "a full journal forces it");
        let mut fixed = Pacing { adaptive: false, last_cost: ms(1000), ..Pacing::default() };
        assert!(fixed.due(16, 16), "fixed pacing ignores the cost");
        fixed.checkpointed(ms(1000));
        assert!(!fixed.adaptive, "the mode survives a checkpoint");
    }

    #[test]
    fn backoff_is_immediate_once_then_doubles_to_a_ceiling() {
        assert_eq!(backoff(1), Duration::ZERO);
        assert_eq!(backoff(2), Duration::from_millis(10));
        assert_eq!(backoff(3), Duration::from_millis(20));
        assert_eq!(backoff(40), Duration::from_secs(5));
    }
}
