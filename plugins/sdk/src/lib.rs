//! Write Garonne plugins in Rust: a plugin is a struct, one trait implementation and one macro.
//!
//! - a processor implements [`Processor`] and calls [`export_processor!`];
//! - a sensor model implements [`SensorModel`] and calls [`export_sensor_model!`].
//!
//! The struct is the plugin's state: the SDK snapshots it with serde, so it survives traps,
//! restarts and hot swaps. Fields set from the configuration are `#[serde(skip)]`: `init` sets
//! them again after a restore. The crate needs only `garonne-sdk` and `serde` as dependencies
//! and `crate-type = ["cdylib"]`. This processor publishes an alert when a temperature rises
//! above a threshold:
//!
//! ```
//! use std::collections::BTreeSet;
//!
//! use garonne_sdk::{Config, Message, Output, Processor, Reading, log};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Default, Serialize, Deserialize)]
//! struct HeatAlert {
//!     /// State: the sensors above the threshold now (by sensor index).
//!     hot: BTreeSet<u32>,
//!     /// Configuration, not state: set by `init`, which also runs after a restore.
//!     #[serde(skip)]
//!     threshold: f64,
//! }
//!
//! impl Processor for HeatAlert {
//!     fn init(&mut self, config: &Config) -> Result<(), String> {
//!         self.threshold = config.f64_or("threshold", 30.0)?;
//!         Ok(())
//!     }
//!
//!     fn on_reading(&mut self, reading: &Reading<'_>, out: &mut Output) -> Result<(), String> {
//!         let sensor = reading.sensor();
//!         if sensor.kind != "temperature" {
//!             return Ok(());
//!         }
//!         let is_hot = reading.value() > self.threshold;
//!         // Alert on the way up only, not on every hot reading.
//!         if is_hot && self.hot.insert(reading.sensor_index()) {
//!             log::info(&format!("heat alert at {}", sensor.id));
//!             let topic = format!("alerts/heat/{}", sensor.id);
//!             let (value, time) = (reading.value(), reading.time());
//!             let alert = Message::new(topic, &sensor.id, "heat", value, &sensor.unit, time)
//!                 .position(sensor.position)
//!                 .field("threshold", self.threshold)
//!                 .tag("severity", "warning");
//!             out.emit(alert);
//!         } else if !is_hot {
//!             self.hot.remove(&reading.sensor_index());
//!         }
//!         Ok(())
//!     }
//! }
//!
//! garonne_sdk::export_processor!(HeatAlert);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2` (`cargo xtask build-plugins` in this
//! repository builds every plugin) and run with `host run --plugin heat_alert.wasm`.
//!
//! In a plugin's per-reading code, prefer [`float::min`] and [`float::max`] to `f64::min` and
//! `f64::max`: same answers, but the standard ones become a function call each in WebAssembly.
//!
//! The export macros expand to nothing on other targets, so a plugin crate also compiles natively
//! for tests and benchmarks. There the host functions ([`log`], [`now`], [`random`]) are
//! deterministic, thread-local stand-ins: [`random`] draws from a SplitMix64 generator that
//! `seed_native_random(seed)` restarts (seed 0 by default), [`now`] returns what
//! `set_native_now(ms)` set (0 by default) and [`log`] writes to stderr. Those two setters exist
//! only in native builds; a native test that calls `seed_native_random` first gets the same
//! numbers on every run.

pub mod calendar;
mod config;
pub mod float;
mod host;
mod processor;
mod sensor_model;
mod series;
mod types;

pub use config::Config;
pub use host::{log, metric, now, random, random_f64};
#[cfg(not(target_arch = "wasm32"))]
pub use host::{native_metrics, seed_native_random, set_native_now};
/// Native tests: stations and configurations as the host gives them (`testing::stations`).
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
pub use processor::{Output, Processor, Reading};
pub use sensor_model::{Batch, SensorModel};
pub use series::Series;
pub use types::{Message, Position, Sensor, Station};

/// Bindings of the `processor` world (used by [`export_processor!`]).
#[doc(hidden)]
pub mod processor_bindings {
    wit_bindgen::generate!({
        world: "processor",
        path: "../../wit/v0.3.0",
        default_bindings_module: "garonne_sdk::processor_bindings",
        pub_export_macro: true,
        export_macro_name: "__export_processor_world",
    });
}

/// Bindings of the `sensor-model` world (used by [`export_sensor_model!`]).
#[doc(hidden)]
pub mod sensor_model_bindings {
    wit_bindgen::generate!({
        world: "sensor-model",
        path: "../../wit/v0.3.0",
        default_bindings_module: "garonne_sdk::sensor_model_bindings",
        pub_export_macro: true,
        export_macro_name: "__export_sensor_model_world",
    });
}

#[doc(hidden)]
pub mod __private {
    pub use crate::processor::ProcessorRunner;
    pub use crate::sensor_model::SensorModelRunner;
}

/// Makes a [`Processor`] the plugin's export: `garonne_sdk::export_processor!(MyType);`.
#[macro_export]
macro_rules! export_processor {
    ($plugin:ty) => {
        // Exports only in the wasm build: a native build of the same crate (tests, benchmarks
        // against native code) cannot carry component-model export names.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::processor_bindings::exports::garonne::plugin::processor_api as api;

            ::std::thread_local! {
                static RUNNER: ::std::cell::RefCell<$crate::__private::ProcessorRunner<$plugin>> =
                    ::std::cell::RefCell::new(::std::default::Default::default());
            }

            struct Exported;

            impl api::Guest for Exported {
                fn init(config: api::Config) -> Result<(), String> {
                    RUNNER.with_borrow_mut(|r| r.init(config))
                }
                fn on_sensors(first: u32, sensors: ::std::vec::Vec<api::Sensor>) {
                    RUNNER.with_borrow_mut(|r| r.on_sensors(first, sensors))
                }
                fn on_readings(batch: api::Readings) -> Result<::std::vec::Vec<api::Message>, String> {
                    RUNNER.with_borrow_mut(|r| r.on_readings(batch))
                }
                fn on_tick(now: i64) -> Result<::std::vec::Vec<api::Message>, String> {
                    RUNNER.with_borrow_mut(|r| r.on_tick(now))
                }
                fn snapshot() -> ::std::vec::Vec<u8> {
                    RUNNER.with_borrow(|r| r.snapshot())
                }
                fn restore(state: ::std::vec::Vec<u8>) -> Result<(), String> {
                    RUNNER.with_borrow_mut(|r| r.restore(&state))
                }
            }

            $crate::processor_bindings::__export_processor_world!(Exported);
        };

        // Natively there is nothing to export, but naming the runner still checks that the type
        // is a `Processor` and keeps it from being reported as dead code in tests.
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn() -> $crate::__private::ProcessorRunner<$plugin> =
            $crate::__private::ProcessorRunner::new;
    };
}

/// Makes a [`SensorModel`] the plugin's export: `garonne_sdk::export_sensor_model!(MyType);`.
#[macro_export]
macro_rules! export_sensor_model {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::sensor_model_bindings::exports::garonne::plugin::sensor_model_api as api;

            ::std::thread_local! {
                static RUNNER: ::std::cell::RefCell<$crate::__private::SensorModelRunner<$plugin>> =
                    ::std::cell::RefCell::new(::std::default::Default::default());
            }

            struct Exported;

            impl api::Guest for Exported {
                fn init(
                    config: api::Config,
                    stations: ::std::vec::Vec<api::Station>,
                ) -> Result<::std::vec::Vec<api::Sensor>, String> {
                    RUNNER.with_borrow_mut(|r| r.init(config, stations))
                }
                fn tick(now: i64) -> Result<api::Readings, String> {
                    RUNNER.with_borrow_mut(|r| r.tick(now))
                }
                fn snapshot() -> ::std::vec::Vec<u8> {
                    RUNNER.with_borrow(|r| r.snapshot())
                }
                fn restore(state: ::std::vec::Vec<u8>) -> Result<(), String> {
                    RUNNER.with_borrow_mut(|r| r.restore(&state))
                }
            }

            $crate::sensor_model_bindings::__export_sensor_model_world!(Exported);
        };

        // As in `export_processor!`: checks the type and keeps it alive in native builds.
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn() -> $crate::__private::SensorModelRunner<$plugin> =
            $crate::__private::SensorModelRunner::new;
    };
}
