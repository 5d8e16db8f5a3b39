//! Host-side bindings of each WIT version the host loads.
//!
//! Each released version of `wit/` gets a module here, and the host links all of them at once,
//! so a plugin built last term against 0.1.0 loads beside one built against 0.3.0 (the pattern of
//! Zed's extension API). The newest version owns the `types` interface; the older versions are
//! generated with their `types` mapped onto it, which the component model allows because the
//! records have not changed (wasmtime checks them field by field when a plugin is linked). One
//! set of Rust values then serves every version: no conversion on the call path.
//!
//! When a future version changes a record, it gets its own `types` and the older modules keep
//! theirs, with a conversion in `sandbox::instance`.

/// `garonne:plugin@0.3.0`: the newest version, whose types the host uses everywhere.
pub mod v0_3_0 {
    /// The `sensor-model` world; also owns the shared `types` and `host` interfaces.
    pub mod sensor_model {
        wasmtime::component::bindgen!({
            world: "sensor-model",
            path: "../wit/v0.3.0",
            additional_derives: [PartialEq],
            // A plugin that breaks the rules of series (an index out of order, too many) traps:
            // see `GuestState::declare_series`.
            imports: {
                "garonne:plugin/host.declare-series": trappable,
                "garonne:plugin/host.publish": trappable,
            },
        });
    }

    /// The `processor` world, sharing `types` and `host` with the sensor model bindings so that
    /// one `Host` implementation serves both.
    pub mod processor {
        wasmtime::component::bindgen!({
            world: "processor",
            path: "../wit/v0.3.0",
            with: {
                "garonne:plugin/types": super::sensor_model::garonne::plugin::types,
                "garonne:plugin/host": super::sensor_model::garonne::plugin::host,
            },
        });
    }

    pub use sensor_model::garonne::plugin::host;
    pub use sensor_model::garonne::plugin::types;
}

/// `garonne:plugin@0.2.0`: `host` without the series functions; the same types.
pub mod v0_2_0 {
    pub mod sensor_model {
        wasmtime::component::bindgen!({
            world: "sensor-model",
            path: "../wit/v0.2.0",
            with: {
                "garonne:plugin/types@0.2.0": crate::sandbox::bindings::v0_3_0::types,
            },
        });
    }

    pub mod processor {
        wasmtime::component::bindgen!({
            world: "processor",
            path: "../wit/v0.2.0",
            with: {
                "garonne:plugin/types@0.2.0": crate::sandbox::bindings::v0_3_0::types,
                "garonne:plugin/host@0.2.0": super::sensor_model::garonne::plugin::host,
            },
        });
    }

    pub use sensor_model::garonne::plugin::host;
}

/// `garonne:plugin@0.1.0`: `host` without `metric`; the same types.
pub mod v0_1_0 {
    pub mod sensor_model {
        wasmtime::component::bindgen!({
            world: "sensor-model",
            path: "../wit/v0.1.0",
            with: {
                "garonne:plugin/types@0.1.0": crate::sandbox::bindings::v0_3_0::types,
            },
        });
    }

    pub mod processor {
        wasmtime::component::bindgen!({
            world: "processor",
            path: "../wit/v0.1.0",
            with: {
                "garonne:plugin/types@0.1.0": crate::sandbox::bindings::v0_3_0::types,
                "garonne:plugin/host@0.1.0": super::sensor_model::garonne::plugin::host,
            },
        });
    }

    pub use sensor_model::garonne::plugin::host;
}

/// The WIT versions this host loads, newest first.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.2.0", "0.1.0"];

/// The version new plugins are built against (`host plugin new`, the SDK).
pub const LATEST_VERSION: &str = SUPPORTED_VERSIONS[0];

/// The text of the newest WIT version, which `host plugin new` copies into Python and
/// JavaScript plugins (they build against a WIT file of their own). The one place that names it:
/// a new version is one change here.
pub const LATEST_WIT: &str = include_str!("../../../wit/v0.3.0/plugin.wit");

/// The WIT package every plugin is built against.
pub const PACKAGE: &str = "garonne:plugin";
