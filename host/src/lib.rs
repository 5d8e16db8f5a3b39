//! Garonne's host: runs sandboxed WebAssembly plugins over city sensor streams.
//!
//! The pieces, from the inside out:
//! - [`sandbox`]: compiles plugins once ([`sandbox::PluginEngine`]), runs each in its own
//!   [`sandbox::PluginSandbox`] (memory cap, CPU deadline, no files, network or environment) and
//!   keeps it alive across traps ([`sandbox::ProcessorSupervisor`]).
//! - [`payload`]: the JSON messages on the wire, [`senml`]: SenML packs read as readings, and
//!   [`topic`]: the MQTT topic scheme.
//! - [`mqtt`]: the connection to a broker, and [`broker`]: the embedded one for the demo.
//! - [`pipeline`]: wires sensor models and processors to MQTT, as a [`config::PipelineConfig`]
//!   says, each processor behind a queue bounded in readings and in bytes.
//! - [`historian`]: stores streams in InfluxDB (or line-protocol files), losing nothing.

pub mod broker;
pub mod clock;
pub mod config;
pub mod historian;
mod memory;
pub mod mqtt;
pub mod payload;
pub mod pipeline;
mod queue;
pub mod replay;
pub mod sandbox;
pub mod scaffold;
pub mod senml;
pub mod state_store;
pub mod stations;
pub mod topic;
pub mod web;
