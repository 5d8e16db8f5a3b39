//! The [`SensorModel`] trait and the glue that runs it behind the WIT exports.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::Config;
use crate::processor::decode_state;
use crate::sensor_model_bindings::exports::garonne::plugin::sensor_model_api as api;
use crate::types::{Sensor, Station};

/// A plugin that simulates a fleet of sensors.
///
/// As for a [`crate::Processor`], the struct is the state, saved and restored with serde: mark
/// fields set from the configuration or the stations `#[serde(skip)]`. After a successful
/// `restore` the SDK calls `init` again with the same configuration and stations (and drops the
/// sensors it returns, which the host already knows), so that those fields are set again.
pub trait SensorModel: Default + Serialize + DeserializeOwned + 'static {
    /// Given the configuration and the stations, returns the sensors it simulates; their
    /// positions in the returned list are the indices used in [`Batch::push`].
    fn init(&mut self, config: &Config, stations: &[Station]) -> Result<Vec<Sensor>, String>;

    /// The clock reached `now`: push the readings measured since the last tick.
    fn tick(&mut self, now: i64, out: &mut Batch) -> Result<(), String>;

    /// The state to keep; by default the struct as JSON (see [`crate::Processor::snapshot`]).
    fn snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Replaces the state with one from `snapshot`; by default `*self` = the decoded JSON.
    fn restore(&mut self, state: &[u8]) -> Result<(), String> {
        *self = decode_state(state)?;
        Ok(())
    }
}

/// The readings of one tick, in columns.
#[derive(Default)]
pub struct Batch {
    sensors: Vec<u32>,
    values: Vec<f64>,
    times: Vec<i64>,
}

impl Batch {
    /// Adds a reading of the sensor at `sensor_index` in the list `init` returned.
    pub fn push(&mut self, sensor_index: u32, value: f64, time: i64) {
        self.sensors.push(sensor_index);
        self.values.push(value);
        self.times.push(time);
    }

    pub fn len(&self) -> usize {
        self.sensors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sensors.is_empty()
    }
}

/// Keeps the model, its config and its stations for re-initialisation after `restore`.
#[derive(Default)]
pub struct SensorModelRunner<M> {
    model: M,
    config: Config,
    stations: Vec<Station>,
}

impl<M: SensorModel> SensorModelRunner<M> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn init(
        &mut self,
        config: Vec<(String, String)>,
        stations: Vec<api::Station>,
    ) -> Result<Vec<api::Sensor>, String> {
        self.config = Config::new(config);
        self.stations = stations.into_iter().map(Station::from).collect();
        let sensors = self.model.init(&self.config, &self.stations)?;
        Ok(sensors.into_iter().map(Into::into).collect())
    }

    pub fn tick(&mut self, now: i64) -> Result<api::Readings, String> {
        let mut batch = Batch::default();
        self.model.tick(now, &mut batch)?;
        Ok(api::Readings { sensors: batch.sensors, values: batch.values, times: batch.times })
    }

    pub fn snapshot(&self) -> Vec<u8> {
        self.model.snapshot()
    }

    pub fn restore(&mut self, state: &[u8]) -> Result<(), String> {
        self.model.restore(state)?;
        // Config-derived fields (serde-skipped) come back as defaults: initialise them again.
        self.model.init(&self.config, &self.stations).map(|_| ())
    }
}
