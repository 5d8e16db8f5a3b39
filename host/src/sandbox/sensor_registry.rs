//! The sensors a processor has been told about, by dense index, and how a reading finds its own.
//!
//! This runs for every reading in every processor. A look-up by the reading's strings (kind, id,
//! then unit, position and tags to notice a change) cost about 14 % of the host's time at
//! 60,000 readings/s: each comparison follows pointers to strings scattered over the heap, several
//! cache misses a reading. A reading is now told by its [`Fingerprint`], hashed from its own
//! strings (read once, in order), and the registry's table holds the fingerprints inline: one
//! cache line a look-up (BENCHMARKS.md, "Sessions 19 and 20").

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};

use foldhash::fast::FixedState;

use super::bindings::v0_3_0::types::{Position, Sensor};
use crate::payload::Payload;

/// More distinct sensors than this in one processor is taken as bad input, not as a fleet.
pub(super) const MAX_SENSORS: usize = 1_000_000;

// Fixed seeds: fingerprints need not be the same from one build to the next (they are never
// stored), but they must be within one process.
const IDENTITY_HIGH: foldhash::quality::FixedState =
    foldhash::quality::FixedState::with_seed(0x6761_726f_6e6e_6501);
const IDENTITY_LOW: foldhash::quality::FixedState =
    foldhash::quality::FixedState::with_seed(0x7365_6e73_6f72_7302);
const METADATA: foldhash::quality::FixedState =
    foldhash::quality::FixedState::with_seed(0x6d65_7461_6461_7403);

/// A sensor's identity (kind and id) and its metadata (unit, position, tags), hashed.
///
/// The identity is 128 bits from two independently seeded hashes: two sensors of a fleet of a
/// million share one with a chance of about 10⁻²⁷. Nothing is lost in trust either way: a
/// reading names its sensor by a claim anyone who may publish can make. A metadata change whose
/// 64-bit hash equals the old one's (a chance of 2⁻⁶⁴ per change) would go unannounced.
#[derive(Clone, Copy)]
struct Fingerprint {
    identity: u128,
    metadata: u64,
}

impl Fingerprint {
    fn of_payload(payload: &Payload) -> Self {
        Self::of(
            &payload.kind,
            &payload.sensor_id,
            &payload.unit,
            payload.position,
            payload.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )
    }

    fn of_sensor(sensor: &Sensor) -> Self {
        Self::of(
            &sensor.kind,
            &sensor.id,
            &sensor.unit,
            sensor.position.map(|p| (p.lat, p.lon)),
            sensor.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )
    }

    fn of<'a>(
        kind: &str,
        id: &str,
        unit: &str,
        position: Option<(f64, f64)>,
        tags: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        // `str` hashes with a terminator byte that UTF-8 never holds: ("ab", "c") and ("a", "bc")
        // differ.
        let high = IDENTITY_HIGH.hash_one((kind, id));
        let low = IDENTITY_LOW.hash_one((kind, id));
        let mut metadata = METADATA.build_hasher();
        unit.hash(&mut metadata);
        match position {
            Some((lat, lon)) => {
                metadata.write_u8(1);
                metadata.write_u64(coordinate_bits(lat));
                metadata.write_u64(coordinate_bits(lon));
            }
            None => metadata.write_u8(0),
        }
        metadata.write_usize(tags.len());
        for (key, value) in tags {
            key.hash(&mut metadata);
            value.hash(&mut metadata);
        }
        Fingerprint { identity: (u128::from(high) << 64) | u128::from(low), metadata: metadata.finish() }
    }
}

/// A coordinate's bits, with -0.0 taken as 0.0 (they compare equal, so they are the same place).
fn coordinate_bits(x: f64) -> u64 {
    if x == 0.0 { 0 } else { x.to_bits() }
}

/// Where a known sensor is, and the metadata it was last announced with.
#[derive(Clone, Copy)]
struct Entry {
    index: u32,
    metadata: u64,
}

/// The sensors a processor has been told about, by dense index.
#[derive(Default)]
pub(super) struct SensorRegistry {
    pub(super) sensors: Vec<Sensor>,
    /// By identity; the key is already a hash, so the table's own hash of it is the cheapest.
    index: HashMap<u128, Entry, FixedState>,
    /// Indices below this are known to the live instance.
    pub(super) announced: u32,
    /// Known sensors whose metadata changed since they were announced.
    pub(super) changed: Vec<u32>,
}

impl SensorRegistry {
    /// A registry of sensors the instance has already been told of, in their order.
    pub(super) fn known(sensors: Vec<Sensor>) -> Self {
        let mut index = HashMap::with_capacity_and_hasher(sensors.len(), FixedState::default());
        for (i, sensor) in sensors.iter().enumerate() {
            let fingerprint = Fingerprint::of_sensor(sensor);
            index.insert(fingerprint.identity, Entry { index: i as u32, metadata: fingerprint.metadata });
        }
        let announced = sensors.len() as u32;
        SensorRegistry { sensors, index, announced, changed: Vec::new() }
    }

    /// The reading's sensor's index, a new one for a sensor not seen before; `None` when the
    /// registry is full. A known sensor whose metadata changed is updated, to be announced again.
    pub(super) fn index_of(&mut self, payload: &Payload) -> Option<u32> {
        let fingerprint = Fingerprint::of_payload(payload);
        if let Some(entry) = self.index.get_mut(&fingerprint.identity) {
            if entry.metadata != fingerprint.metadata {
                entry.metadata = fingerprint.metadata;
                self.sensors[entry.index as usize] = sensor_of(payload);
                if entry.index < self.announced {
                    self.changed.push(entry.index);
                }
            }
            return Some(entry.index);
        }
        if self.sensors.len() >= MAX_SENSORS {
            return None;
        }
        let index = self.sensors.len() as u32;
        self.sensors.push(sensor_of(payload));
        self.index.insert(fingerprint.identity, Entry { index, metadata: fingerprint.metadata });
        Some(index)
    }

    pub(super) fn payload(&self, index: u32, value: f64, time: i64) -> Option<Payload> {
        let sensor = self.sensors.get(index as usize)?;
        Some(Payload::of_sensor(sensor, value, time))
    }
}

fn sensor_of(payload: &Payload) -> Sensor {
    Sensor {
        id: payload.sensor_id.to_string(),
        kind: payload.kind.to_string(),
        unit: payload.unit.to_string(),
        position: payload.position.map(|(lat, lon)| Position { lat, lon }),
        tags: payload.tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(id: &str, unit: &str) -> Payload {
        Payload {
            sensor_id: id.into(),
            kind: "temperature".into(),
            value: 1.0,
            unit: unit.into(),
            time: 0,
            position: None,
            fields: Default::default(),
            tags: Default::default(),
        }
    }

    #[test]
    fn sensors_get_dense_stable_indices_and_changes_are_noticed() {
        let mut registry = SensorRegistry::default();
        assert_eq!(registry.index_of(&reading("a", "°C")), Some(0));
        assert_eq!(registry.index_of(&reading("b", "°C")), Some(1));
        registry.announced = 2;
        assert_eq!(registry.index_of(&reading("a", "°C")), Some(0));
        assert!(registry.changed.is_empty());
        assert_eq!(registry.index_of(&reading("a", "K")), Some(0));
        assert_eq!(registry.changed, vec![0]);
        assert_eq!(registry.sensors[0].unit, "K");
    }

    #[test]
    fn a_sensor_is_its_id_and_kind_and_moves_or_new_tags_are_changes() {
        let mut registry = SensorRegistry::default();
        let mut humidity = reading("a", "%");
        humidity.kind = "humidity".into();
        assert_eq!(registry.index_of(&reading("a", "°C")), Some(0));
        assert_eq!(registry.index_of(&humidity), Some(1), "same id, another kind: another sensor");
        registry.announced = 2;
        let mut moved = reading("a", "°C");
        moved.position = Some((43.6, 1.44));
        assert_eq!(registry.index_of(&moved), Some(0));
        assert_eq!(registry.index_of(&moved), Some(0));
        let mut tagged = moved.clone();
        tagged.tags.insert("quartier".into(), "Capitole".into());
        assert_eq!(registry.index_of(&tagged), Some(0));
        let mut retagged = tagged.clone();
        retagged.tags.insert("quartier".into(), "Carmes".into());
        assert_eq!(registry.index_of(&retagged), Some(0));
        assert_eq!(registry.changed, vec![0, 0, 0], "the move, two tags; the repeat was no change");
        assert_eq!(registry.sensors[0].tags, vec![("quartier".to_string(), "Carmes".to_string())]);
        assert_eq!(registry.sensors[0].position, Some(Position { lat: 43.6, lon: 1.44 }));
    }

    #[test]
    fn strings_are_told_apart_where_one_ends_and_the_next_begins() {
        let mut registry = SensorRegistry::default();
        let mut ab_c = reading("c", "°C");
        ab_c.kind = "ab".into();
        let mut a_bc = reading("bc", "°C");
        a_bc.kind = "a".into();
        assert_eq!(registry.index_of(&ab_c), Some(0));
        assert_eq!(registry.index_of(&a_bc), Some(1));
        registry.announced = 2;
        let mut tag_split = ab_c.clone();
        tag_split.tags.insert("ab".into(), "c".into());
        let mut tag_split_elsewhere = ab_c.clone();
        tag_split_elsewhere.tags.insert("a".into(), "bc".into());
        registry.index_of(&tag_split);
        registry.index_of(&tag_split_elsewhere);
        assert_eq!(registry.changed, vec![0, 0]);
    }

    #[test]
    fn a_place_at_minus_zero_is_the_place_at_zero() {
        let mut registry = SensorRegistry::default();
        let mut on_the_meridian = reading("a", "°C");
        on_the_meridian.position = Some((43.6, 0.0));
        registry.index_of(&on_the_meridian);
        registry.announced = 1;
        on_the_meridian.position = Some((43.6, -0.0));
        assert_eq!(registry.index_of(&on_the_meridian), Some(0));
        assert!(registry.changed.is_empty());
    }

    #[test]
    fn a_registry_rebuilt_from_its_sensors_knows_them_and_their_metadata() {
        let mut first = SensorRegistry::default();
        let mut tagged = reading("a", "°C");
        tagged.position = Some((43.6, 1.44));
        tagged.tags.insert("quartier".into(), "Capitole".into());
        first.index_of(&tagged);
        first.index_of(&reading("b", "°C"));
        let mut again = SensorRegistry::known(first.sensors.clone());
        assert_eq!(again.index_of(&reading("b", "°C")), Some(1));
        assert_eq!(again.index_of(&tagged), Some(0));
        assert!(again.changed.is_empty(), "same metadata as the saved sensors: nothing to announce");
        assert_eq!(again.index_of(&reading("a", "°C")), Some(0));
        assert_eq!(again.changed, vec![0]);
        assert_eq!(again.index_of(&reading("c", "°C")), Some(2));
    }
}
