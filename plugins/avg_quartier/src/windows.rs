//! Tumbling event-time windows with a watermark and an allowed lateness.
//!
//! A reading at time `t` belongs to the window `[t - t % len, … + len)`. The watermark is the
//! newest time seen (an event time, or the clock at a tick) minus the allowed lateness; a window
//! closes once the watermark reaches its end. A reading for a window already closed is late: it
//! is counted, per group, and the count is reported with that group's next window. Nothing is
//! dropped silently.

use std::collections::BTreeMap;

use garonne_sdk::float;
use serde::{Deserialize, Serialize};

/// Running mean/min/max/count of one group in one window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub count: u64,
}

impl Aggregate {
    fn of(value: f64) -> Self {
        Self { sum: value, min: value, max: value, count: 1 }
    }

    fn add(&mut self, value: f64) {
        self.sum += value;
        self.min = float::min(self.min, value);
        self.max = float::max(self.max, value);
        self.count += 1;
    }

    pub fn mean(&self) -> f64 {
        self.sum / self.count as f64
    }
}

/// Identifies what a window aggregates (for avg_quartier: a quartier and a kind of measure).
/// An integer rather than a string keeps the hot path free of allocations.
pub type Group = u64;

/// A window that closed, for one group.
#[derive(Debug, Clone, PartialEq)]
pub struct Closed {
    pub group: Group,
    pub start: i64,
    pub end: i64,
    pub aggregate: Aggregate,
    /// Late readings of this group since its previous closed window.
    pub late: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct TumblingWindows {
    length_ms: i64,
    lateness_ms: i64,
    /// Open windows by start time, then by group.
    open: BTreeMap<i64, BTreeMap<Group, Aggregate>>,
    /// Every window ending at or before this is closed.
    closed_until: Option<i64>,
    newest: Option<i64>,
    late: BTreeMap<Group, u64>,
}

impl TumblingWindows {
    pub fn new(length_ms: i64, lateness_ms: i64) -> Self {
        Self { length_ms: length_ms.max(1), lateness_ms: lateness_ms.max(0), ..Self::default() }
    }

    /// Sets the lengths again after a restore (they come from the configuration).
    pub fn configure(&mut self, length_ms: i64, lateness_ms: i64) {
        self.length_ms = length_ms.max(1);
        self.lateness_ms = lateness_ms.max(0);
    }

    /// How many (window, group) aggregates are open: what the plugin holds in memory.
    pub fn open_aggregates(&self) -> usize {
        self.open.values().map(BTreeMap::len).sum()
    }

    /// Adds a value; returns `false` (and counts it) if its window is already closed.
    pub fn add(&mut self, group: Group, time: i64, value: f64) -> bool {
        let start = time.div_euclid(self.length_ms) * self.length_ms;
        if self.closed_until.is_some_and(|until| start + self.length_ms <= until) {
            *self.late.entry(group).or_default() += 1;
            return false;
        }
        self.newest = Some(self.newest.map_or(time, |n| n.max(time)));
        self.open
            .entry(start)
            .or_default()
            .entry(group)
            .and_modify(|aggregate| aggregate.add(value))
            .or_insert_with(|| Aggregate::of(value));
        true
    }

    /// Whether the oldest open window could close: lets the caller skip `advance` cheaply.
    pub fn may_close(&self) -> bool {
        match (self.open.first_key_value(), self.newest) {
            (Some((&start, _)), Some(newest)) => start + self.length_ms <= newest - self.lateness_ms,
            _ => false,
        }
    }

    /// Closes the windows the watermark has passed, given the clock (if any) at a tick.
    pub fn advance(&mut self, now: Option<i64>) -> Vec<Closed> {
        let Some(newest) = [self.newest, now].into_iter().flatten().max() else {
            return Vec::new();
        };
        let watermark = newest - self.lateness_ms;
        let mut closed = Vec::new();
        while let Some((&start, _)) = self.open.first_key_value() {
            if start + self.length_ms > watermark {
                break;
            }
            let Some((start, groups)) = self.open.pop_first() else { break };
            for (group, aggregate) in groups {
                let late = self.late.remove(&group).unwrap_or(0);
                closed.push(Closed { group, start, end: start + self.length_ms, aggregate, late });
            }
        }
        // Windows up to the watermark are closed even if they were empty.
        let closed_until = watermark.div_euclid(self.length_ms) * self.length_ms;
        self.closed_until = Some(self.closed_until.map_or(closed_until, |c| c.max(closed_until)));
        closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const Q: Group = 7;

    #[test]
    fn readings_on_both_sides_of_an_edge_go_to_their_own_window() {
        let mut windows = TumblingWindows::new(5 * MIN, 0);
        windows.add(Q, 5 * MIN - 1, 10.0);
        windows.add(Q, 5 * MIN, 20.0);
        let closed = windows.advance(Some(10 * MIN));
        assert_eq!(closed.len(), 2);
        assert_eq!((closed[0].start, closed[0].aggregate.sum), (0, 10.0));
        assert_eq!((closed[1].start, closed[1].aggregate.sum), (5 * MIN, 20.0));
    }

    #[test]
    fn open_aggregates_count_each_window_and_group_until_it_closes() {
        let mut windows = TumblingWindows::new(5 * MIN, 0);
        windows.add(Q, 0, 1.0);
        windows.add(Q, MIN, 2.0);
        windows.add(Q + 1, MIN, 3.0);
        windows.add(Q, 5 * MIN, 4.0);
        assert_eq!(windows.open_aggregates(), 3);
        windows.advance(Some(5 * MIN));
        assert_eq!(windows.open_aggregates(), 1);
    }

    #[test]
    fn a_window_waits_for_the_allowed_lateness_and_takes_late_readings_within_it() {
        let mut windows = TumblingWindows::new(5 * MIN, MIN);
        windows.add(Q, MIN, 10.0);
        windows.add(Q, 5 * MIN + 30_000, 99.0); // watermark 4.5 min: window [0, 5) still open
        assert!(windows.advance(None).is_empty());
        assert!(windows.add(Q, 4 * MIN, 20.0), "late but within the allowed lateness");
        windows.add(Q, 6 * MIN, 1.0); // watermark 5 min: [0, 5) closes
        let closed = windows.advance(None);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].aggregate, Aggregate { sum: 30.0, min: 10.0, max: 20.0, count: 2 });
    }

    #[test]
    fn readings_beyond_the_lateness_are_counted_not_dropped_silently() {
        let mut windows = TumblingWindows::new(5 * MIN, MIN);
        windows.add(Q, MIN, 10.0);
        windows.advance(Some(7 * MIN));
        assert!(!windows.add(Q, 2 * MIN, 50.0), "its window closed at 6 min");
        assert!(!windows.add(Q, 3 * MIN, 50.0));
        windows.add(Q, 8 * MIN, 5.0);
        let closed = windows.advance(Some(20 * MIN));
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].late, 2, "the late count comes with the group's next window");
        assert_eq!(closed[0].aggregate.sum, 5.0);
    }

    #[test]
    fn out_of_order_input_gives_the_same_windows_as_ordered_input() {
        let readings = [(MIN, 1.0), (7 * MIN, 2.0), (2 * MIN, 3.0), (6 * MIN, 4.0), (3 * MIN, 5.0)];
        let run = |order: &[(i64, f64)]| {
            let mut windows = TumblingWindows::new(5 * MIN, 10 * MIN);
            for &(t, v) in order {
                windows.add(Q, t, v);
            }
            windows.advance(Some(60 * MIN))
        };
        let mut sorted = readings;
        sorted.sort_by_key(|r| r.0);
        assert_eq!(run(&readings), run(&sorted));
    }

    #[test]
    fn the_state_survives_a_round_trip_through_serde() {
        let mut windows = TumblingWindows::new(5 * MIN, 0);
        windows.add(Q, MIN, 10.0);
        let json = serde_json::to_string(&windows).expect("serialise");
        let mut back: TumblingWindows = serde_json::from_str(&json).expect("deserialise");
        back.add(Q, 2 * MIN, 20.0);
        let closed = back.advance(Some(10 * MIN));
        assert_eq!(closed[0].aggregate.count, 2);
    }
}
