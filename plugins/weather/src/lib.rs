//! A weather model of Toulouse over the Toulouse Métropole weather stations
//! (`data/stations/meteo.json`): seasons, days and nights, weather regimes, rain episodes and the
//! urban heat island, in the units and resolution of the real feed.
//!
//! # Sensors
//!
//! Each station gets sensors with the station's id, position and a `station_name` tag. A full
//! station (`type` = `ISS`, and any station whose type is not `TH`) has six, in this order:
//!
//! | kind | unit | resolution | meaning |
//! |---|---|---|---|
//! | `temperature` | °C | 0.1 | air temperature |
//! | `humidity` | % | 1 | relative humidity, 0–100 |
//! | `pressure` | Pa | 100 | station-level pressure (not reduced to sea level) |
//! | `rain` | mm | 0.2 | rain fallen since the previous reading (a tipping bucket) |
//! | `wind_speed` | km/h | 1 | mean wind |
//! | `wind_gust` | km/h | 1 | strongest gust, never below `wind_speed` |
//!
//! A `TH` station has only `temperature` and `humidity`. Units and resolutions are those of the
//! Toulouse Métropole station datasets (`temperature_en_degre_c`, `humidite`, `pression`, `pluie`,
//! `force_moyenne_du_vecteur_vent`, `force_rafale_max`: `data/README.md` and the records of station
//! 42 in `data/source/`). Every tick gives one reading per sensor at the tick's time.
//!
//! # Model
//!
//! City-wide state, kept in snapshots: a synoptic temperature anomaly, a dew-point anomaly, a
//! pressure anomaly and a wind anomaly (each a first-order autoregressive process, updated for the
//! time since the previous tick so that the tick interval does not change the statistics), and a
//! two-state rain chain (dry / raining, with the rain rate of the current episode). Per station,
//! also kept: a slow temperature noise and the rain bucket's remainder below one 0.2 mm tip.
//!
//! - **Temperature**: the monthly normal (interpolated so that each month keeps its mean), plus
//!   the synoptic anomaly, the daily cycle, the urban heat island, the altitude term and the
//!   station noise. The daily cycle goes from its minimum at sunrise (computed for 43.6° N) to
//!   its maximum at 14:30 solar time and back, over a range of 7.6 °C in January to 12.8 °C in
//!   July, 60 % smaller while it rains (and 0.8 °C cooler), a little larger under high pressure.
//! - **Urban heat island**: at night, `uhi_scale` × (1.5 °C for a compact LCZ 1–3, 0.8 for an
//!   open LCZ 4–6, 0.6 for LCZ 7–10, 0.2 for natural LCZ 11+ + 2.5 °C × built share − 2 °C × high
//!   vegetation share), never below −0.5 °C; the shares are `built_m2` and `high_vegetation_m2`
//!   over a 250 m-radius disc (the source does not give the radius: our assumption, which puts the
//!   densest station, Carmes, at 62 % built). By day a quarter of it; halved in rain, weaker in
//!   wind. A station without surfaces gets its LCZ term only.
//! - **Altitude**: −6.5 °C/km from 150 m (the ICAO standard atmosphere's lapse rate).
//! - **Humidity** from a city-wide dew point = the day's city temperature − a dew-point
//!   depression (2 °C in January to 7.5 °C in July, 0.6 °C in rain, plus its anomaly), by the
//!   Magnus formula (coefficients of Alduchov and Eskridge, 1996); so it falls as the temperature
//!   rises, is lower in the warmer city centre, and is clamped to 0–100.
//! - **Pressure** = 101 600 Pa × exp(−altitude / 8 434 m) + anomaly (σ 800 Pa, about 2 days) + a
//!   50 Pa semi-diurnal tide: about 99 800 Pa at 150 m, as in the station 42 records (99 100 to
//!   99 800 Pa in November 2025).
//! - **Rain**: an episode starts with a rate of about 0.017 per hour (more when pressure is low,
//!   30 % more in February and 30 % less in August) and ends with a rate of 0.25 per hour
//!   (episodes of about 4 h); it rains about 6 % of the time, at a rate drawn per episode around
//!   1.1 mm/h, times `rain_scale`: about 650 mm a year.
//! - **Wind**: a city-wide mean of 12 km/h × `wind_scale` (log-normal anomaly, about 12 h), 25 %
//!   stronger in the afternoon and 20 % stronger in rain, times a shelter factor (0.15 compact,
//!   0.3 open or natural, 0.35 other built LCZ): the city stations mostly read 0–5 km/h, gusts
//!   1.6–3 times the mean, as in the station 42 records (means 0–2 km/h, gusts up to 16 km/h).
//! - **Faults**: with probability `fault_rate` per station and tick, the station sends the real
//!   feed's fault record instead (−50 °C, 0 %, 90 000 Pa, and 0 for rain and wind, as in the
//!   station 42 record of 2025-11-25 07:00 UTC), indistinguishable from the real one.
//!
//! # Configuration
//!
//! - `fault_rate` (0–1, default 0): probability of a fault record per station and tick;
//! - `uhi_scale` (default 1): multiplies the urban heat island (0 removes it);
//! - `temperature_offset` (°C, default 0): added everywhere, for a heat wave or a cold spell;
//! - `rain_scale` (default 1): multiplies the rain rates;
//! - `wind_scale` (default 1): multiplies the winds.
//!
//! # Sources of the numbers
//!
//! - Monthly mean temperatures: Météo-France normals 1991–2020 for Toulouse-Blagnac, rounded
//!   (Jan 6.3, Feb 7.2, Mar 10.2, Apr 12.5, May 16.2, Jun 20.0, Jul 22.5, Aug 22.5, Sep 19.0,
//!   Oct 15.1, Nov 9.7, Dec 6.9 °C): approximate, not checked against the official sheet here.
//! - Daily ranges, dew-point depressions (giving a mean humidity of about 85 % in winter and 65 %
//!   in summer), rain frequencies and amounts (order of magnitude of Toulouse's 600–650 mm a
//!   year), wind speeds and anomaly time scales: our rough estimates for a plausible simulation,
//!   not measurements.
//! - Heat-island magnitude: the order of magnitude (a few °C at night in the centre) reported by
//!   the CAPITOUL campaign in Toulouse (Masson et al., 2008); the coefficients are hand-tuned.
//! - Station surfaces, LCZ, altitude and type: Toulouse Métropole, `stations-meteo-en-place`
//!   (ODbL), through `data/stations/meteo.json`.
//!
//! Randomness comes only from the host's seeded generator (`garonne_sdk::random_f64`), so the
//! same seed gives the same readings.

// The same file in the three sensor models; this one uses UTC only.
#[allow(dead_code)]
use std::f64::consts::{PI, TAU};

use garonne_sdk::{Batch, Config, Sensor, SensorModel, Station, random_f64};
use serde::{Deserialize, Serialize};

use garonne_sdk::calendar::{HOUR_MS, MonthlyProfile};

/// Météo-France 1991–2020 monthly mean temperatures at Toulouse-Blagnac, °C (approximate).
const NORMALS: [f64; 12] = [6.3, 7.2, 10.2, 12.5, 16.2, 20.0, 22.5, 22.5, 19.0, 15.1, 9.7, 6.9];
const LATITUDE: f64 = 43.6;
const LONGITUDE: f64 = 1.44;
/// Altitude of the normals' reference, m.
const REFERENCE_ALTITUDE: f64 = 150.0;
/// Area of the disc the built and vegetation surfaces are measured on (assumed radius 250 m).
const SURROUNDINGS_M2: f64 = PI * 250.0 * 250.0;

/// The fault record of the real feed.
const FAULT_TEMPERATURE: f64 = -50.0;
const FAULT_PRESSURE: f64 = 90_000.0;

/// The kinds of a full (`ISS`) station, in sensor order; a `TH` station has the first two.
const KINDS: [(&str, &str); 6] = [
    ("temperature", "°C"),
    ("humidity", "%"),
    ("pressure", "Pa"),
    ("rain", "mm"),
    ("wind_speed", "km/h"),
    ("wind_gust", "km/h"),
];

#[derive(Default, Serialize, Deserialize)]
pub struct Weather {
    /// Time of the previous tick, ms; none before the first.
    last_time: Option<i64>,
    /// City-wide synoptic temperature anomaly, °C.
    anomaly: f64,
    /// City-wide dew-point depression anomaly, °C.
    dew_anomaly: f64,
    /// City-wide pressure anomaly, Pa.
    pressure_anomaly: f64,
    /// City-wide wind anomaly, in log units.
    wind_anomaly: f64,
    /// Rain rate of the current episode, mm/h; 0 when dry.
    rain_rate: f64,
    /// Per station (in station order): what evolves.
    stations: Vec<StationState>,
    /// From the configuration and the stations: `init` sets them again after a restore.
    #[serde(skip)]
    settings: Settings,
    #[serde(skip)]
    sites: Vec<Site>,
}

#[derive(Default, Clone, Serialize, Deserialize)]
struct StationState {
    /// Slow station-specific temperature noise, °C.
    noise: f64,
    /// Rain collected but not yet tipped out, mm (below 0.2).
    bucket: f64,
}

#[derive(Default)]
struct Settings {
    fault_rate: f64,
    uhi_scale: f64,
    temperature_offset: f64,
    rain_scale: f64,
    wind_scale: f64,
    normals: MonthlyProfile,
}

/// What the model needs to know of a station.
struct Site {
    /// Index of the station's first sensor (its temperature).
    first_sensor: u32,
    full_suite: bool,
    altitude: f64,
    /// Night-time heat island, °C.
    heat_island: f64,
    /// Share of the city wind the station feels.
    shelter: f64,
}

impl SensorModel for Weather {
    fn init(&mut self, config: &Config, stations: &[Station]) -> Result<Vec<Sensor>, String> {
        self.settings = Settings {
            fault_rate: config.f64_or("fault_rate", 0.0)?,
            uhi_scale: config.f64_or("uhi_scale", 1.0)?,
            temperature_offset: config.f64_or("temperature_offset", 0.0)?,
            rain_scale: config.f64_or("rain_scale", 1.0)?,
            wind_scale: config.f64_or("wind_scale", 1.0)?,
            normals: MonthlyProfile::from_means(NORMALS),
        };
        let s = &self.settings;
        if !(0.0..=1.0).contains(&s.fault_rate) {
            return Err(format!("config `fault_rate` must be between 0 and 1, not {}", s.fault_rate));
        }
        for (key, value) in [("rain_scale", s.rain_scale), ("wind_scale", s.wind_scale)] {
            if value < 0.0 {
                return Err(format!("config `{key}` must be 0 or more, not {value}"));
            }
        }

        let mut sensors = Vec::new();
        self.sites = Vec::with_capacity(stations.len());
        for station in stations {
            let full_suite = station.attribute("type") != Some("TH");
            self.sites.push(Site {
                first_sensor: sensors.len() as u32,
                full_suite,
                altitude: station.altitude.filter(|a| a.is_finite()).unwrap_or(REFERENCE_ALTITUDE),
                heat_island: heat_island(station),
                shelter: shelter(lcz(station)),
            });
            let kinds = if full_suite { &KINDS[..] } else { &KINDS[..2] };
            for (kind, unit) in kinds {
                sensors.push(Sensor {
                    id: station.id.clone(),
                    kind: (*kind).into(),
                    unit: (*unit).into(),
                    position: Some(station.position),
                    tags: vec![("station_name".into(), station.name.clone())],
                });
            }
        }
        // A fresh start, or a snapshot of another set of stations: start their state afresh.
        if self.stations.len() != stations.len() {
            self.stations = vec![StationState::default(); stations.len()];
        }
        Ok(sensors)
    }

    fn tick(&mut self, now: i64, out: &mut Batch) -> Result<(), String> {
        self.step(now, |sensor, value| out.push(sensor, value, now));
        Ok(())
    }
}

/// The city-wide weather of one tick.
struct Sky {
    /// Temperature of the city before its daily cycle, °C.
    temperature: f64,
    dew_point: f64,
    /// Half the day's range times the daily shape (−1 at sunrise, +1 mid-afternoon), °C.
    daily: f64,
    /// 1 at night, 0.25 in full sun.
    night: f64,
    raining: bool,
    /// Rain fallen since the previous tick, mm (before the per-station spread).
    rain: f64,
    pressure_anomaly: f64,
    /// Solar hour, for the pressure tide.
    solar_hour: f64,
    /// Wind in the open, km/h.
    wind: f64,
    /// Hours since the previous tick.
    dt: f64,
}

impl Weather {
    /// Computes the readings at `now` and hands them to `push` (sensor index, value).
    fn step(&mut self, now: i64, mut push: impl FnMut(u32, f64)) {
        let sky = self.advance(now);
        let s = &self.settings;
        let heat_island_factor =
            s.uhi_scale * sky.night * if sky.raining { 0.5 } else { 1.0 } / (1.0 + sky.wind / 25.0);
        for (site, state) in self.sites.iter().zip(self.stations.iter_mut()) {
            // Always the same draws per station, faulty or not, TH or not: a fault rate or the
            // station types do not shift the other stations' random numbers.
            let noise_step = gaussian();
            let instrument = 0.1 * gaussian();
            let rain_spread = 0.7 + 0.6 * random_f64();
            let gusts = (random_f64(), random_f64());
            let wind_noise = 0.25 * gaussian();
            let faulty = random_f64() < s.fault_rate;

            state.noise = ar1(state.noise, noise_step, 0.3, 3.0, sky.dt);
            let temperature = sky.temperature + sky.daily + site.heat_island * heat_island_factor
                - 0.0065 * (site.altitude - REFERENCE_ALTITUDE)
                + state.noise
                + instrument;
            let humidity = (100.0 * saturation(sky.dew_point) / saturation(temperature)).clamp(0.0, 100.0);
            state.bucket += sky.rain * rain_spread;
            let tips = (state.bucket / 0.2 + 1e-9).floor();
            state.bucket = (state.bucket - 0.2 * tips).max(0.0);

            let first = site.first_sensor;
            if faulty {
                push(first, FAULT_TEMPERATURE);
                push(first + 1, 0.0);
            } else {
                push(first, round_to(temperature, 0.1));
                push(first + 1, humidity.round());
            }
            if !site.full_suite {
                continue;
            }
            let pressure = 101_600.0 * (-site.altitude / 8_434.0).exp()
                + sky.pressure_anomaly
                + 50.0 * (2.0 * TAU * (sky.solar_hour - 10.0) / 24.0).cos();
            let wind = sky.wind * site.shelter * (wind_noise - 0.03).exp();
            let gust = wind * (1.6 + 1.4 * gusts.0) + 3.0 * gusts.1;
            let (wind, gust) = (wind.round(), gust.round());
            if faulty {
                for offset in 2..6 {
                    push(first + offset, if offset == 2 { FAULT_PRESSURE } else { 0.0 });
                }
            } else {
                push(first + 2, round_to(pressure, 100.0));
                // Counted in tips, written with one decimal (0.6, not 0.6000000000000001).
                push(first + 3, (tips * 2.0).round() / 10.0);
                push(first + 4, wind);
                push(first + 5, gust.max(wind));
            }
        }
    }

    /// Moves the city-wide state on to `now` and describes the weather there.
    fn advance(&mut self, now: i64) -> Sky {
        let dt = match self.last_time {
            Some(last) => ((now - last) as f64 / HOUR_MS as f64).clamp(0.0, 24.0),
            None => 0.0,
        };
        self.last_time = Some(now);
        let s = &self.settings;
        let moment = garonne_sdk::calendar::utc(now);
        let doy = moment.day_of_year;
        let season = |peak_day: f64| (TAU * (doy - peak_day) / 365.25).cos();

        self.anomaly = ar1(self.anomaly, gaussian(), 2.0, 60.0, dt);
        self.dew_anomaly = ar1(self.dew_anomaly, gaussian(), 1.2, 24.0, dt);
        // Bounded: about 970 to 1045 hPa at sea level, the range of Toulouse's deep lows and highs.
        self.pressure_anomaly =
            ar1(self.pressure_anomaly, gaussian(), 800.0, 48.0, dt).clamp(-4_500.0, 3_000.0);
        self.wind_anomaly = ar1(self.wind_anomaly, gaussian(), 0.5, 12.0, dt);
        let (change, episode) = (random_f64(), random_f64());
        if self.rain_rate > 0.0 {
            if change < 1.0 - (-0.25 * dt).exp() {
                self.rain_rate = 0.0;
            }
        } else {
            // Low pressure brings rain; the e^-0.5 keeps the mean onset rate at 0.017/h.
            let onset = 0.0174 * (1.0 + 0.3 * season(40.0)) * (-self.pressure_anomaly / 800.0 - 0.5).exp();
            if change < 1.0 - (-onset * dt).exp() {
                // Exponentially distributed around 1.1 mm/h, at least a drizzle, at most a storm.
                self.rain_rate = (1.1 * -(1.0 - episode).ln()).clamp(0.1, 30.0);
            }
        }
        let raining = self.rain_rate > 0.0;

        // The sun: declination (Cooper's formula), sunrise and elevation at 43.6° N.
        let declination = (23.44f64).to_radians() * (TAU * (284.0 + doy) / 365.0).sin();
        let latitude = LATITUDE.to_radians();
        let half_day = (-latitude.tan() * declination.tan()).clamp(-1.0, 1.0).acos().to_degrees() / 15.0;
        let solar_hour = (moment.hour + LONGITUDE / 15.0).rem_euclid(24.0);
        let sunrise = 12.0 - half_day;
        let elevation_sine = latitude.sin() * declination.sin()
            + latitude.cos() * declination.cos() * (TAU * (solar_hour - 12.0) / 24.0).cos();
        let night = if elevation_sine <= 0.0 { 1.0 } else { 1.0 - 0.75 * (elevation_sine / 0.3).min(1.0) };

        let mut range = 10.2 + 2.6 * season(196.0);
        range *= if raining { 0.4 } else { 1.0 + 0.15 * (self.pressure_anomaly / 800.0).tanh() };
        let temperature = s.normals.at(moment.month_position) + self.anomaly + s.temperature_offset
            - if raining { 0.8 } else { 0.0 };
        let depression =
            if raining { 0.6 } else { (4.75 + 2.75 * season(196.0) + self.dew_anomaly).max(0.3) };
        let afternoon = daily_shape(solar_hour, sunrise, 14.5);
        let wind = 12.0
            * s.wind_scale
            * (self.wind_anomaly - 0.125).exp()
            * (1.0 + 0.25 * afternoon)
            * if raining { 1.2 } else { 1.0 };
        Sky {
            temperature,
            dew_point: temperature - depression,
            daily: range / 2.0 * afternoon,
            night,
            raining,
            rain: self.rain_rate * s.rain_scale * dt,
            pressure_anomaly: self.pressure_anomaly,
            solar_hour,
            wind,
            dt,
        }
    }
}

/// −1 at sunrise, +1 at `peak` (solar hours), along half cosines both ways; its daily mean is 0.
fn daily_shape(solar_hour: f64, sunrise: f64, peak: f64) -> f64 {
    let since_sunrise = (solar_hour - sunrise).rem_euclid(24.0);
    let rise = peak - sunrise;
    if since_sunrise < rise {
        -(PI * since_sunrise / rise).cos()
    } else {
        (PI * (since_sunrise - rise) / (24.0 - rise)).cos()
    }
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

/// Saturation vapour pressure (hPa) over water at `t` °C (Magnus; Alduchov and Eskridge 1996).
fn saturation(t: f64) -> f64 {
    6.1094 * (17.625 * t / (t + 243.04)).exp()
}

fn round_to(value: f64, step: f64) -> f64 {
    if step < 1.0 {
        // Divide rather than multiply back, so that 0.1 steps print as 12.3, not 12.300000000000001.
        (value / step).round() / (1.0 / step).round()
    } else {
        (value / step).round() * step
    }
}

fn lcz(station: &Station) -> Option<u32> {
    station.attribute("lcz").and_then(|v| v.trim().parse().ok())
}

/// An attribute as a surface, m²; `null`, absent or not a number is none.
fn surface(station: &Station, key: &str) -> Option<f64> {
    station.attribute(key).and_then(|v| v.trim().parse::<f64>().ok()).filter(|v| v.is_finite())
}

/// Night-time heat island of a station, °C, before `uhi_scale`.
fn heat_island(station: &Station) -> f64 {
    let lcz_term = match lcz(station) {
        Some(1..=3) => 1.5,
        Some(4..=6) => 0.8,
        Some(7..=10) => 0.6,
        Some(_) => 0.2,
        None => 0.6,
    };
    let share = |key| (surface(station, key).unwrap_or(0.0) / SURROUNDINGS_M2).clamp(0.0, 1.0);
    (lcz_term + 2.5 * share("built_m2") - 2.0 * share("high_vegetation_m2")).max(-0.5)
}

/// Share of the open-country wind a station's anemometer feels.
fn shelter(lcz: Option<u32>) -> f64 {
    match lcz {
        Some(1..=3) => 0.15,
        Some(4..=6) => 0.3,
        Some(7..=10) => 0.35,
        _ => 0.3,
    }
}

garonne_sdk::export_sensor_model!(Weather);

// Native only: the tests seed the SDK's native generator, which a wasm build does not have.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
