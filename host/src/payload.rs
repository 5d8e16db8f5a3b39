//! The JSON message format of every reading, aggregate and alert on the wire.
//!
//! ```json
//! {"sensor_id": "42", "kind": "temperature", "value": 12.5, "unit": "°C",
//!  "ts": "2026-11-29T08:00:00.000Z", "lat": 43.6, "lon": 1.44,
//!  "fields": {"min": 11.0}, "tags": {"quartier": "Capitole"}}
//! ```
//!
//! `ts` is RFC 3339 or milliseconds since the epoch on input, RFC 3339 in UTC with milliseconds
//! on output. `unit`, `lat`/`lon`, `fields` and `tags` are optional. Unknown fields are ignored
//! so that older hosts read newer messages.
//!
//! On input a message may also be a JSON array of such objects, a *pack*: a gateway that buffers
//! its sensors' readings sends them in one message, as ThingsBoard's device API and SenML
//! (RFC 8428) allow. The broker then relays one message where it relayed many, which is what
//! bounds every stage on one machine (`BENCHMARKS.md`). Each reading of a pack is checked on its
//! own: a bad one is refused with its place in the pack, and does not take the others with it.

use compact_str::{CompactString, ToCompactString};
use litemap::LiteMap;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::clock::Millis;
use crate::senml;

/// Payloads above this size are refused before parsing, so that one huge message cannot take the
/// host's memory.
pub const DEFAULT_MAX_PAYLOAD: usize = 64 * 1024;

/// A short text of a message: a sensor's id, kind or unit, a tag or a field's name.
///
/// Kept inline up to 24 bytes, which holds nearly every one: a `String` costs an allocation each,
/// made by the input's thread and freed by a processor's, and at 60,000 readings/s malloc and
/// free were a quarter of the host's CPU (`BENCHMARKS.md`, session 21).
pub type Text = CompactString;

/// A message's named numbers (`min`, `count`, ...), sorted by name.
pub type Fields = LiteMap<Text, f64>;
/// A message's tags (`quartier`, `station_name`, ...), sorted by name.
///
/// Both are maps of a few entries, kept sorted in one vector. A `BTreeMap` allocated a node of
/// 544 bytes for a reading's single tag, twice the rest of the reading: that was most of what an
/// overloaded host held in its queues, and a copy of it for every processor reading the topic.
pub type Tags = LiteMap<Text, Text>;

/// One message on the wire, decoded and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    pub sensor_id: Text,
    pub kind: Text,
    pub value: f64,
    pub unit: Text,
    pub time: Millis,
    pub position: Option<(f64, f64)>,
    pub fields: Fields,
    pub tags: Tags,
}

/// Why a payload was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PayloadError {
    #[error("payload of {size} bytes is larger than the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("payload is not valid JSON for a reading: {0}")]
    Invalid(String),
    #[error("`{0}` must be a finite number (NaN and infinities are not allowed)")]
    NotFinite(String),
    #[error("`{0}` must not be empty")]
    Empty(&'static str),
    #[error("`ts` {0:?} is neither RFC 3339 (2026-11-29T08:00:00Z) nor milliseconds since 1970")]
    BadTime(String),
    #[error("`lat` and `lon` must be given together, with lat in [-90, 90] and lon in [-180, 180]")]
    BadPosition,
    #[error("an array of readings must hold at least one reading")]
    EmptyPack,
    #[error("reading {place} of the {count} in the array: {error}")]
    InPack { place: usize, count: usize, error: Box<PayloadError> },
    #[error(
        "record {place} of the {count} in the SenML pack is not a SenML record ({reason}); the records after it \
         may depend on its base fields, so the pack is refused whole"
    )]
    BadSenmlRecord { place: usize, count: usize, reason: String },
    #[error("the pack declares SenML version {0} (`bver`); this host reads version 10, RFC 8428's")]
    SenmlVersion(u64),
    #[error(
        "the SenML record has the field `{0}`, whose name ends in `_`: RFC 8428 says a reader that does \
         not know such a field must not use the record"
    )]
    SenmlMustUnderstand(String),
    #[error("the SenML record {0:?} carries `{1}`, not a number `v`: only numeric values are readings")]
    SenmlNotNumeric(String, &'static str),
    #[error(
        "the SenML name {0:?} is not `sensor:kind` or `sensor/kind`: a name starts with a letter or digit, \
         holds only letters, digits and `-:./_`, and its last `:` or `/` separates the sensor from what \
         it measures (as in `urn:dev:ow:10e2073a01080063:temperature`)"
    )]
    SenmlName(String),
    #[error("the SenML time {0} s is out of range (seconds since 1970, or from now below 2^28)")]
    SenmlTime(f64),
}

#[derive(Deserialize)]
struct Wire {
    sensor_id: Id,
    kind: Text,
    value: f64,
    #[serde(default)]
    unit: Text,
    ts: Time,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lat: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lon: Option<f64>,
    #[serde(default)]
    fields: Fields,
    #[serde(default)]
    tags: Tags,
}

/// The same fields, borrowed, for encoding: a message is written without copying its strings and
/// maps first (half the cost of `encode` before).
#[derive(Serialize)]
struct WireOut<'a> {
    sensor_id: &'a str,
    kind: &'a str,
    value: f64,
    unit: &'a str,
    ts: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    lat: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lon: Option<f64>,
    // Skipped when empty: a `LiteMap` with no entries would be written as `[]`, not `{}`.
    #[serde(skip_serializing_if = "LiteMap::is_empty")]
    fields: &'a Fields,
    #[serde(skip_serializing_if = "LiteMap::is_empty")]
    tags: &'a Tags,
}

/// Station ids in the open data are numbers; accept them as such.
enum Id {
    Text(Text),
    Number(u64),
}

enum Time {
    Millis(i64),
    Text(Text),
}

// `Id` and `Time` are read by hand rather than with `#[serde(untagged)]`: untagged enums buffer
// the value, then try each variant, and a failed try builds an error, which allocates. On every
// reading (a `ts` in RFC 3339 fails as milliseconds first) that was a fifth of the decode.
impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        const EXPECTING: &str = "a string or a non-negative integer";
        match deserializer.deserialize_any(TextOrInteger(EXPECTING))? {
            Scalar::Text(text) => Ok(Id::Text(text)),
            Scalar::Integer(n) => u64::try_from(n).map(Id::Number).map_err(|_| out_of_range(n, EXPECTING)),
        }
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        const EXPECTING: &str = "an RFC 3339 string or an integer of milliseconds";
        match deserializer.deserialize_any(TextOrInteger(EXPECTING))? {
            Scalar::Text(text) => Ok(Time::Text(text)),
            Scalar::Integer(ms) => {
                i64::try_from(ms).map(Time::Millis).map_err(|_| out_of_range(ms, EXPECTING))
            }
        }
    }
}

/// A JSON string or integer, as read by [`TextOrInteger`].
enum Scalar {
    Text(Text),
    Integer(i128),
}

/// Reads a string or an integer without buffering; anything else is refused with the message.
struct TextOrInteger(&'static str);

impl serde::de::Visitor<'_> for TextOrInteger {
    type Value = Scalar;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self.0)
    }
    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Scalar, E> {
        Ok(Scalar::Text(text.into()))
    }
    fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Scalar, E> {
        Ok(Scalar::Text(text.into()))
    }
    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Scalar, E> {
        Ok(Scalar::Integer(n.into()))
    }
    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Scalar, E> {
        Ok(Scalar::Integer(n.into()))
    }
}

fn out_of_range<E: serde::de::Error>(n: i128, expecting: &'static str) -> E {
    let unexpected = match i64::try_from(n) {
        Ok(signed) => serde::de::Unexpected::Signed(signed),
        Err(_) => serde::de::Unexpected::Unsigned(n as u64),
    };
    E::invalid_value(unexpected, &expecting)
}

/// The readings of one message: one, or the readings of a pack, each decoded or refused.
#[derive(Debug)]
pub enum Readings<'a> {
    One(Payload),
    /// A pack whose readings were all decoded and checked in one pass (nearly every pack).
    Good(Vec<Payload>),
    /// A pack with a reading to refuse: each is decoded on its own, to say which.
    Pack(Vec<&'a RawValue>),
    /// A SenML pack, resolved whole (each record depends on the base fields before it).
    Senml(Vec<PackedReading<'a>>),
}

impl<'a> Readings<'a> {
    /// Decodes a message's payload: a reading, or a pack whose readings are decoded one by one by
    /// [`Readings::into_iter`]. Fails as a whole only when the payload is too large, not JSON, or
    /// a single reading that is refused.
    pub fn decode(bytes: &'a [u8], max_size: usize) -> Result<Self, PayloadError> {
        Self::decode_at(bytes, max_size, crate::clock::wall_clock_millis)
    }

    /// [`Readings::decode`], with `now` as the time a SenML pack's relative times count from: a
    /// recorded pack replays the same whenever it is replayed (`host plugin test --now`).
    pub fn decode_at(
        bytes: &'a [u8],
        max_size: usize,
        now: impl FnOnce() -> Millis,
    ) -> Result<Self, PayloadError> {
        if bytes.len() > max_size {
            return Err(PayloadError::TooLarge { size: bytes.len(), max: max_size });
        }
        // A reading is decoded straight into its fields, as before packs: the common case pays
        // nothing for them.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'[') {
            return Payload::from_json(bytes).map(Readings::One);
        }
        // Nearly every pack holds good readings in the host's format: one pass decodes them all.
        // It was two, the pack's text split into its readings, then each decoded. Anything else
        // (a bad reading, SenML, not JSON) takes the second way, which tells what is wrong where.
        if let Some(readings) = Self::all_good(bytes) {
            return Ok(Readings::Good(readings));
        }
        let pack: Vec<&RawValue> =
            serde_json::from_slice(bytes).map_err(|e| PayloadError::Invalid(e.to_string()))?;
        match pack.first() {
            None => Err(PayloadError::EmptyPack),
            Some(first) if senml::is_senml(first) => senml::resolve(&pack, now).map(Readings::Senml),
            Some(_) => Ok(Readings::Pack(pack)),
        }
    }

    /// The readings of a pack, if every one is a good reading in the host's format.
    fn all_good(bytes: &[u8]) -> Option<Vec<Payload>> {
        let wires: Vec<Wire> = parse_json(bytes).ok()?;
        if wires.is_empty() {
            return None;
        }
        wires.into_iter().map(|wire| Payload::from_wire(wire).ok()).collect()
    }

    pub fn len(&self) -> usize {
        match self {
            Readings::One(_) => 1,
            Readings::Good(readings) => readings.len(),
            Readings::Pack(pack) => pack.len(),
            Readings::Senml(readings) => readings.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A reading of a message, or why it was refused, with its own text when it came in a pack that
/// had a reading to refuse (what a dead letter keeps of it).
#[derive(Debug)]
pub struct PackedReading<'a> {
    pub reading: Result<Payload, PayloadError>,
    pub text: Option<&'a str>,
}

impl<'a> IntoIterator for Readings<'a> {
    type Item = PackedReading<'a>;
    type IntoIter = ReadingsIter<'a>;

    fn into_iter(self) -> ReadingsIter<'a> {
        match self {
            Readings::One(payload) => ReadingsIter::One(Some(payload)),
            Readings::Good(readings) => ReadingsIter::Good(readings.into_iter()),
            Readings::Pack(pack) => {
                ReadingsIter::Pack { count: pack.len(), pack: pack.into_iter().enumerate() }
            }
            Readings::Senml(readings) => ReadingsIter::Senml(readings.into_iter()),
        }
    }
}

/// The readings of a message in order; a pack's are decoded as they are taken.
pub enum ReadingsIter<'a> {
    One(Option<Payload>),
    Good(std::vec::IntoIter<Payload>),
    Pack { count: usize, pack: std::iter::Enumerate<std::vec::IntoIter<&'a RawValue>> },
    Senml(std::vec::IntoIter<PackedReading<'a>>),
}

impl<'a> Iterator for ReadingsIter<'a> {
    type Item = PackedReading<'a>;

    fn next(&mut self) -> Option<PackedReading<'a>> {
        match self {
            ReadingsIter::One(payload) => {
                payload.take().map(|p| PackedReading { reading: Ok(p), text: None })
            }
            ReadingsIter::Good(readings) => {
                readings.next().map(|p| PackedReading { reading: Ok(p), text: None })
            }
            ReadingsIter::Pack { count, pack } => {
                let (index, raw) = pack.next()?;
                let reading = Payload::from_json(raw.get().as_bytes()).map_err(|error| {
                    PayloadError::InPack { place: index + 1, count: *count, error: Box::new(error) }
                });
                Some(PackedReading { reading, text: Some(raw.get()) })
            }
            ReadingsIter::Senml(readings) => readings.next(),
        }
    }
}

/// JSON text decoded into `T`. The text is checked to be UTF-8 once, whole, so that serde_json
/// does not check each of its strings again; a text that is not UTF-8 gets serde_json's own
/// error, which says where.
fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> serde_json::Result<T> {
    match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(bytes),
    }
}

impl Payload {
    /// Decodes and checks one payload that must be a single reading (not a pack).
    pub fn decode(bytes: &[u8], max_size: usize) -> Result<Self, PayloadError> {
        if bytes.len() > max_size {
            return Err(PayloadError::TooLarge { size: bytes.len(), max: max_size });
        }
        Self::from_json(bytes)
    }

    fn from_json(bytes: &[u8]) -> Result<Self, PayloadError> {
        let wire: Wire = parse_json(bytes).map_err(|e| PayloadError::Invalid(e.to_string()))?;
        Self::from_wire(wire)
    }

    fn from_wire(wire: Wire) -> Result<Self, PayloadError> {
        let payload = Payload {
            sensor_id: match wire.sensor_id {
                Id::Text(s) => s,
                Id::Number(n) => n.to_compact_string(),
            },
            kind: wire.kind,
            value: wire.value,
            unit: wire.unit,
            time: match wire.ts {
                Time::Millis(ms) => ms,
                Time::Text(text) => parse_rfc3339(&text)?,
            },
            position: match (wire.lat, wire.lon) {
                (Some(lat), Some(lon)) => Some((lat, lon)),
                (None, None) => None,
                _ => return Err(PayloadError::BadPosition),
            },
            fields: wire.fields,
            tags: wire.tags,
        };
        payload.check()?;
        Ok(payload)
    }

    /// Checks what JSON alone cannot: finite numbers, non-empty names, a valid position.
    pub fn check(&self) -> Result<(), PayloadError> {
        if self.sensor_id.is_empty() {
            return Err(PayloadError::Empty("sensor_id"));
        }
        if self.kind.is_empty() {
            return Err(PayloadError::Empty("kind"));
        }
        if !self.value.is_finite() {
            return Err(PayloadError::NotFinite("value".into()));
        }
        if let Some((name, _)) = self.fields.iter().find(|(_, v)| !v.is_finite()) {
            return Err(PayloadError::NotFinite(format!("fields.{name}")));
        }
        if let Some((lat, lon)) = self.position
            && (!(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon))
        {
            return Err(PayloadError::BadPosition);
        }
        Ok(())
    }

    /// Encodes the payload; fails only on values JSON cannot carry (NaN, infinities).
    pub fn encode(&self) -> Result<Vec<u8>, PayloadError> {
        self.check()?;
        let mut buffer = [0; RFC3339_LEN];
        let formatted;
        let ts = match write_rfc3339(self.time, &mut buffer) {
            Some(ts) => ts,
            None => {
                formatted = format_rfc3339(self.time);
                &formatted
            }
        };
        let wire = WireOut {
            sensor_id: &self.sensor_id,
            kind: &self.kind,
            value: self.value,
            unit: &self.unit,
            ts,
            lat: self.position.map(|p| p.0),
            lon: self.position.map(|p| p.1),
            fields: &self.fields,
            tags: &self.tags,
        };
        let mut out = Vec::with_capacity(160);
        serde_json::to_writer(&mut out, &wire).map_err(|e| PayloadError::Invalid(e.to_string()))?;
        Ok(out)
    }
}

impl Payload {
    /// About how many bytes of memory this payload takes when shared (`Arc<Payload>`): what a
    /// queue counts it for. Each allocation is rounded as glibc's malloc rounds it (16 bytes,
    /// 8 of them its header, 32 at the least); a text kept inline costs nothing beyond the
    /// payload itself.
    pub fn footprint(&self) -> usize {
        let strings = [&self.sensor_id, &self.kind, &self.unit].map(text_allocation);
        let tags = self.tags.iter().map(|(k, v)| text_allocation(k) + text_allocation(v));
        let fields = self.fields.iter().map(|(k, _)| text_allocation(k));
        allocation(2 * size_of::<usize>() + size_of::<Self>())
            + strings.iter().sum::<usize>()
            + allocation(self.tags.len() * size_of::<(Text, Text)>())
            + tags.sum::<usize>()
            + allocation(self.fields.len() * size_of::<(Text, f64)>())
            + fields.sum::<usize>()
    }
}

/// What malloc takes for `bytes` (0: no allocation).
fn allocation(bytes: usize) -> usize {
    if bytes == 0 { 0 } else { (bytes + 8).next_multiple_of(16).max(32) }
}

/// What malloc takes for a text: nothing when it is kept inline.
fn text_allocation(text: &Text) -> usize {
    if text.is_heap_allocated() { allocation(text.capacity()) } else { 0 }
}

impl Payload {
    /// A reading of `sensor`.
    pub fn of_sensor(sensor: &crate::sandbox::Sensor, value: f64, time: Millis) -> Self {
        Payload {
            sensor_id: sensor.id.as_str().into(),
            kind: sensor.kind.as_str().into(),
            value,
            unit: sensor.unit.as_str().into(),
            time,
            position: sensor.position.map(|p| (p.lat, p.lon)),
            fields: Fields::new(),
            tags: sensor.tags.iter().map(|(k, v)| (k.as_str().into(), v.as_str().into())).collect(),
        }
    }
}

/// What a plugin emitted, in the wire format (its topic aside).
impl From<crate::sandbox::Message> for Payload {
    fn from(message: crate::sandbox::Message) -> Self {
        Payload {
            sensor_id: message.sensor_id.into(),
            kind: message.kind.into(),
            value: message.value,
            unit: message.unit.into(),
            time: message.time,
            position: message.position.map(|p| (p.lat, p.lon)),
            fields: message.fields.into_iter().map(|(name, value)| (name.into(), value)).collect(),
            tags: message.tags.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
        }
    }
}

/// Parses an RFC 3339 time into ms since the epoch. The form the host writes itself
/// (`2026-11-29T08:00:00.250Z`) is read by hand, at a tenth of the general parser's cost; any
/// other form goes to the `time` crate.
pub fn parse_rfc3339(text: &str) -> Result<Millis, PayloadError> {
    if let Some(ms) = parse_own_format(text.as_bytes()) {
        return Ok(ms);
    }
    let time = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| PayloadError::BadTime(text.to_owned()))?;
    Ok((time.unix_timestamp_nanos() / 1_000_000) as Millis)
}

/// Formats ms since the epoch as RFC 3339 in UTC with milliseconds.
pub fn format_rfc3339(ms: Millis) -> String {
    let mut buffer = [0; RFC3339_LEN];
    if let Some(text) = write_rfc3339(ms, &mut buffer) {
        return text.to_owned();
    }
    let nanos = i128::from(ms) * 1_000_000;
    let Ok(time) = OffsetDateTime::from_unix_timestamp_nanos(nanos) else {
        return ms.to_string();
    };
    let (y, mo, d) = (time.year(), u8::from(time.month()), time.day());
    let (h, mi, s, milli) = (time.hour(), time.minute(), time.second(), time.millisecond());
    format!("{y:+05}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
const RFC3339_LEN: usize = 24;
const MS_PER_DAY: i64 = 86_400_000;

/// Writes the host's own format into `buffer`, for years 0 to 9999 (None outside them).
fn write_rfc3339(ms: Millis, buffer: &mut [u8; RFC3339_LEN]) -> Option<&str> {
    let (days, in_day) = (ms.div_euclid(MS_PER_DAY), ms.rem_euclid(MS_PER_DAY));
    let (year, month, day) = civil_from_days(days)?;
    if !(0..=9999).contains(&year) {
        return None;
    }
    let numbers = [
        (0, 4, year),
        (5, 2, i64::from(month)),
        (8, 2, i64::from(day)),
        (11, 2, in_day / 3_600_000),
        (14, 2, in_day / 60_000 % 60),
        (17, 2, in_day / 1000 % 60),
        (20, 3, in_day % 1000),
    ];
    buffer.copy_from_slice(b"0000-00-00T00:00:00.000Z");
    for (at, width, mut number) in numbers {
        for slot in buffer[at..at + width].iter_mut().rev() {
            *slot = b'0' + (number % 10) as u8;
            number /= 10;
        }
    }
    std::str::from_utf8(buffer).ok()
}

/// Reads `YYYY-MM-DDTHH:MM:SS.mmmZ` or `YYYY-MM-DDTHH:MM:SSZ`; None for anything else,
/// including out-of-range parts, which the general parser then explains.
fn parse_own_format(text: &[u8]) -> Option<Millis> {
    let millis = match text.len() {
        RFC3339_LEN if text[19] == b'.' => digits(&text[20..23])?,
        20 => 0,
        _ => return None,
    };
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':'), (text.len() - 1, b'Z')];
    if separators.iter().any(|&(at, c)| text[at] != c) {
        return None;
    }
    let (year, month, day) = (digits(&text[0..4])?, digits(&text[5..7])?, digits(&text[8..10])?);
    let (hour, minute, second) = (digits(&text[11..13])?, digits(&text[14..16])?, digits(&text[17..19])?);
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day)?;
    Some(days * MS_PER_DAY + ((hour * 60 + minute) * 60 + second) * 1000 + millis)
}

fn digits(text: &[u8]) -> Option<i64> {
    text.iter().try_fold(0, |n, &c| c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0')))
}

/// Julian day number of 1970-01-01: `time`'s date arithmetic counts from there, ours from the
/// Unix epoch.
const UNIX_EPOCH_JULIAN_DAY: i64 = 2_440_588;

/// Days since 1970-01-01 of a valid date (None for 2026-02-30 and the like), by `time`'s date
/// arithmetic: only its formatting and parsing machinery is slow, not its calendar.
fn days_from_civil(year: i64, month: i64, day: i64) -> Option<i64> {
    let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date =
        time::Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?).ok()?;
    Some(i64::from(date.to_julian_day()) - UNIX_EPOCH_JULIAN_DAY)
}

/// The calendar date of a day counted from 1970-01-01 (None outside `time`'s range).
fn civil_from_days(days: i64) -> Option<(i64, u8, u8)> {
    let julian = i32::try_from(days + UNIX_EPOCH_JULIAN_DAY).ok()?;
    let date = time::Date::from_julian_day(julian).ok()?;
    Some((i64::from(date.year()), u8::from(date.month()), date.day()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(text: &str) -> Result<Payload, PayloadError> {
        Payload::decode(text.as_bytes(), DEFAULT_MAX_PAYLOAD)
    }

    #[test]
    fn a_full_reading_round_trips() {
        let text = r#"{"sensor_id":"42","kind":"temperature","value":12.5,"unit":"°C",
            "ts":"2026-11-29T08:00:00.250Z","lat":43.6,"lon":1.44,
            "fields":{"min":11.0},"tags":{"quartier":"Capitole"}}"#;
        let payload = decode(text).expect("valid payload");
        assert_eq!(payload.time, 1_795_939_200_250);
        // A time with an escape in its text is read the same (serde_json unescapes into a buffer).
        let escaped = text.replace("00.250Z", "00.250\\u005a");
        assert_eq!(decode(&escaped).map(|p| p.time), Ok(1_795_939_200_250));
        let again = Payload::decode(&payload.encode().expect("encodable"), DEFAULT_MAX_PAYLOAD);
        assert_eq!(again, Ok(payload));
    }

    /// The bytes a queue counts a reading for: a sensor's reading of the load bench, by hand
    /// (Arc and payload 208, one tag's vector 64; its key and value, like the three short
    /// strings, are inline and cost nothing more), and a large tag counted in full.
    #[test]
    fn a_readings_footprint_counts_each_allocation_as_malloc_takes_it() {
        let text = r#"{"sensor_id":"4004","kind":"temperature","value":12.5,"unit":"°C",
            "ts":"2026-11-29T08:00:00.250Z","lat":43.6,"lon":1.44,"tags":{"station_name":"Toulouse Ponsan"}}"#;
        let reading = decode(text).expect("valid payload");
        let by_hand = (16 + size_of::<Payload>() + 8).next_multiple_of(16) + 64;
        assert_eq!(reading.footprint(), by_hand);
        assert!((250..=300).contains(&by_hand), "{by_hand}");

        let large = text.replace("Toulouse Ponsan", &"x".repeat(40_000));
        let large = decode(&large).expect("valid payload");
        assert_eq!(large.footprint(), by_hand + 40_016);
    }

    /// Tags and fields come out sorted by name whatever their order on the wire, a repeated name
    /// keeps its last value, and empty maps are left out of the JSON (not written as `[]`).
    #[test]
    fn tags_and_fields_are_sorted_maps_with_the_last_value_of_a_name() {
        let payload = decode(
            r#"{"sensor_id":"a","kind":"t","value":1,"ts":1000,
                "tags":{"z":"1","b":"2","z":"3","a":"4"},"fields":{"max":2,"min":1,"max":5}}"#,
        )
        .expect("valid payload");
        let tags: Vec<(&str, &str)> = payload.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(tags, [("a", "4"), ("b", "2"), ("z", "3")]);
        let fields: Vec<(&str, f64)> = payload.fields.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(fields, [("max", 5.0), ("min", 1.0)]);
        let bare = decode(r#"{"sensor_id":"a","kind":"t","value":1,"ts":1000}"#).expect("valid payload");
        let text = String::from_utf8(bare.encode().expect("encodable")).expect("utf-8");
        assert!(!text.contains("tags") && !text.contains("fields"), "{text}");
    }

    #[test]
    fn numeric_ids_and_millisecond_times_are_accepted() {
        let payload = decode(r#"{"sensor_id":42,"kind":"t","value":1,"ts":1000}"#).expect("valid payload");
        assert_eq!(payload.sensor_id, "42");
        assert_eq!(payload.time, 1000);
        assert_eq!(payload.unit, "");
    }

    #[test]
    fn bad_payloads_are_refused_with_a_reason() {
        assert!(matches!(decode("not json"), Err(PayloadError::Invalid(_))));
        assert!(matches!(decode(r#"{"kind":"t","value":1,"ts":0}"#), Err(PayloadError::Invalid(_))));
        assert!(matches!(
            decode(r#"{"sensor_id":"a","kind":"t","value":"12","ts":0}"#),
            Err(PayloadError::Invalid(_))
        ));
        assert_eq!(
            decode(r#"{"sensor_id":"a","kind":"t","value":1,"ts":"yesterday"}"#),
            Err(PayloadError::BadTime("yesterday".into()))
        );
        assert_eq!(
            decode(r#"{"sensor_id":"","kind":"t","value":1,"ts":0}"#),
            Err(PayloadError::Empty("sensor_id"))
        );
        assert_eq!(
            decode(r#"{"sensor_id":"a","kind":"t","value":1,"ts":0,"lat":91,"lon":0}"#),
            Err(PayloadError::BadPosition)
        );
        // Ids and times of another type, each refused with what was expected.
        for (json, expected) in [
            (r#"{"sensor_id":-3,"kind":"t","value":1,"ts":0}"#, "a string or a non-negative integer"),
            (r#"{"sensor_id":true,"kind":"t","value":1,"ts":0}"#, "a string or a non-negative integer"),
            (r#"{"sensor_id":"a","kind":"t","value":1,"ts":1.5}"#, "an RFC 3339 string or an integer"),
            (r#"{"sensor_id":"a","kind":"t","value":1,"ts":null}"#, "an RFC 3339 string or an integer"),
            (
                r#"{"sensor_id":"a","kind":"t","value":1,"ts":18446744073709551615}"#,
                "an RFC 3339 string or an integer",
            ),
        ] {
            match decode(json) {
                Err(PayloadError::Invalid(reason)) => assert!(reason.contains(expected), "{json}: {reason}"),
                other => panic!("{json}: {other:?}"),
            }
        }
        let huge = vec![b' '; DEFAULT_MAX_PAYLOAD + 1];
        assert!(matches!(Payload::decode(&huge, DEFAULT_MAX_PAYLOAD), Err(PayloadError::TooLarge { .. })));
    }

    fn unpack(text: &str) -> Vec<Result<Payload, PayloadError>> {
        let readings = Readings::decode(text.as_bytes(), DEFAULT_MAX_PAYLOAD).expect("a message of readings");
        readings.into_iter().map(|packed| packed.reading).collect()
    }

    #[test]
    fn a_pack_gives_each_reading_or_why_it_was_refused() {
        let one = r#"{"sensor_id":"a","kind":"t","value":1,"ts":0}"#;
        let bad = r#"{"sensor_id":"","kind":"t","value":2,"ts":0}"#;
        let three = r#"{"sensor_id":"c","kind":"t","value":3,"ts":"1970-01-01T00:00:00.003Z"}"#;
        let got = unpack(&format!(" [{one},\n{bad}, {three}]"));
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].as_ref().map(|p| p.value), Ok(1.0));
        assert_eq!(got[2].as_ref().map(|p| p.time), Ok(3));
        let error = got[1].as_ref().expect_err("an empty sensor_id").to_string();
        assert_eq!(error, "reading 2 of the 3 in the array: `sensor_id` must not be empty");
        // The text of each reading comes with it, for a dead letter.
        let pack = format!("[{one},{bad}]");
        let readings = Readings::decode(pack.as_bytes(), DEFAULT_MAX_PAYLOAD).expect("a pack");
        let texts: Vec<_> = readings.into_iter().map(|packed| packed.text).collect();
        assert_eq!(texts, [Some(one), Some(bad)]);
    }

    #[test]
    fn a_pack_of_good_readings_decodes_in_one_pass_to_what_each_decodes_to() {
        let readings = [
            r#"{"sensor_id":"a","kind":"t","value":1.5,"unit":"°C","ts":0,"tags":{"q":"x"}}"#,
            r#"{"sensor_id":42,"kind":"h","value":70,"ts":"2026-11-29T08:00:00Z","lat":43.6,"lon":1.4}"#,
            r#"{"kind":"t","sensor_id":"b","value":-3,"ts":5,"fields":{"min":-4},"extra":[1]}"#,
        ];
        let pack = format!(" [{}] ", readings.join(",\n"));
        let decoded = Readings::decode(pack.as_bytes(), DEFAULT_MAX_PAYLOAD).expect("a pack");
        assert!(matches!(decoded, Readings::Good(_)), "{decoded:?}");
        let got: Vec<_> = decoded.into_iter().map(|packed| packed.reading).collect();
        let each: Vec<_> = readings.iter().map(|text| decode(text)).collect();
        assert_eq!(got, each);
        // One bad reading, or one that is not in the host's format, and each is decoded apart.
        for odd in [r#"{"sensor_id":"c","kind":"t","value":1,"ts":0,"lat":1}"#, r#"{"n":"x","v":1}"#] {
            let pack = format!("[{},{odd}]", readings[0]);
            let decoded = Readings::decode(pack.as_bytes(), DEFAULT_MAX_PAYLOAD).expect("a pack");
            assert!(matches!(decoded, Readings::Pack(_)), "{odd}: {decoded:?}");
        }
    }

    #[test]
    fn text_that_is_not_utf8_is_refused_with_where_it_goes_wrong() {
        let reading = r#"{"sensor_id":"a","kind":"t","value":1,"ts":0,"tags":{"q":"Saint-Cyprien"}}"#;
        let mut bytes = reading.as_bytes().to_vec();
        let at = reading.find("Cyprien").expect("in the text");
        bytes[at] = 0xff;
        let refused = Payload::decode(&bytes, DEFAULT_MAX_PAYLOAD).expect_err("not UTF-8");
        assert!(
            matches!(&refused, PayloadError::Invalid(why) if why.contains("unicode") && why.contains("column")),
            "{refused:?}"
        );
        let pack = [b"[".as_slice(), reading.as_bytes(), b",", &bytes, b"]"].concat();
        assert!(Readings::decode(&pack, DEFAULT_MAX_PAYLOAD).is_err(), "a pack with bytes that are not text");
        // Still text, in the reading's own alphabet: decoded as before.
        let accented = reading.replace("Saint-Cyprien", "Côte Pavée");
        assert_eq!(decode(&accented).expect("text").tags.get("q").map(|q| q.as_str()), Some("Côte Pavée"));
    }

    #[test]
    fn a_senml_pack_is_resolved_and_each_record_keeps_its_text() {
        let (good, bad) =
            (r#"{"bn":"s1:","bt":1795939200,"n":"temperature","v":9.5}"#, r#"{"n":"door","vb":true}"#);
        let pack = format!("[{good}, {bad}]");
        let readings = Readings::decode(pack.as_bytes(), DEFAULT_MAX_PAYLOAD).expect("a SenML pack");
        assert!(matches!(readings, Readings::Senml(_)), "{readings:?}");
        let got: Vec<_> =
            readings.into_iter().map(|packed| (packed.reading.map(|p| p.value), packed.text)).collect();
        assert_eq!(got[0], (Ok(9.5), Some(good)));
        assert!(
            matches!(got[1], (Err(PayloadError::InPack { place: 2, count: 2, .. }), Some(text)) if text == bad)
        );
    }

    #[test]
    fn a_single_reading_decodes_as_before() {
        let got = unpack(r#"{"sensor_id":"a","kind":"t","value":1,"ts":0}"#);
        assert_eq!(got.len(), 1);
        assert!(matches!(
            Readings::decode(br#"{"sensor_id":"","kind":"t","value":1,"ts":0}"#, DEFAULT_MAX_PAYLOAD),
            Err(PayloadError::Empty("sensor_id"))
        ));
    }

    #[test]
    fn a_pack_that_is_not_json_or_empty_or_too_large_is_refused_whole() {
        let decode = |text: &str| Readings::decode(text.as_bytes(), 100).map(|r| r.len());
        assert!(matches!(decode("[{\"sensor_id\": 1}"), Err(PayloadError::Invalid(_))));
        assert_eq!(decode(" [ ] "), Err(PayloadError::EmptyPack));
        assert!(matches!(decode(&format!("[{}]", " ".repeat(100))), Err(PayloadError::TooLarge { .. })));
        // Elements that are not objects are refused one by one, like any bad reading.
        assert!(unpack("[1, null]").iter().all(|r| matches!(r, Err(PayloadError::InPack { .. }))));
    }

    #[test]
    fn non_finite_values_are_not_encoded() {
        let payload = Payload {
            sensor_id: "a".into(),
            kind: "t".into(),
            value: f64::NAN,
            unit: "".into(),
            time: 0,
            position: None,
            fields: Fields::new(),
            tags: Tags::new(),
        };
        assert_eq!(payload.encode(), Err(PayloadError::NotFinite("value".into())));
    }

    /// The hand-written format and parse agree with the `time` crate, from 1970 to 2200 and
    /// around the edges that catch calendar mistakes (leap days, centuries, the epoch).
    #[test]
    fn the_fast_time_format_and_parse_agree_with_the_time_crate() {
        let mut samples: Vec<Millis> = vec![0, -1, 951_782_400_000, 4_107_542_400_000, 253_402_300_799_999];
        let mut state: u64 = 0x1234_5678;
        for _ in 0..20_000 {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            samples.push((state >> 33) as i64 % 7_258_118_400_000); // up to 2200
        }
        for ms in samples {
            let time =
                OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).expect("in range");
            let by_crate = time.format(&Rfc3339).expect("formats");
            let ours = format_rfc3339(ms);
            let reparsed = OffsetDateTime::parse(&ours, &Rfc3339).expect("ours is RFC 3339");
            assert_eq!(reparsed, time, "{ms}: ours {ours}, the crate's {by_crate}");
            assert_eq!(parse_own_format(ours.as_bytes()), Some(ms), "{ours}");
        }
        assert_eq!(parse_rfc3339("2026-11-29T08:00:00Z"), Ok(1_795_939_200_000));
        for refused in
            ["2026-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-11-29T24:00:00Z", "2026-11-29 08:00:00Z"]
        {
            assert_eq!(parse_own_format(refused.as_bytes()), None, "{refused}");
        }
        assert!(parse_rfc3339("2026-02-29T00:00:00Z").is_err(), "not a leap year");
        assert_eq!(format_rfc3339(-62_198_755_200_000), "-0001-01-01T00:00:00.000Z");
    }

    #[test]
    fn times_format_as_utc_with_milliseconds() {
        assert_eq!(format_rfc3339(1_795_939_200_250), "2026-11-29T08:00:00.250Z");
        assert_eq!(parse_rfc3339("2026-11-29T09:00:00+01:00"), Ok(1_795_939_200_000));
    }
}
