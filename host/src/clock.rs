//! The virtual clock every plugin reads: real time, accelerated, or pinned for replays.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, the unit of time of the WIT contract.
pub type Millis = i64;

/// A clock that starts at `origin` and runs `speed` times faster than the wall clock.
///
/// Plugins never see the wall clock: a simulated day can then run in minutes, and a recorded
/// stream replays with the times it was recorded at.
#[derive(Debug, Clone)]
pub struct VirtualClock {
    inner: Arc<ClockInner>,
}

#[derive(Debug)]
struct ClockInner {
    origin: Millis,
    started: Instant,
    speed: f64,
    /// Set for a replay: the time is whatever the replay last set, not a running clock.
    manual: Option<AtomicI64>,
}

impl VirtualClock {
    /// A clock starting at `origin` (ms since the epoch) and running at `speed`× real time.
    pub fn new(origin: Millis, speed: f64) -> Self {
        let speed = if speed.is_finite() && speed > 0.0 { speed } else { 1.0 };
        Self { inner: Arc::new(ClockInner { origin, started: Instant::now(), speed, manual: None }) }
    }

    /// A clock that stands still until [`VirtualClock::set`] moves it: replays drive time from
    /// the recorded event times, so a replay gives the same output however fast it runs.
    pub fn manual(start: Millis) -> Self {
        let inner = ClockInner {
            origin: start,
            started: Instant::now(),
            speed: 1.0,
            manual: Some(AtomicI64::new(start)),
        };
        Self { inner: Arc::new(inner) }
    }

    /// Moves a manual clock (no effect on a running one).
    pub fn set(&self, now: Millis) {
        if let Some(manual) = &self.inner.manual {
            manual.store(now, Ordering::Relaxed);
        }
    }

    /// A clock that follows the wall clock.
    pub fn real_time() -> Self {
        Self::new(wall_clock_millis(), 1.0)
    }

    /// The current virtual time.
    pub fn now(&self) -> Millis {
        if let Some(manual) = &self.inner.manual {
            return manual.load(Ordering::Relaxed);
        }
        let elapsed = self.inner.started.elapsed().as_secs_f64() * 1000.0 * self.inner.speed;
        self.inner.origin + elapsed as Millis
    }

    /// How many times faster than real time this clock runs.
    pub fn speed(&self) -> f64 {
        self.inner.speed
    }
}

/// The wall clock in ms since the epoch (0 if the system clock is before 1970).
pub fn wall_clock_millis() -> Millis {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as Millis).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_accelerated_clock_runs_faster_than_real_time() {
        let clock = VirtualClock::new(1_000, 1000.0);
        std::thread::sleep(std::time::Duration::from_millis(20));
        // 20 ms of real time are at least 20 s of virtual time.
        assert!(clock.now() >= 1_000 + 20_000, "now = {}", clock.now());
    }

    #[test]
    fn a_manual_clock_moves_only_when_set() {
        let clock = VirtualClock::manual(5);
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert_eq!(clock.now(), 5);
        clock.set(42);
        assert_eq!(clock.now(), 42);
    }

    #[test]
    fn a_nonsensical_speed_falls_back_to_real_time() {
        assert_eq!(VirtualClock::new(0, f64::NAN).speed(), 1.0);
        assert_eq!(VirtualClock::new(0, -3.0).speed(), 1.0);
    }
}
