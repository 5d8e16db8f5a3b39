//! The host's per-message work outside the plugins: decoding and encoding the JSON payload,
//! writing a line of the line protocol for the historian, and a plugin's snapshot and restore
//! (the checkpoint the supervisor takes every 16 calls).
//!
//! Each is set against a baseline measured in the same run: payloads against serde_json's
//! generic `Value` (what a script would do), the checkpoint against the calls it protects.
//!
//! Run with `cargo xtask build-plugins && cargo bench -p garonne-host --bench codec`.
//! Results and how to read them: BENCHMARKS.md.

use std::path::PathBuf;

use divan::{Bencher, black_box, counter::ItemsCount};
use garonne::clock::VirtualClock;
use garonne::historian::line_protocol::Mapping;
use garonne::payload::Payload;
use garonne::sandbox::{
    Limits, PluginEngine, PluginSandbox, Position, ProcessorSupervisor, Readings, Sensor,
};

fn main() {
    divan::main();
}

/// A reading as a sensor model publishes it.
const READING: &str = r#"{"sensor_id":"42","kind":"temperature","value":6.85,"unit":"°C","ts":1795939200000,"lat":43.6045,"lon":1.4442}"#;

/// A per-quartier average as avg_quartier publishes it: the largest message of the demo.
const AGGREGATE: &str = r#"{"sensor_id":"1","kind":"temperature","value":6.85,"unit":"°C","ts":"2026-11-29T01:20:00.000Z","lat":43.602,"lon":1.443,"fields":{"count":4.0,"late":0.0,"max":7.1,"mean":6.85,"min":6.4,"window_s":300.0,"window_start":1795939200000.0},"tags":{"quartier":"Capitole / Arnaud Bernard / Carmes","polygons":"quartiers"}}"#;

const MAX: usize = 64 * 1024;

fn payload(text: &str) -> Payload {
    Payload::decode(text.as_bytes(), MAX).expect("a valid payload")
}

#[divan::bench(args = ["reading", "aggregate"])]
fn decode(bencher: Bencher, which: &str) {
    let bytes = if which == "reading" { READING } else { AGGREGATE }.as_bytes();
    bencher.bench_local(|| Payload::decode(black_box(bytes), MAX).expect("valid"));
}

/// Baseline: the same bytes parsed into serde_json's generic tree, without any check.
#[divan::bench(args = ["reading", "aggregate"])]
fn decode_generic_json(bencher: Bencher, which: &str) {
    let bytes = if which == "reading" { READING } else { AGGREGATE }.as_bytes();
    bencher.bench_local(|| serde_json::from_slice::<serde_json::Value>(black_box(bytes)).expect("valid"));
}

#[divan::bench(args = ["reading", "aggregate"])]
fn encode(bencher: Bencher, which: &str) {
    let payload = payload(if which == "reading" { READING } else { AGGREGATE });
    bencher.bench_local(|| black_box(&payload).encode().expect("encodes"));
}

/// Baseline: serde_json writing the generic tree of the same message.
#[divan::bench(args = ["reading", "aggregate"])]
fn encode_generic_json(bencher: Bencher, which: &str) {
    let text = if which == "reading" { READING } else { AGGREGATE };
    let value: serde_json::Value = serde_json::from_str(text).expect("valid");
    bencher.bench_local(|| serde_json::to_vec(black_box(&value)).expect("encodes"));
}

/// Ten stations' temperatures in one message: the host's own pack (an array of readings), or the
/// same readings as a SenML pack (RFC 8428) with a base time and unit, each station's position
/// given by `lat` and `lon` records as SenML does: 30 records for the same 10 readings. `fleet`:
/// the host's pack as the load bench's fleet sends it (bench/load/mqttload.py), with the real
/// stations' ids (too long to be kept inline) and a `station_name` tag.
fn pack_of_ten(format: &str) -> String {
    let stations = (0..10).map(|i| (i, 43.55 + f64::from(i) / 100.0, 1.40 + f64::from(i) / 100.0));
    let records: Vec<String> = match format {
        "fleet" => stations
            .map(|(i, lat, lon)| {
                format!(
                    r#"{{"sensor_id":"0{i}-station-meteo-toulouse-ile-empalot-v1{i}","kind":"temperature","unit":"°C","lat":{lat},"lon":{lon},"tags":{{"station_name":"toulouse ile empalot (virtual 1{i})"}},"value":6.{i}25,"ts":1795939200000}}"#
                )
            })
            .collect(),
        "host" => stations
            .map(|(i, lat, lon)| {
                format!(
                    r#"{{"sensor_id":"{i}","kind":"temperature","value":6.{i},"unit":"°C","ts":1795939200000,"lat":{lat},"lon":{lon}}}"#
                )
            })
            .collect(),
        _ => std::iter::once(r#"{"bt":1795939200,"bu":"Cel","bn":"","n":"0:temperature","v":6.0}"#.to_owned())
            .chain(stations.flat_map(|(i, lat, lon)| {
                let reading = format!(r#"{{"n":"{i}:temperature","v":6.{i}}}"#);
                let place = format!(r#"{{"n":"{i}:lat","u":"lat","v":{lat}}},{{"n":"{i}:lon","u":"lon","v":{lon}}}"#);
                if i == 0 { vec![place] } else { vec![reading, place] }
            }))
            .collect(),
    };
    format!("[{}]", records.join(","))
}

/// A pack of ten readings decoded and each checked, in the host's format and in SenML.
#[divan::bench(args = ["host", "fleet", "senml"])]
fn decode_pack_of_10(bencher: Bencher, format: &str) {
    let text = pack_of_ten(format);
    bencher.counter(ItemsCount::new(10usize)).bench_local(|| {
        let readings = garonne::payload::Readings::decode(black_box(text.as_bytes()), MAX).expect("a pack");
        let read = readings.into_iter().filter(|packed| packed.reading.is_ok()).count();
        assert_eq!(read, 10);
        read
    });
}

/// One point of the line protocol, as the historian writes it.
#[divan::bench(args = ["reading", "aggregate"])]
fn line_protocol(bencher: Bencher, which: &str) {
    let (topic, text) = match which {
        "reading" => ("toulouse/sensors/temperature/42", READING),
        _ => ("toulouse/quartiers/1/temperature", AGGREGATE),
    };
    let payload = payload(text);
    let mapping = Mapping { measurement: "{stream}".into(), prefix: "toulouse".into() };
    bencher.bench_local(|| mapping.line(black_box(topic), black_box(&payload)));
}

const SENSORS: u32 = 100;

/// rolling_stats after `per_sensor` readings of each of 100 sensors, one a second, in a window of
/// `per_sensor` seconds: its state holds all of them, and stays that size as readings go on.
fn rolling_stats(per_sensor: usize) -> PluginSandbox {
    let engine = PluginEngine::new(None).expect("engine");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/target/wasm32-wasip2/release/rolling_stats.wasm");
    let plugin = engine.load(&path).expect("run `cargo xtask build-plugins` first");
    let limits = Limits { call_deadline_ms: 20_000, init_deadline_ms: 20_000, ..Limits::default() };
    let mut sandbox =
        PluginSandbox::instantiate(&plugin, &limits, VirtualClock::new(0, 1.0), 1).expect("instance");
    sandbox.init(&[("window_s".into(), per_sensor.to_string())]).expect("init");
    let sensors: Vec<Sensor> = (0..SENSORS)
        .map(|i| Sensor {
            id: format!("sensor-{i}"),
            kind: "temperature".into(),
            unit: "°C".into(),
            position: Some(Position { lat: 43.6, lon: 1.44 }),
            tags: vec![],
        })
        .collect();
    sandbox.on_sensors(0, &sensors).expect("sensors");
    for step in 0..per_sensor {
        sandbox.on_readings(&batch(step)).expect("call");
    }
    sandbox
}

/// One reading of each sensor at second `step`.
fn batch(step: usize) -> Readings {
    Readings {
        sensors: (0..SENSORS).collect(),
        values: (0..SENSORS as usize).map(|i| ((i + step) % 40) as f64).collect(),
        times: (0..SENSORS).map(|_| step as i64 * 1000).collect(),
    }
}

/// A checkpoint: `snapshot` of the plugin's whole state, then `restore` of it into the same
/// instance (what a recovery or a swap does). The state is about 40 bytes per reading held.
#[divan::bench(args = [10, 300])]
fn snapshot_and_restore(bencher: Bencher, per_sensor: usize) {
    let mut sandbox = rolling_stats(per_sensor);
    let size = sandbox.snapshot().expect("snapshot").len();
    eprintln!("rolling_stats state after {per_sensor} readings of {SENSORS} sensors: {size} bytes");
    bencher.bench_local(|| {
        let state = sandbox.snapshot().expect("snapshot");
        sandbox.restore(&state).expect("restore")
    });
}

/// Calls per sample of the two benches below: two of the supervisor's checkpoint periods, so
/// that a checkpoint's cost shows in every sample rather than in one sample out of 16.
const CALLS: usize = 32;

/// Baseline: the calls a checkpoint protects, each of 100 readings (one per sensor) into the
/// same state, straight into the sandbox.
#[divan::bench(args = [10, 300])]
fn on_readings_of_100(bencher: Bencher, per_sensor: usize) {
    let mut sandbox = rolling_stats(per_sensor);
    let mut step = per_sensor;
    bencher.counter(ItemsCount::new(CALLS)).bench_local(|| {
        for _ in 0..CALLS {
            step += 1;
            // The oldest second leaves each window as the new one comes: the state keeps its size.
            black_box(sandbox.on_readings(&batch(step)).expect("call"));
        }
    });
}

/// The same calls through the supervisor, its checkpoints included: every 16 calls exactly
/// (`ADAPTIVE` false, as before), or at least 16 calls and ten times their cost apart (as
/// `host run` does now). Against `on_readings_of_100`, the share of a plugin's time that goes to
/// its safety net.
#[divan::bench(args = [10, 300], consts = [false, true])]
fn supervised_on_readings_of_100<const ADAPTIVE: bool>(bencher: Bencher, per_sensor: usize) {
    let engine = PluginEngine::new(None).expect("engine");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/target/wasm32-wasip2/release/rolling_stats.wasm");
    let plugin = std::sync::Arc::new(engine.load(&path).expect("run `cargo xtask build-plugins` first"));
    let limits = Limits { call_deadline_ms: 20_000, init_deadline_ms: 20_000, ..Limits::default() };
    let config = vec![("window_s".to_owned(), per_sensor.to_string())];
    let supervisor =
        ProcessorSupervisor::start(plugin, config, limits, VirtualClock::new(0, 1.0), 1).expect("starts");
    let mut supervisor = match ADAPTIVE {
        true => supervisor.with_adaptive_checkpoints(16),
        false => supervisor.with_checkpoint_every(16),
    };
    let payloads = |step: usize| -> Vec<Payload> {
        let readings = batch(step);
        (0..SENSORS as usize)
            .map(|i| Payload {
                sensor_id: compact_str::format_compact!("sensor-{i}"),
                kind: "temperature".into(),
                value: readings.values[i],
                unit: "°C".into(),
                time: readings.times[i],
                position: Some((43.6, 1.44)),
                fields: Default::default(),
                tags: Default::default(),
            })
            .collect()
    };
    for step in 0..per_sensor {
        supervisor.on_readings(&payloads(step));
    }
    let mut step = per_sensor;
    bencher.counter(ItemsCount::new(CALLS)).bench_local(|| {
        for _ in 0..CALLS {
            step += 1;
            black_box(supervisor.on_readings(&payloads(step)));
        }
    });
}
