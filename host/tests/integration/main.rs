//! Integration tests of the host, against real servers and real plugins.
//!
//! The plugins must be built first: `cargo xtask test` does it (or `cargo xtask build-plugins`
//! before `cargo test`). Mosquitto must be installed (`apt-get install mosquitto`); each test
//! starts its own on a free loopback port.

mod avg_quartier;
mod cli;
mod mqtt_pipeline;
mod sandbox;
mod support;
