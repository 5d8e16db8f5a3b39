//! Native tests of the bike model over the 279 Vélô Toulouse stations.

use std::collections::BTreeMap;

use garonne_sdk::seed_native_random;

use super::*;
use garonne_sdk::calendar::{DAY_MS, days_from_civil};
use garonne_sdk::testing::config;

fn stations() -> Vec<Station> {
    garonne_sdk::testing::stations(include_str!("../../../data/stations/bikes.json"))
}

fn started(pairs: &[(&str, &str)]) -> (Bikes, Vec<Sensor>) {
    let mut model = Bikes::default();
    let sensors = model.init(&config(pairs), &stations()).expect("valid config and stations");
    (model, sensors)
}

/// Monday 2024-03-04, 0 h UTC (1 h in Paris).
fn monday() -> i64 {
    days_from_civil(2024, 3, 4) * DAY_MS
}

const TEN_MINUTES: i64 = 10 * 60_000;

/// The readings of `ticks` ticks `step` ms apart from `start`: (time, sensor, value).
fn run(model: &mut Bikes, start: i64, step: i64, ticks: usize) -> Vec<(i64, u32, f64)> {
    let mut readings = Vec::new();
    for i in 0..ticks as i64 {
        let now = start + i * step;
        model.step(now, |sensor, value| readings.push((now, sensor, value)));
    }
    readings
}

#[test]
fn every_station_has_its_two_sensors_and_a_zone() {
    let (model, sensors) = started(&[]);
    let stations = stations();
    assert_eq!(stations.len(), 279);
    assert_eq!(sensors.len(), 2 * 279);
    for (i, station) in stations.iter().enumerate() {
        let pair = &sensors[2 * i..2 * i + 2];
        assert_eq!((pair[0].kind.as_str(), pair[0].unit.as_str()), ("bikes_available", "bikes"));
        assert_eq!((pair[1].kind.as_str(), pair[1].unit.as_str()), ("docks_free", "docks"));
        for sensor in pair {
            assert_eq!((&sensor.id, sensor.position), (&station.id, Some(station.position)));
            assert_eq!(sensor.tag("station_name"), Some(station.name.as_str()));
        }
    }
    let count = |zone| model.docks.iter().filter(|d| d.zone == zone).count();
    let (centre, campus, residential) = (count(Zone::Centre), count(Zone::Campus), count(Zone::Residential));
    assert!(centre > 50 && campus >= 5 && residential > 100, "{centre} {campus} {residential}");
    let zone_of = |name: &str| model.docks[stations.iter().position(|s| s.name == name).expect(name)].zone;
    assert_eq!(zone_of("POIDS DE L'HUILE"), Zone::Centre);
    assert_eq!(zone_of("CAMPUS SUPAERO"), Zone::Campus);
    assert_eq!(zone_of("TABAR /UNIVERSITE"), Zone::Campus);
}

#[test]
fn three_weeks_of_commutes() {
    seed_native_random(31);
    let (mut model, _) = started(&[]);
    let capacities: Vec<f64> = model.docks.iter().map(|d| f64::from(d.capacity)).collect();
    let zones: Vec<Zone> = model.docks.iter().map(|d| d.zone).collect();
    let readings = run(&mut model, monday(), TEN_MINUTES, 21 * 144);

    // Whole numbers within the capacity, the two sensors adding up to it.
    let mut bikes_now = vec![f64::NAN; capacities.len()];
    // Mean share of full docks by (zone, weekend, local hour).
    let mut shares: BTreeMap<(u8, bool, u32), (f64, usize)> = BTreeMap::new();
    for &(time, sensor, value) in &readings {
        let station = sensor as usize / 2;
        assert!(value.fract() == 0.0 && (0.0..=capacities[station]).contains(&value), "{value}");
        if sensor % 2 == 0 {
            bikes_now[station] = value;
            let local = garonne_sdk::calendar::paris(time);
            let entry =
                shares.entry((zones[station] as u8, local.is_weekend(), local.hour as u32)).or_default();
            *entry = (entry.0 + value / capacities[station], entry.1 + 1);
        } else {
            assert_eq!(bikes_now[station] + value, capacities[station]);
        }
    }
    let share = |zone: Zone, weekend: bool, hour: u32| {
        let (sum, count) = shares[&(zone as u8, weekend, hour)];
        sum / count as f64
    };
    let centre_morning = share(Zone::Centre, false, 10) - share(Zone::Centre, false, 6);
    let campus_morning = share(Zone::Campus, false, 10) - share(Zone::Campus, false, 6);
    let residential_morning = share(Zone::Residential, false, 10) - share(Zone::Residential, false, 6);
    let centre_evening = share(Zone::Centre, false, 21) - share(Zone::Centre, false, 15);
    let centre_weekend = share(Zone::Centre, true, 10) - share(Zone::Centre, true, 6);
    let all = [centre_morning, campus_morning, residential_morning, centre_evening, centre_weekend];
    assert!(centre_morning > 0.2, "centre fills on working mornings: {all:.2?}");
    assert!(campus_morning > 0.2, "campuses fill on working mornings: {all:.2?}");
    assert!(residential_morning < -0.15, "residential stations empty: {all:.2?}");
    assert!(centre_evening < -0.2, "the centre empties in the evening: {all:.2?}");
    assert!(centre_weekend.abs() < centre_morning / 2.0, "weekends are flatter: {all:.2?}");
}

#[test]
fn the_first_tick_starts_near_the_targets() {
    seed_native_random(1);
    let (mut model, _) = started(&[]);
    // Tuesday 11 h in Paris (10 h UTC in March): centres full, residential stations empty.
    let readings = run(&mut model, monday() + DAY_MS + 10 * HOUR_MS, TEN_MINUTES, 1);
    let mean_share = |zone| {
        let shares: Vec<f64> = (0..model.docks.len())
            .filter(|&i| model.docks[i].zone == zone)
            .map(|i| readings[2 * i].2 / f64::from(model.docks[i].capacity))
            .collect();
        shares.iter().sum::<f64>() / shares.len() as f64
    };
    assert!(mean_share(Zone::Centre) > 0.7 && mean_share(Zone::Residential) < 0.4);
}

#[test]
fn the_same_seed_gives_the_same_readings_and_another_seed_others() {
    let readings = |seed| {
        seed_native_random(seed);
        let (mut model, _) = started(&[]);
        run(&mut model, monday(), TEN_MINUTES, 144)
    };
    assert_eq!(readings(8), readings(8));
    assert_ne!(readings(8), readings(9));
}

#[test]
fn a_restored_snapshot_goes_on_as_if_uninterrupted() {
    seed_native_random(41);
    let (mut uninterrupted, _) = started(&[]);
    run(&mut uninterrupted, monday(), TEN_MINUTES, 100);
    let state = uninterrupted.snapshot();
    seed_native_random(42);
    let expected = run(&mut uninterrupted, monday() + 100 * TEN_MINUTES, TEN_MINUTES, 100);

    let (mut restored, _) = started(&[]);
    restored.restore(&state).expect("own snapshot");
    restored.init(&config(&[]), &stations()).expect("valid config");
    seed_native_random(42);
    assert_eq!(run(&mut restored, monday() + 100 * TEN_MINUTES, TEN_MINUTES, 100), expected);
}

#[test]
fn long_gaps_between_ticks_stay_within_capacity() {
    seed_native_random(5);
    let (mut model, _) = started(&[("activity", "2")]);
    for (_, sensor, value) in run(&mut model, monday(), 6 * HOUR_MS, 40) {
        let capacity = f64::from(model.docks[sensor as usize / 2].capacity);
        assert!((0.0..=capacity).contains(&value));
    }
}

#[test]
fn bad_settings_and_capacities_are_refused() {
    let mut model = Bikes::default();
    assert!(model.init(&config(&[("relax_h", "0")]), &stations()).is_err());
    assert!(model.init(&config(&[("activity", "-1")]), &stations()).is_err());
    let mut broken = stations();
    broken[0].attributes.retain(|(k, _)| k != "capacity");
    broken[0].attributes.push(("capacity".into(), "0".into()));
    assert!(model.init(&config(&[]), &broken).is_err());
    broken[0].attributes.retain(|(k, _)| k != "capacity");
    assert!(model.init(&config(&[]), &broken).is_ok(), "no capacity: the default");
    assert_eq!(model.docks[0].capacity, DEFAULT_CAPACITY);
}

#[test]
fn poisson_draws_have_their_mean() {
    seed_native_random(3);
    for mean in [0.3, 4.0, 50.0] {
        let draws = 20_000;
        let average = (0..draws).map(|_| poisson(mean)).sum::<f64>() / draws as f64;
        assert!((average / mean - 1.0).abs() < 0.05, "{average} vs {mean}");
    }
}
