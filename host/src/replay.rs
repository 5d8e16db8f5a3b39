//! The offline harness of `host plugin test`: recorded readings through a plugin, no broker.
//!
//! Time comes from the readings themselves: the virtual clock follows their event times, the
//! processor gets an `on-tick` each time event time crosses a multiple of `tick_ms`, and a last
//! tick `flush_ms` after the last reading closes the windows still open. The same input thus
//! gives the same output, byte for byte, on any machine.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::clock::{Millis, VirtualClock};
use crate::payload::{self, Payload, PayloadError, Readings};
use crate::sandbox::{
    DeadLetter, Limits, LoadedPlugin, ProcessorSupervisor, Published, SensorModelSupervisor,
};

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read {path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("{path}, line {line}: {error}")]
    BadReading { path: PathBuf, line: usize, error: PayloadError },
    #[error("{path}, line {line}: not JSON: {message}")]
    BadExpectation { path: PathBuf, line: usize, message: String },
    #[error("the plugin failed to start: {0}")]
    Start(String),
}

/// How a replay runs.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub config: Vec<(String, String)>,
    pub limits: Limits,
    pub batch: usize,
    pub tick_ms: i64,
    pub flush_ms: i64,
    pub seed: u64,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        Self {
            config: Vec::new(),
            limits: Limits::default(),
            batch: 100,
            tick_ms: 60_000,
            flush_ms: 3_600_000,
            seed: 42,
        }
    }
}

/// What a replay produced: messages as JSON lines, and what the plugin could not process.
#[derive(Debug, Default)]
pub struct ReplayOutput {
    pub lines: Vec<Value>,
    pub dead_letters: Vec<DeadLetter>,
}

/// The lines of a JSON-lines file that hold something: blank lines and lines starting with `#`
/// are skipped. Lines are read as bytes: the JSON decoder checks the UTF-8 of each string, once,
/// and a line that is not UTF-8 is reported by its number like any bad line.
struct JsonLines {
    path: PathBuf,
    reader: std::io::BufReader<std::fs::File>,
    line: usize,
    text: Vec<u8>,
}

impl JsonLines {
    fn open(path: &Path) -> Result<Self, ReplayError> {
        let file =
            std::fs::File::open(path).map_err(|error| ReplayError::Read { path: path.into(), error })?;
        Ok(Self { path: path.into(), reader: std::io::BufReader::new(file), line: 0, text: Vec::new() })
    }

    /// The next line that holds something, and its number.
    fn next_line(&mut self) -> Option<Result<(usize, &[u8]), ReplayError>> {
        loop {
            self.text.clear();
            self.line += 1;
            match self.reader.read_until(b'\n', &mut self.text) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(error) => return Some(Err(ReplayError::Read { path: self.path.clone(), error })),
            }
            // Bounds rather than `trim_ascii`: a borrow taken before the test would outlive the
            // loop's next `clear` in the borrow checker's eyes.
            let text = &self.text;
            let Some(start) = text.iter().position(|b| !b.is_ascii_whitespace()) else { continue };
            let end = text.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |e| e + 1);
            if text[start] != b'#' {
                return Some(Ok((self.line, &self.text[start..end])));
            }
        }
    }
}

/// The readings of a JSON-lines file, decoded one by one as they are read. A replay holds a batch
/// at a time, not the file: a recording of a day decoded whole took 320 MiB, and its page faults
/// a quarter of the replay's CPU. A line may be a pack (a JSON array of readings), as a recording
/// of a gateway's messages holds.
pub struct ReadingFile {
    lines: JsonLines,
    /// The file's path, apart from `lines` so that errors can name it while a line is borrowed.
    path: PathBuf,
    /// The rest of the pack of the line read last.
    pack: std::collections::VecDeque<Result<Payload, ReplayError>>,
    /// What a SenML pack's relative times count from; `None`: the wall clock when it is read.
    now: Option<Millis>,
}

impl ReadingFile {
    pub fn open(path: &Path) -> Result<Self, ReplayError> {
        Ok(Self { lines: JsonLines::open(path)?, path: path.into(), pack: Default::default(), now: None })
    }

    /// Reads SenML relative times (below 2^28 s) as counted from `now`, so that the file gives
    /// the same readings whenever it is replayed.
    pub fn with_now(self, now: Millis) -> Self {
        Self { now: Some(now), ..self }
    }
}

impl Iterator for ReadingFile {
    type Item = Result<Payload, ReplayError>;

    fn next(&mut self) -> Option<Self::Item> {
        // A loop: a SenML pack may hold no reading at all (only its sensors' positions).
        loop {
            if let Some(reading) = self.pack.pop_front() {
                return Some(reading);
            }
            let (line, text) = match self.lines.next_line()? {
                Ok(found) => found,
                Err(error) => return Some(Err(error)),
            };
            let path = &self.path;
            let bad = |error| ReplayError::BadReading { path: path.clone(), line, error };
            let now = self.now;
            match Readings::decode_at(text, usize::MAX, || {
                now.unwrap_or_else(crate::clock::wall_clock_millis)
            }) {
                Ok(Readings::One(reading)) => return Some(Ok(reading)),
                Ok(pack) => self.pack = pack.into_iter().map(|packed| packed.reading.map_err(bad)).collect(),
                Err(error) => return Some(Err(bad(error))),
            }
        }
    }
}

/// Reads a JSON-lines file of expected messages.
pub fn read_expected(path: &Path) -> Result<Vec<Value>, ReplayError> {
    let mut lines = JsonLines::open(path)?;
    let mut expected = Vec::new();
    while let Some(next) = lines.next_line() {
        let (line, text) = next?;
        let value = serde_json::from_slice(text).map_err(|e| ReplayError::BadExpectation {
            path: path.into(),
            line,
            message: e.to_string(),
        })?;
        expected.push(value);
    }
    Ok(expected)
}

/// Replays `readings` through a processor, in batches of `options.batch`, as they come; the
/// first error of `readings` ends the replay with that error.
pub fn replay_processor(
    plugin: Arc<LoadedPlugin>,
    readings: impl IntoIterator<Item = Result<Payload, ReplayError>>,
    options: &ReplayOptions,
) -> Result<ReplayOutput, ReplayError> {
    let mut readings = readings.into_iter();
    // The clock starts at the first reading: take it before the plugin starts.
    let first = readings.next().transpose()?;
    let start = first.as_ref().map_or(0, |r| r.time);
    let clock = VirtualClock::manual(start);
    let mut supervisor = ProcessorSupervisor::start(
        plugin,
        options.config.clone(),
        options.limits.clone(),
        clock.clone(),
        options.seed,
    )
    .map_err(|e| ReplayError::Start(e.to_string()))?;
    let tick_ms = options.tick_ms.max(1);
    let batch_max = options.batch.max(1);
    let mut output = ReplayOutput::default();
    let mut next_tick = (start.div_euclid(tick_ms) + 1) * tick_ms;
    let mut batch = Vec::with_capacity(batch_max);
    let mut latest = start;
    for reading in first.map(Ok).into_iter().chain(readings) {
        let reading = reading?;
        while reading.time >= next_tick {
            flush(&mut supervisor, &mut batch, &mut output);
            clock.set(next_tick);
            output.absorb(supervisor.on_tick(next_tick));
            next_tick += tick_ms;
        }
        latest = latest.max(reading.time);
        clock.set(latest);
        batch.push(reading);
        if batch.len() >= batch_max {
            flush(&mut supervisor, &mut batch, &mut output);
        }
    }
    flush(&mut supervisor, &mut batch, &mut output);
    let end = latest + options.flush_ms;
    clock.set(end);
    output.absorb(supervisor.on_tick(end));
    Ok(output)
}

/// Replays readings already in memory (tests, benches).
pub fn replay_readings(
    plugin: Arc<LoadedPlugin>,
    readings: &[Payload],
    options: &ReplayOptions,
) -> Result<ReplayOutput, ReplayError> {
    replay_processor(plugin, readings.iter().cloned().map(Ok), options)
}

fn flush(supervisor: &mut ProcessorSupervisor, batch: &mut Vec<Payload>, output: &mut ReplayOutput) {
    if !batch.is_empty() {
        output.absorb(supervisor.on_readings(batch));
        batch.clear();
    }
}

/// Runs a sensor model from `from` to `to` (ms), a tick every `interval_ms`, as fast as it goes.
pub fn run_sensor_model(
    plugin: Arc<LoadedPlugin>,
    stations: Vec<crate::sandbox::Station>,
    from: i64,
    to: i64,
    interval_ms: i64,
    options: &ReplayOptions,
) -> Result<ReplayOutput, ReplayError> {
    let clock = VirtualClock::manual(from);
    let mut model = SensorModelSupervisor::start(
        plugin,
        options.config.clone(),
        stations,
        options.limits.clone(),
        clock.clone(),
        options.seed,
    )
    .map_err(|e| ReplayError::Start(e.to_string()))?;
    let mut output = ReplayOutput::default();
    let mut now = from;
    while now <= to {
        clock.set(now);
        let (readings, dead_letter) = model.tick(now);
        output.lines.extend(readings.iter().filter_map(reading_line));
        output.dead_letters.extend(dead_letter);
        now += interval_ms.max(1);
    }
    Ok(output)
}

impl ReplayOutput {
    fn absorb(&mut self, outcome: crate::sandbox::Outcome) {
        self.lines.extend(outcome.messages.into_iter().filter_map(message_line));
        self.dead_letters.extend(outcome.dead_letters);
    }
}

fn reading_line(reading: &Payload) -> Option<Value> {
    serde_json::from_slice(&reading.encode().ok()?).ok()
}

/// A message as one JSON object: its relative topic, then the fields of the wire format.
fn message_line(message: Published) -> Option<Value> {
    let Published { topic, payload } = message;
    let mut object: Map<String, Value> = match reading_line(&payload)? {
        Value::Object(map) => map,
        _ => return None,
    };
    object.insert("topic".into(), Value::String(topic));
    Some(Value::Object(object))
}

/// Whether `actual` has every key of `expected` with the same value, recursively: an
/// expectation names only what it cares about (a hand-written one can leave out a centroid).
pub fn matches(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            e.iter().all(|(key, value)| a.get(key).is_some_and(|actual| matches(value, actual)))
        }
        _ => expected == actual,
    }
}

/// A readable account of how `actual` differs from `expected`, or `None` if every line matches.
pub fn diff(expected: &[Value], actual: &[Value]) -> Option<String> {
    let mut report = Vec::new();
    for i in 0..expected.len().max(actual.len()) {
        match (expected.get(i), actual.get(i)) {
            (Some(e), Some(a)) if matches(e, a) => {}
            (Some(e), Some(a)) => {
                report.push(format!("line {}:", i + 1));
                report.push(format!("  expected: {e}"));
                report.push(format!("  got:      {a}"));
                for (key, (ev, av)) in differing_keys(e, a) {
                    report.push(format!("    `{key}`: expected {ev}, got {av}"));
                }
            }
            (Some(e), None) => report.push(format!("line {}: missing (expected {e})", i + 1)),
            (None, Some(a)) => report.push(format!("line {}: unexpected extra message {a}", i + 1)),
            (None, None) => {}
        }
    }
    (!report.is_empty()).then(|| {
        let header = format!("{} expected messages, {} produced", expected.len(), actual.len());
        std::iter::once(header).chain(report).collect::<Vec<_>>().join("\n")
    })
}

fn differing_keys(expected: &Value, actual: &Value) -> BTreeMap<String, (String, String)> {
    let (Value::Object(e), Value::Object(a)) = (expected, actual) else { return BTreeMap::new() };
    e.keys()
        .filter(|k| !a.get(*k).is_some_and(|actual| e.get(*k).is_some_and(|exp| matches(exp, actual))))
        .map(|k| {
            let show = |v: Option<&Value>| v.map_or("nothing".to_owned(), Value::to_string);
            (k.clone(), (show(e.get(k)), show(a.get(k))))
        })
        .collect()
}

/// Parses an RFC 3339 time given on the command line.
pub fn parse_time(text: &str) -> Result<i64, PayloadError> {
    payload::parse_rfc3339(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reading_file(name: &str, bytes: &[u8]) -> ReadingFile {
        let path = std::env::temp_dir().join(format!("garonne-replay-{}-{name}.jsonl", std::process::id()));
        std::fs::write(&path, bytes).expect("a temp file");
        ReadingFile::open(&path).expect("opens")
    }

    #[test]
    fn a_reading_file_skips_blank_and_comment_lines() {
        let line = r#"{"sensor_id":"s1","kind":"temperature","value":1.5,"ts":0}"#;
        let text = format!("# recorded\n\n  {line}  \r\n{line}");
        let readings: Vec<Payload> =
            reading_file("skips", text.as_bytes()).collect::<Result<_, _>>().expect("two readings");
        assert_eq!(readings.len(), 2);
        assert_eq!(readings[1].value, 1.5);
    }

    #[test]
    fn a_bad_line_is_named_by_its_number_even_when_it_is_not_utf8() {
        let good = br#"{"sensor_id":"s1","kind":"temperature","value":1.5,"ts":0}"#;
        let mut bytes = [&good[..], b"\n# note\n{\"sensor_id\":\"\xff\"}\n"].concat();
        bytes.extend_from_slice(good);
        let mut file = reading_file("bad", &bytes);
        assert!(matches!(file.next(), Some(Ok(_))));
        let error = file.next().expect("a result").expect_err("line 3 is bad").to_string();
        assert!(error.contains("line 3:"), "{error}");
    }

    #[test]
    fn a_pack_on_a_line_gives_its_readings_in_order_and_names_its_bad_one() {
        let reading =
            |value: &str| format!(r#"{{"sensor_id":"s1","kind":"temperature","value":{value},"ts":0}}"#);
        let text = format!("[{}, {}, {}]\n{}", reading("1"), reading("\"x\""), reading("3"), reading("4"));
        let got: Vec<_> = reading_file("pack", text.as_bytes()).collect();
        assert_eq!(got.len(), 4);
        let values: Vec<f64> = got.iter().filter_map(|r| r.as_ref().ok()).map(|p| p.value).collect();
        assert_eq!(values, [1.0, 3.0, 4.0]);
        let error = got[1].as_ref().expect_err("the second reading is bad").to_string();
        assert!(error.contains("line 1: reading 2 of the 3 in the array"), "{error}");
    }

    #[test]
    fn senml_packs_replay_and_one_without_readings_does_not_end_the_file() {
        let text = concat!(
            r#"[{"bn":"station-12:","n":"lat","u":"lat","v":43.6},{"n":"lon","u":"lon","v":1.44}]"#,
            "\n",
            r#"[{"bn":"station-12:","bt":1795939200,"n":"temperature","u":"Cel","v":9.5},{"n":"humidity","v":81,"t":60}]"#,
        );
        let readings: Vec<Payload> =
            reading_file("senml", text.as_bytes()).collect::<Result<_, _>>().expect("two readings");
        let got: Vec<_> = readings.iter().map(|p| (p.kind.as_str(), p.value, p.time)).collect();
        assert_eq!(got, [("temperature", 9.5, 1_795_939_200_000), ("humidity", 81.0, 1_795_939_260_000)]);
    }

    #[test]
    fn senml_relative_times_count_from_the_given_now() {
        // 2026-11-29T08:00:00Z; the second record is a minute later, the third a minute before.
        let now = 1_795_939_200_000;
        let text = r#"[{"bn":"station-12:","n":"temperature","u":"Cel","v":9.5},{"n":"temperature","v":9.7,"t":60},{"n":"temperature","v":9.1,"t":-60}]"#;
        let times = || -> Vec<i64> {
            let file = reading_file("senml-now", text.as_bytes()).with_now(now);
            file.map(|r| r.expect("a reading").time).collect()
        };
        assert_eq!(times(), [now, now + 60_000, now - 60_000]);
        assert_eq!(times(), times(), "the same readings at each replay");
    }

    #[test]
    fn equal_outputs_have_no_diff() {
        let lines = vec![json!({"value": 1.0})];
        assert_eq!(diff(&lines, &lines), None);
    }

    #[test]
    fn an_expectation_checks_only_the_keys_it_names() {
        let actual = vec![json!({"value": 1.0, "lat": 43.6, "fields": {"min": 1.0, "max": 2.0}})];
        assert_eq!(diff(&[json!({"value": 1.0, "fields": {"max": 2.0}})], &actual), None);
        assert!(diff(&[json!({"value": 1.0, "fields": {"max": 3.0}})], &actual).is_some());
        assert!(diff(&[json!({"value": 1.0, "unit": "°C"})], &actual).is_some(), "a missing key differs");
    }

    #[test]
    fn a_diff_names_the_line_and_the_field() {
        let expected = vec![json!({"value": 1.0, "kind": "t"}), json!({"value": 2.0})];
        let actual = vec![json!({"value": 1.5, "kind": "t"})];
        let report = diff(&expected, &actual).expect("a difference");
        assert!(report.contains("line 1:"), "{report}");
        assert!(report.contains("`value`: expected 1.0, got 1.5"), "{report}");
        assert!(report.contains("line 2: missing"), "{report}");
        assert!(!report.contains("`kind`"), "{report}");
    }
}
