//! How many readings one call to a plugin carries.
//!
//! A batch is whatever queued up while the last call ran, up to `runtime.batch_max`. For a
//! plugin that is slow per reading, a full batch can take longer than the CPU deadline: the
//! JavaScript `rolling_median` on readings of 16 KB ran past its 200 ms on most full batches,
//! and each time the host interrupted it, restarted it, replayed its journal and fed the batch
//! again reading by reading (BENCHMARKS.md, "Session 16: queues bounded in bytes"). The deadline
//! is there to stop a plugin that loops, not one that was handed too much at once: the
//! supervisor cuts a batch into calls that should take a quarter of the deadline, from what the
//! plugin's recent calls cost per reading.

use std::time::Duration;

/// The share of the deadline a call aims at: room for readings that cost more than the last
/// ones, and for a machine that gets busy.
const SHARE_OF_DEADLINE: f64 = 0.25;
/// The readings of the first call, before anything is known of the plugin's pace.
const FIRST_CALL: usize = 16;
/// Calls of fewer readings teach nothing: their time is mostly the call's own, or one costly
/// event (avg_quartier closing a window on a single reading), and a slow estimate from them
/// would cut the big batches that come under load into small calls.
const SMALLEST_SAMPLE: usize = 8;
/// How much of the estimate a faster call keeps: a slower call replaces it at once, a faster
/// one lowers it slowly, so that one quick call after slow ones does not bring back big calls.
const KEEP: f64 = 0.9;

/// The plugin's cost per reading, as seen lately.
#[derive(Debug, Default, Clone)]
pub(crate) struct CallSize {
    nanos_per_reading: Option<f64>,
}

impl CallSize {
    /// The most readings the next call should carry.
    pub(crate) fn limit(&self, deadline: Duration) -> usize {
        match self.nanos_per_reading {
            None => FIRST_CALL,
            Some(nanos) => {
                let aim = deadline.as_nanos() as f64 * SHARE_OF_DEADLINE;
                // Float to integer saturates: a plugin too fast to measure gets no limit.
                ((aim / nanos.max(1.0)) as usize).max(1)
            }
        }
    }

    /// A call of `readings` readings that completed in `took`.
    pub(crate) fn observe(&mut self, readings: usize, took: Duration) {
        if readings < SMALLEST_SAMPLE {
            return;
        }
        let sample = took.as_nanos() as f64 / readings as f64;
        let estimate = match self.nanos_per_reading {
            Some(previous) => sample.max(previous * KEEP + sample * (1.0 - KEEP)),
            None => sample,
        };
        self.nanos_per_reading = Some(estimate);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEADLINE: Duration = Duration::from_millis(200);

    #[test]
    fn the_first_call_is_small_then_calls_aim_at_a_quarter_of_the_deadline() {
        let mut size = CallSize::default();
        assert_eq!(size.limit(DEADLINE), FIRST_CALL);
        // 1 ms a reading: 50 ms is 50 readings.
        size.observe(16, Duration::from_millis(16));
        assert_eq!(size.limit(DEADLINE), 50);
    }

    #[test]
    fn a_fast_plugin_is_not_held_back() {
        let mut size = CallSize::default();
        size.observe(1_000, Duration::from_micros(500));
        assert!(size.limit(DEADLINE) >= 100_000, "{}", size.limit(DEADLINE));
        size.observe(10, Duration::ZERO);
        assert!(size.limit(DEADLINE) >= 100_000);
    }

    #[test]
    fn a_costly_call_of_a_few_readings_teaches_nothing() {
        let mut size = CallSize::default();
        size.observe(1_000, Duration::from_millis(1));
        let limit = size.limit(DEADLINE);
        // One reading that closed a window and took 5 ms.
        size.observe(1, Duration::from_millis(5));
        assert_eq!(size.limit(DEADLINE), limit);
    }

    #[test]
    fn a_slower_call_counts_at_once_and_a_faster_one_slowly() {
        let mut size = CallSize::default();
        size.observe(100, Duration::from_millis(10));
        assert_eq!(size.limit(DEADLINE), 500);
        size.observe(10, Duration::from_millis(10));
        assert_eq!(size.limit(DEADLINE), 50, "1 ms a reading now");
        size.observe(100, Duration::from_millis(10));
        let after_one_fast_call = size.limit(DEADLINE);
        assert!((50..60).contains(&after_one_fast_call), "{after_one_fast_call}");
        for _ in 0..100 {
            size.observe(100, Duration::from_millis(10));
        }
        let recovered = size.limit(DEADLINE);
        assert!((495..=500).contains(&recovered), "back to the plugin's pace: {recovered}");
    }
}
