//! Host-side bindings of each WIT version the host loads.
//!
//! Each released version of `wit/` gets a module here. Today there is one, 0.1.0; when 0.2.0 is
//! released, its bindings go beside these and plugins built against 0.1.0 keep loading (see
//! `docs/` and Zed's extension API for the pattern).

/// `garonne:plugin@0.1.0`.
pub mod v0_1_0 {
    /// The `sensor-model` world; also owns the shared `types` and `host` interfaces.
    pub mod sensor_model {
        wasmtime::component::bindgen!({
            world: "sensor-model",
            path: "../wit/v0.1.0",
            additional_derives: [PartialEq],
        });
    }

    /// The `processor` world, sharing `types` and `host` with the sensor model bindings so that
    /// one `Host` implementation serves both.
    pub mod processor {
        wasmtime::component::bindgen!({
            world: "processor",
            path: "../wit/v0.1.0",
            with: {
                "garonne:plugin/types": super::sensor_model::garonne::plugin::types,
                "garonne:plugin/host": super::sensor_model::garonne::plugin::host,
            },
        });
    }

    pub use sensor_model::garonne::plugin::host;
    pub use sensor_model::garonne::plugin::types;
}

/// The WIT versions this host loads, newest first.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.1.0"];

/// The text of the newest WIT version, which `host plugin new` copies into Python and
/// JavaScript plugins (they build against a WIT file of their own). The one place that names it:
/// a new version is one change here.
pub const LATEST_WIT: &str = include_str!("../../../wit/v0.1.0/plugin.wit");

/// The WIT package every plugin is built against.
pub const PACKAGE: &str = "garonne:plugin";
