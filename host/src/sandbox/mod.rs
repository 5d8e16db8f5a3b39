//! The WebAssembly sandbox: loading, running and supervising plugins.

pub mod bindings;
mod call_size;
mod engine;
mod guest_output;
mod instance;
mod limits;
mod published;
mod sensor_registry;
mod series;
mod state;
mod supervisor;

pub use engine::{LoadError, LoadedPlugin, PluginEngine, PluginInfo, World, compile_in_child_processes};
pub use instance::{CallError, Failure, PluginSandbox, SensorModelSandbox};
pub use limits::Limits;
pub use published::Published;
pub use series::SeriesError;
pub use supervisor::{
    DeadLetter, Outcome, PluginStats, ProcessorSupervisor, SavedState, SensorModelSupervisor,
};

/// The WIT types as the host sees them.
pub use bindings::v0_3_0::types::{Message, Position, Readings, Sensor, Station};
