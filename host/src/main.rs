//! `host`: the command-line edge of the Garonne library.

mod cli;
mod plugin_test;

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use garonne::config::{PipelineConfig, PluginConfig};
use garonne::historian::{Historian, HistorianConfig};
use garonne::pipeline::RunningPipeline;
use garonne::sandbox::{PluginEngine, bindings};

use cli::{Cli, Command, HistorianArgs, PluginCommand, RecordArgs, RunArgs};

/// mimalloc rather than glibc's malloc: with packs of readings, allocating and freeing took a
/// fifth of the host's CPU, most of it glibc consolidating the small blocks one thread freed for
/// another. The host spent 7-24 % less CPU a reading with it (BENCHMARKS.md, "Session 23").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Plugin(PluginCommand::Inspect { path }) => inspect(&path),
        Command::Plugin(PluginCommand::Test(args)) => plugin_test::run(*args),
        Command::Plugin(PluginCommand::New(args)) => new_plugin(args),
        Command::Plugin(PluginCommand::Precompile { cache_dir, path }) => precompile(&cache_dir, &path),
        Command::Record(args) => record(args),
        Command::Historian(args) => historian(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // rumqttd reports every client that disconnects as an error: silence it unless asked.
        tracing_subscriber::EnvFilter::new("info,rumqttd=off,rumqttc=warn,wasmtime=warn,cranelift=warn")
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
}

fn pipeline_config(args: &RunArgs) -> anyhow::Result<PipelineConfig> {
    let mut config = match args.config.first() {
        Some(path) => PipelineConfig::load(path)?,
        None => PipelineConfig::default(),
    };
    for path in args.config.iter().skip(1) {
        config.plugins.extend(PipelineConfig::load_plugins_only(path)?);
    }
    config.apply_env(|key| std::env::var(key).ok());
    for path in &args.plugins {
        let mut plugin = PluginConfig::from_path(path.clone());
        plugin.stations = args.stations.clone();
        config.plugins.push(plugin);
    }
    if let Some(url) = &args.mqtt {
        config.mqtt.url = Some(url.clone());
    }
    if let Some(speed) = args.speed {
        config.runtime.speed = speed;
    }
    if let Some(seed) = args.seed {
        config.runtime.seed = seed;
    }
    if let Some(dir) = &args.state_dir {
        config.runtime.state_dir = Some(dir.clone());
    }
    if let Some(port) = args.ws_port {
        config.mqtt.embedded_ws_port = port;
    }
    if let Some(from) = &args.from {
        config.runtime.start = Some(from.clone());
    }
    if let Some(to) = &args.to {
        config.runtime.end = Some(to.clone());
    }
    if args.web.is_some() && config.mqtt.url.is_none() && config.mqtt.embedded_ws_port == 0 {
        // The page needs MQTT over WebSocket: the embedded broker opens it on 9001 (or a free port).
        config.mqtt.embedded_ws_port = 9001;
    }
    config.runtime.watch |= args.watch;
    if let Some(fleet) = args.fleet {
        for plugin in &mut config.plugins {
            plugin.fleet = fleet;
        }
    }
    config.validate()?;
    Ok(config)
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    if let Ok(program) = std::env::current_exe() {
        garonne::sandbox::compile_in_child_processes(program);
    }
    let mut config = pipeline_config(&args)?;
    let historian = match config.historian.take() {
        Some(mut historian) => {
            historian.apply_env(|key| std::env::var(key).ok())?;
            historian.validate()?;
            Some(historian)
        }
        None => None,
    };
    let mqtt = config.mqtt.clone();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        // The historian subscribes before the sensors start, so that it stores a run's first readings.
        let prepared = RunningPipeline::prepare(config).await?;
        let historian = match historian {
            Some(historian) => Some(Historian::start(historian, &mqtt, prepared.broker()).await?),
            None => None,
        };
        let mut pipeline = prepared.start_sensors().await?;
        match &pipeline.embedded {
            Some(embedded) => {
                eprintln!("Embedded MQTT broker listening on mqtt://{}", embedded.mqtt);
                if let Some(ws) = embedded.websocket {
                    eprintln!("MQTT over WebSocket on ws://{ws}");
                }
            }
            None => eprintln!("Connected to {}", pipeline.broker.url()),
        }
        let _web = match &args.web {
            Some(root) => Some(serve_map(&args, root, &pipeline, &mqtt.prefix).await?),
            None => None,
        };
        for filter in &args.echo {
            garonne::mqtt::echo(&pipeline.broker, filter.clone()).await;
        }
        tokio::select! {
            _ = wait_for_stop(args.duration) => {}
            _ = pipeline.simulation_finished() => eprintln!("The sensor models reached --to."),
        }
        eprintln!("Stopping: finishing the messages in hand...");
        let pipeline_is_embedded = pipeline.embedded.is_some();
        let stats = pipeline.stop().await;
        for (name, stats) in stats {
            eprintln!("  {name}: {}", serde_json::to_string(&stats).unwrap_or_default());
        }
        if let Some(historian) = historian {
            if pipeline_is_embedded {
                eprintln!("  the historian takes in what the embedded broker still holds for it (Ctrl-C or SIGTERM: stop now and lose it)");
                tokio::select! {
                    _ = historian.take_everything() => {}
                    _ = wait_for_stop(None) => eprintln!("  stopped: the embedded broker's messages for the historian are lost"),
                }
            }
            let metrics = historian.stop().await;
            eprintln!("  historian: {}", serde_json::to_string(&metrics).unwrap_or_default());
        }
        Ok(())
    })
}

/// Serves the web map, pointed at the embedded broker's WebSocket listener (or --web-mqtt).
async fn serve_map(
    args: &RunArgs,
    root: &std::path::Path,
    pipeline: &RunningPipeline,
    prefix: &str,
) -> anyhow::Result<garonne::web::WebServer> {
    let ws = pipeline.embedded.as_ref().and_then(|embedded| embedded.websocket);
    let mqtt_url = match (&args.web_mqtt, ws) {
        (Some(url), _) => url.clone(),
        (None, Some(ws)) => format!("ws://{ws}"),
        (None, None) => anyhow::bail!(
            "--web needs the broker's WebSocket address: give --web-mqtt ws://HOST:PORT (or no --mqtt, for the embedded broker)"
        ),
    };
    let config = serde_json::json!({"mqtt_url": mqtt_url, "topic_prefix": prefix}).to_string();
    let server = garonne::web::serve(root.to_owned(), args.web_port, config).await?;
    eprintln!("Live map: open http://{}/ in a browser", server.address);
    Ok(server)
}

async fn wait_for_stop(duration: Option<f64>) {
    let timer = async {
        match duration {
            Some(seconds) => tokio::time::sleep(Duration::from_secs_f64(seconds.max(0.0))).await,
            None => std::future::pending().await,
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = timer => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

fn record(args: RecordArgs) -> anyhow::Result<()> {
    let address = garonne::mqtt::BrokerAddress::parse(&args.mqtt)?;
    let mut config = PipelineConfig::default();
    config.apply_env(|key| std::env::var(key).ok());
    let file =
        std::fs::File::create(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let (written, skipped) = runtime.block_on(garonne::mqtt::record(
        &address,
        &config.mqtt,
        &args.topics,
        &mut out,
        args.count,
        wait_for_stop(args.duration),
    ))?;
    eprintln!("recorded {written} messages to {} ({skipped} not JSON, skipped)", args.out.display());
    Ok(())
}

fn historian_config(args: &HistorianArgs) -> anyhow::Result<(PipelineConfig, HistorianConfig)> {
    let mut config = match &args.config {
        Some(path) => PipelineConfig::load(path)?,
        None => PipelineConfig::default(),
    };
    config.apply_env(|key| std::env::var(key).ok());
    if let Some(url) = &args.mqtt {
        config.mqtt.url = Some(url.clone());
    }
    let mut historian = config.historian.take().unwrap_or_default();
    let flags_name_a_database = args.database.is_some() || args.org.is_some() || args.bucket.is_some();
    if args.influx_url.is_some() || flags_name_a_database || args.token_file.is_some() {
        let influx = historian.influxdb.get_or_insert_with(Default::default);
        if let Some(url) = &args.influx_url {
            influx.url = url.clone();
        }
        if flags_name_a_database {
            influx.database = args.database.clone();
            influx.org = args.org.clone();
            influx.bucket = args.bucket.clone();
        }
        if let Some(file) = &args.token_file {
            influx.token_file = Some(file.clone());
        }
    }
    if !args.topics.is_empty() {
        historian.topics = args.topics.clone();
    }
    historian.spool_dir = args.spool_dir.clone().or(historian.spool_dir);
    historian.out_dir = args.out_dir.clone().unwrap_or(historian.out_dir);
    historian.batch_size = args.batch_size.unwrap_or(historian.batch_size);
    historian.linger_ms = args.linger_ms.unwrap_or(historian.linger_ms);
    historian.idle_flush_ms = args.idle_flush_ms.unwrap_or(historian.idle_flush_ms);
    historian.gzip &= !args.no_gzip;
    historian.client_id = args.client_id.clone().unwrap_or(historian.client_id);
    historian.apply_env(|key| std::env::var(key).ok())?;
    historian.validate()?;
    Ok((config, historian))
}

fn historian(args: HistorianArgs) -> anyhow::Result<()> {
    let (config, historian) = historian_config(&args)?;
    let url = config.mqtt.url.clone().context(
        "the historian needs a broker: give --mqtt mqtt://HOST:PORT (or run it inside `host run` with a [historian] section)",
    )?;
    let broker = garonne::mqtt::BrokerAddress::parse(&url)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let running = Historian::start(historian, &config.mqtt, &broker).await?;
        wait_for_stop(args.duration).await;
        eprintln!("Stopping: writing what is in hand...");
        let metrics = running.stop().await;
        eprintln!("  historian: {}", serde_json::to_string(&metrics).unwrap_or_default());
        Ok(())
    })
}

fn new_plugin(args: cli::NewArgs) -> anyhow::Result<()> {
    use garonne::scaffold::{Kind, Lang, Scaffold};
    let lang = match args.lang {
        cli::PluginLang::Rust => Lang::Rust,
        cli::PluginLang::Python => Lang::Python,
        cli::PluginLang::Js => Lang::Js,
    };
    // The checkout this host was built from: its SDK, and its Python and JavaScript build tools.
    let plugins = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
    let plugins = plugins.canonicalize().unwrap_or(plugins);
    let sdk = args.sdk.unwrap_or_else(|| plugins.join("sdk"));
    let sdk = match (sdk.canonicalize(), lang) {
        (Ok(sdk), _) => sdk,
        (Err(_), Lang::Rust) => {
            anyhow::bail!("the Garonne SDK is not at {}: give its folder with --sdk", sdk.display())
        }
        (Err(_), _) => sdk,
    };
    let kind = match args.kind {
        cli::PluginKind::Processor => Kind::Processor,
        cli::PluginKind::SensorModel => Kind::SensorModel,
    };
    let dir = args.dir.unwrap_or_else(|| args.name.clone().into());
    let scaffold = Scaffold { name: args.name, kind, lang, dir, sdk, tools: plugins };
    let files = scaffold.create()?;
    let mut text = format!("created {} files in {}:\n", files.len(), scaffold.dir.display());
    for file in &files {
        text += &format!("  {}\n", file.display());
    }
    text += &format!("\nnext, in {}:\n", scaffold.dir.display());
    if lang == Lang::Rust {
        text += "  rustup target add wasm32-wasip2   # once\n";
    }
    text += &format!("  {}\n  {}\n", scaffold.build_command(), scaffold.test_command());
    print_out(&text)
}

fn precompile(cache_dir: &std::path::Path, path: &std::path::Path) -> anyhow::Result<()> {
    PluginEngine::new(Some(cache_dir))?.inspect(path)?;
    Ok(())
}

fn inspect(path: &std::path::Path) -> anyhow::Result<()> {
    let engine = PluginEngine::new(garonne::pipeline::default_cache_dir().as_deref())?;
    let info = engine.inspect(path)?;
    let mut text = format!(
        "plugin:   {}\nfile:     {} ({} KiB)\nworld:    {}\nwit:      {}@{}\nhost supports: {}\nexports:\n",
        info.name,
        info.path.display(),
        info.size_bytes.div_ceil(1024),
        info.world.name(),
        bindings::PACKAGE,
        info.version,
        bindings::SUPPORTED_VERSIONS.join(", ")
    );
    for export in &info.exports {
        text += &format!("  {export}\n");
    }
    text += "imports:\n";
    for import in &info.imports {
        text += &format!("  {import}\n");
    }
    print_out(&text)
}

/// Writes to stdout. A reader that stops early (`host plugin inspect x.wasm | head`) is not an
/// error: the rest is not wanted. `println!` would panic there.
pub(crate) fn print_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write to stdout"),
    }
}
