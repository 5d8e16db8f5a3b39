//! Per-quartier averages: each reading is placed in the quartier that contains its sensor, and
//! for each quartier and kind of measure the plugin publishes the mean, min, max and count over
//! tumbling event-time windows.
//!
//! Config:
//! - `polygons`: `quartiers` (the 20 quartiers of Toulouse, default), `grands-quartiers` (the 60
//!   INSEE grands quartiers) or `communes` (the 37 communes of the Métropole);
//! - `window_s`: window length (default 300); `lateness_s`: allowed lateness (default 60);
//! - `fault_value`: fault injection, for tests and for showing recovery in class: a reading with
//!   exactly this value makes the plugin panic (a trap). The host restores the state and sends
//!   that reading to the dead-letter topic; the windows go on as if it had never come.
//!
//! Output, when a window closes: `quartiers/{id}/{kind}` with the mean as the value, the end of
//! the window as the time, the quartier's centroid as the position, the fields `mean`, `min`,
//! `max`, `count`, `late`, `window_start` and `window_s`, and the tags `quartier` (its name) and
//! `polygons`. Readings whose sensor is in no polygon (another commune, or no position) are not
//! forced into the nearest one: their count per window goes to `unassigned/{kind}`.
//!
//! The messages go out as points of series (WIT 0.3.0), one series per quartier and kind.
//!
//! Metric (WIT 0.2.0's `host.metric`, at each tick): `open_aggregates`, the (window, quartier,
//! kind) aggregates held open, which is what the plugin's memory grows with.

pub mod index;
pub mod windows;

use garonne_sdk::{Config, Output, Position, Processor, Reading, Series, log, metric};
use serde::{Deserialize, Serialize};

use index::QuartierIndex;
use windows::{Closed, Group, Slot, TumblingWindows};

/// The polygon sets, embedded at build time from `data/geo/` (a plugin has no file access).
const POLYGON_SETS: [(&str, &str); 3] = [
    ("quartiers", include_str!("../../../data/geo/quartiers.geojson")),
    ("grands-quartiers", include_str!("../../../data/geo/grands-quartiers.geojson")),
    ("communes", include_str!("../../../data/geo/communes.geojson")),
];

/// Where a sensor's readings go, worked out once per sensor.
#[derive(Clone, Copy, PartialEq)]
struct Placement {
    position: Option<Position>,
    slot: Slot,
}

#[derive(Default, Serialize, Deserialize)]
pub struct AvgQuartier {
    windows: TumblingWindows,
    /// Kinds of measure seen so far, with their unit; a group names a kind by its index here.
    kinds: Vec<(String, String)>,
    #[serde(skip)]
    index: Option<QuartierIndex>,
    #[serde(skip)]
    polygons: String,
    #[serde(skip)]
    window_ms: i64,
    #[serde(skip)]
    fault_value: Option<f64>,
    /// By sensor index.
    #[serde(skip)]
    placements: Vec<Option<Placement>>,
}

/// A group is a quartier (its index + 1, or 0 for "in no quartier") and a kind (its index).
fn group(quartier: Option<usize>, kind: usize) -> Group {
    (quartier.map_or(0, |q| q as u64 + 1) << 32) | kind as u64
}

fn ungroup(group: Group) -> (Option<usize>, usize) {
    let quartier = (group >> 32) as usize;
    (quartier.checked_sub(1), (group & 0xffff_ffff) as usize)
}

impl Processor for AvgQuartier {
    fn init(&mut self, config: &Config) -> Result<(), String> {
        let polygons = config.get_str("polygons").unwrap_or("quartiers");
        let Some((_, geojson)) = POLYGON_SETS.iter().find(|(name, _)| *name == polygons) else {
            return Err(format!(
                "config `polygons` is {polygons:?}: use quartiers, grands-quartiers or communes"
            ));
        };
        let window_s = config.f64_or("window_s", 300.0)?;
        let lateness_s = config.f64_or("lateness_s", 60.0)?;
        if window_s <= 0.0 || lateness_s < 0.0 {
            return Err("config `window_s` must be > 0 and `lateness_s` >= 0".into());
        }
        self.window_ms = (window_s * 1000.0) as i64;
        self.windows.configure(self.window_ms, (lateness_s * 1000.0) as i64);
        self.index = Some(QuartierIndex::from_geojson(geojson)?);
        self.polygons = polygons.to_owned();
        self.fault_value = config.get_f64("fault_value")?;
        self.placements.clear();
        Ok(())
    }

    fn on_reading(&mut self, reading: &Reading<'_>, out: &mut Output) -> Result<(), String> {
        if self.fault_value == Some(reading.value()) {
            panic!("fault injected: reading {} has the configured fault_value", reading.value());
        }
        let slot = self.place(reading);
        self.windows.add(slot, reading.time(), reading.value());
        if self.windows.may_close() {
            let closed = self.windows.advance(None);
            self.publish(closed, out);
        }
        Ok(())
    }

    fn on_tick(&mut self, now: i64, out: &mut Output) -> Result<(), String> {
        let closed = self.windows.advance(Some(now));
        self.publish(closed, out);
        metric("open_aggregates", self.windows.open_aggregates() as f64);
        Ok(())
    }
}

impl AvgQuartier {
    /// The window slot of a reading's sensor, from the cache unless the sensor is new or moved.
    fn place(&mut self, reading: &Reading<'_>) -> Slot {
        let sensor = reading.sensor();
        let index = reading.sensor_index() as usize;
        if let Some(Some(placement)) = self.placements.get(index)
            && placement.position == sensor.position
        {
            return placement.slot;
        }
        let kind = match self.kinds.iter().position(|(kind, _)| *kind == sensor.kind) {
            Some(kind) => kind,
            None => {
                self.kinds.push((sensor.kind.clone(), sensor.unit.clone()));
                self.kinds.len() - 1
            }
        };
        let quartier = self.index.as_ref().and_then(|index| {
            let position = sensor.position?;
            index.locate(position.lat, position.lon)
        });
        // One line per station, not per sensor (a station has several sensors).
        let first_of_station = !self.placements.iter().flatten().any(|p| p.position == sensor.position);
        if quartier.is_none() && first_of_station {
            log::info(&format!(
                "sensor {} is in no polygon of `{}`: counted as unassigned",
                sensor.id, self.polygons
            ));
        }
        let slot = self.windows.slot(group(quartier, kind));
        let placement = Placement { position: sensor.position, slot };
        if self.placements.len() <= index {
            self.placements.resize(index + 1, None);
        }
        self.placements[index] = Some(placement);
        placement.slot
    }

    fn publish(&self, closed: Vec<Closed>, out: &mut Output) {
        for window in &closed {
            self.publish_window(window, out);
        }
    }

    /// A closed window's message, as a point of its group's series: the strings of a message
    /// (topic, quartier, kind, unit, field names, tags) cross the sandbox once per group.
    fn publish_window(&self, window: &Closed, out: &mut Output) {
        let (quartier, kind) = ungroup(window.group);
        let Some((kind, unit)) = self.kinds.get(kind) else { return };
        let aggregate = &window.aggregate;
        let count = aggregate.count as f64;
        let (late, start, length) = (window.late as f64, window.start as f64, self.window_ms as f64 / 1000.0);
        let Some(quartier) = quartier else {
            out.point(window.group, count, window.end, &[count, late, start, length], || {
                Series::new(format!("unassigned/{kind}"), "unassigned", kind, "readings")
                    .fields(&["count", "late", "window_start", "window_s"])
                    .tag("polygons", &self.polygons)
            });
            return;
        };
        let Some(quartier) = self.index.as_ref().and_then(|index| index.quartiers().get(quartier)) else {
            return;
        };
        let mean = aggregate.mean();
        let fields = [mean, aggregate.min, aggregate.max, count, late, start, length];
        out.point(window.group, mean, window.end, &fields, || {
            Series::new(format!("quartiers/{}/{kind}", quartier.id), &quartier.id, kind, unit)
                .position(quartier.centroid.map(|(lat, lon)| Position { lat, lon }))
                .fields(&["mean", "min", "max", "count", "late", "window_start", "window_s"])
                .tag("quartier", &quartier.name)
                .tag("polygons", &self.polygons)
        });
    }
}

garonne_sdk::export_processor!(AvgQuartier);
