//! Keeps impossible readings away from the averages: out of the physical range of their kind,
//! or from a sensor that keeps repeating the same value (frozen).
//!
//! The real Toulouse Métropole feed has such a record: station 42 on 2025-11-25 at 07:00 UTC
//! reported −50 °C, 0 % humidity and 90 000 Pa at once, a raw zero plus an offset. The default
//! ranges below reject all three.
//!
//! Config:
//! - `min.{kind}` / `max.{kind}`: the accepted range of a kind, inclusive (defaults below for
//!   temperature, humidity, pressure, rain, wind, gusts and the air pollutants);
//! - `frozen_count`: this many identical values in a row from one sensor mark it frozen
//!   (default 12, i.e. three hours of quarter-hourly readings; 0 turns the check off);
//! - `frozen_kinds`: the kinds checked for it, comma-separated (default `temperature`: rain
//!   stays at 0 for days, bike counts at night, and whole-percent humidity or pressure in
//!   steps of 100 Pa can repeat for hours, as the real feed shows);
//! - `action`: `drop` (default) publishes accepted readings only; `flag` publishes every reading
//!   with a `quality` tag.
//!
//! Output: accepted readings on `clean/{kind}/{sensor_id}` (ready for `avg_quartier` to read
//! `toulouse/clean/#`), rejected ones on `rejected/{kind}/{sensor_id}` with a `reason` tag.
//!
//! Metrics (WIT 0.2.0's `host.metric`, updated at each tick): `accepted`, `out_of_range` and
//! `frozen`, the readings of each verdict since the pipeline started.

use std::collections::BTreeMap;

use garonne_sdk::{Config, Message, Output, Processor, Reading, Series, metric};
use serde::{Deserialize, Serialize};

/// Physical ranges for Toulouse, in the units of the source data.
const DEFAULT_RANGES: [(&str, f64, f64); 10] = [
    ("temperature", -30.0, 50.0),      // °C, well beyond the local records
    ("humidity", 1.0, 100.0),          // %; 0 % does not happen outdoors
    ("pressure", 95_000.0, 105_000.0), // Pa at 100–300 m of altitude
    ("rain", 0.0, 200.0),              // mm per reading
    ("wind_speed", 0.0, 200.0),        // km/h
    ("wind_gust", 0.0, 250.0),         // km/h
    ("no2", 0.0, 1_000.0),             // µg/m³
    ("pm10", 0.0, 1_000.0),
    ("pm2_5", 0.0, 1_000.0),
    ("o3", 0.0, 1_000.0),
];

/// Readings seen, by verdict.
#[derive(Default, Serialize, Deserialize)]
struct Verdicts {
    accepted: u64,
    out_of_range: u64,
    frozen: u64,
}

#[derive(Default, Serialize, Deserialize)]
struct QualityFilter {
    /// By sensor index: the last value and how many times in a row it came.
    repeats: BTreeMap<u32, (f64, u32)>,
    /// `default`: the state of a build without counters still restores (hot swap).
    #[serde(default)]
    counts: Verdicts,
    #[serde(skip)]
    ranges: BTreeMap<String, (f64, f64)>,
    #[serde(skip)]
    frozen_count: u32,
    #[serde(skip)]
    frozen_kinds: Vec<String>,
    #[serde(skip)]
    flag_only: bool,
}

impl Processor for QualityFilter {
    fn init(&mut self, config: &Config) -> Result<(), String> {
        self.ranges = DEFAULT_RANGES.iter().map(|&(kind, min, max)| (kind.to_owned(), (min, max))).collect();
        for (key, _) in config.pairs() {
            let Some((bound, kind)) = key.split_once('.') else { continue };
            if !matches!(bound, "min" | "max") {
                return Err(format!("unknown config key `{key}`: use min.KIND or max.KIND"));
            }
            let value = config.get_f64(key)?.unwrap_or(f64::NAN);
            let range = self.ranges.entry(kind.to_owned()).or_insert((f64::NEG_INFINITY, f64::INFINITY));
            match bound {
                "min" => range.0 = value,
                "max" => range.1 = value,
                _ => return Err(format!("unknown config key `{key}`: use min.KIND or max.KIND")),
            }
        }
        self.frozen_count = u32::try_from(config.u64_or("frozen_count", 12)?).unwrap_or(u32::MAX);
        let kinds = config.str_or("frozen_kinds", "temperature");
        self.frozen_kinds = kinds.split(',').map(|k| k.trim().to_owned()).filter(|k| !k.is_empty()).collect();
        self.flag_only = match config.str_or("action", "drop") {
            "drop" => false,
            "flag" => true,
            other => return Err(format!("config `action` is {other:?}: use drop or flag")),
        };
        Ok(())
    }

    fn on_reading(&mut self, reading: &Reading<'_>, out: &mut Output) -> Result<(), String> {
        let problem = self.problem(reading);
        let sensor = reading.sensor();
        let (folder, quality) = match (&problem, self.flag_only) {
            (None, _) => ("clean", "ok"),
            (Some(_), true) => ("clean", "bad"),
            (Some(_), false) => ("rejected", "bad"),
        };
        let topic = || format!("{folder}/{}/{}", sensor.kind, sensor.id);
        match &problem {
            // The common case, a reading passed on as it came: a point of the sensor's series,
            // whose strings cross the sandbox once rather than with every reading.
            None => {
                out.point(u64::from(reading.sensor_index()), reading.value(), reading.time(), &[], || {
                    Series::about(topic(), reading).tag("quality", quality)
                })
            }
            Some(reason) => {
                out.emit(Message::about(topic(), reading).tag("quality", quality).tag("reason", reason))
            }
        }
        Ok(())
    }

    fn on_tick(&mut self, _now: i64, _out: &mut Output) -> Result<(), String> {
        metric("accepted", self.counts.accepted as f64);
        metric("out_of_range", self.counts.out_of_range as f64);
        metric("frozen", self.counts.frozen as f64);
        Ok(())
    }
}

impl QualityFilter {
    /// Why a reading is not to be trusted, if it is not.
    fn problem(&mut self, reading: &Reading<'_>) -> Option<String> {
        let value = reading.value();
        let checked = self.frozen_kinds.iter().any(|k| *k == reading.sensor().kind);
        let frozen = checked && self.count_repeats(reading.sensor_index(), value);
        if let Some(&(min, max)) = self.ranges.get(&reading.sensor().kind)
            && !(min..=max).contains(&value)
        {
            self.counts.out_of_range += 1;
            return Some(format!("out of range [{min}, {max}]"));
        }
        if frozen {
            self.counts.frozen += 1;
            return Some(format!("frozen: the same value {} times in a row", self.frozen_count));
        }
        self.counts.accepted += 1;
        None
    }

    /// Counts identical values in a row; true once the sensor looks frozen.
    fn count_repeats(&mut self, sensor: u32, value: f64) -> bool {
        let entry = self.repeats.entry(sensor).or_insert((value, 0));
        if entry.0 == value {
            entry.1 = entry.1.saturating_add(1);
        } else {
            *entry = (value, 1);
        }
        self.frozen_count > 0 && entry.1 >= self.frozen_count
    }
}

garonne_sdk::export_processor!(QualityFilter);
