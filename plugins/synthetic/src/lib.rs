//! A deliberately simple weather model, to show how small a sensor model can be: a daily
//! temperature cycle plus noise, and a humidity that falls as the temperature rises.
//!
//! Config: `base` (°C, default 12), `amplitude` (°C, default 6), `noise` (default 0.5: the
//! largest random offset added to each value, in °C or %).
//!
//! Each station gets two sensors, `temperature` (°C) and `humidity` (%), with the station's id
//! and position and a `station_name` tag. Each tick gives one reading per sensor, at the tick's
//! time, rounded to 0.1:
//! - temperature = base + amplitude × sin(2π (hour of day − 9) / 24) + noise;
//! - humidity = 70 − 2 × (temperature − 12) + noise, within 0..100.
//!
//! The noise comes from the host's seeded generator, so a run with the same seed is the same.

use garonne_sdk::{Batch, Config, Sensor, SensorModel, Station, random_f64};
use serde::{Deserialize, Serialize};

const HOUR_MS: i64 = 3_600_000;

#[derive(Default, Serialize, Deserialize)]
struct Synthetic {
    /// Ticks so far: the state worth keeping across a restart.
    ticks: u64,
    /// The rest comes from the configuration and the stations: `init` sets it again after a
    /// restore.
    #[serde(skip)]
    stations: usize,
    #[serde(skip)]
    base: f64,
    #[serde(skip)]
    amplitude: f64,
    #[serde(skip)]
    noise: f64,
}

impl SensorModel for Synthetic {
    fn init(&mut self, config: &Config, stations: &[Station]) -> Result<Vec<Sensor>, String> {
        self.base = config.f64_or("base", 12.0)?;
        self.amplitude = config.f64_or("amplitude", 6.0)?;
        self.noise = config.f64_or("noise", 0.5)?;
        self.stations = stations.len();
        // Sensor 2i is the temperature of station i, sensor 2i + 1 its humidity.
        let mut sensors = Vec::with_capacity(2 * stations.len());
        for station in stations {
            for (kind, unit) in [("temperature", "°C"), ("humidity", "%")] {
                sensors.push(Sensor {
                    id: station.id.clone(),
                    kind: kind.into(),
                    unit: unit.into(),
                    position: Some(station.position),
                    tags: vec![("station_name".into(), station.name.clone())],
                });
            }
        }
        Ok(sensors)
    }

    fn tick(&mut self, now: i64, out: &mut Batch) -> Result<(), String> {
        self.ticks += 1;
        let hour = now.rem_euclid(24 * HOUR_MS) as f64 / HOUR_MS as f64;
        // Coldest at 3 h, warmest at 15 h (UTC: close enough for Toulouse in a demo).
        let daily = (std::f64::consts::TAU * (hour - 9.0) / 24.0).sin();
        for station in 0..self.stations as u32 {
            let temperature = self.base + self.amplitude * daily + self.noise();
            let humidity = (70.0 - 2.0 * (temperature - 12.0) + self.noise()).clamp(0.0, 100.0);
            out.push(2 * station, round(temperature), now);
            out.push(2 * station + 1, round(humidity), now);
        }
        Ok(())
    }
}

impl Synthetic {
    /// A random offset in [-noise, noise).
    fn noise(&self) -> f64 {
        self.noise * (2.0 * random_f64() - 1.0)
    }
}

/// To one decimal: the digits past it would be noise anyway.
fn round(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

garonne_sdk::export_sensor_model!(Synthetic);
