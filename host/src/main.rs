//! `host`: the command-line edge of the Garonne library.

mod cli;
mod plugin_test;

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use garonne::config::{PipelineConfig, PluginConfig};
use garonne::pipeline::RunningPipeline;
use garonne::sandbox::{PluginEngine, bindings};

use cli::{Cli, Command, PluginCommand, RecordArgs, RunArgs};

fn main() -> std::process::ExitCode {
    init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Plugin(PluginCommand::Inspect { path }) => inspect(&path),
        Command::Plugin(PluginCommand::Test(args)) => plugin_test::run(*args),
        Command::Record(args) => record(args),
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
    let mut config = match &args.config {
        Some(path) => PipelineConfig::load(path)?,
        None => PipelineConfig::default(),
    };
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
    if let Some(port) = args.ws_port {
        config.mqtt.embedded_ws_port = port;
    }
    config.validate()?;
    Ok(config)
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let config = pipeline_config(&args)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let pipeline = RunningPipeline::start(config).await?;
        match &pipeline.embedded {
            Some(embedded) => {
                eprintln!("Embedded MQTT broker listening on mqtt://{}", embedded.mqtt);
                if let Some(ws) = embedded.websocket {
                    eprintln!("MQTT over WebSocket on ws://{ws}");
                }
            }
            None => eprintln!("Connected to {}", pipeline.broker.url()),
        }
        for filter in &args.echo {
            garonne::mqtt::echo(&pipeline.broker, filter.clone()).await;
        }
        wait_for_stop(args.duration).await;
        eprintln!("Stopping: finishing the messages in hand...");
        let stats = pipeline.stop().await;
        for (name, stats) in stats {
            eprintln!("  {name}: {}", serde_json::to_string(&stats).unwrap_or_default());
        }
        Ok(())
    })
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

fn inspect(path: &std::path::Path) -> anyhow::Result<()> {
    let engine = PluginEngine::new(garonne::pipeline::default_cache_dir().as_deref())?;
    let info = engine.inspect(path)?;
    println!("plugin:   {}", info.name);
    println!("file:     {} ({} KiB)", info.path.display(), info.size_bytes.div_ceil(1024));
    println!("world:    {}", info.world.name());
    println!("wit:      {}@{}", bindings::PACKAGE, info.version);
    println!("host supports: {}", bindings::SUPPORTED_VERSIONS.join(", "));
    println!("exports:");
    for export in &info.exports {
        println!("  {export}");
    }
    println!("imports:");
    for import in &info.imports {
        println!("  {import}");
    }
    Ok(())
}
