//! What the host offers a plugin: its log, the virtual clock, a seeded random source and the
//! plugin's own metrics.
//!
//! In a wasm build these call the host's imports. In a native build (unit tests, benchmarks)
//! there is no host, so they are deterministic stand-ins: `random` draws from a thread-local
//! SplitMix64 generator seeded by `seed_native_random` (seed 0 by default), `now` returns the
//! thread-local time set by `set_native_now` (0 by default), `log` writes to stderr and `metric`
//! keeps the values in a thread-local map that `native_metrics` returns.

use crate::processor_bindings::garonne::plugin::types::Level;

// The host's imports in a wasm build; stand-ins with the same signatures natively.
#[cfg(target_arch = "wasm32")]
use crate::processor_bindings::garonne::plugin::host as backend;
#[cfg(not(target_arch = "wasm32"))]
use native as backend;

/// The host's log, tagged with the plugin's name: `log::info("window closed")`.
pub mod log {
    use super::{Level, backend};

    pub fn trace(message: &str) {
        backend::log(Level::Trace, message);
    }
    pub fn debug(message: &str) {
        backend::log(Level::Debug, message);
    }
    pub fn info(message: &str) {
        backend::log(Level::Info, message);
    }
    pub fn warn(message: &str) {
        backend::log(Level::Warn, message);
    }
    pub fn error(message: &str) {
        backend::log(Level::Error, message);
    }
}

/// The host's virtual clock, in ms since the Unix epoch.
pub fn now() -> i64 {
    backend::now()
}

/// A number from the plugin's seeded generator: the same seed gives the same numbers.
pub fn random() -> u64 {
    backend::random()
}

/// Sets this plugin's metric `name` (lower-case snake case) to `value`: the host publishes the
/// latest value of each with its own counters on `garonne/status/{instance}`, and the historian
/// stores them (`garonne_plugin_metric`). For what the plugin alone knows: readings it rejected,
/// windows it holds open. At most 64 names.
pub fn metric(name: &str, value: f64) {
    backend::metric(name, value);
}

/// A number in [0, 1) from the seeded generator.
pub fn random_f64() -> f64 {
    // The top 53 bits fill an f64 mantissa exactly.
    (random() >> 11) as f64 / (1u64 << 53) as f64
}

/// Native builds only: restarts this thread's [`random`] generator from `seed`, as the host's
/// `seed` does in a wasm build.
#[cfg(not(target_arch = "wasm32"))]
pub fn seed_native_random(seed: u64) {
    native::RANDOM.set(seed);
}

/// Native builds only: sets what [`now`] returns on this thread, in ms since the Unix epoch.
#[cfg(not(target_arch = "wasm32"))]
pub fn set_native_now(ms: i64) {
    native::NOW.set(ms);
}

/// Native builds only: the metrics this thread's plugin set with [`metric`], latest value per name.
#[cfg(not(target_arch = "wasm32"))]
pub fn native_metrics() -> std::collections::BTreeMap<String, f64> {
    native::METRICS.with_borrow(|metrics| metrics.clone())
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::cell::{Cell, RefCell};
    use std::collections::BTreeMap;

    use super::Level;

    thread_local! {
        /// The SplitMix64 state.
        pub static RANDOM: Cell<u64> = const { Cell::new(0) };
        pub static NOW: Cell<i64> = const { Cell::new(0) };
        pub static METRICS: RefCell<BTreeMap<String, f64>> = const { RefCell::new(BTreeMap::new()) };
    }

    pub fn metric(name: &str, value: f64) {
        METRICS.with_borrow_mut(|metrics| metrics.insert(name.to_owned(), value));
    }

    pub fn log(level: Level, message: &str) {
        let level = match level {
            Level::Trace => "TRACE",
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        };
        eprintln!("{level} {message}");
    }

    pub fn now() -> i64 {
        NOW.get()
    }

    /// SplitMix64 (Steele, Lea and Flood 2014): small, fast and good enough for simulations.
    pub fn random() -> u64 {
        let state = RANDOM.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        RANDOM.set(state);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn the_native_generator_is_splitmix64_and_restarts_with_its_seed() {
        seed_native_random(0);
        // The first outputs of SplitMix64 from state 0, as in the reference implementation.
        assert_eq!(random(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(random(), 0x6E78_9E6A_A1B9_65F4);
        seed_native_random(7);
        let a: Vec<u64> = (0..4).map(|_| random()).collect();
        seed_native_random(7);
        let b: Vec<u64> = (0..4).map(|_| random()).collect();
        assert_eq!(a, b);
        seed_native_random(8);
        assert_ne!(random(), a[0]);
        assert!((0..1000).map(|_| random_f64()).all(|x| (0.0..1.0).contains(&x)));
    }

    #[test]
    fn the_native_clock_is_what_the_test_set_and_log_does_not_panic() {
        assert_eq!(now(), 0);
        set_native_now(1_700_000_000_000);
        assert_eq!(now(), 1_700_000_000_000);
        log::info("native log goes to stderr");
        metric("rejected", 1.0);
        metric("rejected", 2.0);
        assert_eq!(native_metrics().get("rejected"), Some(&2.0));
    }
}
