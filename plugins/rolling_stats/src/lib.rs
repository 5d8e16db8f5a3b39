//! Rolling mean, min and max of each sensor over a sliding window of event time.
//!
//! Config: `window_s` (default 300). For each reading, publishes on `stats/{kind}/{sensor_id}`
//! the mean (as the value) and the fields `mean`, `min`, `max`, `count` and `window_s` of the
//! readings of that sensor in `(time - window_s, time]`.
//!
//! Readings may arrive out of order: the window keeps them sorted by time. A reading older than
//! the window of the newest reading of its sensor is counted in no window and changes nothing.

use std::collections::{BTreeMap, VecDeque};

use garonne_sdk::{Config, Message, Output, Processor, Reading};
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize)]
struct RollingStats {
    /// Per sensor index: (time, value), sorted by time.
    windows: BTreeMap<u32, VecDeque<(i64, f64)>>,
    #[serde(skip)]
    window_ms: i64,
}

impl Processor for RollingStats {
    fn init(&mut self, config: &Config) -> Result<(), String> {
        let window_s = config.f64_or("window_s", 300.0)?;
        if window_s <= 0.0 {
            return Err(format!("config `window_s` must be > 0, not {window_s}"));
        }
        self.window_ms = (window_s * 1000.0) as i64;
        Ok(())
    }

    fn on_reading(&mut self, reading: &Reading<'_>, out: &mut Output) -> Result<(), String> {
        let window = self.windows.entry(reading.sensor_index()).or_default();
        let newest = window.back().map_or(reading.time(), |&(t, _)| t.max(reading.time()));
        if reading.time() <= newest - self.window_ms {
            return Ok(()); // too old for any window
        }
        let at = window.partition_point(|&(t, _)| t <= reading.time());
        window.insert(at, (reading.time(), reading.value()));
        while window.front().is_some_and(|&(t, _)| t <= newest - self.window_ms) {
            window.pop_front();
        }

        let (mut sum, mut min, mut max) = (0.0, f64::INFINITY, f64::NEG_INFINITY);
        for &(_, value) in window.iter() {
            sum += value;
            min = min.min(value);
            max = max.max(value);
        }
        let mean = sum / window.len() as f64;
        let sensor = reading.sensor();
        let message = Message::new(
            format!("stats/{}/{}", sensor.kind, sensor.id),
            &sensor.id,
            &sensor.kind,
            mean,
            &sensor.unit,
            reading.time(),
        )
        .position(sensor.position)
        .field("mean", mean)
        .field("min", min)
        .field("max", max)
        .field("count", window.len() as f64)
        .field("window_s", self.window_ms as f64 / 1000.0)
        .tags(&sensor.tags);
        out.emit(message);
        Ok(())
    }
}

garonne_sdk::export_processor!(RollingStats);
