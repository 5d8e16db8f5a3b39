//! A bike-sharing model over the 279 Vélô Toulouse stations (`data/stations/bikes.json`): commuters
//! fill the centre and the campuses in the morning and the residential districts in the evening.
//!
//! # Sensors
//!
//! Each station gets two sensors with the station's id (`velo-55`), position and a
//! `station_name` tag: `bikes_available` (unit `bikes`) and `docks_free` (unit `docks`), whole
//! numbers that always add up to the station's `capacity` attribute (20 when it has none). Every
//! tick gives one reading per sensor at the tick's time.
//!
//! # Model
//!
//! Each station belongs to a zone, from its position:
//! - **centre**: within `centre_radius_m` (default 1 500 m) of the Capitole (43.6045° N,
//!   1.4440° E), which holds most offices, shops and the Toulouse Capitole university;
//! - **campus**: within `campus_radius_m` (default 800 m) of the Rangueil scientific campus
//!   (Université Paul Sabatier, INSA, ISAE-SUPAERO, ENAC: about 43.5650° N, 1.4690° E) or of the
//!   Mirail campus (Université Toulouse Jean Jaurès: about 43.5786° N, 1.4031° E);
//! - **residential**: elsewhere.
//!
//! Each zone has a target share of full docks through the day (Paris local time): on working days
//! the centre and the campuses go from 40 % at night to 80 % (campuses 85 %) by day, with the
//! morning rise centred on 8 h and the evening fall on 18 h, and the residential stations the
//! other way round (65 % at night, 30 % by day); at weekends the centre goes from 45 % to only
//! 60 % between 11 h and 19 h, and the campuses and residential stations from 55 % to 45 %.
//!
//! At each tick, over the `dt` hours since the previous one, a station sees
//! - random trips both ways: arrivals and departures, each a Poisson draw of mean
//!   `activity` × capacity × dt × (1.5 at the 8 h and 18 h rush hours, 1 by day, 0.1 at night);
//! - the commute: a further Poisson number of arrivals (or departures) of mean
//!   capacity × |target − share| × (1 − e^(−dt / `relax_h`)), which pulls the station towards its
//!   target over `relax_h` hours;
//!
//! and its bikes stay within 0..capacity (a rider finds no bike at an empty station, no dock at
//! a full one). Stations are simulated independently: the bikes leaving one do not arrive at
//! another, so the network's total is only roughly steady (the zones' targets balance out), and
//! there are no rebalancing trucks. The first tick starts each station near its target (± 15 %
//! of its capacity). The bikes at each station and the time of the previous tick are the state
//! kept in snapshots.
//!
//! # Configuration
//!
//! - `activity` (trips per dock per hour each way, default 0.05);
//! - `relax_h` (hours, default 1.5): how fast the commute fills and empties stations;
//! - `centre_radius_m` (default 1 500) and `campus_radius_m` (default 800).
//!
//! # Sources of the numbers
//!
//! - Stations, names and positions: JCDecaux's static list of the Vélô Toulouse stations (2017,
//!   Licence Ouverte, unverified), through `data/prepare.py`. **The capacities are synthetic**:
//!   the list has none, so `prepare.py` draws 15 to 40 docks per station from a hash of its
//!   number.
//! - Position of the Capitole: about 43.6045° N, 1.4440° E; of the campuses: approximate centres
//!   (to a few hundred metres) from our general knowledge of the city, not from a dataset.
//! - Target shares, trip rates and rush-hour times: our rough estimates of a commuting pattern,
//!   not fitted to Vélô Toulouse availability data (none is in `data/`).
//!
//! Randomness comes only from the host's seeded generator (`garonne_sdk::random_f64`), so the
//! same seed gives the same readings.

// The same file in the three sensor models; this one does not need every helper.
#[allow(dead_code)]
use garonne_sdk::{Batch, Config, Position, Sensor, SensorModel, Station, random_f64};
use serde::{Deserialize, Serialize};

use garonne_sdk::calendar::{HOUR_MS, Moment};

const CAPITOLE: Position = Position { lat: 43.6045, lon: 1.4440 };
const CAMPUSES: [Position; 2] = [
    // Rangueil: Université Paul Sabatier, INSA, ISAE-SUPAERO, ENAC.
    Position { lat: 43.5650, lon: 1.4690 },
    // Mirail: Université Toulouse Jean Jaurès.
    Position { lat: 43.5786, lon: 1.4031 },
];
/// Capacity of a station without a `capacity` attribute.
const DEFAULT_CAPACITY: u32 = 20;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Zone {
    Centre,
    Campus,
    Residential,
}

#[derive(Default, Serialize, Deserialize)]
struct Bikes {
    /// Time of the previous tick, ms; none before the first.
    last_time: Option<i64>,
    /// Bikes docked at each station, in station order; empty until the first tick.
    bikes: Vec<u32>,
    /// From the configuration and the stations: `init` sets them again after a restore.
    #[serde(skip)]
    settings: Settings,
    #[serde(skip)]
    docks: Vec<Dock>,
}

#[derive(Default)]
struct Settings {
    activity: f64,
    relax_h: f64,
}

struct Dock {
    capacity: u32,
    zone: Zone,
}

impl SensorModel for Bikes {
    fn init(&mut self, config: &Config, stations: &[Station]) -> Result<Vec<Sensor>, String> {
        self.settings =
            Settings { activity: config.f64_or("activity", 0.05)?, relax_h: config.f64_or("relax_h", 1.5)? };
        let centre_radius = config.f64_or("centre_radius_m", 1_500.0)?;
        let campus_radius = config.f64_or("campus_radius_m", 800.0)?;
        if self.settings.activity < 0.0 {
            return Err(format!("config `activity` must be 0 or more, not {}", self.settings.activity));
        }
        if self.settings.relax_h <= 0.0 {
            return Err(format!("config `relax_h` must be more than 0, not {}", self.settings.relax_h));
        }

        let mut sensors = Vec::with_capacity(2 * stations.len());
        self.docks = Vec::with_capacity(stations.len());
        for station in stations {
            let capacity = match station.attribute("capacity") {
                None => DEFAULT_CAPACITY,
                Some(text) => text.trim().parse().ok().filter(|c| *c > 0).ok_or_else(|| {
                    format!("station {}: `capacity` must be a whole number above 0, not {text:?}", station.id)
                })?,
            };
            let zone = if distance_m(station.position, CAPITOLE) <= centre_radius {
                Zone::Centre
            } else if CAMPUSES.iter().any(|c| distance_m(station.position, *c) <= campus_radius) {
                Zone::Campus
            } else {
                Zone::Residential
            };
            self.docks.push(Dock { capacity, zone });
            for (kind, unit) in [("bikes_available", "bikes"), ("docks_free", "docks")] {
                sensors.push(Sensor {
                    id: station.id.clone(),
                    kind: kind.into(),
                    unit: unit.into(),
                    position: Some(station.position),
                    tags: vec![("station_name".into(), station.name.clone())],
                });
            }
        }
        // A snapshot of other stations: start afresh at the next tick.
        if self.bikes.len() != stations.len() {
            self.bikes.clear();
        }
        Ok(sensors)
    }

    fn tick(&mut self, now: i64, out: &mut Batch) -> Result<(), String> {
        self.step(now, |sensor, value| out.push(sensor, value, now));
        Ok(())
    }
}

impl Bikes {
    /// Computes the readings at `now` and hands them to `push` (sensor index, value).
    fn step(&mut self, now: i64, mut push: impl FnMut(u32, f64)) {
        let local = garonne_sdk::calendar::paris(now);
        if self.bikes.len() != self.docks.len() {
            // The first tick: every station near its target.
            self.bikes = self
                .docks
                .iter()
                .map(|dock| {
                    let capacity = f64::from(dock.capacity);
                    let share = target(dock.zone, &local) + 0.3 * (random_f64() - 0.5);
                    (share * capacity).round().clamp(0.0, capacity) as u32
                })
                .collect();
        } else {
            let dt = match self.last_time {
                Some(last) => ((now - last) as f64 / HOUR_MS as f64).clamp(0.0, 24.0),
                None => 0.0,
            };
            let churn = self.settings.activity * activity(&local) * dt;
            let pull = 1.0 - (-dt / self.settings.relax_h).exp();
            for (dock, bikes) in self.docks.iter().zip(self.bikes.iter_mut()) {
                let capacity = f64::from(dock.capacity);
                let gap = target(dock.zone, &local) * capacity - f64::from(*bikes);
                let commute = gap.abs() * pull;
                let (inflow, outflow) = if gap > 0.0 { (commute, 0.0) } else { (0.0, commute) };
                let arrivals = poisson(churn * capacity + inflow);
                let departures = poisson(churn * capacity + outflow);
                *bikes = (f64::from(*bikes) + arrivals - departures).clamp(0.0, capacity) as u32;
            }
        }
        self.last_time = Some(now);
        for (i, (dock, bikes)) in self.docks.iter().zip(&self.bikes).enumerate() {
            push(2 * i as u32, f64::from(*bikes));
            push(2 * i as u32 + 1, f64::from(dock.capacity - bikes));
        }
    }
}

/// The target share of full docks of a zone at a local time.
fn target(zone: Zone, local: &Moment) -> f64 {
    let h = local.hour;
    let (night, day, rise, fall) = match (zone, local.is_weekend()) {
        (Zone::Centre, false) => (0.4, 0.8, 8.0, 18.0),
        (Zone::Campus, false) => (0.4, 0.85, 8.0, 18.0),
        (Zone::Residential, false) => (0.65, 0.3, 8.0, 18.0),
        (Zone::Centre, true) => (0.45, 0.6, 11.0, 19.0),
        (_, true) => (0.55, 0.45, 11.0, 19.0),
    };
    night + (day - night) * sigmoid((h - rise) / 0.5) * (1.0 - sigmoid((h - fall) / 0.6))
}

/// How busy the network is at a local time: 1.5 at the working-day rush hours, 1 by day, 0.1 at
/// night.
fn activity(local: &Moment) -> f64 {
    let h = local.hour;
    let day = 0.1 + 0.9 * sigmoid((h - 6.5) / 0.5) * (1.0 - sigmoid((h - 22.0) / 0.7));
    if local.is_weekend() {
        day
    } else {
        let rush = |centre: f64| (-0.5 * ((h - centre) / 0.8).powi(2)).exp();
        day + 0.5 * (rush(8.0) + rush(18.0))
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// A Poisson draw of mean `mean`: by Knuth's product of uniforms up to 30, by a rounded normal
/// approximation above.
fn poisson(mean: f64) -> f64 {
    if mean <= 0.0 {
        return 0.0;
    }
    if mean > 30.0 {
        let z = (random_f64() + random_f64() + random_f64() - 1.5) * 2.0;
        return (mean + mean.sqrt() * z).round().max(0.0);
    }
    let limit = (-mean).exp();
    let mut product = random_f64();
    let mut count = 0.0;
    while product > limit {
        product *= random_f64();
        count += 1.0;
    }
    count
}

/// Distance between two nearby points, m (equirectangular: plenty within a city).
fn distance_m(a: Position, b: Position) -> f64 {
    let metres_per_degree = 111_195.0;
    let north = (a.lat - b.lat) * metres_per_degree;
    let east = (a.lon - b.lon) * metres_per_degree * ((a.lat + b.lat) / 2.0).to_radians().cos();
    north.hypot(east)
}

garonne_sdk::export_sensor_model!(Bikes);

// Native only: the tests seed the SDK's native generator, which a wasm build does not have.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
