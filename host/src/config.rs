//! The pipeline file: one typed struct, loaded from TOML, then overridden by flags and
//! environment variables (flags > environment > file > defaults).
//!
//! ```toml
//! [mqtt]
//! url = "mqtt://127.0.0.1:1883"    # no url: the host starts its embedded broker
//!
//! [[plugin]]
//! path = "plugins/target/wasm32-wasip2/release/rolling_stats.wasm"
//! inputs = ["toulouse/sensors/#"]
//! [plugin.config]
//! window_s = 300
//! [plugin.limits]
//! memory_mib = 32
//!
//! [[plugin]]
//! path = "plugins/target/wasm32-wasip2/release/thresholds.wasm"
//! # In process, not through the broker: what rolling_stats emits under toulouse/stats/.
//! inputs = ["plugin:rolling_stats:toulouse/stats/#"]
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::historian::HistorianConfig;
use crate::sandbox::Limits;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the pipeline file {path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("the pipeline file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// Everything a `host run` needs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    pub mqtt: MqttConfig,
    pub runtime: RuntimeConfig,
    #[serde(rename = "plugin")]
    pub plugins: Vec<PluginConfig>,
    /// Stores streams in InfluxDB alongside the plugins (see [`crate::historian`]).
    pub historian: Option<HistorianConfig>,
}

/// The broker connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// `mqtt://host:port`; none: start the embedded broker.
    pub url: Option<String>,
    pub client_id: String,
    /// Topic prefix of readings and processor outputs.
    pub prefix: String,
    /// QoS of everything the host publishes (0 or 1).
    pub qos: u8,
    /// Largest payload accepted, in bytes.
    pub max_payload: usize,
    /// Port the embedded broker tries first (a free one is taken if it is busy).
    pub embedded_port: u16,
    /// Port of the embedded broker's WebSocket listener, for the web map (0: none).
    pub embedded_ws_port: u16,
    /// How many unacknowledged QoS 1 messages the broker sends a client at once: Mosquitto's
    /// `max_inflight_messages` (20 by default). The input lets QoS 1 messages gather only below
    /// it (a larger value than the broker's can hold the broker back). Not used with the embedded
    /// broker, whose window the host knows.
    pub broker_inflight: usize,
    /// User name, normally from `GARONNE_MQTT_USERNAME` rather than the file.
    pub username: Option<String>,
    #[serde(skip)]
    pub password: Option<String>,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            url: None,
            client_id: "garonne-host".into(),
            prefix: "toulouse".into(),
            qos: 1,
            max_payload: crate::payload::DEFAULT_MAX_PAYLOAD,
            embedded_port: 1883,
            embedded_ws_port: 0,
            broker_inflight: 20,
            username: None,
            password: None,
        }
    }
}

/// How plugins run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Where compiled components are cached (default: the user's cache folder).
    pub cache_dir: Option<PathBuf>,
    /// How many times faster than real time the virtual clock runs.
    pub speed: f64,
    /// Virtual start time (RFC 3339); default: now.
    pub start: Option<String>,
    /// Virtual end time (RFC 3339): the sensor models run from `start` to `end` as fast as
    /// they can, then the host stops. Needs `start`.
    pub end: Option<String>,
    /// Seed of every plugin's random source.
    pub seed: u64,
    /// Real milliseconds between two `on-tick` calls of each processor.
    pub tick_ms: u64,
    /// Most readings gathered for a processor at once (the supervisor may still cut them into
    /// smaller calls, to stay well inside the CPU deadline).
    pub batch_max: usize,
    /// How long a processor's worker lets readings gather before a call that would take fewer
    /// than `batch_max`, in ms (0: call at once), and how long the input lets QoS 0 messages
    /// gather in the socket after a read that emptied it (QoS 1 messages: at most 2 ms, and only
    /// below the broker's window, `mqtt.broker_inflight`). A wake-up for each reading or two cost
    /// more host CPU than the plugins' work; this wait is the latency traded for it (at most
    /// 1,000).
    pub batch_linger_ms: u64,
    /// Slots of each processor's queue: a reading from the broker, or what one call of a plugin
    /// it reads in process emitted (at most that plugin's `max_messages`). A full queue pauses
    /// the input connection, or the worker of that plugin: memory stays bounded and nothing is
    /// dropped.
    pub queue_capacity: usize,
    /// Bytes of memory each processor's queue may hold, counting what its worker is processing
    /// (at most 4 GiB): a full queue pauses its senders as `queue_capacity` does. A sensor's
    /// reading takes about 400 bytes; a payload may take up to 64 KiB, and a slot what one call
    /// of a plugin read in process emitted, so slots alone do not bound memory.
    pub queue_bytes: usize,
    /// Calls between two snapshots of a processor's state, at the least: a plugin whose
    /// snapshots are costly gets them less often, so that they take at most about a tenth of its
    /// time (and never more than 100,000 readings apart).
    pub checkpoint_every: usize,
    /// Hot swap: when a processor's `.wasm` file changes, load the new build and hand it the
    /// running one's state, between two batches.
    pub watch: bool,
    /// A folder where each processor's state is saved (`{name}.state`) when the host stops and
    /// every `state_save_s` while it runs, and read back when it starts: a restart then goes on
    /// with the windows in progress. Relative to the pipeline file. Default: none (state lives
    /// in memory only).
    pub state_dir: Option<PathBuf>,
    /// Seconds between two saves of a processor's state while the host runs: what a crash
    /// may lose (a clean stop saves it all).
    pub state_save_s: f64,
}

/// 4 MiB: about 10,000 of a sensor's readings, as many as `queue_capacity`'s default slots.
const DEFAULT_QUEUE_BYTES: usize = 4 * 1024 * 1024;

/// A batch linger longer than this would hold readings longer than the tick that closes windows.
const MAX_BATCH_LINGER_MS: u64 = 1_000;

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            speed: 1.0,
            start: None,
            end: None,
            seed: 42,
            tick_ms: 1_000,
            batch_max: 1_000,
            batch_linger_ms: 2,
            queue_capacity: 10_000,
            queue_bytes: DEFAULT_QUEUE_BYTES,
            checkpoint_every: 16,
            watch: false,
            state_dir: None,
            state_save_s: 30.0,
        }
    }
}

/// One plugin of the pipeline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    pub path: PathBuf,
    /// Name in logs and topics; default: the file name without `.wasm`.
    pub name: Option<String>,
    /// Processors: what they read (default: every reading). A topic filter reads from the
    /// broker; `plugin:NAME` takes every message plugin NAME emits, handed over in process, and
    /// `plugin:NAME:FILTER` only those whose topic matches FILTER (see [`Input`]).
    #[serde(default)]
    pub inputs: Vec<String>,
    /// Which of its messages go to the broker: topic filters on their full topic (default
    /// `["#"]`, all of them). The plugins that read this one in process (`plugin:NAME`) get its
    /// messages either way, so `publish = []` keeps an intermediate stream inside the host: the
    /// broker then relays each reading once instead of twice, and nothing subscribed to the
    /// broker (the map, the historian) sees that stream.
    #[serde(default = "publish_everything")]
    pub publish: Vec<String>,
    /// Sensor models: the stations file given to `init`.
    pub stations: Option<PathBuf>,
    /// Sensor models: virtual seconds between two ticks.
    #[serde(default = "default_interval_s")]
    pub interval_s: f64,
    /// Sensor models: how many sensors to place around each real station (load tests).
    #[serde(default = "default_fleet")]
    pub fleet: u32,
    /// Given to the plugin's `init`, flattened to `key = "value"` pairs.
    #[serde(default)]
    pub config: toml::Table,
    #[serde(default)]
    pub limits: Limits,
}

fn publish_everything() -> Vec<String> {
    vec!["#".into()]
}

fn default_interval_s() -> f64 {
    10.0
}

fn default_fleet() -> u32 {
    1
}

impl PluginConfig {
    /// A plugin given with `--plugin PATH`: default inputs, config and limits.
    pub fn from_path(path: PathBuf) -> Self {
        Self {
            path,
            name: None,
            inputs: Vec::new(),
            publish: publish_everything(),
            stations: None,
            interval_s: default_interval_s(),
            fleet: default_fleet(),
            config: toml::Table::new(),
            limits: Limits::default(),
        }
    }

    pub fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            self.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
        })
    }

    /// The config table as the WIT `config` type: dotted keys, values as text.
    pub fn flat_config(&self) -> Vec<(String, String)> {
        flat_config(&self.config)
    }
}

/// A TOML table as the WIT `config` type: nested tables become dotted keys.
pub fn flat_config(table: &toml::Table) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    flatten("", table, &mut pairs);
    pairs
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut Vec<(String, String)>) {
    for (key, value) in table {
        let key = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match value {
            toml::Value::Table(inner) => flatten(&key, inner, out),
            toml::Value::String(text) => out.push((key, text.clone())),
            other => out.push((key, other.to_string())),
        }
    }
}

/// One entry of a processor's `inputs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input<'a> {
    /// A topic filter, read from the broker.
    Topic(&'a str),
    /// What plugin `name` emits (a processor's messages, a sensor model's readings), handed over
    /// in process; with a filter, only the messages whose full topic matches it.
    Plugin { name: &'a str, filter: Option<&'a str> },
}

impl<'a> Input<'a> {
    /// `plugin:NAME`, `plugin:NAME:FILTER`, or a topic filter.
    pub fn parse(text: &'a str) -> Self {
        match text.strip_prefix("plugin:") {
            Some(rest) => match rest.split_once(':') {
                Some((name, filter)) => Input::Plugin { name, filter: Some(filter) },
                None => Input::Plugin { name: rest, filter: None },
            },
            None => Input::Topic(text),
        }
    }
}

impl PluginConfig {
    /// Its `publish` filters, or `None` when they take every topic (`#` among them).
    pub fn publish_filters(&self) -> Option<&[String]> {
        (!self.publish.iter().any(|filter| filter == "#")).then_some(self.publish.as_slice())
    }

    /// The plugins this one reads in process (`plugin:NAME` inputs).
    pub fn upstreams(&self) -> impl Iterator<Item = &str> {
        self.inputs.iter().filter_map(|text| match Input::parse(text) {
            Input::Plugin { name, .. } => Some(name),
            Input::Topic(_) => None,
        })
    }
}

impl PipelineConfig {
    /// The plugin named `name` (its `name`, or its file name without `.wasm`).
    pub fn plugin(&self, name: &str) -> Option<&PluginConfig> {
        self.plugins.iter().find(|p| p.name() == name)
    }

    /// Reads a pipeline file; relative plugin and stations paths are taken from its folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::parse(path, &read(path)?)
    }

    fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let mut config: Self = toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: path.into(), message: e.to_string() })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for plugin in &mut config.plugins {
            plugin.path = base.join(&plugin.path);
            plugin.stations = plugin.stations.as_ref().map(|s| base.join(s));
        }
        config.runtime.state_dir = config.runtime.state_dir.map(|dir| base.join(dir));
        Ok(config)
    }

    /// The plugins of a file added to another pipeline: it may hold only `[[plugin]]` tables,
    /// since the broker, the runtime and the historian are the first file's.
    pub fn load_plugins_only(path: &Path) -> Result<Vec<PluginConfig>, ConfigError> {
        let text = read(path)?;
        let table: toml::Table = toml::from_str(&text)
            .map_err(|e| ConfigError::Parse { path: path.into(), message: e.to_string() })?;
        if let Some(key) = table.keys().find(|key| *key != "plugin") {
            return Err(ConfigError::Parse {
                path: path.into(),
                message: format!(
                    "`{key}`: a pipeline file added to another may only hold [[plugin]] tables; put [{key}] in the first --config"
                ),
            });
        }
        Ok(Self::parse(path, &text)?.plugins)
    }

    /// Takes the broker credentials and URL from the environment where the file left them out.
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) {
        if let Some(url) = env("GARONNE_MQTT_URL") {
            self.mqtt.url = Some(url);
        }
        if let Some(user) = env("GARONNE_MQTT_USERNAME") {
            self.mqtt.username = Some(user);
        }
        self.mqtt.password = env("GARONNE_MQTT_PASSWORD");
        if let Some(dir) = env("GARONNE_STATE_DIR") {
            self.runtime.state_dir = Some(dir.into());
        }
    }

    /// Checks what serde cannot, with a message naming the plugin and the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.plugins.is_empty() {
            return Err(ConfigError::Invalid(
                "no plugin to run: give one with --plugin PATH.wasm or a [[plugin]] in --config".into(),
            ));
        }
        if self.mqtt.broker_inflight == 0 {
            return Err(ConfigError::Invalid(
                "mqtt.broker_inflight is 0: set it to the broker's max_inflight_messages (Mosquitto: 20 by default)"
                    .into(),
            ));
        }
        if self.mqtt.qos > 1 {
            return Err(ConfigError::Invalid(format!("mqtt.qos is {}; use 0 or 1", self.mqtt.qos)));
        }
        if self.mqtt.prefix.is_empty() || self.mqtt.prefix.contains(['+', '#']) {
            return Err(ConfigError::Invalid("mqtt.prefix must be a topic without wildcards".into()));
        }
        let mut names = std::collections::HashSet::new();
        for plugin in &self.plugins {
            let name = plugin.name();
            if !names.insert(name.clone()) {
                return Err(ConfigError::Invalid(format!(
                    "two plugins are named `{name}`: give one of them `name = \"...\"`"
                )));
            }
            if !(plugin.interval_s.is_finite() && plugin.interval_s > 0.0) {
                return Err(ConfigError::Invalid(format!("plugin `{name}`: interval_s must be > 0")));
            }
            if plugin.fleet == 0 {
                return Err(ConfigError::Invalid(format!("plugin `{name}`: fleet must be at least 1")));
            }
        }
        self.validate_chains()?;
        self.validate_publish()?;
        if self.runtime.end.is_some() && self.runtime.start.is_none() {
            return Err(ConfigError::Invalid(
                "runtime.end (--to) needs runtime.start (--from): the interval to simulate".into(),
            ));
        }
        if self.runtime.batch_max == 0 || self.runtime.tick_ms == 0 || self.runtime.queue_capacity == 0 {
            return Err(ConfigError::Invalid(
                "runtime.batch_max, runtime.tick_ms and runtime.queue_capacity must be > 0".into(),
            ));
        }
        if self.runtime.queue_bytes == 0 || self.runtime.queue_bytes > crate::queue::MAX_BYTES {
            return Err(ConfigError::Invalid(format!(
                "runtime.queue_bytes is {}: give the bytes each processor's queue may hold, from 1 to {} (default {DEFAULT_QUEUE_BYTES})",
                self.runtime.queue_bytes,
                crate::queue::MAX_BYTES
            )));
        }
        if !(self.runtime.state_save_s.is_finite() && self.runtime.state_save_s > 0.0) {
            return Err(ConfigError::Invalid(format!(
                "runtime.state_save_s is {}: give the seconds between two saves of the processors' state (default 30)",
                self.runtime.state_save_s
            )));
        }
        if self.runtime.batch_linger_ms > MAX_BATCH_LINGER_MS {
            return Err(ConfigError::Invalid(format!(
                "runtime.batch_linger_ms is {}: at most {MAX_BATCH_LINGER_MS} (every short batch waits that long; 2 is the default, 0 turns it off)",
                self.runtime.batch_linger_ms
            )));
        }
        Ok(())
    }

    /// `plugin:NAME` inputs: a known plugin other than the reader, a valid filter, no cycle (a
    /// cycle would have each plugin wait for room in the other's queue forever).
    fn validate_chains(&self) -> Result<(), ConfigError> {
        let names: Vec<String> = self.plugins.iter().map(PluginConfig::name).collect();
        for plugin in &self.plugins {
            let reader = plugin.name();
            for text in &plugin.inputs {
                let (name, filter) = match Input::parse(text) {
                    Input::Plugin { name, filter } => (name, filter),
                    Input::Topic(filter) => (text.as_str(), Some(filter)),
                };
                if let Some(filter) = filter
                    && !rumqttc::valid_filter(filter)
                {
                    return Err(ConfigError::Invalid(format!(
                        "plugin `{reader}`: input `{text}` is not a valid topic filter (`+` and `#` stand for whole levels, `#` only last)"
                    )));
                }
                if !text.starts_with("plugin:") {
                    continue;
                }
                if name == reader {
                    return Err(ConfigError::Invalid(format!(
                        "plugin `{reader}` reads `{text}`, its own output: a plugin cannot take in what it emits; name another plugin"
                    )));
                }
                if !names.iter().any(|known| known == name) {
                    return Err(ConfigError::Invalid(format!(
                        "plugin `{reader}` reads `{text}`, but no plugin is named `{name}` (the plugins are: {}); use one of these names (a plugin's `name`, or its file name without .wasm)",
                        names.join(", ")
                    )));
                }
            }
        }
        match self.find_cycle() {
            Some(cycle) => Err(ConfigError::Invalid(format!(
                "the `plugin:` inputs form a cycle: {} (each reads the next). Each plugin would wait for the next to take its messages; read one of them through a topic filter instead",
                cycle.join(" → ")
            ))),
            None => Ok(()),
        }
    }

    /// `publish` filters: valid, and a plugin that publishes nothing has a reader in process
    /// (otherwise every message it emits would be lost).
    fn validate_publish(&self) -> Result<(), ConfigError> {
        for plugin in &self.plugins {
            let name = plugin.name();
            if let Some(filter) = plugin.publish.iter().find(|f| !rumqttc::valid_filter(f)) {
                return Err(ConfigError::Invalid(format!(
                    "plugin `{name}`: publish filter `{filter}` is not a valid topic filter (`+` and `#` stand for whole levels, `#` only last)"
                )));
            }
            let read_in_process = self.plugins.iter().any(|p| p.upstreams().any(|u| u == name));
            if plugin.publish.is_empty() && !read_in_process {
                return Err(ConfigError::Invalid(format!(
                    "plugin `{name}` has `publish = []` and no plugin reads it with `plugin:{name}`: everything it emits would be lost; publish some topics or add a reader"
                )));
            }
        }
        Ok(())
    }

    /// A cycle of `plugin:` inputs, as the names along it (the first one again at the end).
    fn find_cycle(&self) -> Option<Vec<String>> {
        let mut done = std::collections::HashSet::new();
        for plugin in &self.plugins {
            let mut path = Vec::new();
            if let Some(cycle) = self.cycle_from(&plugin.name(), &mut path, &mut done) {
                return Some(cycle);
            }
        }
        None
    }

    /// Depth-first walk up the `plugin:` inputs; `path` holds the plugins being walked.
    fn cycle_from(
        &self,
        name: &str,
        path: &mut Vec<String>,
        done: &mut std::collections::HashSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|seen| seen == name) {
            let mut cycle = path[start..].to_vec();
            cycle.push(name.to_owned());
            return Some(cycle);
        }
        if done.contains(name) {
            return None;
        }
        path.push(name.to_owned());
        let plugin = self.plugin(name);
        for upstream in plugin.into_iter().flat_map(PluginConfig::upstreams) {
            if let Some(cycle) = self.cycle_from(upstream, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(name.to_owned());
        None
    }
}

/// The text of a pipeline file, read once even when it is both checked and parsed.
fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|error| ConfigError::Read { path: path.into(), error })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipeline_file_parses_with_defaults_and_nested_config() {
        let config: PipelineConfig = toml::from_str(
            r#"
            [mqtt]
            url = "mqtt://127.0.0.1:1884"
            [[plugin]]
            path = "a.wasm"
            inputs = ["toulouse/sensors/temperature/#"]
            [plugin.config]
            window_s = 300
            thresholds = { no2 = 200.5, label = "NO2" }
            [plugin.limits]
            memory_mib = 16
            "#,
        )
        .expect("valid pipeline");
        assert_eq!(config.mqtt.prefix, "toulouse");
        let plugin = &config.plugins[0];
        assert_eq!(plugin.name(), "a");
        assert_eq!(plugin.limits.memory_mib, 16);
        assert_eq!(plugin.limits.call_deadline_ms, Limits::default().call_deadline_ms);
        let mut flat = plugin.flat_config();
        flat.sort();
        assert_eq!(
            flat,
            vec![
                ("thresholds.label".into(), "NO2".into()),
                ("thresholds.no2".into(), "200.5".into()),
                ("window_s".into(), "300".into()),
            ]
        );
        assert!(config.validate().is_ok());
    }

    #[test]
    fn a_batch_linger_over_a_second_is_refused() {
        let mut config: PipelineConfig =
            toml::from_str("[runtime]\nbatch_linger_ms = 5000\n[[plugin]]\npath = \"a.wasm\"\n")
                .expect("parses");
        let message = config.validate().expect_err("too long").to_string();
        assert!(message.contains("batch_linger_ms is 5000: at most 1000"), "{message}");
        config.runtime.batch_linger_ms = 0;
        assert!(config.validate().is_ok(), "0 turns the linger off");
    }

    #[test]
    fn a_broker_window_of_zero_is_refused_with_what_to_set() {
        let mut config: PipelineConfig =
            toml::from_str("[mqtt]\nbroker_inflight = 0\n[[plugin]]\npath = \"a.wasm\"\n").expect("parses");
        let message = config.validate().expect_err("no window").to_string();
        assert!(message.contains("set it to the broker's max_inflight_messages"), "{message}");
        config.mqtt.broker_inflight = 1_000;
        assert!(config.validate().is_ok());
        assert_eq!(PipelineConfig::default().mqtt.broker_inflight, 20, "Mosquitto's default");
    }

    #[test]
    fn a_queue_byte_budget_of_zero_or_past_4_gib_is_refused() {
        let mut config: PipelineConfig =
            toml::from_str("[runtime]\nqueue_bytes = 1_048_576\n[[plugin]]\npath = \"a.wasm\"\n")
                .expect("parses");
        assert!(config.validate().is_ok());
        for refused in [0, crate::queue::MAX_BYTES + 1] {
            config.runtime.queue_bytes = refused;
            let message = config.validate().expect_err("out of range").to_string();
            assert!(message.contains(&format!("runtime.queue_bytes is {refused}")), "{message}");
            assert!(message.contains("default 4194304"), "{message}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let result: Result<PipelineConfig, _> = toml::from_str("[mqtt]\nurll = \"x\"\n");
        let message = result.expect_err("unknown key").to_string();
        assert!(message.contains("urll"), "{message}");
    }

    #[test]
    fn duplicate_names_and_empty_pipelines_are_refused() {
        let mut config = PipelineConfig::default();
        assert!(config.validate().is_err());
        config.plugins.push(PluginConfig::from_path("x/a.wasm".into()));
        config.plugins.push(PluginConfig::from_path("y/a.wasm".into()));
        let message = config.validate().expect_err("duplicate").to_string();
        assert!(message.contains("`a`"), "{message}");
    }

    fn chain(inputs: &[(&str, &[&str])]) -> PipelineConfig {
        let mut config = PipelineConfig::default();
        for (name, reads) in inputs {
            let mut plugin = PluginConfig::from_path(format!("{name}.wasm").into());
            plugin.inputs = reads.iter().map(|s| s.to_string()).collect();
            config.plugins.push(plugin);
        }
        config
    }

    #[test]
    fn plugin_inputs_parse_with_and_without_a_filter() {
        assert_eq!(Input::parse("toulouse/clean/#"), Input::Topic("toulouse/clean/#"));
        assert_eq!(
            Input::parse("plugin:quality_filter"),
            Input::Plugin { name: "quality_filter", filter: None }
        );
        assert_eq!(
            Input::parse("plugin:quality_filter:toulouse/clean/#"),
            Input::Plugin { name: "quality_filter", filter: Some("toulouse/clean/#") }
        );
    }

    #[test]
    fn a_chain_mixing_plugin_and_topic_inputs_is_accepted() {
        let config = chain(&[
            ("weather", &[]),
            ("quality_filter", &["plugin:weather", "toulouse/sensors/air/#"]),
            ("avg_quartier", &["plugin:quality_filter:toulouse/clean/#"]),
            ("thresholds", &["plugin:avg_quartier", "plugin:quality_filter"]),
        ]);
        config.validate().expect("a valid chain");
    }

    #[test]
    fn an_unknown_plugin_input_is_refused_with_the_known_names() {
        let config = chain(&[("quality_filter", &[]), ("avg_quartier", &["plugin:quality_filtre"])]);
        let message = config.validate().expect_err("unknown name").to_string();
        assert!(message.contains("`avg_quartier`"), "{message}");
        assert!(message.contains("no plugin is named `quality_filtre`"), "{message}");
        assert!(message.contains("quality_filter, avg_quartier"), "{message}");
    }

    #[test]
    fn a_plugin_reading_itself_is_refused() {
        let config = chain(&[("avg_quartier", &["plugin:avg_quartier"])]);
        let message = config.validate().expect_err("self").to_string();
        assert!(message.contains("its own output"), "{message}");
    }

    #[test]
    fn a_cycle_of_plugin_inputs_is_refused_with_its_path() {
        let config = chain(&[
            ("a", &["toulouse/sensors/#"]),
            ("b", &["plugin:a", "plugin:d"]),
            ("c", &["plugin:b"]),
            ("d", &["plugin:c"]),
        ]);
        let message = config.validate().expect_err("cycle").to_string();
        assert!(message.contains("cycle: b → d → c → b"), "{message}");
    }

    #[test]
    fn an_invalid_filter_in_a_plugin_input_is_refused() {
        let config = chain(&[("a", &[]), ("b", &["plugin:a:toulouse/#/clean"])]);
        let message = config.validate().expect_err("filter").to_string();
        assert!(message.contains("not a valid topic filter"), "{message}");
    }

    #[test]
    fn publish_defaults_to_every_topic_and_takes_filters() {
        let config: PipelineConfig = toml::from_str(
            "[[plugin]]\npath = \"a.wasm\"\n[[plugin]]\npath = \"b.wasm\"\ninputs = [\"plugin:a\"]\npublish = [\"toulouse/quartiers/#\"]\n",
        )
        .expect("parses");
        assert_eq!(config.plugins[0].publish, ["#"]);
        assert_eq!(config.plugins[1].publish, ["toulouse/quartiers/#"]);
        config.validate().expect("valid");
    }

    #[test]
    fn a_plugin_that_publishes_nothing_needs_a_reader_in_process() {
        let mut config = chain(&[("quality_filter", &[]), ("avg_quartier", &["plugin:quality_filter"])]);
        config.plugins[0].publish.clear();
        config.validate().expect("avg_quartier reads it in process");
        config.plugins[1].publish.clear();
        let message = config.validate().expect_err("nobody reads avg_quartier").to_string();
        assert!(message.contains("`avg_quartier` has `publish = []`"), "{message}");
        assert!(message.contains("would be lost"), "{message}");
    }

    #[test]
    fn an_invalid_publish_filter_is_refused() {
        let mut config = chain(&[("a", &[])]);
        config.plugins[0].publish = vec!["toulouse/#/clean".into()];
        let message = config.validate().expect_err("filter").to_string();
        assert!(message.contains("publish filter `toulouse/#/clean`"), "{message}");
    }

    #[test]
    fn the_state_folder_is_taken_from_the_pipeline_files_folder_or_the_environment() {
        let text = "[runtime]\nstate_dir = \"state\"\nstate_save_s = 5\n[[plugin]]\npath = \"a.wasm\"\n";
        let mut config =
            PipelineConfig::parse(Path::new("/srv/garonne/pipeline.toml"), text).expect("parses");
        assert_eq!(config.runtime.state_dir.as_deref(), Some(Path::new("/srv/garonne/state")));
        assert!(config.validate().is_ok());
        config.apply_env(|key| (key == "GARONNE_STATE_DIR").then(|| "/var/lib/garonne".into()));
        assert_eq!(config.runtime.state_dir.as_deref(), Some(Path::new("/var/lib/garonne")));
        for refused in [0.0, -1.0, f64::NAN] {
            config.runtime.state_save_s = refused;
            let message = config.validate().expect_err("no interval").to_string();
            assert!(message.contains("runtime.state_save_s is"), "{message}");
        }
        assert_eq!(PipelineConfig::default().runtime.state_dir, None, "in memory unless asked");
    }

    #[test]
    fn the_environment_fills_in_the_broker() {
        let mut config = PipelineConfig::default();
        config.apply_env(|key| match key {
            "GARONNE_MQTT_URL" => Some("mqtt://broker:1883".into()),
            "GARONNE_MQTT_PASSWORD" => Some("secret".into()),
            _ => None,
        });
        assert_eq!(config.mqtt.url.as_deref(), Some("mqtt://broker:1883"));
        assert_eq!(config.mqtt.password.as_deref(), Some("secret"));
    }
}
