//! What the host keeps for each plugin instance, and the host functions a plugin may call.

use std::sync::Arc;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::v0_1_0::{host, types};
use super::guest_output::{GuestOutput, StderrTail};
use crate::clock::VirtualClock;

/// The data of one `Store`: one per plugin instance, dropped with it after a trap.
pub(crate) struct GuestState {
    pub plugin: Arc<str>,
    pub clock: VirtualClock,
    pub rng: SplitMix64,
    pub memory: MemoryCap,
    pub stderr_tail: StderrTail,
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
    fn memory_growth_past_the_cap_is_refused_and_remembered() {
        let mut cap = MemoryCap { max_bytes: 1024, exceeded: None };
        assert!(matches!(cap.memory_growing(0, 1024, None), Ok(true)));
        assert!(matches!(cap.memory_growing(1024, 2048, None), Ok(false)));
        assert_eq!(cap.exceeded, Some(2048));
    }
}
