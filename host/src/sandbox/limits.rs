//! What a plugin may use: memory, time per call, messages per call.

use std::time::Duration;

use serde::Deserialize;

/// The resource limits of one plugin instance. Each can be set per plugin in the pipeline file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Linear memory the instance may grow to, in MiB (all its memories together).
    pub memory_mib: u64,
    /// CPU time one call may take before it is interrupted, in ms.
    pub call_deadline_ms: u64,
    /// Deadline of `init` and `restore`, which may build indexes or parse large states, in ms.
    pub init_deadline_ms: u64,
    /// Messages one call may return; the rest is dropped and counted.
    pub max_messages: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { memory_mib: 64, call_deadline_ms: 200, init_deadline_ms: 2_000, max_messages: 10_000 }
    }
}

impl Limits {
    pub fn memory_bytes(&self) -> usize {
        usize::try_from(self.memory_mib.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX)
    }

    pub fn call_deadline(&self) -> Duration {
        Duration::from_millis(self.call_deadline_ms)
    }

    pub fn init_deadline(&self) -> Duration {
        Duration::from_millis(self.init_deadline_ms)
    }
}
