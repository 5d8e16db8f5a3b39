//! One live plugin instance: a `Store` with its limits, and typed calls into the guest.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::InstancePre;
use wasmtime::{Store, Trap};

use super::bindings::v0_3_0::types::{Message, Readings, Sensor, Station};
use super::bindings::{v0_1_0, v0_2_0, v0_3_0};
use super::engine::{EPOCH_TICK, LoadedPlugin, PluginPre, World};
use super::limits::Limits;
use super::published::Published;
use super::state::{GuestState, SplitMix64};
use crate::clock::VirtualClock;

/// Why an instance stopped. The instance cannot be entered again after any of these.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Failure {
    #[error("ran past its CPU deadline of {ms} ms and was interrupted")]
    Deadline { ms: u64 },
    #[error("tried to grow its memory to {wanted_mib} MiB, over its cap of {cap_mib} MiB")]
    MemoryCap { wanted_mib: u64, cap_mib: u64 },
    #[error("trapped: {0}")]
    Trap(String),
    #[error("is a {found} plugin, not a {expected} plugin")]
    WrongWorld { expected: &'static str, found: &'static str },
}

/// The result of a call that did not succeed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The instance is gone; the supervisor starts a new one.
    #[error("plugin {0}")]
    Failed(Failure),
    /// The plugin returned an error; the instance stays usable.
    #[error("plugin returned an error: {0}")]
    Guest(String),
}

/// A processor instance.
pub type PluginSandbox = Sandbox<ProcessorBindings>;
/// A sensor-model instance.
pub type SensorModelSandbox = Sandbox<SensorModelBindings>;

/// Declares, for one world, the pre-linked component and the live bindings of each supported
/// WIT version, and a macro that runs the same call on whichever version a plugin was built
/// against. The versions share their types (see `bindings`), so each arm has the same signature.
macro_rules! versioned_world {
    ($pre:ident, $bindings:ident, $world:ident, $dispatch:ident, $api:ident) => {
        /// A plugin of this world, pre-linked for the WIT version it was built against.
        pub(crate) enum $pre {
            V0_3(v0_3_0::$world::$pre<GuestState>),
            V0_2(v0_2_0::$world::$pre<GuestState>),
            V0_1(v0_1_0::$world::$pre<GuestState>),
        }

        impl $pre {
            pub(crate) fn new(version: &str, pre: InstancePre<GuestState>) -> wasmtime::Result<Self> {
                match version {
                    "0.1.0" => Ok(Self::V0_1(v0_1_0::$world::$pre::new(pre)?)),
                    "0.2.0" => Ok(Self::V0_2(v0_2_0::$world::$pre::new(pre)?)),
                    _ => Ok(Self::V0_3(v0_3_0::$world::$pre::new(pre)?)),
                }
            }

            fn instantiate(&self, store: &mut Store<GuestState>) -> wasmtime::Result<$bindings> {
                Ok(match self {
                    Self::V0_3(pre) => $bindings::V0_3(pre.instantiate(store)?),
                    Self::V0_2(pre) => $bindings::V0_2(pre.instantiate(store)?),
                    Self::V0_1(pre) => $bindings::V0_1(pre.instantiate(store)?),
                })
            }
        }

        /// The exports of a live instance, for the WIT version it was built against.
        pub enum $bindings {
            V0_3(v0_3_0::$world::$bindings),
            V0_2(v0_2_0::$world::$bindings),
            V0_1(v0_1_0::$world::$bindings),
        }

        macro_rules! $dispatch {
            ($b:expr, |$a:ident| $call:expr) => {
                match $b {
                    $bindings::V0_3(bindings) => {
                        let $a = bindings.$api();
                        $call
                    }
                    $bindings::V0_2(bindings) => {
                        let $a = bindings.$api();
                        $call
                    }
                    $bindings::V0_1(bindings) => {
                        let $a = bindings.$api();
                        $call
                    }
                }
            };
        }
    };
}

versioned_world!(ProcessorPre, Processor, processor, processor_api, garonne_plugin_processor_api);
versioned_world!(
    SensorModelPre,
    SensorModel,
    sensor_model,
    sensor_model_api,
    garonne_plugin_sensor_model_api
);
pub type ProcessorBindings = Processor;
pub type SensorModelBindings = SensorModel;

/// A plugin instance in its own `Store`, with a memory cap and a CPU deadline on every call.
pub struct Sandbox<B> {
    store: Store<GuestState>,
    bindings: B,
    limits: Limits,
}

impl<B> Sandbox<B> {
    fn new_store(
        plugin: &LoadedPlugin,
        limits: &Limits,
        clock: VirtualClock,
        seed: u64,
    ) -> Store<GuestState> {
        let name: Arc<str> = plugin.info.name.as_str().into();
        let state = GuestState::new(name, clock, seed, limits.memory_bytes());
        let mut store = Store::new(&plugin.engine, state);
        store.data_mut().published_cap = limits.max_messages;
        store.limiter(|state| &mut state.memory);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(deadline_ticks(limits.init_deadline()));
        store
    }

    /// Runs one call under `deadline`, telling traps (instance lost) from guest errors.
    fn call<R>(
        &mut self,
        deadline: Duration,
        f: impl FnOnce(&mut Store<GuestState>, &B) -> wasmtime::Result<Result<R, String>>,
    ) -> Result<R, CallError> {
        self.store.set_epoch_deadline(deadline_ticks(deadline));
        self.store.data_mut().memory.exceeded = None;
        // What a failed call published is dropped with it, as its returned messages are.
        self.store.data_mut().published.clear();
        self.store.data_mut().published_dropped = 0;
        self.store.data().stderr_tail.clear();
        match f(&mut self.store, &self.bindings) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(message)) => Err(CallError::Guest(message)),
            Err(error) => Err(CallError::Failed(classify(&self.store, &self.limits, deadline, error))),
        }
    }

    fn call_infallible<R>(
        &mut self,
        deadline: Duration,
        f: impl FnOnce(&mut Store<GuestState>, &B) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        self.call(deadline, |store, bindings| f(store, bindings).map(Ok))
    }

    /// The metrics the plugin set with `host.metric`, when they changed since the last call.
    pub fn changed_metrics(&mut self) -> Option<&BTreeMap<String, f64>> {
        let metrics = &mut self.store.data_mut().metrics;
        std::mem::take(&mut metrics.changed).then_some(&metrics.values)
    }

    /// What the last call published (points and messages, through `host.publish`) past
    /// `limits.max_messages`, and was dropped: points before they were made into messages.
    pub fn published_past_cap(&self) -> u64 {
        self.store.data().published_dropped
    }

    /// The state of the host-side random generator, saved with each checkpoint.
    pub fn rng_state(&self) -> u64 {
        self.store.data().rng.0
    }

    pub fn set_rng_state(&mut self, state: u64) {
        self.store.data_mut().rng = SplitMix64(state);
    }
}

impl Sandbox<Processor> {
    /// A fresh processor instance (its `init` not called yet).
    pub fn instantiate(
        plugin: &LoadedPlugin,
        limits: &Limits,
        clock: VirtualClock,
        seed: u64,
    ) -> Result<Self, Failure> {
        let PluginPre::Processor(pre) = &plugin.pre else {
            return Err(Failure::WrongWorld { expected: "processor", found: World::SensorModel.name() });
        };
        let mut store = Self::new_store(plugin, limits, clock, seed);
        let bindings =
            pre.instantiate(&mut store).map_err(|e| classify(&store, limits, limits.init_deadline(), e))?;
        Ok(Self { store, bindings, limits: limits.clone() })
    }

    pub fn init(&mut self, config: &[(String, String)]) -> Result<(), CallError> {
        self.call(self.limits.init_deadline(), |s, b| {
            processor_api!(b, |api| api.call_init(s, &config.to_vec()))
        })
    }

    pub fn on_sensors(&mut self, first: u32, sensors: &[Sensor]) -> Result<(), CallError> {
        self.call_infallible(self.limits.call_deadline(), |s, b| {
            processor_api!(b, |api| api.call_on_sensors(s, first, sensors))
        })
    }

    /// The messages of a batch: those of the points the plugin published, then those it
    /// returned.
    pub fn on_readings(&mut self, batch: &Readings) -> Result<Vec<Published>, CallError> {
        self.publishing_call(|s, b| processor_api!(b, |api| api.call_on_readings(s, batch)))
    }

    pub fn on_tick(&mut self, now: i64) -> Result<Vec<Published>, CallError> {
        self.publishing_call(|s, b| processor_api!(b, |api| api.call_on_tick(s, now)))
    }

    /// A call during which the plugin may publish (`host.publish`): its messages are those of the
    /// points and messages it published, then those it returned.
    fn publishing_call(
        &mut self,
        f: impl FnOnce(&mut Store<GuestState>, &Processor) -> wasmtime::Result<Result<Vec<Message>, String>>,
    ) -> Result<Vec<Published>, CallError> {
        self.store.data_mut().publishing = true;
        let returned = self.call(self.limits.call_deadline(), f);
        self.store.data_mut().publishing = false;
        let returned = returned?;
        let mut messages = std::mem::take(&mut self.store.data_mut().published);
        messages.extend(returned.into_iter().map(Published::from));
        Ok(messages)
    }

    pub fn snapshot(&mut self) -> Result<Vec<u8>, CallError> {
        self.call_infallible(self.limits.init_deadline(), |s, b| {
            processor_api!(b, |api| api.call_snapshot(s))
        })
    }

    pub fn restore(&mut self, state: &[u8]) -> Result<(), CallError> {
        self.call(self.limits.init_deadline(), |s, b| processor_api!(b, |api| api.call_restore(s, state)))
    }
}

impl Sandbox<SensorModel> {
    /// A fresh sensor-model instance (its `init` not called yet).
    pub fn instantiate(
        plugin: &LoadedPlugin,
        limits: &Limits,
        clock: VirtualClock,
        seed: u64,
    ) -> Result<Self, Failure> {
        let PluginPre::SensorModel(pre) = &plugin.pre else {
            return Err(Failure::WrongWorld { expected: "sensor-model", found: World::Processor.name() });
        };
        let mut store = Self::new_store(plugin, limits, clock, seed);
        let bindings =
            pre.instantiate(&mut store).map_err(|e| classify(&store, limits, limits.init_deadline(), e))?;
        Ok(Self { store, bindings, limits: limits.clone() })
    }

    pub fn init(
        &mut self,
        config: &[(String, String)],
        stations: &[Station],
    ) -> Result<Vec<Sensor>, CallError> {
        self.call(self.limits.init_deadline(), |s, b| {
            sensor_model_api!(b, |api| api.call_init(s, &config.to_vec(), stations))
        })
    }

    pub fn tick(&mut self, now: i64) -> Result<Readings, CallError> {
        self.call(self.limits.call_deadline(), |s, b| sensor_model_api!(b, |api| api.call_tick(s, now)))
    }

    pub fn snapshot(&mut self) -> Result<Vec<u8>, CallError> {
        self.call_infallible(self.limits.init_deadline(), |s, b| {
            sensor_model_api!(b, |api| api.call_snapshot(s))
        })
    }

    pub fn restore(&mut self, state: &[u8]) -> Result<(), CallError> {
        self.call(self.limits.init_deadline(), |s, b| sensor_model_api!(b, |api| api.call_restore(s, state)))
    }
}

fn deadline_ticks(deadline: Duration) -> u64 {
    (deadline.as_micros() / EPOCH_TICK.as_micros()).max(1) as u64 + 1
}

/// Names the cause of a failed call in the user's terms: deadline, memory cap, or a trap with the
/// guest's backtrace.
fn classify(
    store: &Store<GuestState>,
    limits: &Limits,
    deadline: Duration,
    error: wasmtime::Error,
) -> Failure {
    if let Some(wanted) = store.data().memory.exceeded {
        return Failure::MemoryCap {
            wanted_mib: (wanted as u64).div_ceil(1024 * 1024),
            cap_mib: limits.memory_mib,
        };
    }
    if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return Failure::Deadline { ms: deadline.as_millis() as u64 };
    }
    let trap = error.downcast_ref::<Trap>().map_or_else(|| format!("{error:#}"), Trap::to_string);
    match store.data().stderr_tail.text() {
        Some(said) => Failure::Trap(format!("{trap}; the plugin wrote on stderr: {said}")),
        None => Failure::Trap(format!("{error:#}")),
    }
}
