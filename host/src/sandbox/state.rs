//! What the host keeps for each plugin instance, and the host functions a plugin may call.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::v0_3_0::{host, types};
use super::bindings::{v0_1_0, v0_2_0};
use super::guest_output::{GuestOutput, StderrTail};
use super::published::Published;
use super::series::{SeriesError, SeriesTable};
use crate::clock::VirtualClock;

/// The data of one `Store`: one per plugin instance, dropped with it after a trap.
pub(crate) struct GuestState {
    pub plugin: Arc<str>,
    pub clock: VirtualClock,
    pub rng: SplitMix64,
    pub memory: MemoryCap,
    pub stderr_tail: StderrTail,
    pub metrics: PluginMetrics,
    /// The series this instance declared (WIT 0.3.0).
    pub series: SeriesTable,
    /// The messages of the points published during the current call, at most `published_cap`;
    /// the points past it are counted in `published_dropped`.
    pub published: Vec<Published>,
    pub published_cap: usize,
    pub published_dropped: u64,
    /// Whether `host.publish` may be called now: only during `on-readings` and `on-tick`.
    pub publishing: bool,
    wasi: WasiCtx,
    table: ResourceTable,
}

impl GuestState {
    pub fn new(plugin: Arc<str>, clock: VirtualClock, seed: u64, memory_bytes: usize) -> Self {
        // WASI is linked because a Rust std guest imports it even when unused, but it is empty:
        // no preopened directory, no environment, no arguments, no sockets, and stdout/stderr go
        // to the host's log instead of the host's terminal.
        let stderr_tail = StderrTail::default();
        let wasi = WasiCtx::builder()
            .stdout(GuestOutput::stdout(plugin.clone()))
            .stderr(GuestOutput::stderr(plugin.clone(), stderr_tail.clone()))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .insecure_random_seed(u128::from(seed))
            .build();
        Self {
            plugin,
            clock,
            rng: SplitMix64(seed),
            memory: MemoryCap { max_bytes: memory_bytes, exceeded: None },
            stderr_tail,
            metrics: PluginMetrics::default(),
            series: SeriesTable::default(),
            published: Vec::new(),
            published_cap: usize::MAX,
            published_dropped: 0,
            publishing: false,
            wasi,
            table: ResourceTable::new(),
        }
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl types::Host for GuestState {}

impl host::Host for GuestState {
    fn log(&mut self, level: types::Level, message: String) {
        let plugin = &*self.plugin;
        match level {
            types::Level::Trace => tracing::trace!(plugin, "{message}"),
            types::Level::Debug => tracing::debug!(plugin, "{message}"),
            types::Level::Info => tracing::info!(plugin, "{message}"),
            types::Level::Warn => tracing::warn!(plugin, "{message}"),
            types::Level::Error => tracing::error!(plugin, "{message}"),
        }
    }

    fn now(&mut self) -> i64 {
        self.clock.now()
    }

    fn random(&mut self) -> u64 {
        self.rng.next_u64()
    }

    fn metric(&mut self, name: String, value: f64) {
        if let Err(refusal) = self.metrics.set(name, value)
            && !std::mem::replace(&mut self.metrics.warned, true)
        {
            tracing::warn!(plugin = &*self.plugin, "metric ignored: {refusal} (said once per instance)");
        }
    }

    fn declare_series(&mut self, index: u32, series: types::Series) -> wasmtime::Result<()> {
        self.series.declare(index, series).map_err(wasmtime::Error::msg)
    }

    fn publish(&mut self, points: types::Points, messages: Vec<types::Message>) -> wasmtime::Result<()> {
        if !self.publishing {
            return Err(wasmtime::Error::msg(SeriesError::OutsideCall));
        }
        let dropped = self.series.expand(&points, &mut self.published, self.published_cap);
        self.published_dropped += dropped.map_err(wasmtime::Error::msg)? as u64;
        let room = self.published_cap.saturating_sub(self.published.len());
        self.published_dropped += messages.len().saturating_sub(room) as u64;
        self.published.extend(messages.into_iter().take(room).map(Published::from));
        Ok(())
    }
}

/// Plugins of 0.2.0 get the same functions, without the series.
impl v0_2_0::host::Host for GuestState {
    fn log(&mut self, level: types::Level, message: String) {
        host::Host::log(self, level, message)
    }

    fn now(&mut self) -> i64 {
        host::Host::now(self)
    }

    fn random(&mut self) -> u64 {
        host::Host::random(self)
    }

    fn metric(&mut self, name: String, value: f64) {
        host::Host::metric(self, name, value)
    }
}

/// Plugins of 0.1.0 get the same functions, without `metric`.
impl v0_1_0::host::Host for GuestState {
    fn log(&mut self, level: types::Level, message: String) {
        host::Host::log(self, level, message)
    }

    fn now(&mut self) -> i64 {
        host::Host::now(self)
    }

    fn random(&mut self) -> u64 {
        host::Host::random(self)
    }
}

/// Most metric names one plugin may set, and the longest name: a plugin cannot grow the host's
/// memory or its status messages without bound through `metric`.
pub(crate) const MAX_METRICS: usize = 64;
pub(crate) const MAX_METRIC_NAME: usize = 64;

/// The metrics a plugin instance set with `host.metric`, and whether they changed since the
/// supervisor last read them.
#[derive(Debug, Default)]
pub(crate) struct PluginMetrics {
    pub values: BTreeMap<String, f64>,
    pub changed: bool,
    warned: bool,
}

impl PluginMetrics {
    fn set(&mut self, name: String, value: f64) -> Result<(), String> {
        if !is_metric_name(&name) {
            return Err(format!(
                "{name:?} is not a metric name (lower-case letters, digits and `_`, 1 to \
                 {MAX_METRIC_NAME} bytes)"
            ));
        }
        if !value.is_finite() {
            return Err(format!("{name} = {value} is not a finite number"));
        }
        if self.values.len() >= MAX_METRICS && !self.values.contains_key(&name) {
            return Err(format!(
                "{name} would be metric number {}, past the {MAX_METRICS} allowed",
                MAX_METRICS + 1
            ));
        }
        self.values.insert(name, value);
        self.changed = true;
        Ok(())
    }
}

fn is_metric_name(name: &str) -> bool {
    (1..=MAX_METRIC_NAME).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// SplitMix64: a tiny, well-studied generator whose whole state is one `u64`, so that the state
/// can be saved with a plugin's snapshot and a replay draws the same numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Refuses memory growth past the cap, and remembers that it did so that the trap that follows
/// is reported as "memory cap" rather than as the guest's own abort.
pub(crate) struct MemoryCap {
    pub max_bytes: usize,
    pub exceeded: Option<usize>,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.exceeded = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; a million entries is far beyond any real plugin.
        Ok(desired <= 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_deterministic_for_a_seed() {
        let (mut a, mut b, mut c) = (SplitMix64(7), SplitMix64(7), SplitMix64(8));
        let draws_a: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        let draws_b: Vec<u64> = (0..4).map(|_| b.next_u64()).collect();
        let draws_c: Vec<u64> = (0..4).map(|_| c.next_u64()).collect();
        assert_eq!(draws_a, draws_b);
        assert_ne!(draws_a, draws_c);
    }

    #[test]
    fn metrics_keep_the_latest_value_and_refuse_bad_names_values_and_too_many_names() {
        let mut metrics = PluginMetrics::default();
        assert!(metrics.set("rejected".into(), 1.0).is_ok());
        assert!(metrics.set("rejected".into(), 2.0).is_ok());
        assert_eq!(metrics.values.get("rejected"), Some(&2.0));
        assert!(metrics.changed);
        for bad in ["", "Rejected", "a b", "a/b", &"x".repeat(MAX_METRIC_NAME + 1)] {
            assert!(metrics.set(bad.into(), 1.0).is_err(), "{bad:?} accepted");
        }
        assert!(metrics.set("nan".into(), f64::NAN).is_err());
        for i in 1..MAX_METRICS {
            assert!(metrics.set(format!("m{i}"), 0.0).is_ok());
        }
        assert!(metrics.set("one_too_many".into(), 0.0).is_err());
        assert!(metrics.set("rejected".into(), 3.0).is_ok(), "an existing name is still updated");
        assert_eq!(metrics.values.len(), MAX_METRICS);
    }

    #[test]
    fn memory_growth_past_the_cap_is_refused_and_remembered() {
        let mut cap = MemoryCap { max_bytes: 1024, exceeded: None };
        assert!(matches!(cap.memory_growing(0, 1024, None), Ok(true)));
        assert!(matches!(cap.memory_growing(1024, 2048, None), Ok(false)));
        assert_eq!(cap.exceeded, Some(2048));
    }
}
