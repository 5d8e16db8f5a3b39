//! What the host offers a plugin: its log, the virtual clock and a seeded random source.

use crate::processor_bindings::garonne::plugin::{host, types::Level};

/// The host's log, tagged with the plugin's name: `log::info("window closed")`.
pub mod log {
    use super::{Level, host};

    pub fn trace(message: &str) {
        host::log(Level::Trace, message);
    }
    pub fn debug(message: &str) {
        host::log(Level::Debug, message);
    }
    pub fn info(message: &str) {
        host::log(Level::Info, message);
    }
    pub fn warn(message: &str) {
        host::log(Level::Warn, message);
    }
    pub fn error(message: &str) {
        host::log(Level::Error, message);
    }
}

/// The host's virtual clock, in ms since the Unix epoch.
pub fn now() -> i64 {
    host::now()
}

/// A number from the plugin's seeded generator: the same seed gives the same numbers.
pub fn random() -> u64 {
    host::random()
}

/// A number in [0, 1) from the seeded generator.
pub fn random_f64() -> f64 {
    // The top 53 bits fill an f64 mantissa exactly.
    (random() >> 11) as f64 / (1u64 << 53) as f64
}
