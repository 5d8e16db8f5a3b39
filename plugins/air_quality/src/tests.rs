//! Native tests of the air-quality model over the real Atmo Occitanie stations.

use garonne_sdk::{Position, seed_native_random};

use super::*;
use garonne_sdk::calendar::{DAY_MS, days_from_civil};
use garonne_sdk::testing::config;

fn stations() -> Vec<Station> {
    garonne_sdk::testing::stations(include_str!("../../../data/stations/air.json"))
}

fn started(pairs: &[(&str, &str)]) -> (AirQuality, Vec<Sensor>) {
    let mut model = AirQuality::default();
    let sensors = model.init(&config(pairs), &stations()).expect("valid config and stations");
    (model, sensors)
}

fn new_year(year: i64) -> i64 {
    days_from_civil(year, 1, 1) * DAY_MS
}

/// The readings of `ticks` ticks `step` ms apart from `start`: (time, sensor, value).
fn run(model: &mut AirQuality, start: i64, step: i64, ticks: usize) -> Vec<(i64, u32, f64)> {
    let mut readings = Vec::new();
    for i in 0..ticks as i64 {
        let now = start + i * step;
        model.step(now, |sensor, value| readings.push((now, sensor, value)));
    }
    readings
}

/// Means by key of the readings that `key` keeps.
fn means<K: Ord>(
    readings: &[(i64, u32, f64)],
    key: impl Fn(i64, u32) -> Option<K>,
) -> std::collections::BTreeMap<K, f64> {
    let mut sums = std::collections::BTreeMap::new();
    for &(time, sensor, value) in readings {
        if let Some(k) = key(time, sensor) {
            let entry = sums.entry(k).or_insert((0.0, 0usize));
            *entry = (entry.0 + value, entry.1 + 1);
        }
    }
    sums.into_iter().map(|(k, (sum, count))| (k, sum / count as f64)).collect()
}

#[test]
fn sensors_follow_each_stations_pollutants() {
    let (_, sensors) = started(&[]);
    for station in stations() {
        let kinds: Vec<&str> =
            sensors.iter().filter(|s| s.id == station.id).map(|s| s.kind.as_str()).collect();
        let expected: Vec<&str> = station
            .attribute("pollutants")
            .expect("pollutants")
            .split(',')
            .map(|p| Pollutant::from_name(p).expect("simulated pollutant").kind())
            .collect();
        assert_eq!(kinds, expected, "{}", station.id);
    }
    assert!(
        sensors.iter().all(|s| s.unit == "µg/m³" && s.position.is_some() && s.tag("station_name").is_some())
    );
    assert_eq!(sensors.len(), 25);
}

#[test]
fn a_simulated_year_keeps_the_measured_means_and_cycles() {
    seed_native_random(2018);
    let (mut model, sensors) = started(&[]);
    let stations = stations();
    let readings = run(&mut model, new_year(2018), HOUR_MS, 365 * 24);
    for &(_, sensor, value) in &readings {
        assert!(value.is_finite() && value >= 0.0, "{value} from {:?}", sensors[sensor as usize]);
    }
    let station_of = |sensor: u32| {
        let id = &sensors[sensor as usize].id;
        stations.iter().find(|s| &s.id == id).expect("known station")
    };

    // Monthly means within 30 % of the data's (the city-wide episodes make a month noisy: about
    // 8 % standard deviation, and 25 sensors × 11 months are compared), the year within 12 % of
    // the annual mean (which includes January, absent from the monthly data).
    let monthly = means(&readings, |time, sensor| Some((sensor, garonne_sdk::calendar::paris(time).month)));
    for (&(sensor, month), &mean) in &monthly {
        let kind = &sensors[sensor as usize].kind;
        let expected = station_of(sensor).attribute(&format!("monthly_{kind}")).and_then(|m| {
            m.split(',')
                .find(|item| item.starts_with(&format!("2018-{month:02}:")))?
                .split(':')
                .nth(1)?
                .parse::<f64>()
                .ok()
        });
        if let Some(expected) = expected {
            assert!(
                (mean / expected - 1.0).abs() < 0.3,
                "{} {kind} 2018-{month:02}: {mean:.1} vs {expected}",
                station_of(sensor).id
            );
        }
    }
    let annual = means(&readings, |_, sensor| Some(sensor));
    for (&sensor, &mean) in &annual {
        let kind = &sensors[sensor as usize].kind;
        if let Some(expected) = station_of(sensor).attribute(&format!("mean_{kind}")) {
            let expected: f64 = expected.parse().expect("a number");
            assert!(
                (mean / expected - 1.0).abs() < 0.12,
                "{} {kind}: {mean:.1} vs {expected}",
                station_of(sensor).id
            );
        }
    }

    // Working-day NO2 at traffic stations: rush hour (8 h) well above the night (3 h).
    let traffic_no2 = |sensor: u32| {
        sensors[sensor as usize].kind == "no2" && station_of(sensor).attribute("influence") == Some("Trafic")
    };
    let by_hour = means(&readings, |time, sensor| {
        let local = garonne_sdk::calendar::paris(time);
        (traffic_no2(sensor) && !local.is_weekend()).then_some(local.hour as u32)
    });
    assert!(by_hour[&8] > 1.5 * by_hour[&3], "rush hour {:.1} vs night {:.1}", by_hour[&8], by_hour[&3]);
    assert!(by_hour[&18] > 1.5 * by_hour[&3], "evening {:.1} vs night {:.1}", by_hour[&18], by_hour[&3]);
    let by_day = means(&readings, |time, sensor| {
        traffic_no2(sensor).then(|| garonne_sdk::calendar::paris(time).is_weekend())
    });
    assert!(
        by_day[&true] < 0.85 * by_day[&false],
        "weekend {:.1} vs weekdays {:.1}",
        by_day[&true],
        by_day[&false]
    );

    // Ozone: afternoon above night, summer afternoons above winter ones.
    let ozone = means(&readings, |time, sensor| {
        let local = garonne_sdk::calendar::paris(time);
        let summer = (6..=8).contains(&local.month);
        (sensors[sensor as usize].kind == "o3").then_some((summer, local.hour as u32))
    });
    for summer in [false, true] {
        let (afternoon, night) = (ozone[&(summer, 15)], ozone[&(summer, 3)]);
        assert!(afternoon > 1.3 * night, "summer {summer}: O3 {afternoon:.1} at 15 h vs {night:.1} at 3 h");
    }
    assert!(ozone[&(true, 15)] > ozone[&(false, 15)]);
}

#[test]
fn ozone_dips_more_where_no2_is_higher() {
    let mut model = AirQuality::default();
    let mut stations = stations();
    stations.retain(|s| s.id == "FR50058");
    let mut polluted = stations[0].clone();
    polluted.id = "polluted".into();
    polluted.attributes.push(("mean_no2".into(), "60".into()));
    stations.push(polluted);
    model.init(&config(&[("episode_scale", "0")]), &stations).expect("valid stations");
    let morning = garonne_sdk::calendar::paris(new_year(2018) + 176 * DAY_MS + 6 * HOUR_MS);
    assert!(!morning.is_weekend());
    let (clean, dirty) = (cycle(&model.sources[0], &morning), cycle(&model.sources[1], &morning));
    assert!(dirty < clean, "{dirty} vs {clean}");
}

#[test]
fn the_same_seed_gives_the_same_readings_and_another_seed_others() {
    let readings = |seed| {
        seed_native_random(seed);
        let (mut model, _) = started(&[]);
        run(&mut model, new_year(2018), 15 * 60_000, 300)
    };
    assert_eq!(readings(3), readings(3));
    assert_ne!(readings(3), readings(4));
}

#[test]
fn without_randomness_the_values_are_the_cycles_alone() {
    seed_native_random(1);
    let (mut model, _) = started(&[("episode_scale", "0")]);
    let first = run(&mut model, new_year(2018), HOUR_MS, 48);
    seed_native_random(2);
    let (mut model, _) = started(&[("episode_scale", "0")]);
    assert_eq!(run(&mut model, new_year(2018), HOUR_MS, 48), first);
}

#[test]
fn a_restored_snapshot_goes_on_as_if_uninterrupted() {
    let start = new_year(2018) + 40 * DAY_MS;
    let step = 15 * 60_000;
    seed_native_random(21);
    let (mut uninterrupted, _) = started(&[]);
    run(&mut uninterrupted, start, step, 200);
    let state = uninterrupted.snapshot();
    seed_native_random(22);
    let expected = run(&mut uninterrupted, start + 200 * step, step, 200);

    let (mut restored, _) = started(&[]);
    restored.restore(&state).expect("own snapshot");
    restored.init(&config(&[]), &stations()).expect("valid config");
    seed_native_random(22);
    assert_eq!(run(&mut restored, start + 200 * step, step, 200), expected);
}

#[test]
fn bad_settings_and_data_are_refused() {
    let mut model = AirQuality::default();
    assert!(model.init(&config(&[("level_scale", "-1")]), &stations()).is_err());
    let mut broken = stations();
    broken[0].attributes.retain(|(k, _)| !k.ends_with("_no2"));
    assert!(model.init(&config(&[]), &broken).is_err(), "NO2 listed without any mean");
    let mut broken = stations();
    broken[0].attributes.push(("monthly_o3".into(), "2018-13:5".into()));
    broken[0].attributes.retain(|(k, v)| k != "monthly_o3" || v == "2018-13:5");
    assert!(model.init(&config(&[]), &broken).is_err(), "month 13");
}

#[test]
fn missing_months_are_interpolated_around_the_year() {
    let station = Station {
        id: "x".into(),
        name: "x".into(),
        position: Position { lat: 43.6, lon: 1.44 },
        altitude: None,
        attributes: vec![("monthly_no2".into(), "2018-02:20,2018-12:30,2018-06:10".into())],
    };
    let means = monthly_means(&station, "no2").expect("valid");
    assert_eq!(means[0], 25.0, "January between December and February");
    assert_eq!(means[3], 15.0, "April halfway from February to June");
    assert_eq!(means[8], 20.0, "September halfway from June to December");
}
