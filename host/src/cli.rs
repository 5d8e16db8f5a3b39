//! The command line: flags and help text. `main.rs` only dispatches.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use garonne::sandbox::Limits;

#[derive(Parser)]
#[command(
    name = "host",
    version,
    about = "Garonne: runs sandboxed WebAssembly plugins over city sensor streams",
    after_help = "Examples:\n  host run --config pipelines/demo.toml\n  host run --plugin rolling_stats.wasm --mqtt mqtt://127.0.0.1:1883\n  host plugin inspect rolling_stats.wasm\n\nLogs go to stderr; set RUST_LOG (for example RUST_LOG=debug) to see more."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run plugins against an MQTT broker (the embedded one if --mqtt is not given).
    #[command(after_help = "Examples:\n  \
        host run --config pipelines/demo.toml --echo 'toulouse/stats/#'\n  \
        host run --plugin plugins/target/wasm32-wasip2/release/rolling_stats.wasm --mqtt mqtt://127.0.0.1:1883\n  \
        host run --plugin synthetic.wasm --stations data/stations/meteo.json --speed 60\n  \
        host run --plugin weather.wasm --stations data/stations/meteo.json --from 2026-01-01T00:00:00Z --to 2026-01-02T00:00:00Z\n\n\
        Broker credentials come from GARONNE_MQTT_USERNAME and GARONNE_MQTT_PASSWORD, never from a flag.")]
    Run(RunArgs),
    /// Work with plugin files.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Record the messages of a live broker to a JSON-lines file, to replay with `plugin test`.
    #[command(after_help = "Examples:\n  \
        host record --mqtt mqtt://127.0.0.1:1883 --topic 'toulouse/sensors/#' --out readings.jsonl --duration 600\n  \
        host plugin test avg_quartier.wasm --input readings.jsonl")]
    Record(RecordArgs),
    /// Store MQTT streams in InfluxDB (1.x, 2.x or 3.x), or in line-protocol files.
    #[command(after_help = "Examples:\n  \
        host historian --mqtt mqtt://127.0.0.1:1883 --influx-url http://127.0.0.1:8086 --database garonne\n  \
        GARONNE_INFLUX_TOKEN=... host historian --mqtt mqtt://broker:1883 --influx-url http://influx:8086 --org city --bucket sensors\n  \
        host historian --config pipelines/historian.toml\n\n\
        Secrets come from the environment: GARONNE_INFLUX_TOKEN (or token_file in the pipeline file), \
        GARONNE_INFLUX_USERNAME and GARONNE_INFLUX_PASSWORD, GARONNE_MQTT_USERNAME and GARONNE_MQTT_PASSWORD.\n\
        A message is acknowledged to the broker only once it is written (or spooled on disk), so \
        stopping the historian, even with SIGKILL, loses nothing.")]
    Historian(HistorianArgs),
}

#[derive(Args)]
pub struct HistorianArgs {
    /// A pipeline file: its [mqtt] and [historian] sections are used.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Broker to read from, as mqtt://HOST:PORT.
    #[arg(long, env = "GARONNE_MQTT_URL", value_name = "URL")]
    pub mqtt: Option<String>,
    /// Topic filter to store (repeatable; default: readings, quartier averages and alerts).
    #[arg(long = "topic", value_name = "FILTER")]
    pub topics: Vec<String>,
    /// InfluxDB's address, as http://HOST:PORT (default: line-protocol files in --out-dir).
    #[arg(long, env = "GARONNE_INFLUX_URL", value_name = "URL")]
    pub influx_url: Option<String>,
    /// InfluxDB 1.x database.
    #[arg(long)]
    pub database: Option<String>,
    /// InfluxDB 2.x/3.x organisation.
    #[arg(long)]
    pub org: Option<String>,
    /// InfluxDB 2.x/3.x bucket.
    #[arg(long)]
    pub bucket: Option<String>,
    /// A file holding the InfluxDB token (GARONNE_INFLUX_TOKEN takes precedence).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Where batches wait while the database is unreachable.
    #[arg(long, value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,
    /// With no InfluxDB: the folder of the line-protocol files.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Points per write.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// The longest a point waits for its batch, in ms.
    #[arg(long)]
    pub linger_ms: Option<u64>,
    /// Send batches uncompressed (gzip saves bandwidth to a remote database, costs CPU on a
    /// local one).
    #[arg(long)]
    pub no_gzip: bool,
    /// Write as soon as the input pauses this long, in ms (0: only on size or linger).
    #[arg(long)]
    pub idle_flush_ms: Option<u64>,
    /// MQTT client id (keep it stable: the broker keeps the session under it).
    #[arg(long)]
    pub client_id: Option<String>,
    /// Stop after this many seconds (default: at Ctrl-C or SIGTERM).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
}

#[derive(Args)]
pub struct RecordArgs {
    /// Broker to record from, as mqtt://HOST:PORT.
    #[arg(long, env = "GARONNE_MQTT_URL", value_name = "URL")]
    pub mqtt: String,
    /// Topic filter to record (repeatable).
    #[arg(long = "topic", value_name = "FILTER", required = true)]
    pub topics: Vec<String>,
    /// The file to write, one message per line.
    #[arg(long, value_name = "FILE.jsonl")]
    pub out: PathBuf,
    /// Stop after this many messages.
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop after this many seconds (default: at Ctrl-C or SIGTERM).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
}

#[derive(Args)]
pub struct RunArgs {
    /// A plugin to run (repeat for several); added to those of --config.
    #[arg(long = "plugin", value_name = "PATH.wasm")]
    pub plugins: Vec<PathBuf>,
    /// A TOML pipeline file naming plugins, their config, topics and limits. Repeat it to add
    /// the [[plugin]] tables of more files to the first one (a classroom adds its own plugins
    /// to the demo).
    #[arg(long, value_name = "FILE")]
    pub config: Vec<PathBuf>,
    /// Broker to use, as mqtt://HOST:PORT. Without it the host starts its embedded broker.
    #[arg(long, env = "GARONNE_MQTT_URL", value_name = "URL")]
    pub mqtt: Option<String>,
    /// Stations file for the sensor models given with --plugin.
    #[arg(long, value_name = "FILE")]
    pub stations: Option<PathBuf>,
    /// Speed of the virtual clock (60: one simulated minute per second).
    #[arg(long)]
    pub speed: Option<f64>,
    /// Seed of the plugins' random sources: the same seed gives the same readings.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print the messages of this topic filter on stdout, one JSON line each (repeatable).
    #[arg(long, value_name = "FILTER")]
    pub echo: Vec<String>,
    /// Stop after this many seconds (default: run until Ctrl-C or SIGTERM).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// Port of a WebSocket listener on the embedded broker (for the web map).
    #[arg(long, value_name = "PORT")]
    pub ws_port: Option<u16>,
    /// Virtual start time (RFC 3339, e.g. 2026-01-01T00:00:00Z); default: now.
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// Virtual end time: the sensor models run from --from to --to as fast as they can, then
    /// the host stops.
    #[arg(long, value_name = "TIME", requires = "from")]
    pub to: Option<String>,
    /// Hot swap: when a processor's .wasm file is rebuilt, load it and hand it the running
    /// build's state, between two batches (a build that fails to load leaves the old one).
    #[arg(long)]
    pub watch: bool,
    /// Save each processor's state in this folder when the host stops (and every 30 s), and go
    /// on from it at the next start: a restart keeps the windows in progress.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Sensors placed around each real station, for load tests (sensor models).
    #[arg(long, value_name = "N")]
    pub fleet: Option<u32>,
    /// Serve the web map from this folder (web/public) on 127.0.0.1, with MQTT over WebSocket
    /// from the embedded broker.
    #[arg(long, value_name = "DIR")]
    pub web: Option<PathBuf>,
    /// Port of the web map (a free one if it is taken).
    #[arg(long, value_name = "PORT", default_value_t = 8080)]
    pub web_port: u16,
    /// With --mqtt: the broker's WebSocket URL the page connects to (ws://HOST:PORT).
    #[arg(long, value_name = "URL")]
    pub web_mqtt: Option<String>,
}

#[derive(Subcommand)]
pub enum PluginCommand {
    /// Show a plugin's world, WIT version, imports and exports, or why it cannot load.
    #[command(
        after_help = "Example:\n  host plugin inspect plugins/target/wasm32-wasip2/release/rolling_stats.wasm"
    )]
    Inspect {
        /// The component to inspect.
        path: PathBuf,
    },
    /// Replay recorded readings through a plugin, offline, and print what it emits.
    #[command(after_help = "Examples:\n  \
        host plugin test rolling_stats.wasm --input plugins/rolling_stats/testdata/input.jsonl\n  \
        host plugin test rolling_stats.wasm --input input.jsonl --set window_s=60 --expect expected.jsonl\n  \
        host plugin test synthetic.wasm --stations data/stations/meteo.json \\\n      \
        --from 2026-01-01T00:00:00Z --to 2026-01-02T00:00:00Z --interval-s 900\n  \
        host plugin test rolling_median.wasm --input input.jsonl --memory-mib 128 --call-deadline-ms 1000\n\n\
        Emitted messages go to stdout as JSON lines, with their topic; what the plugin could not\n\
        process goes to stderr. Time follows the readings' own timestamps: on-tick runs each time\n\
        event time crosses a multiple of --tick-s, and once more --flush-s after the last reading.\n\
        A call that runs past a limit fails the test and names the flag to raise; a JavaScript\n\
        plugin needs --memory-mib 128 --call-deadline-ms 1000.")]
    Test(Box<TestArgs>),
    /// Create a new plugin in Rust, Python or JavaScript, ready to build and test.
    #[command(after_help = "Examples:\n  \
        host plugin new heat_alert\n  \
        host plugin new my_weather --kind sensor-model --dir plugins/my_weather\n  \
        host plugin new heat_alert --lang python\n  \
        host plugin new heat_alert --lang js --kind sensor-model\n\n\
        Then, in the new folder: the build command and the `host plugin test` command it prints\n\
        (cargo build --release in Rust, ./build.sh in Python and JavaScript).")]
    New(NewArgs),
    /// Compiles a plugin into the compiled-code cache, and nothing else: what `host run` has a
    /// child process do, so that its own memory never holds what compiling takes.
    #[command(hide = true)]
    Precompile {
        /// The cache folder of the engine that will load the plugin.
        #[arg(long)]
        cache_dir: PathBuf,
        path: PathBuf,
    },
}

#[derive(Args)]
pub struct NewArgs {
    /// The plugin's name: lower-case letters, digits and `_` (`heat_alert`).
    pub name: String,
    /// What it is.
    #[arg(long, value_enum, default_value = "processor")]
    pub kind: PluginKind,
    /// Its language. Python needs componentize-py 0.25.1 and JavaScript componentize-js 0.23.0:
    /// the build script uses those of this checkout (`cargo xtask build-plugins` installs them)
    /// or says how to install them.
    #[arg(long, value_enum, default_value = "rust")]
    pub lang: PluginLang,
    /// The folder to create (default: ./NAME).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The Garonne SDK crate (default: plugins/sdk of the checkout this host was built from).
    #[arg(long, value_name = "DIR")]
    pub sdk: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum PluginKind {
    Processor,
    SensorModel,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum PluginLang {
    Rust,
    Python,
    Js,
}

#[derive(Args)]
pub struct TestArgs {
    /// The plugin to test.
    pub path: PathBuf,
    /// Readings to replay, one JSON object per line (processors).
    #[arg(long, value_name = "FILE.jsonl")]
    pub input: Option<PathBuf>,
    /// The plugin's configuration, as a TOML table (`window_s = 300`).
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
    /// One configuration value, after those of --config (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Compare the output with this file; print the differences and fail if they differ.
    #[arg(long, value_name = "FILE.jsonl")]
    pub expect: Option<PathBuf>,
    /// Readings per on-readings call.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Virtual seconds between two on-tick calls.
    #[arg(long, default_value_t = 60.0)]
    pub tick_s: f64,
    /// Virtual seconds after the last reading of the final on-tick.
    #[arg(long, default_value_t = 3600.0)]
    pub flush_s: f64,
    /// Seed of the plugin's random source.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Processors: the time SenML relative times (below 2^28 s) count from, in RFC 3339, so that a
    /// recorded pack gives the same readings at each test [default: the wall clock].
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
    /// Sensor models: the stations file.
    #[arg(long, value_name = "FILE")]
    pub stations: Option<PathBuf>,
    /// Sensor models: first tick (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// Sensor models: last tick (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// Sensor models: virtual seconds between ticks.
    #[arg(long, default_value_t = 60.0)]
    pub interval_s: f64,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// The plugin's limits, as `[plugin.limits]` of a pipeline file sets them (same names).
#[derive(Args)]
#[command(next_help_heading = "Limits (as [plugin.limits] in a pipeline file)")]
pub struct LimitArgs {
    /// Memory the plugin may grow to, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = Limits::default().memory_mib)]
    pub memory_mib: u64,
    /// CPU time one call may take, in ms.
    #[arg(long, value_name = "MS", default_value_t = Limits::default().call_deadline_ms)]
    pub call_deadline_ms: u64,
    /// CPU time of init and restore, in ms.
    #[arg(long, value_name = "MS", default_value_t = Limits::default().init_deadline_ms)]
    pub init_deadline_ms: u64,
    /// Messages one call may return.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_messages)]
    pub max_messages: usize,
}

impl LimitArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            memory_mib: self.memory_mib,
            call_deadline_ms: self.call_deadline_ms,
            init_deadline_ms: self.init_deadline_ms,
            max_messages: self.max_messages,
        }
    }
}
