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

/// A group's place in every window's vector of aggregates, given by [`TumblingWindows::slot`]
/// once per group, so that adding a reading indexes a vector instead of searching a map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot(u32);

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

/// One open window: its aggregates by slot (`None` for a group with no reading in it yet).
#[derive(Debug)]
struct Window {
    start: i64,
    aggregates: Vec<Option<Aggregate>>,
}

/// The windows of a stream. The state is saved in the layout of [`Saved`], so that a snapshot
/// taken by an older build (before slots) restores into this one, and the other way round.
#[derive(Debug, Default, Deserialize)]
#[serde(from = "Saved")]
pub struct TumblingWindows {
    length_ms: i64,
    lateness_ms: i64,
    /// Open windows, oldest first: few (the allowed lateness over the length, plus one), and a
    /// reading almost always goes to the newest, so a scan from the end beats a map.
    open: Vec<Window>,
    /// The group of each slot.
    groups: Vec<Group>,
    /// Every window ending at or before this is closed.
    closed_until: Option<i64>,
    newest: Option<i64>,
    late: BTreeMap<Group, u64>,
}

/// The saved form of [`TumblingWindows`]: open windows by start time, then by group.
#[derive(Default, Serialize, Deserialize)]
struct Saved {
    length_ms: i64,
    lateness_ms: i64,
    open: BTreeMap<i64, BTreeMap<Group, Aggregate>>,
    closed_until: Option<i64>,
    newest: Option<i64>,
    late: BTreeMap<Group, u64>,
}

impl From<Saved> for TumblingWindows {
    fn from(saved: Saved) -> Self {
        let mut windows = Self {
            length_ms: saved.length_ms,
            lateness_ms: saved.lateness_ms,
            closed_until: saved.closed_until,
            newest: saved.newest,
            late: saved.late,
            ..Self::default()
        };
        for (start, groups) in saved.open {
            let mut window = Window { start, aggregates: Vec::new() };
            for (group, aggregate) in groups {
                let Slot(slot) = windows.slot(group);
                set(&mut window.aggregates, slot as usize, aggregate);
            }
            windows.open.push(window);
        }
        windows
    }
}

impl Serialize for TumblingWindows {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let open = self
            .open
            .iter()
            .map(|window| (window.start, by_group(&self.groups, window).into_iter().collect()))
            .collect();
        Saved {
            length_ms: self.length_ms,
            lateness_ms: self.lateness_ms,
            open,
            closed_until: self.closed_until,
            newest: self.newest,
            late: self.late.clone(),
        }
        .serialize(serializer)
    }
}

/// A window's aggregates by group, in group order (the order messages are published in), given
/// the group of each slot.
fn by_group(groups: &[Group], window: &Window) -> Vec<(Group, Aggregate)> {
    let mut present: Vec<(Group, Aggregate)> = window
        .aggregates
        .iter()
        .enumerate()
        .filter_map(|(slot, aggregate)| Some((*groups.get(slot)?, (*aggregate)?)))
        .collect();
    present.sort_unstable_by_key(|&(group, _)| group);
    present
}

fn set(aggregates: &mut Vec<Option<Aggregate>>, slot: usize, aggregate: Aggregate) {
    if aggregates.len() <= slot {
        aggregates.resize(slot + 1, None);
    }
    aggregates[slot] = Some(aggregate);
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

    /// The slot of `group`, given a new one the first time. Meant to be called once per sensor
    /// and kept: it searches every group known.
    pub fn slot(&mut self, group: Group) -> Slot {
        let slot = match self.groups.iter().position(|&g| g == group) {
            Some(slot) => slot,
            None => {
                self.groups.push(group);
                self.groups.len() - 1
            }
        };
        Slot(slot as u32)
    }

    /// How many (window, group) aggregates are open: what the plugin holds in memory.
    pub fn open_aggregates(&self) -> usize {
        self.open.iter().map(|window| window.aggregates.iter().flatten().count()).sum()
    }

    /// Adds a value; returns `false` (and counts it) if its window is already closed.
    pub fn add(&mut self, Slot(slot): Slot, time: i64, value: f64) -> bool {
        let at = match self.open_window_of(time) {
            Some(at) => at,
            None => {
                let start = time.div_euclid(self.length_ms) * self.length_ms;
                if self.closed_until.is_some_and(|until| start + self.length_ms <= until) {
                    let group = self.groups.get(slot as usize).copied().unwrap_or_default();
                    *self.late.entry(group).or_default() += 1;
                    return false;
                }
                self.open_window(start)
            }
        };
        self.newest = Some(self.newest.map_or(time, |n| n.max(time)));
        let aggregates = &mut self.open[at].aggregates;
        match aggregates.get_mut(slot as usize) {
            Some(Some(aggregate)) => aggregate.add(value),
            _ => set(aggregates, slot as usize, Aggregate::of(value)),
        }
        true
    }

    /// The index of the open window that holds `time`, if one does. Most readings fall in the
    /// newest window: comparisons find it, where working out its start takes a 64-bit division.
    /// (An open window is never closed: `advance` removes a window as it closes it.)
    fn open_window_of(&self, time: i64) -> Option<usize> {
        let at = self.open.iter().rposition(|window| window.start <= time)?;
        (time < self.open[at].start.saturating_add(self.length_ms)).then_some(at)
    }

    /// Opens the window starting at `start`, in order, and gives its index.
    fn open_window(&mut self, start: i64) -> usize {
        let at = self.open.partition_point(|window| window.start < start);
        let aggregates = vec![None; self.groups.len()];
        self.open.insert(at, Window { start, aggregates });
        at
    }

    /// Whether the oldest open window could close: lets the caller skip `advance` cheaply.
    pub fn may_close(&self) -> bool {
        match (self.open.first(), self.newest) {
            (Some(window), Some(newest)) => window.start + self.length_ms <= newest - self.lateness_ms,
            _ => false,
        }
    }

    /// Closes the windows the watermark has passed, given the clock (if any) at a tick.
    pub fn advance(&mut self, now: Option<i64>) -> Vec<Closed> {
        let Some(newest) = [self.newest, now].into_iter().flatten().max() else {
            return Vec::new();
        };
        let watermark = newest - self.lateness_ms;
        let ended = self.open.iter().take_while(|window| window.start + self.length_ms <= watermark).count();
        let mut closed = Vec::new();
        for window in self.open.drain(..ended) {
            for (group, aggregate) in by_group(&self.groups, &window) {
                let late = self.late.remove(&group).unwrap_or(0);
                let (start, end) = (window.start, window.start + self.length_ms);
                closed.push(Closed { group, start, end, aggregate, late });
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

    fn add(windows: &mut TumblingWindows, group: Group, time: i64, value: f64) -> bool {
        let slot = windows.slot(group);
        windows.add(slot, time, value)
    }

    #[test]
    fn readings_on_both_sides_of_an_edge_go_to_their_own_window() {
        let mut windows = TumblingWindows::new(5 * MIN, 0);
        add(&mut windows, Q, 5 * MIN - 1, 10.0);
        add(&mut windows, Q, 5 * MIN, 20.0);
        let closed = windows.advance(Some(10 * MIN));
        assert_eq!(closed.len(), 2);
        assert_eq!((closed[0].start, closed[0].aggregate.sum), (0, 10.0));
        assert_eq!((closed[1].start, closed[1].aggregate.sum), (5 * MIN, 20.0));
    }

    #[test]
    fn open_aggregates_count_each_window_and_group_until_it_closes() {
        let mut windows = TumblingWindows::new(5 * MIN, 0);
        add(&mut windows, Q, 0, 1.0);
        add(&mut windows, Q, MIN, 2.0);
        add(&mut windows, Q + 1, MIN, 3.0);
        add(&mut windows, Q, 5 * MIN, 4.0);
        assert_eq!(windows.open_aggregates(), 3);
        windows.advance(Some(5 * MIN));
        assert_eq!(windows.open_aggregates(), 1);
    }

    #[test]
    fn a_window_waits_for_the_allowed_lateness_and_takes_late_readings_within_it() {
        let mut windows = TumblingWindows::new(5 * MIN, MIN);
        add(&mut windows, Q, MIN, 10.0);
        add(&mut windows, Q, 5 * MIN + 30_000, 99.0); // watermark 4.5 min: window [0, 5) still open
        assert!(windows.advance(None).is_empty());
        assert!(add(&mut windows, Q, 4 * MIN, 20.0), "late but within the allowed lateness");
        add(&mut windows, Q, 6 * MIN, 1.0); // watermark 5 min: [0, 5) closes
        let closed = windows.advance(None);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].aggregate, Aggregate { sum: 30.0, min: 10.0, max: 20.0, count: 2 });
    }

    #[test]
    fn readings_beyond_the_lateness_are_counted_not_dropped_silently() {
        let mut windows = TumblingWindows::new(5 * MIN, MIN);
        add(&mut windows, Q, MIN, 10.0);
        windows.advance(Some(7 * MIN));
        assert!(!add(&mut windows, Q, 2 * MIN, 50.0), "its window closed at 6 min");
        assert!(!add(&mut windows, Q, 3 * MIN, 50.0));
        add(&mut windows, Q, 8 * MIN, 5.0);
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
                add(&mut windows, Q, t, v);
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
        add(&mut windows, Q, MIN, 10.0);
        let json = serde_json::to_string(&windows).expect("serialise");
        let mut back: TumblingWindows = serde_json::from_str(&json).expect("deserialise");
        add(&mut back, Q, 2 * MIN, 20.0);
        let closed = back.advance(Some(10 * MIN));
        assert_eq!(closed[0].aggregate.count, 2);
    }

    #[test]
    fn a_window_closes_its_groups_in_group_order_whatever_order_they_came_in() {
        let mut windows = TumblingWindows::new(5 * MIN, 0);
        for group in [9, 3, 7] {
            add(&mut windows, group, MIN, 1.0);
        }
        let groups: Vec<Group> = windows.advance(Some(5 * MIN)).iter().map(|c| c.group).collect();
        assert_eq!(groups, [3, 7, 9]);
    }

    /// The saved layout is the one of the builds before slots: a snapshot taken by either
    /// restores into the other, which a hot swap between them needs.
    const SAVED: &str = r#"{"length_ms":300000,"lateness_ms":0,"open":{"0":{"3":{"sum":1.0,"min":1.0,"max":1.0,"count":1},"9":{"sum":5.0,"min":2.0,"max":3.0,"count":2}},"300000":{"9":{"sum":4.0,"min":4.0,"max":4.0,"count":1}}},"closed_until":null,"newest":300000,"late":{"3":2}}"#;

    #[test]
    fn the_state_is_saved_in_the_layout_of_earlier_builds() {
        let mut windows = TumblingWindows::new(5 * MIN, 0);
        add(&mut windows, 9, MIN, 2.0);
        add(&mut windows, 3, 0, 1.0);
        add(&mut windows, 9, 2 * MIN, 3.0);
        add(&mut windows, 9, 5 * MIN, 4.0);
        windows.late.insert(3, 2);
        assert_eq!(serde_json::to_string(&windows).expect("serialise"), SAVED);
    }

    #[test]
    fn a_state_saved_by_an_earlier_build_restores_and_goes_on() {
        let mut windows: TumblingWindows = serde_json::from_str(SAVED).expect("deserialise");
        assert_eq!(windows.open_aggregates(), 3);
        add(&mut windows, 9, MIN, 10.0);
        let closed = windows.advance(Some(5 * MIN));
        let summary: Vec<(Group, f64, u64, u64)> =
            closed.iter().map(|c| (c.group, c.aggregate.sum, c.aggregate.count, c.late)).collect();
        assert_eq!(summary, [(3, 1.0, 1, 2), (9, 15.0, 3, 0)]);
        assert_eq!(windows.open_aggregates(), 1);
    }
}
