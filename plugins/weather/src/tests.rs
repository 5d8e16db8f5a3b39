//! Native tests of the weather model over the 77 real stations.

use garonne_sdk::seed_native_random;

use super::*;
use garonne_sdk::calendar::{DAY_MS, days_from_civil};
use garonne_sdk::testing::config;

fn stations() -> Vec<Station> {
    garonne_sdk::testing::stations(include_str!("../../../data/stations/meteo.json"))
}

fn started(pairs: &[(&str, &str)]) -> (Weather, Vec<Sensor>) {
    let mut model = Weather::default();
    let sensors = model.init(&config(pairs), &stations()).expect("valid config");
    (model, sensors)
}

/// 2023-01-01 00:00 UTC.
fn new_year_2023() -> i64 {
    days_from_civil(2023, 1, 1) * DAY_MS
}

/// The readings of `ticks` ticks `step` ms apart from `start`: (sensor, value) per tick.
fn run(model: &mut Weather, start: i64, step: i64, ticks: usize) -> Vec<Vec<(u32, f64)>> {
    (0..ticks as i64)
        .map(|i| {
            let mut readings = Vec::new();
            model.step(start + i * step, |sensor, value| readings.push((sensor, value)));
            readings
        })
        .collect()
}

#[test]
fn a_simulated_year_looks_like_toulouse() {
    seed_native_random(2023);
    let (mut model, sensors) = started(&[]);
    let stations = stations();
    let start = new_year_2023();
    let hours = 365 * 24;
    let site_of = |id: &str| stations.iter().position(|s| s.id == id).expect("known station");

    let mut month_sums = [(0.0, 0usize); 12];
    // Night (22 h to 4 h UTC) temperature sums of the dense and the green stations.
    let dense =
        |s: &Station| matches!(lcz(s), Some(2 | 3)) && surface(s, "built_m2").unwrap_or(0.0) > 60_000.0;
    let green = |s: &Station| {
        lcz(s).is_some_and(|l| l >= 11) || surface(s, "high_vegetation_m2").unwrap_or(0.0) > 40_000.0
    };
    let (mut dense_night, mut green_night) = ((0.0, 0usize), (0.0, 0usize));
    let mut rain_totals = vec![0.0; stations.len()];
    let mut humidity_sum = (0.0, 0usize);
    // Humidity sums of January and July.
    let (mut january, mut july) = ((0.0, 0usize), (0.0, 0usize));

    for (hour, readings) in run(&mut model, start, HOUR_MS, hours).iter().enumerate() {
        assert_eq!(readings.len(), sensors.len(), "one reading per sensor per tick");
        let moment = garonne_sdk::calendar::utc(start + hour as i64 * HOUR_MS);
        let night = moment.hour >= 22.0 || moment.hour < 4.0;
        let mut wind = f64::NAN;
        for &(index, value) in readings {
            assert!(value.is_finite(), "{value} from sensor {index}");
            let sensor = &sensors[index as usize];
            let station = &stations[site_of(&sensor.id)];
            match sensor.kind.as_str() {
                "temperature" => {
                    assert!((-20.0..50.0).contains(&value), "{value} °C");
                    let month = &mut month_sums[moment.month as usize - 1];
                    *month = (month.0 + value, month.1 + 1);
                    if night && dense(station) {
                        dense_night = (dense_night.0 + value, dense_night.1 + 1);
                    }
                    if night && green(station) {
                        green_night = (green_night.0 + value, green_night.1 + 1);
                    }
                }
                "humidity" => {
                    assert!((0.0..=100.0).contains(&value) && value.fract() == 0.0, "{value} %");
                    humidity_sum = (humidity_sum.0 + value, humidity_sum.1 + 1);
                    match moment.month {
                        1 => january = (january.0 + value, january.1 + 1),
                        7 => july = (july.0 + value, july.1 + 1),
                        _ => {}
                    }
                }
                "pressure" => assert!((95_000.0..=103_500.0).contains(&value), "{value} Pa"),
                "rain" => {
                    assert!((0.0..=30.0).contains(&value), "{value} mm");
                    let tips = value / 0.2;
                    assert!((tips - tips.round()).abs() < 1e-9, "{value} mm is whole tips");
                    rain_totals[site_of(&sensor.id)] += value;
                }
                "wind_speed" => {
                    assert!(value >= 0.0 && value.fract() == 0.0, "{value} km/h");
                    wind = value;
                }
                "wind_gust" => assert!(value >= wind && value.fract() == 0.0, "gust {value} < wind {wind}"),
                other => panic!("unexpected kind {other}"),
            }
        }
    }

    let means: Vec<f64> = month_sums.iter().map(|(sum, count)| sum / *count as f64).collect();
    let heat_island = dense_night.0 / dense_night.1 as f64 - green_night.0 / green_night.1 as f64;
    let humidity = humidity_sum.0 / humidity_sum.1 as f64;
    let (january, july) = (january.0 / january.1 as f64, july.0 / july.1 as f64);
    // Shown when the test fails, or with --nocapture.
    eprintln!("monthly means {means:.1?}, night heat island {heat_island:.2} °C");
    eprintln!("humidity {humidity:.0} % (January {january:.0}, July {july:.0})");
    eprintln!("rain totals {rain_totals:.0?}");
    for (month, mean) in means.iter().enumerate() {
        assert!(
            (mean - NORMALS[month]).abs() < 3.0,
            "month {}: {mean:.1} °C vs {}",
            month + 1,
            NORMALS[month]
        );
    }
    assert!((55.0..90.0).contains(&humidity), "mean humidity {humidity:.0} %");
    // Toulouse is damp in winter and drier in summer (monthly means of about 85 % and 65 %).
    assert!(january > 78.0 && july < 72.0, "humidity {january:.0} % in January, {july:.0} % in July");
    assert!(heat_island > 1.0, "dense stations only {heat_island:.2} °C warmer at night");
    for (station, total) in stations.iter().zip(&rain_totals) {
        if station.attribute("type") == Some("ISS") {
            assert!((300.0..1_200.0).contains(total), "{}: {total:.0} mm in a year", station.id);
        }
    }
}

#[test]
fn th_stations_have_two_sensors_and_every_station_its_position() {
    let (_, sensors) = started(&[]);
    let stations = stations();
    assert_eq!(stations.len(), 77);
    for station in &stations {
        let kinds: Vec<&str> =
            sensors.iter().filter(|s| s.id == station.id).map(|s| s.kind.as_str()).collect();
        let expected: Vec<&str> = if station.attribute("type") == Some("TH") {
            vec!["temperature", "humidity"]
        } else {
            KINDS.iter().map(|(kind, _)| *kind).collect()
        };
        assert_eq!(kinds, expected, "{}", station.id);
        for sensor in sensors.iter().filter(|s| s.id == station.id) {
            assert_eq!(sensor.position, Some(station.position));
            assert_eq!(sensor.tag("station_name"), Some(station.name.as_str()));
        }
    }
    assert_eq!(sensors.len(), 61 * 6 + 16 * 2);
    let units: Vec<&str> = sensors[..6].iter().map(|s| s.unit.as_str()).collect();
    assert_eq!(units, ["°C", "%", "Pa", "mm", "km/h", "km/h"]);
}

/// The fraction of station-ticks that sent the fault record.
fn fault_fraction(fault_rate: &str, ticks: usize) -> f64 {
    seed_native_random(5);
    let (mut model, sensors) = started(&[("fault_rate", fault_rate)]);
    let mut faults = 0;
    for readings in run(&mut model, new_year_2023(), 15 * 60_000, ticks) {
        for (index, value) in readings {
            if sensors[index as usize].kind == "temperature" && value == FAULT_TEMPERATURE {
                faults += 1;
            }
        }
    }
    faults as f64 / (ticks * 77) as f64
}

#[test]
fn the_fault_rate_gives_that_share_of_fault_records() {
    assert_eq!(fault_fraction("0", 2_000), 0.0);
    let share = fault_fraction("0.05", 2_000);
    assert!((0.04..0.06).contains(&share), "{share}");
}

#[test]
fn a_fault_record_is_the_real_feeds_whole_record() {
    seed_native_random(9);
    let (mut model, sensors) = started(&[("fault_rate", "1")]);
    for (index, value) in run(&mut model, new_year_2023(), HOUR_MS, 2).concat() {
        let expected = match sensors[index as usize].kind.as_str() {
            "temperature" => -50.0,
            "pressure" => 90_000.0,
            _ => 0.0,
        };
        assert_eq!(value, expected, "{:?}", sensors[index as usize]);
    }
}

#[test]
fn the_same_seed_gives_the_same_readings_and_another_seed_others() {
    let readings = |seed| {
        seed_native_random(seed);
        let (mut model, _) = started(&[("fault_rate", "0.01")]);
        run(&mut model, new_year_2023(), 10 * 60_000, 200)
    };
    assert_eq!(readings(1), readings(1));
    assert_ne!(readings(1), readings(2));
}

#[test]
fn a_restored_snapshot_goes_on_as_if_uninterrupted() {
    let start = new_year_2023() + 100 * DAY_MS;
    let step = 15 * 60_000;

    seed_native_random(11);
    let (mut uninterrupted, _) = started(&[("fault_rate", "0.02")]);
    run(&mut uninterrupted, start, step, 300);
    let state = uninterrupted.snapshot();
    seed_native_random(12);
    let expected = run(&mut uninterrupted, start + 300 * step, step, 300);

    // As the SDK does after a trap: a new instance, init, restore, init again.
    let (mut restored, _) = started(&[("fault_rate", "0.02")]);
    restored.restore(&state).expect("own snapshot");
    restored.init(&config(&[("fault_rate", "0.02")]), &stations()).expect("valid config");
    seed_native_random(12);
    assert_eq!(run(&mut restored, start + 300 * step, step, 300), expected);
    assert!(restored.last_time.is_some() && restored.stations.len() == 77);
}

#[test]
fn bad_settings_are_refused() {
    let mut model = Weather::default();
    for pairs in
        [[("fault_rate", "1.5")], [("fault_rate", "-0.1")], [("rain_scale", "-1")], [("uhi_scale", "x")]]
    {
        assert!(model.init(&config(&pairs), &stations()).is_err(), "{pairs:?}");
    }
}

#[test]
fn the_heat_island_grows_with_buildings_and_falls_with_trees() {
    let stations = stations();
    let by_id = |id: &str| heat_island(stations.iter().find(|s| s.id.starts_with(id)).expect("station"));
    let carmes = by_id("28-station-meteo-toulouse-carmes");
    let forest = by_id("23-station-meteo-pibrac-bouconne-foret");
    let park = by_id("38-station-meteo-toulouse-parc-jardin-des-plantes");
    assert!(carmes > 2.5 && park < 1.0 && forest <= 0.0, "{carmes} {park} {forest}");
}
