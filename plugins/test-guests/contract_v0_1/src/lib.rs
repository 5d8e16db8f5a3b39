//! TEST ONLY: a processor as a student would have built it against `garonne:plugin@0.1.0`,
//! straight from the frozen `wit/v0.1.0` (the SDK follows the newest version). The host must go
//! on loading it after the contract grew. The crate `contract_v0_2` builds this same source
//! against `wit/v0.2.0` (feature `v0_2`), where `init` also sets a metric, `factor`.
//!
//! For each reading it publishes `legacy/{kind}/{sensor_id}`: the value times `factor` (config,
//! default 2), kind `{kind}_scaled`, at the reading's time, with a `seen` field counting the
//! readings so far (its state, kept by snapshot/restore). It calls the three host functions of
//! 0.1.0: `log` at init, `now` and `random` in `init`'s check.

use std::cell::RefCell;

#[cfg(not(feature = "v0_2"))]
wit_bindgen::generate!({
    world: "processor",
    path: "../../../wit/v0.1.0",
});

#[cfg(feature = "v0_2")]
wit_bindgen::generate!({
    world: "processor",
    path: "../../../wit/v0.2.0",
});

use exports::garonne::plugin::processor_api::{Guest, Message, Readings, Sensor};
use garonne::plugin::host;
use garonne::plugin::types::Level;

#[derive(Default)]
struct State {
    factor: f64,
    seen: u64,
    sensors: Vec<Option<Sensor>>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State { factor: 2.0, ..State::default() });
}

struct Legacy;

impl Guest for Legacy {
    fn init(config: Vec<(String, String)>) -> Result<(), String> {
        let factor = match config.iter().find(|(key, _)| key == "factor") {
            Some((_, text)) => {
                text.parse().map_err(|_| format!("config `factor` = {text:?} is not a number"))?
            }
            None => 2.0,
        };
        // Touches every host function of 0.1.0, so that linking them is what the test checks.
        let _ = (host::now(), host::random());
        host::log(Level::Info, &format!("contract guest, factor {factor}"));
        // What 0.2.0 added.
        #[cfg(feature = "v0_2")]
        host::metric("factor", factor);
        STATE.with_borrow_mut(|state| state.factor = factor);
        Ok(())
    }

    fn on_sensors(first: u32, sensors: Vec<Sensor>) {
        STATE.with_borrow_mut(|state| {
            for (offset, sensor) in sensors.into_iter().enumerate() {
                let index = first as usize + offset;
                if state.sensors.len() <= index {
                    state.sensors.resize(index + 1, None);
                }
                state.sensors[index] = Some(sensor);
            }
        });
    }

    fn on_readings(batch: Readings) -> Result<Vec<Message>, String> {
        STATE.with_borrow_mut(|state| {
            let mut out = Vec::with_capacity(batch.values.len());
            for ((&index, &value), &time) in batch.sensors.iter().zip(&batch.values).zip(&batch.times) {
                let Some(Some(sensor)) = state.sensors.get(index as usize) else {
                    return Err(format!("unknown sensor index {index}"));
                };
                state.seen += 1;
                out.push(Message {
                    topic: format!("legacy/{}/{}", sensor.kind, sensor.id),
                    sensor_id: sensor.id.clone(),
                    kind: format!("{}_scaled", sensor.kind),
                    value: value * state.factor,
                    unit: sensor.unit.clone(),
                    time,
                    position: sensor.position,
                    fields: vec![("seen".to_owned(), state.seen as f64)],
                    tags: Vec::new(),
                });
            }
            Ok(out)
        })
    }

    fn on_tick(_now: i64) -> Result<Vec<Message>, String> {
        Ok(Vec::new())
    }

    fn snapshot() -> Vec<u8> {
        STATE.with_borrow(|state| state.seen.to_le_bytes().to_vec())
    }

    fn restore(bytes: Vec<u8>) -> Result<(), String> {
        let seen: [u8; 8] = bytes.try_into().map_err(|_| "a snapshot is 8 bytes".to_owned())?;
        STATE.with_borrow_mut(|state| state.seen = u64::from_le_bytes(seen));
        Ok(())
    }
}

export!(Legacy);
