//! Integration tests of the host, against real servers and real plugins.
//!
//! The plugins must be built first: `cargo xtask test` does it (or `cargo xtask build-plugins`
//! before `cargo test`). Mosquitto must be installed (`apt-get install mosquitto`); each test
//! starts its own on a free loopback port. The historian's tests also need InfluxDB 1.x and
//! VictoriaMetrics (`apt-get install influxdb victoria-metrics`); the Python and JavaScript guests
//! need `python3` with `venv` and `npm` (`cargo xtask build-plugins` installs their tools).

mod avg_quartier;
mod chaining;
mod cli;
mod contract;
mod databases;
mod fleet;
mod grafana;
mod guests;
mod historian;
mod hot_swap;
mod mqtt_pipeline;
mod sandbox;
mod stack;
mod support;

// The tutorial's test takes four to six minutes, a third of the suite. libtest starts tests in
// the order of their names, so this name sorts first: the test then runs beside the others
// instead of alone after them (on two test threads, the suite takes half as long).
mod _tutorial;
