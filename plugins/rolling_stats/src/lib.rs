//! Rolling mean, min and max of each sensor over a sliding window of event time.
//!
//! Config: `window_s`, the length of the window in seconds (default 300, must be > 0).
//!
//! For each reading, publishes one message on `stats/{kind}/{sensor_id}`: the value is the mean,
//! the fields are `mean`, `min`, `max`, `count` and `window_s`, the time is the reading's, and the
//! unit, position and tags are the sensor's.
//!
//! The window of a sensor holds its readings in `(newest - window_s, newest]`, where `newest` is
//! the latest event time seen for that sensor. Readings may arrive out of order: a late one that
//! still falls in the window is put in its place and counted; one older than the window is
//! ignored (no message, no change), because the readings it belonged with are already gone.

use std::collections::{BTreeMap, VecDeque};

use garonne_sdk::{Config, Output, Processor, Reading, Series, float};
use serde::{Deserialize, Serialize};

/// The readings of one sensor in its window: (time in ms, value), sorted by time.
type Window = VecDeque<(i64, f64)>;

/// The plugin (public so that benchmarks can run it natively).
#[derive(Default, Serialize, Deserialize)]
pub struct RollingStats {
    /// By sensor index: the state, kept across restarts.
    windows: BTreeMap<u32, Window>,
    /// From the configuration: set again by `init` after a restore.
    #[serde(skip)]
    window_ms: i64,
}

impl Processor for RollingStats {
    fn init(&mut self, config: &Config) -> Result<(), String> {
        let window_s = config.f64_or("window_s", 300.0)?;
        // Rounded to whole milliseconds, the unit of event times; the cast saturates.
        self.window_ms = (window_s * 1000.0).round() as i64;
        if self.window_ms <= 0 {
            return Err(format!("config `window_s` must be > 0 (at least 0.001), not {window_s}"));
        }
        Ok(())
    }

    fn on_reading(&mut self, reading: &Reading<'_>, out: &mut Output) -> Result<(), String> {
        let window = self.windows.entry(reading.sensor_index()).or_default();
        if !insert(window, reading.time(), reading.value(), self.window_ms) {
            return Ok(()); // too old for any window
        }
        let stats = Stats::of(window);
        let fields = [stats.mean, stats.min, stats.max, stats.count as f64, self.window_ms as f64 / 1000.0];
        // One series per sensor: the message's strings cross the sandbox once, not per reading.
        out.point(u64::from(reading.sensor_index()), stats.mean, reading.time(), &fields, || {
            let sensor = reading.sensor();
            Series::about(format!("stats/{}/{}", sensor.kind, sensor.id), reading)
                .fields(&["mean", "min", "max", "count", "window_s"])
        });
        Ok(())
    }
}

/// Puts a reading in its place and drops the readings that left the window. Returns `false`, and
/// changes nothing, when the reading is already older than the window.
fn insert(window: &mut Window, time: i64, value: f64, window_ms: i64) -> bool {
    let newest = window.back().map_or(time, |&(newest, _)| newest.max(time));
    let expired = newest.saturating_sub(window_ms); // this time and older are out
    if time <= expired {
        return false;
    }
    let place = window.partition_point(|&(t, _)| t <= time);
    window.insert(place, (time, value));
    while window.front().is_some_and(|&(t, _)| t <= expired) {
        window.pop_front();
    }
    true
}

struct Stats {
    mean: f64,
    min: f64,
    max: f64,
    count: usize,
}

impl Stats {
    /// The statistics of a window that holds at least one reading.
    fn of(window: &Window) -> Self {
        let (mut sum, mut min, mut max) = (0.0, f64::INFINITY, f64::NEG_INFINITY);
        for &(_, value) in window {
            sum += value;
            min = float::min(min, value);
            max = float::max(max, value);
        }
        Self { mean: sum / window.len() as f64, min, max, count: window.len() }
    }
}

garonne_sdk::export_processor!(RollingStats);

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW_MS: i64 = 300_000;

    /// Inserts each (time, value) and returns (mean, min, max, count) after each insertion.
    fn run(readings: &[(i64, f64)]) -> Vec<(f64, f64, f64, usize)> {
        let mut window = Window::new();
        let mut seen = Vec::new();
        for &(time, value) in readings {
            if insert(&mut window, time, value, WINDOW_MS) {
                let stats = Stats::of(&window);
                seen.push((stats.mean, stats.min, stats.max, stats.count));
            }
        }
        seen
    }

    #[test]
    fn each_reading_adds_to_the_window() {
        let seen = run(&[(0, 10.0), (1_000, 20.0), (2_000, 30.0)]);
        assert_eq!(seen, vec![(10.0, 10.0, 10.0, 1), (15.0, 10.0, 20.0, 2), (20.0, 10.0, 30.0, 3)]);
    }

    #[test]
    fn old_readings_leave_late_ones_join_and_too_late_ones_are_ignored() {
        let seen = run(&[(0, 10.0), (WINDOW_MS, 30.0), (WINDOW_MS - 1_000, 20.0), (0, 99.0)]);
        assert_eq!(seen, vec![(10.0, 10.0, 10.0, 1), (30.0, 30.0, 30.0, 1), (25.0, 20.0, 30.0, 2)]);
    }
}
