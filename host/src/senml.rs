//! SenML packs (RFC 8428, JSON), read as readings: the second input format.
//!
//! ```json
//! [{"bn": "urn:dev:ow:10e2073a01080063:", "bt": 1.795939200e9, "bu": "Cel"},
//!  {"n": "temperature", "v": 12.5},
//!  {"n": "humidity", "u": "%RH", "v": 81, "t": 60},
//!  {"n": "lat", "u": "lat", "v": 43.6},
//!  {"n": "lon", "u": "lon", "v": 1.44}]
//! ```
//!
//! Each record is *resolved* as RFC 8428 §4.6 says: the base name is put before its name, the base
//! time added to its time (seconds; below 2^28 a time counts from now), the base value added to
//! its value, the base unit taken when it has no unit. A base field holds for the records after it
//! until another replaces it.
//!
//! A resolved record becomes a reading:
//! - the name's last part, after its last `:` or `/`, is the reading's `kind`, and what comes
//!   before it is the `sensor_id` (`urn:dev:ow:10e2073a01080063` and `temperature` above);
//! - its unit is kept as written (`Cel` stays `Cel`);
//! - records with the units `lat` and `lon` (RFC 8428 §12.1) are not readings: they place the
//!   other readings of their sensor in the pack. A pack is one moment of a sensor: when it gives
//!   one several positions, the last one holds for all its readings.
//!
//! Only numeric values (`v`) are readings. A record with a string, boolean or data value, a sum
//! alone, or a field that ends in `_` (which RFC 8428 §4.4 says a reader that does not know it
//! must refuse) is refused with its reason, as a bad reading of a pack is; the others are read.
//! A record whose fields are not of SenML's types refuses the whole pack, since the base fields
//! it may carry decide how the records after it are read.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::clock::Millis;
use crate::payload::{Fields, PackedReading, Payload, PayloadError, Tags};

/// The SenML version this host reads (RFC 8428's). A pack that declares a later one may use
/// fields whose meaning the host does not know.
pub const VERSION: u64 = 10;

/// Times below this many seconds count from now (RFC 8428 §4.5.3).
const RELATIVE_TIME_LIMIT: f64 = (1u64 << 28) as f64;

/// Whether a pack's first element is a SenML record rather than one of the host's own readings:
/// it has one of SenML's labels and no `sensor_id`. No label of one format is a key of the other.
pub fn is_senml(first: &RawValue) -> bool {
    let text = first.get();
    // The host's own writers put `sensor_id` first: no need to read further.
    if text.starts_with("{\"sensor_id\"") {
        return false;
    }
    matches!(serde_json::from_str::<Labels>(text), Ok(Labels { senml: true, sensor_id: false }))
}

/// Resolves a SenML pack into its readings, in order, each read or refused with its place in the
/// pack. `now` gives the time that relative times count from; it is asked only if one is met.
pub fn resolve<'a>(
    pack: &[&'a RawValue],
    now: impl FnOnce() -> Millis,
) -> Result<Vec<PackedReading<'a>>, PayloadError> {
    let records = read_records(pack)?;
    let mut now = Some(now);
    let mut now_ms = None;
    let mut clock = || *now_ms.get_or_insert_with(|| now.take().map_or(0, |f| f()));
    let mut base = Base::default();
    let mut resolved = Vec::with_capacity(records.len());
    for record in records {
        resolved.push(base.resolve(record, &mut clock));
    }
    let positions = positions_by_sensor(&mut resolved);
    let count = pack.len();
    let in_pack =
        |place: usize, error| PayloadError::InPack { place: place + 1, count, error: Box::new(error) };
    let mut readings = Vec::with_capacity(resolved.len());
    for (place, (entry, raw)) in resolved.into_iter().zip(pack).enumerate() {
        let reading = match entry {
            Entry::Header | Entry::Position { .. } => continue,
            Entry::Refused(error) => Err(in_pack(place, error)),
            Entry::Reading(mut payload) => match positions.get(payload.sensor_id.as_str()) {
                Some(None) => Err(in_pack(place, PayloadError::BadPosition)),
                given => {
                    payload.position = given.copied().flatten();
                    payload.check().map(|()| payload).map_err(|error| in_pack(place, error))
                }
            },
        };
        readings.push(PackedReading { reading, text: Some(raw.get()) });
    }
    Ok(readings)
}

/// Reads every record's fields, or refuses the pack at the first that is not a SenML record.
fn read_records<'a>(pack: &[&'a RawValue]) -> Result<Vec<Record<'a>>, PayloadError> {
    let mut records = Vec::with_capacity(pack.len());
    for (place, raw) in pack.iter().enumerate() {
        let record: Record = serde_json::from_str(raw.get()).map_err(|error| {
            PayloadError::BadSenmlRecord { place: place + 1, count: pack.len(), reason: error.to_string() }
        })?;
        if let Some(version) = record.bver.filter(|&v| v > VERSION) {
            return Err(PayloadError::SenmlVersion(version));
        }
        records.push(record);
    }
    Ok(records)
}

/// The position each sensor of the pack is given (the last `lat` and `lon`), or `None` when the
/// pack gives it only one of the two.
/// Takes the sensor ids out of the position records, which are not read after this.
fn positions_by_sensor(resolved: &mut [Entry]) -> HashMap<String, Option<(f64, f64)>> {
    let mut given: HashMap<String, (Option<f64>, Option<f64>)> = HashMap::new();
    for entry in resolved {
        if let Entry::Position { sensor_id, axis, degrees } = entry {
            let (lat, lon) = given.entry(std::mem::take(sensor_id)).or_default();
            *(if *axis == Axis::Lat { lat } else { lon }) = Some(*degrees);
        }
    }
    given.into_iter().map(|(sensor, (lat, lon))| (sensor, lat.zip(lon))).collect()
}

/// What a record of the pack turned out to be once resolved.
#[derive(Debug)]
enum Entry {
    /// Base fields only, no name of its own and no value: nothing to read.
    Header,
    Reading(Payload),
    Position {
        sensor_id: String,
        axis: Axis,
        degrees: f64,
    },
    Refused(PayloadError),
}

#[derive(Debug, PartialEq, Clone, Copy)]
enum Axis {
    Lat,
    Lon,
}

/// The base fields in force (RFC 8428 §4.1): each holds until a later record gives it again.
#[derive(Default)]
struct Base<'a> {
    name: Cow<'a, str>,
    time: f64,
    unit: Option<Cow<'a, str>>,
    value: f64,
}

impl<'a> Base<'a> {
    fn resolve(&mut self, record: Record<'a>, now: &mut impl FnMut() -> Millis) -> Entry {
        if let Some(name) = record.bn {
            self.name = name;
        }
        if let Some(time) = record.bt {
            self.time = time;
        }
        if let Some(unit) = record.bu {
            self.unit = Some(unit);
        }
        if let Some(value) = record.bv {
            self.value = value;
        }
        if let Some(field) = record.must_understand {
            return Entry::Refused(PayloadError::SenmlMustUnderstand(field));
        }
        let has_value = record.v.is_some() || record.other_value.is_some() || record.s.is_some();
        if record.n.is_none() && !has_value {
            return Entry::Header;
        }
        let name = match record.n {
            Some(n) if !self.name.is_empty() => Cow::Owned(format!("{}{n}", self.name)),
            Some(n) => n,
            None => self.name.clone(),
        };
        let Some(value) = record.v else {
            let name = name.into_owned();
            return Entry::Refused(PayloadError::SenmlNotNumeric(name, record.other_value.unwrap_or("s")));
        };
        match self.reading(name, value, record.u, record.t, now) {
            Ok(entry) => entry,
            Err(error) => Entry::Refused(error),
        }
    }

    fn reading(
        &self,
        name: Cow<str>,
        value: f64,
        unit: Option<Cow<str>>,
        time: Option<f64>,
        now: &mut impl FnMut() -> Millis,
    ) -> Result<Entry, PayloadError> {
        let (sensor_id, kind) = split_name(&name)?;
        let unit = unit.as_deref().or(self.unit.as_deref()).unwrap_or_default();
        let value = self.value + value;
        let axis = match unit {
            "lat" => Some(Axis::Lat),
            "lon" => Some(Axis::Lon),
            _ => None,
        };
        if let Some(axis) = axis {
            let range = if axis == Axis::Lat { 90.0 } else { 180.0 };
            if !(-range..=range).contains(&value) {
                return Err(PayloadError::BadPosition);
            }
            return Ok(Entry::Position { sensor_id: sensor_id.to_owned(), axis, degrees: value });
        }
        Ok(Entry::Reading(Payload {
            sensor_id: sensor_id.into(),
            kind: kind.into(),
            value,
            unit: unit.into(),
            time: event_time(self.time + time.unwrap_or(0.0), now)?,
            position: None,
            fields: Fields::new(),
            tags: Tags::new(),
        }))
    }
}

/// Splits a resolved name into the sensor and what it measures, at the last `:` or `/`, after
/// checking it is a SenML name (RFC 8428 §4.5.1: a letter or digit, then letters, digits and
/// `-:./_`).
fn split_name(name: &str) -> Result<(&str, &str), PayloadError> {
    let valid = name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-:./_".contains(&b));
    let bad = || PayloadError::SenmlName(name.to_owned());
    if !valid {
        return Err(bad());
    }
    let cut = name.rfind([':', '/']).ok_or_else(bad)?;
    let (sensor, kind) = (&name[..cut], &name[cut + 1..]);
    if kind.is_empty() { Err(bad()) } else { Ok((sensor, kind)) }
}

/// A resolved time in seconds, as milliseconds since 1970: from now when below 2^28 s.
fn event_time(seconds: f64, now: &mut impl FnMut() -> Millis) -> Result<Millis, PayloadError> {
    // Past the year 2^53 ms the milliseconds are no longer whole numbers: a sender's mistake.
    const LIMIT_S: f64 = 9.0e12;
    if !seconds.is_finite() || seconds.abs() > LIMIT_S {
        return Err(PayloadError::SenmlTime(seconds));
    }
    let ms = (seconds * 1000.0).round() as Millis;
    Ok(if seconds < RELATIVE_TIME_LIMIT { now().saturating_add(ms) } else { ms })
}

/// The fields of one record that the host reads, and what it must know it cannot. Its text is
/// borrowed from the message where JSON allows (no escapes in it).
#[derive(Default)]
struct Record<'a> {
    bn: Option<Cow<'a, str>>,
    bt: Option<f64>,
    bu: Option<Cow<'a, str>>,
    bv: Option<f64>,
    bver: Option<u64>,
    n: Option<Cow<'a, str>>,
    u: Option<Cow<'a, str>>,
    v: Option<f64>,
    s: Option<f64>,
    t: Option<f64>,
    /// `vs`, `vb` or `vd`: a value that is not a number.
    other_value: Option<&'static str>,
    /// The first field ending in `_`.
    must_understand: Option<String>,
}

impl<'de> Deserialize<'de> for Record<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RecordVisitor)
    }
}

struct RecordVisitor;

impl<'de> Visitor<'de> for RecordVisitor {
    type Value = Record<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a SenML record (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record<'de>, A::Error> {
        let mut record = Record::default();
        while let Some(Text(label)) = map.next_key()? {
            match label.as_ref() {
                "bn" => record.bn = Some(map.next_value::<Text>()?.0),
                "bt" => record.bt = Some(map.next_value()?),
                "bu" => record.bu = Some(map.next_value::<Text>()?.0),
                "bv" => record.bv = Some(map.next_value()?),
                "bver" => record.bver = Some(map.next_value()?),
                "n" => record.n = Some(map.next_value::<Text>()?.0),
                "u" => record.u = Some(map.next_value::<Text>()?.0),
                "v" => record.v = Some(map.next_value()?),
                "s" => record.s = Some(map.next_value()?),
                "t" => record.t = Some(map.next_value()?),
                "vs" | "vb" | "vd" => {
                    record.other_value = Some(match label.as_ref() {
                        "vs" => "vs",
                        "vb" => "vb",
                        _ => "vd",
                    });
                    map.next_value::<IgnoredAny>()?;
                }
                other => {
                    if other.ends_with('_') && record.must_understand.is_none() {
                        record.must_understand = Some(other.to_owned());
                    }
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(record)
    }
}

/// A JSON string, borrowed from the message unless it holds escapes. (`Cow<str>` itself always
/// copies when deserialized: that was a third of a pack's decoding.)
struct Text<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: serde::de::Error>(self, text: &'de str) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Borrowed(text)))
    }
    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Owned(text.to_owned())))
    }
    fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Owned(text)))
    }
}

/// Which of the two formats' labels an object has, read without keeping any value.
struct Labels {
    senml: bool,
    sensor_id: bool,
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(LabelsVisitor)
    }
}

struct LabelsVisitor;

impl<'de> Visitor<'de> for LabelsVisitor {
    type Value = Labels;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Labels, A::Error> {
        const SENML: [&str; 15] =
            ["bn", "bt", "bu", "bv", "bs", "bver", "n", "u", "v", "vs", "vb", "vd", "s", "t", "ut"];
        let mut labels = Labels { senml: false, sensor_id: false };
        while let Some(Text(label)) = map.next_key()? {
            labels.senml |= SENML.contains(&label.as_ref());
            labels.sensor_id |= label == "sensor_id";
            map.next_value::<IgnoredAny>()?;
        }
        Ok(labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_795_939_200_000;

    fn raw(pack: &str) -> Vec<&RawValue> {
        serde_json::from_str(pack).expect("a JSON array")
    }

    fn read(pack: &str) -> Vec<Result<Payload, PayloadError>> {
        let records = raw(pack);
        let readings = resolve(&records, || NOW).expect("a SenML pack");
        readings.into_iter().map(|packed| packed.reading).collect()
    }

    fn ok(results: &[Result<Payload, PayloadError>]) -> Vec<&Payload> {
        results.iter().map(|r| r.as_ref().expect("a reading")).collect()
    }

    #[test]
    fn base_fields_resolve_each_record_and_hold_until_replaced() {
        // RFC 8428 §5.1.2's shape: a base name, time and unit, then records that use them.
        let got = read(
            r#"[{"bn":"urn:dev:ow:10e2073a01080063:","bt":1.795939200e9,"bu":"Cel","bv":10,
                 "n":"temperature","v":2.5},
                {"n":"temperature","v":3,"t":60},
                {"n":"humidity","u":"%RH","v":71,"t":60.5},
                {"bn":"urn:dev:ow:other/","bt":1.7959392e9,"bv":0,"n":"temperature","v":4}]"#,
        );
        let got = ok(&got);
        let summary: Vec<_> = got
            .iter()
            .map(|p| (p.sensor_id.as_str(), p.kind.as_str(), p.value, p.unit.as_str(), p.time))
            .collect();
        assert_eq!(
            summary,
            [
                ("urn:dev:ow:10e2073a01080063", "temperature", 12.5, "Cel", NOW),
                ("urn:dev:ow:10e2073a01080063", "temperature", 13.0, "Cel", NOW + 60_000),
                ("urn:dev:ow:10e2073a01080063", "humidity", 81.0, "%RH", NOW + 60_500),
                ("urn:dev:ow:other", "temperature", 4.0, "Cel", NOW),
            ]
        );
    }

    #[test]
    fn times_below_two_to_the_28_count_from_now() {
        let got =
            read(r#"[{"n":"s1:t","v":1},{"n":"s1:t","v":2,"t":-30},{"bt":-1.5,"n":"s1:t","v":3,"t":1}]"#);
        let times: Vec<Millis> = ok(&got).iter().map(|p| p.time).collect();
        assert_eq!(times, [NOW, NOW - 30_000, NOW - 500]);
        // Absolute times never ask for now.
        let records = raw(r#"[{"n":"s1:t","v":1,"t":1795939200}]"#);
        let readings = resolve(&records, || panic!("now is not needed")).expect("a pack");
        assert_eq!(readings[0].reading.as_ref().map(|p| p.time), Ok(NOW));
    }

    #[test]
    fn lat_and_lon_records_place_their_sensors_readings_and_are_not_readings() {
        let got = read(
            r#"[{"bn":"station-12:","n":"temperature","u":"Cel","v":9.5},
                {"n":"lat","u":"lat","v":43.6},{"n":"lon","u":"lon","v":1.44},
                {"n":"other:temperature","bn":"","v":8}]"#,
        );
        let got = ok(&got);
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].sensor_id.as_str(), got[0].position), ("station-12", Some((43.6, 1.44))));
        assert_eq!((got[1].sensor_id.as_str(), got[1].position), ("other", None));
    }

    #[test]
    fn a_half_or_impossible_position_refuses_what_it_would_place() {
        let got = read(r#"[{"n":"a:t","v":1},{"n":"a:lat","u":"lat","v":43.6}]"#);
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].as_ref().err().map(ToString::to_string).as_deref(),
            Some(
                "reading 1 of the 2 in the array: `lat` and `lon` must be given together, with lat in [-90, 90] and lon in [-180, 180]"
            )
        );
        let got = read(r#"[{"n":"a:t","v":1},{"n":"a:lat","u":"lat","v":143.6}]"#);
        assert!(matches!(&got[1], Err(PayloadError::InPack { place: 2, .. })), "{got:?}");
    }

    #[test]
    fn records_the_host_cannot_read_are_refused_one_by_one_with_why() {
        let got = read(
            r#"[{"bn":"dev:","n":"door","vb":true},{"n":"label","vs":"x"},{"n":"energy","s":12},
                {"n":"t","v":1,"x_":2},{"n":"-bad","v":1,"bn":""},{"n":"nokind","v":1},
                {"bn":"dev:"},{"n":"t","v":20,"future":1}]"#,
        );
        let errors: Vec<String> =
            got.iter().filter_map(|r| r.as_ref().err()).map(ToString::to_string).collect();
        assert_eq!(errors.len(), 6, "{errors:?}");
        assert!(errors[0].contains("`vb`"), "{}", errors[0]);
        assert!(errors[1].contains("`vs`"), "{}", errors[1]);
        assert!(errors[2].contains("`s`"), "{}", errors[2]);
        assert!(errors[3].contains("x_"), "{}", errors[3]);
        assert!(errors[4].contains("-bad"), "{}", errors[4]);
        assert!(errors[5].starts_with("reading 6 of the 8"), "{}", errors[5]);
        // The header record is skipped; unknown fields without `_` are ignored.
        let last = got.last().and_then(|r| r.as_ref().ok()).expect("the last record is a reading");
        assert_eq!((last.sensor_id.as_str(), last.kind.as_str(), last.value), ("dev", "t", 20.0));
    }

    #[test]
    fn a_record_of_the_wrong_types_or_a_later_version_refuses_the_pack() {
        let whole = |pack: &str| resolve(&raw(pack), || NOW).map(|r| r.len());
        let error = whole(r#"[{"n":"a:t","v":1},{"bn":5,"n":"t","v":1}]"#).expect_err("a number as a name");
        assert!(error.to_string().starts_with("record 2 of the 2 in the SenML pack"), "{error}");
        assert!(matches!(whole(r#"[{"n":"a:t","v":"warm"}]"#), Err(PayloadError::BadSenmlRecord { .. })));
        assert_eq!(whole(r#"[{"bver":11,"n":"a:t","v":1}]"#), Err(PayloadError::SenmlVersion(11)));
        assert_eq!(whole(r#"[{"bver":10,"n":"a:t","v":1}]"#), Ok(1));
    }

    #[test]
    fn senml_is_told_from_the_hosts_own_packs_by_its_labels() {
        let first = |pack: &str| is_senml(raw(pack)[0]);
        assert!(first(r#"[{"n":"a:t","v":1}]"#));
        assert!(first(r#"[{"bn":"a:"}]"#));
        assert!(!first(r#"[{"sensor_id":"a","kind":"t","value":1,"ts":0}]"#));
        assert!(!first(r#"[{"kind":"t","value":1,"ts":0,"sensor_id":"a"}]"#));
        assert!(!first(r#"[{"value":1}]"#), "neither: read as the host's own, and refused as such");
        assert!(!first("[1]"));
    }

    #[test]
    fn times_out_of_range_are_refused() {
        let got = read(r#"[{"n":"a:t","v":1,"t":1e300}]"#);
        assert!(
            matches!(&got[0], Err(PayloadError::InPack { error, .. }) if matches!(**error, PayloadError::SenmlTime(_)))
        );
    }
}
