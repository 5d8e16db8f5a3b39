//! An air-quality model of Toulouse over the Atmo Occitanie stations of the Toulouse area
//! (`data/stations/air.json`): each station's measured monthly means, a daily and weekly cycle by
//! pollutant and station influence, and pollution episodes.
//!
//! # Sensors
//!
//! Each station gets one sensor per pollutant of its `pollutants` attribute (`NO2`, `PM10`,
//! `PM2.5`, `O3`), of kind `no2`, `pm10`, `pm2_5` or `o3`, unit `µg/m³`, with the station's id
//! and position and a `station_name` tag. Every tick gives one reading per sensor at the tick's
//! time, in µg/m³ to 0.1, never negative. Another pollutant in the list is skipped with a warning.
//!
//! # Model
//!
//! value = base(month) × daily(hour, weekday) × weekly(weekday) × episode × noise × `level_scale`
//!
//! - **base**: the station's validated monthly means of 2018 (`monthly_<p>`; a month missing
//!   from the data, such as every January, is interpolated between its neighbours), followed
//!   smoothly through the year so that each month keeps its mean; a station with an annual mean
//!   only (`mean_<p>`) gets it all year.
//! - **daily** (Paris local time), each profile of mean 1 over the day:
//!   - NO2 at a traffic station (`influence` = `Trafic`): rush-hour peaks at 8 h and 18 h about
//!     three times the night level on working days; at weekends a late-morning and an evening
//!     bump only;
//!   - NO2 elsewhere: smaller peaks at 8 h and 20 h (the evening one helped by the shallow
//!     night-time boundary layer);
//!   - PM10 and PM2.5: weaker peaks, at 8 h and 19 h at traffic stations, a morning and an
//!     evening (21 h) bump elsewhere;
//!   - O3: a maximum at 15 h and a minimum at night, of amplitude ±30 % in winter to ±60 % in
//!     summer (photochemistry needs sun), minus a dip at the NO2 rush hours that is deeper where
//!     the station's NO2 mean is higher (titration by traffic NO): O3 is lowest where and when
//!     NO2 is high.
//! - **weekly**: weekend levels relative to working days of 0.70 for NO2 at traffic stations,
//!   0.85 for NO2 elsewhere, 0.92 for particles and 1.05 for O3 (the "weekend effect"), scaled so
//!   that the week keeps the monthly mean.
//! - **episode**: a city-wide log-normal factor shared by NO2 and the particles (σ 0.3 in log
//!   units, time scale 24 h: stagnant days raise every station together) and one for O3 (σ 0.25,
//!   36 h); **noise**: a per-sensor log-normal factor (σ 0.2, 2 h). Both are mean-corrected
//!   (divided by e^(σ²/2)) so that they keep the means; `episode_scale` multiplies the three σ.
//!
//! The episode factors and the per-sensor noise are the state kept in snapshots, with the time of
//! the previous tick; the profiles come from the configuration and the stations.
//!
//! # Configuration
//!
//! - `level_scale` (default 1): multiplies every concentration (a dirtier or a cleaner year);
//! - `episode_scale` (default 1): multiplies the spread of the random factors (0: none at all).
//!
//! # Sources of the numbers
//!
//! - Monthly and annual means per station: Atmo Occitanie, "Mesure mensuelle / annuelle Région
//!   Occitanie Polluants Principaux" (2017–2018, ODbL, licence unverified), through `data/prepare.py`.
//! - Shapes of the daily and weekly cycles (rush hours at 8 h and 18 h, the afternoon ozone
//!   maximum, titration of ozone by NO, the weekend effect) follow the textbook behaviour of urban
//!   pollutants; their amplitudes and the episode statistics are our rough estimates, not fitted
//!   to hourly data (none is in `data/`).
//!
//! Randomness comes only from the host's seeded generator (`garonne_sdk::random_f64`), so the
//! same seed gives the same readings.

// The same file in the three sensor models; this one does not need every helper.
#[allow(dead_code)]
use std::f64::consts::TAU;

use garonne_sdk::{Batch, Config, Sensor, SensorModel, Station, log, random_f64};
use serde::{Deserialize, Serialize};

use garonne_sdk::calendar::{HOUR_MS, Moment, MonthlyProfile};

/// City-background NO2 of Toulouse (µg/m³), for the ozone titration at a station without NO2:
/// about the 2018 means of Jacquier, Mazades and Berthelot (17.6, 15.5, 16.6).
const BACKGROUND_NO2: f64 = 16.6;

/// Random factors: (σ in log units, time scale in hours).
const EPISODE: (f64, f64) = (0.3, 24.0);
const OZONE_EPISODE: (f64, f64) = (0.25, 36.0);
const NOISE: (f64, f64) = (0.2, 2.0);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Pollutant {
    No2,
    Pm10,
    Pm25,
    O3,
}

impl Pollutant {
    /// From the name in the `pollutants` attribute.
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "NO2" => Some(Self::No2),
            "PM10" => Some(Self::Pm10),
            "PM2.5" => Some(Self::Pm25),
            "O3" => Some(Self::O3),
            _ => None,
        }
    }

    /// The sensor kind, which is also the suffix of the station's attributes.
    fn kind(self) -> &'static str {
        match self {
            Self::No2 => "no2",
            Self::Pm10 => "pm10",
            Self::Pm25 => "pm2_5",
            Self::O3 => "o3",
        }
    }
}

#[derive(Default, Serialize, Deserialize)]
struct AirQuality {
    /// Time of the previous tick, ms; none before the first.
    last_time: Option<i64>,
    /// City-wide log-anomaly of NO2 and the particles.
    episode: f64,
    /// City-wide log-anomaly of ozone.
    ozone_episode: f64,
    /// Per sensor: its own log-anomaly.
    noise: Vec<f64>,
    /// From the configuration and the stations: `init` sets them again after a restore.
    #[serde(skip)]
    level_scale: f64,
    #[serde(skip)]
    episode_scale: f64,
    #[serde(skip)]
    sources: Vec<Source>,
}

/// What the model knows of one sensor.
struct Source {
    pollutant: Pollutant,
    traffic: bool,
    base: MonthlyProfile,
    /// Depth of the ozone dip at the NO2 rush hours (O3 only).
    titration: f64,
}

impl SensorModel for AirQuality {
    fn init(&mut self, config: &Config, stations: &[Station]) -> Result<Vec<Sensor>, String> {
        self.level_scale = config.f64_or("level_scale", 1.0)?;
        self.episode_scale = config.f64_or("episode_scale", 1.0)?;
        for (key, value) in [("level_scale", self.level_scale), ("episode_scale", self.episode_scale)] {
            if value < 0.0 {
                return Err(format!("config `{key}` must be 0 or more, not {value}"));
            }
        }
        let mut sensors = Vec::new();
        self.sources.clear();
        for station in stations {
            let traffic = station.attribute("influence") == Some("Trafic");
            let no2 = mean_of(station, "no2")?;
            let names = station.attribute("pollutants").unwrap_or_default();
            for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                let Some(pollutant) = Pollutant::from_name(name) else {
                    log::warn(&format!("station {}: pollutant {name} is not simulated", station.id));
                    continue;
                };
                let means = monthly_means(station, pollutant.kind())?;
                self.sources.push(Source {
                    pollutant,
                    traffic,
                    base: MonthlyProfile::from_means(means.map(|m| m.max(0.0))),
                    titration: 0.1 + 0.15 * (no2.unwrap_or(BACKGROUND_NO2) / 40.0).min(1.0),
                });
                sensors.push(Sensor {
                    id: station.id.clone(),
                    kind: pollutant.kind().into(),
                    unit: "µg/m³".into(),
                    position: Some(station.position),
                    tags: vec![("station_name".into(), station.name.clone())],
                });
            }
        }
        // A fresh start, or a snapshot of other stations: start the per-sensor noise afresh.
        if self.noise.len() != sensors.len() {
            self.noise = vec![0.0; sensors.len()];
        }
        Ok(sensors)
    }

    fn tick(&mut self, now: i64, out: &mut Batch) -> Result<(), String> {
        self.step(now, |sensor, value| out.push(sensor, value, now));
        Ok(())
    }
}

impl AirQuality {
    /// Computes the readings at `now` and hands them to `push` (sensor index, value).
    fn step(&mut self, now: i64, mut push: impl FnMut(u32, f64)) {
        let dt = match self.last_time {
            Some(last) => ((now - last) as f64 / HOUR_MS as f64).clamp(0.0, 24.0 * 7.0),
            None => 0.0,
        };
        self.last_time = Some(now);
        let spread = self.episode_scale;
        self.episode = ar1(self.episode, gaussian(), spread * EPISODE.0, EPISODE.1, dt);
        self.ozone_episode =
            ar1(self.ozone_episode, gaussian(), spread * OZONE_EPISODE.0, OZONE_EPISODE.1, dt);
        let local = garonne_sdk::calendar::paris(now);
        for (index, (source, noise)) in self.sources.iter().zip(self.noise.iter_mut()).enumerate() {
            *noise = ar1(*noise, gaussian(), spread * NOISE.0, NOISE.1, dt);
            let (episode, sigma) = match source.pollutant {
                Pollutant::O3 => (self.ozone_episode, OZONE_EPISODE.0),
                _ => (self.episode, EPISODE.0),
            };
            let variance = spread * spread * (sigma * sigma + NOISE.0 * NOISE.0);
            let random = (episode + *noise - variance / 2.0).exp();
            let value =
                source.base.at(local.month_position) * cycle(source, &local) * random * self.level_scale;
            push(index as u32, ((value * 10.0).round() / 10.0).max(0.0));
        }
    }
}

/// The daily and weekly factor of a source at a local time; its mean over a week is 1.
fn cycle(source: &Source, local: &Moment) -> f64 {
    let (weekend, h) = (local.is_weekend(), local.hour);
    let (shape, weekend_level) = match source.pollutant {
        Pollutant::No2 if source.traffic => (no2_traffic(h, weekend), 0.70),
        Pollutant::No2 => (no2_background(h, weekend), 0.85),
        Pollutant::Pm10 | Pollutant::Pm25 => (particles(h, weekend, source.traffic), 0.92),
        Pollutant::O3 => {
            let summer = (1.0 - (TAU * local.month_position / 12.0).cos()) / 2.0;
            let amplitude = 0.3 + 0.3 * summer;
            let sun = amplitude * (TAU * (h - 15.0) / 24.0).cos();
            let titration = source.titration * (no2_traffic(h, weekend) - 1.0);
            ((1.0 + sun - titration).max(0.05), 1.05)
        }
    };
    shape * week(weekend, weekend_level)
}

/// The working-day (1) and weekend (`weekend_level`) factors, scaled to a weekly mean of 1.
fn week(weekend: bool, weekend_level: f64) -> f64 {
    let mean = (5.0 + 2.0 * weekend_level) / 7.0;
    if weekend { weekend_level / mean } else { 1.0 / mean }
}

/// A bump of height 1 at `centre` h, `width` h wide (a Gaussian on the 24-hour circle).
fn bump(hour: f64, centre: f64, width: f64) -> f64 {
    let distance = (hour - centre + 12.0).rem_euclid(24.0) - 12.0;
    (-0.5 * (distance / width).powi(2)).exp()
}

/// `level + Σ height × bump`, divided by its daily mean so that the day keeps the mean.
fn profile(hour: f64, level: f64, bumps: &[(f64, f64, f64)]) -> f64 {
    // The daily mean of a bump is width × √(2π) / 24 (its tails past ±12 h are negligible).
    let mean = level + bumps.iter().map(|(height, _, width)| height * width * TAU.sqrt() / 24.0).sum::<f64>();
    let value =
        level + bumps.iter().map(|(height, centre, width)| height * bump(hour, *centre, *width)).sum::<f64>();
    value / mean
}

fn no2_traffic(hour: f64, weekend: bool) -> f64 {
    if weekend {
        profile(hour, 0.45, &[(0.35, 11.0, 2.5), (0.45, 19.0, 2.5)])
    } else {
        profile(hour, 0.45, &[(1.0, 8.0, 1.3), (0.8, 18.0, 1.6), (0.35, 13.0, 3.0)])
    }
}

fn no2_background(hour: f64, weekend: bool) -> f64 {
    if weekend {
        profile(hour, 0.6, &[(0.2, 10.0, 2.5), (0.45, 20.0, 3.0)])
    } else {
        profile(hour, 0.6, &[(0.45, 8.0, 1.5), (0.55, 20.0, 2.5)])
    }
}

fn particles(hour: f64, weekend: bool, traffic: bool) -> f64 {
    match (weekend, traffic) {
        (false, true) => profile(hour, 0.8, &[(0.35, 8.0, 1.5), (0.3, 19.0, 2.0)]),
        (false, false) => profile(hour, 0.85, &[(0.15, 8.5, 2.0), (0.3, 21.0, 3.0)]),
        (true, _) => profile(hour, 0.85, &[(0.1, 11.0, 3.0), (0.3, 21.0, 3.0)]),
    }
}

/// A station's annual mean of a pollutant (`mean_no2`), if it has one.
fn mean_of(station: &Station, suffix: &str) -> Result<Option<f64>, String> {
    let key = format!("mean_{suffix}");
    match station.attribute(&key) {
        None | Some("null") => Ok(None),
        Some(text) => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .map(Some)
            .ok_or_else(|| format!("station {}: `{key}` is not a concentration: {text:?}", station.id)),
    }
}

/// The twelve monthly means of a pollutant at a station, from `monthly_<p>`
/// ("2018-02:24.5,2018-03:18.1,..."), the missing months interpolated between the nearest known
/// ones around the year; from `mean_<p>` when there is no monthly data.
fn monthly_means(station: &Station, suffix: &str) -> Result<[f64; 12], String> {
    let key = format!("monthly_{suffix}");
    let mut known: [Option<f64>; 12] = [None; 12];
    let bad = |text: &str| format!("station {}: `{key}` has a bad month {text:?}", station.id);
    for item in station.attribute(&key).unwrap_or_default().split(',').filter(|s| !s.trim().is_empty()) {
        let (date, value) = item.trim().split_once(':').ok_or_else(|| bad(item))?;
        let month: usize = date.split('-').nth(1).and_then(|m| m.parse().ok()).ok_or_else(|| bad(item))?;
        let value: f64 = value.parse().ok().filter(|v: &f64| v.is_finite()).ok_or_else(|| bad(item))?;
        if !(1..=12).contains(&month) {
            return Err(bad(item));
        }
        known[month - 1] = Some(value);
    }
    let months: Vec<usize> = (0..12).filter(|&m| known[m].is_some()).collect();
    if months.is_empty() {
        let mean = mean_of(station, suffix)?
            .ok_or_else(|| format!("station {}: no `{key}` nor `mean_{suffix}`", station.id))?;
        return Ok([mean; 12]);
    }
    let mut means = [0.0; 12];
    for (m, mean) in means.iter_mut().enumerate() {
        *mean = known[m].unwrap_or_else(|| {
            // The nearest known months before and after, around the year.
            let before = (1..12).map(|d| (m + 12 - d) % 12).find(|&b| known[b].is_some()).unwrap_or(m);
            let after = (1..12).map(|d| (m + d) % 12).find(|&a| known[a].is_some()).unwrap_or(m);
            let (gap_before, gap_after) = ((m + 12 - before) % 12, (after + 12 - m) % 12);
            let (vb, va) = (known[before].unwrap_or(0.0), known[after].unwrap_or(0.0));
            if gap_before + gap_after == 0 {
                vb
            } else {
                vb + (va - vb) * gap_before as f64 / (gap_before + gap_after) as f64
            }
        });
    }
    Ok(means)
}

/// One step of a first-order autoregressive process of standard deviation `sigma` and time
/// scale `tau_hours`, over `dt_hours`, driven by the standard normal draw `z`.
fn ar1(value: f64, z: f64, sigma: f64, tau_hours: f64, dt_hours: f64) -> f64 {
    let keep = (-dt_hours / tau_hours).exp();
    value * keep + sigma * (1.0 - keep * keep).sqrt() * z
}

/// A draw of mean 0 and standard deviation 1, close to normal (the sum of three uniform draws:
/// cheap, and never beyond ±3).
fn gaussian() -> f64 {
    (random_f64() + random_f64() + random_f64() - 1.5) * 2.0
}

garonne_sdk::export_sensor_model!(AirQuality);

// Native only: the tests seed the SDK's native generator, which a wasm build does not have.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
