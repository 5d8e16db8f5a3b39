//! One shared copy of each sensor's metadata, for the readings that carry it.
//!
//! Every reading repeats its sensor's id, kind, unit, position and tags. Decoded on their own,
//! they were five allocations per reading, made by the input's thread and freed by the thread of
//! each processor that read it, and most of what an overloaded host held in its queues. A
//! [`SensorCache`] keeps the metadata last seen for each sensor; a reading that brings the same
//! shares it, and one that brings a change replaces it.

use std::collections::HashMap;
use std::sync::Arc;

use foldhash::fast::RandomState;

use crate::payload::SensorMetadata;

/// Sensors a cache keeps before it starts again empty. A fleet of this size takes a few MiB; a
/// fleet that renames its sensors cannot fill the cache for good.
pub const DEFAULT_CAPACITY: usize = 20_000;

/// The metadata of the sensors seen last, by kind then id. Sensor ids come from the broker, so
/// the hasher is seeded per process (foldhash, as hashbrown's default): a flood of crafted ids
/// cannot make the look-ups collide.
pub struct SensorCache {
    by_kind: HashMap<String, HashMap<String, Arc<SensorMetadata>, RandomState>, RandomState>,
    len: usize,
    capacity: usize,
}

impl Default for SensorCache {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl SensorCache {
    /// A cache of up to `capacity` sensors.
    pub fn with_capacity(capacity: usize) -> Self {
        Self { by_kind: HashMap::default(), len: 0, capacity }
    }

    /// A cache that keeps nothing: each reading gets a metadata of its own.
    pub fn none() -> Self {
        Self::with_capacity(0)
    }

    /// Sensors kept.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The kept metadata of sensor `id` of `kind` if `same` says it is what the reading brings;
    /// otherwise the metadata `make` builds, kept in its place.
    pub fn get_or_insert_with(
        &mut self,
        kind: &str,
        id: &str,
        same: impl FnOnce(&SensorMetadata) -> bool,
        make: impl FnOnce() -> SensorMetadata,
    ) -> Arc<SensorMetadata> {
        if let Some(kept) = self.by_kind.get_mut(kind).and_then(|ids| ids.get_mut(id)) {
            if !same(kept) {
                *kept = Arc::new(make());
            }
            return Arc::clone(kept);
        }
        self.keep(Arc::new(make()))
    }

    /// The kept copy of `metadata` if it is the same, else `metadata` itself, kept from now on.
    pub fn share(&mut self, metadata: SensorMetadata) -> Arc<SensorMetadata> {
        let ids = self.by_kind.get_mut(metadata.kind.as_str());
        if let Some(kept) = ids.and_then(|ids| ids.get_mut(metadata.id.as_str())) {
            if **kept != metadata {
                *kept = Arc::new(metadata);
            }
            return Arc::clone(kept);
        }
        self.keep(Arc::new(metadata))
    }

    /// Keeps a sensor not kept yet, unless the cache keeps nothing.
    fn keep(&mut self, metadata: Arc<SensorMetadata>) -> Arc<SensorMetadata> {
        if self.capacity == 0 {
            return metadata;
        }
        if self.len >= self.capacity {
            self.by_kind.clear();
            self.len = 0;
        }
        let kind = metadata.kind.as_str();
        let ids = match self.by_kind.get_mut(kind) {
            Some(ids) => ids,
            None => self.by_kind.entry(kind.to_owned()).or_default(),
        };
        ids.insert(metadata.id.clone(), Arc::clone(&metadata));
        self.len += 1;
        metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn station(id: &str, unit: &str) -> SensorMetadata {
        SensorMetadata::new(id, "temperature", unit).at(43.6, 1.44).tagged([("quartier", "Capitole")])
    }

    #[test]
    fn the_same_metadata_is_shared_and_a_change_replaces_it() {
        let mut cache = SensorCache::default();
        let first = cache.share(station("42", "°C"));
        let again = cache.share(station("42", "°C"));
        assert!(Arc::ptr_eq(&first, &again), "one copy for the readings of a sensor");
        let other = cache.share(station("43", "°C"));
        assert!(!Arc::ptr_eq(&first, &other));
        let changed = cache.share(station("42", "K"));
        assert_eq!(changed.unit, "K", "a reading keeps what it brought");
        assert!(Arc::ptr_eq(&changed, &cache.share(station("42", "K"))), "the change is kept");
        let moved = cache.share(station("42", "K").at(43.7, 1.44));
        assert_eq!(moved.position, Some((43.7, 1.44)));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn the_same_id_of_another_kind_is_another_sensor() {
        let mut cache = SensorCache::default();
        let temperature = cache.share(SensorMetadata::new("42", "temperature", "°C"));
        let humidity = cache.share(SensorMetadata::new("42", "humidity", "%"));
        assert_eq!((temperature.unit.as_str(), humidity.unit.as_str()), ("°C", "%"));
        assert!(Arc::ptr_eq(&temperature, &cache.share(SensorMetadata::new("42", "temperature", "°C"))));
    }

    #[test]
    fn a_full_cache_starts_again_and_an_empty_one_keeps_nothing() {
        let mut cache = SensorCache::with_capacity(3);
        for id in ["a", "b", "c"] {
            cache.share(station(id, "°C"));
        }
        assert_eq!(cache.len(), 3);
        let d = cache.share(station("d", "°C"));
        assert_eq!(cache.len(), 1, "emptied, then d kept");
        assert!(Arc::ptr_eq(&d, &cache.share(station("d", "°C"))));

        let mut none = SensorCache::none();
        let first = none.share(station("a", "°C"));
        assert!(!Arc::ptr_eq(&first, &none.share(station("a", "°C"))));
        assert!(none.is_empty());
    }
}
