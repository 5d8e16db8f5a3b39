//! A deliberately simple weather model: a daily temperature cycle plus noise, and a humidity
//! that falls as the temperature rises. The full Toulouse weather model is `weather`; this one
//! exists to show how small a sensor model can be.
//!
//! Config: `base` (°C, default 12), `amplitude` (°C, default 6), `noise` (°C, default 0.5).

use garonne_sdk::{Batch, Config, Sensor, SensorModel, Station, random_f64};
use serde::{Deserialize, Serialize};

const HOUR_MS: i64 = 3_600_000;

#[derive(Default, Serialize, Deserialize)]
struct Synthetic {
    /// Ticks so far: the state worth keeping across a restart.
    ticks: u64,
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
        let hour = (now.rem_euclid(24 * HOUR_MS)) as f64 / HOUR_MS as f64;
        // Coldest at 3 h, warmest at 15 h (UTC, close enough for Toulouse in a demo).
        let daily = (std::f64::consts::TAU * (hour - 9.0) / 24.0).sin();
        for station in 0..self.stations {
            let temperature = self.base + self.amplitude * daily + self.noise * (2.0 * random_f64() - 1.0);
            let humidity =
                (70.0 - 2.0 * (temperature - 12.0) + 2.0 * (2.0 * random_f64() - 1.0)).clamp(0.0, 100.0);
            let index = 2 * station as u32;
            out.push(index, round(temperature), now);
            out.push(index + 1, round(humidity), now);
        }
        Ok(())
    }
}

fn round(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

garonne_sdk::export_sensor_model!(Synthetic);
