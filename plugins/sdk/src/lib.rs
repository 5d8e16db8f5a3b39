//! Write Garonne plugins in Rust: a plugin is a struct, one trait implementation and one macro.
//!
//! ```ignore
//! use garonne_sdk::{Config, Message, Output, Processor, Reading};
//! use serde::{Deserialize, Serialize};
//!
//! /// Publishes each reading again, converted from °C to °F.
//! #[derive(Default, Serialize, Deserialize)]
//! struct Fahrenheit {
//!     converted: u64, // state: survives traps and restarts through snapshot/restore
//!     #[serde(skip)]
//!     offset: f64, // configuration: set again by `init`, so not part of the state
//! }
//!
//! impl Processor for Fahrenheit {
//!     fn init(&mut self, config: &Config) -> Result<(), String> {
//!         self.offset = config.f64_or("offset", 32.0)?;
//!         Ok(())
//!     }
//!
//!     fn on_reading(&mut self, reading: &Reading<'_>, out: &mut Output) -> Result<(), String> {
//!         let sensor = reading.sensor();
//!         if sensor.kind != "temperature" {
//!             return Ok(());
//!         }
//!         self.converted += 1;
//!         let value = reading.value() * 9.0 / 5.0 + self.offset;
//!         let topic = format!("fahrenheit/{}", sensor.id);
//!         out.emit(Message::new(topic, &sensor.id, "temperature", value, "°F", reading.time()));
//!         Ok(())
//!     }
//! }
//!
//! garonne_sdk::export_processor!(Fahrenheit);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2` (or `cargo xtask build-plugins` in
//! this repository) and run with `host run --plugin fahrenheit.wasm`.

mod config;
mod host;
mod processor;
mod sensor_model;
mod types;

pub use config::Config;
pub use host::{log, now, random, random_f64};
pub use processor::{Output, Processor, Reading};
pub use sensor_model::{Batch, SensorModel};
pub use types::{Message, Position, Sensor, Station};

/// Bindings of the `processor` world (used by [`export_processor!`]).
#[doc(hidden)]
pub mod processor_bindings {
    wit_bindgen::generate!({
        world: "processor",
        path: "../../wit/v0.1.0",
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
        path: "../../wit/v0.1.0",
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
    };
}
