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

pub mod index;
pub mod windows;

use std::collections::BTreeMap;

use garonne_sdk::{Config, Message, Output, Position, Processor, Reading, log};
use serde::{Deserialize, Serialize};

use index::QuartierIndex;
use windows::{Closed, TumblingWindows};

/// The polygon sets, embedded at build time from `data/geo/` (a plugin has no file access).
const POLYGON_SETS: [(&str, &str); 3] = [
    ("quartiers", include_str!("../../../data/geo/quartiers.geojson")),
    ("grands-quartiers", include_str!("../../../data/geo/grands-quartiers.geojson")),
    ("communes", include_str!("../../../data/geo/communes.geojson")),
];

/// Group key of readings in no polygon.
const UNASSIGNED: &str = "";

#[derive(Default, Serialize, Deserialize)]
pub struct AvgQuartier {
    windows: TumblingWindows,
    /// Unit of each kind, as its sensors report it.
    units: BTreeMap<String, String>,
    #[serde(skip)]
    index: Option<QuartierIndex>,
    #[serde(skip)]
    polygons: String,
    #[serde(skip)]
    window_ms: i64,
    #[serde(skip)]
    fault_value: Option<f64>,
    /// Per sensor index: the quartier found for its position (computed once per sensor).
    #[serde(skip)]
    located: BTreeMap<u32, (Option<Position>, Option<usize>)>,
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
        self.located.clear();
        Ok(())
    }

    fn on_reading(&mut self, reading: &Reading<'_>, out: &mut Output) -> Result<(), String> {
        if self.fault_value == Some(reading.value()) {
            panic!("fault injected: reading {} has the configured fault_value", reading.value());
        }
        let sensor = reading.sensor();
        let quartier = self.quartier_of(reading.sensor_index(), sensor.position, &sensor.id);
        let group = group_key(quartier.map(|q| self.quartier_id(q)).unwrap_or(UNASSIGNED), &sensor.kind);
        self.units.entry(sensor.kind.clone()).or_insert_with(|| sensor.unit.clone());
        self.windows.add(&group, reading.time(), reading.value());
        let closed = self.windows.advance(None);
        self.publish(closed, out);
        Ok(())
    }

    fn on_tick(&mut self, now: i64, out: &mut Output) -> Result<(), String> {
        let closed = self.windows.advance(Some(now));
        self.publish(closed, out);
        Ok(())
    }
}

impl AvgQuartier {
    fn quartier_of(&mut self, sensor: u32, position: Option<Position>, id: &str) -> Option<usize> {
        if let Some((known, quartier)) = self.located.get(&sensor)
            && *known == position
        {
            return *quartier;
        }
        let index = self.index.as_ref()?;
        let quartier = position.and_then(|p| index.locate(p.lat, p.lon));
        // One line per station, not per sensor (a station has several sensors).
        let first_of_station = !self.located.values().any(|(p, _)| *p == position);
        if quartier.is_none() && first_of_station {
            log::info(&format!("sensor {id} is in no polygon of `{}`: counted as unassigned", self.polygons));
        }
        self.located.insert(sensor, (position, quartier));
        quartier
    }

    fn quartier_id(&self, quartier: usize) -> &str {
        self.index.as_ref().map_or("", |index| index.quartiers()[quartier].id.as_str())
    }

    fn publish(&self, closed: Vec<Closed>, out: &mut Output) {
        for window in closed {
            if let Some(message) = self.message(&window) {
                out.emit(message);
            }
        }
    }

    fn message(&self, window: &Closed) -> Option<Message> {
        let (quartier_id, kind) = window.group.split_once('\t')?;
        let unit = self.units.get(kind).map_or("", String::as_str);
        let aggregate = &window.aggregate;
        let common = |message: Message| {
            message
                .field("count", aggregate.count as f64)
                .field("late", window.late as f64)
                .field("window_start", window.start as f64)
                .field("window_s", self.window_ms as f64 / 1000.0)
                .tag("polygons", &self.polygons)
        };
        if quartier_id == UNASSIGNED {
            let topic = format!("unassigned/{kind}");
            let count = aggregate.count as f64;
            return Some(common(Message::new(topic, "unassigned", kind, count, "readings", window.end)));
        }
        let quartier = self.index.as_ref()?.quartiers().iter().find(|q| q.id == quartier_id)?;
        let topic = format!("quartiers/{quartier_id}/{kind}");
        let mean = aggregate.mean();
        let message = Message::new(topic, quartier_id, kind, mean, unit, window.end)
            .position(quartier.centroid.map(|(lat, lon)| Position { lat, lon }))
            .field("mean", mean)
            .field("min", aggregate.min)
            .field("max", aggregate.max)
            .tag("quartier", &quartier.name);
        Some(common(message))
    }
}

fn group_key(quartier_id: &str, kind: &str) -> String {
    format!("{quartier_id}\t{kind}")
}

garonne_sdk::export_processor!(AvgQuartier);
