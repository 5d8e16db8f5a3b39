//! `host plugin test`: the offline harness for plugin authors.

use std::sync::Arc;

use anyhow::{Context, bail};
use garonne::config::flat_config;
use garonne::replay::{self, ReplayOptions, ReplayOutput};
use garonne::sandbox::{Failure, Limits, PluginEngine, World};

use crate::cli::TestArgs;

pub fn run(args: TestArgs) -> anyhow::Result<()> {
    let engine = PluginEngine::new(garonne::pipeline::default_cache_dir().as_deref())?;
    let plugin = Arc::new(engine.load(&args.path)?);
    let options = options(&args)?;
    let output = match plugin.info.world {
        World::Processor => {
            let Some(input) = &args.input else {
                bail!("a processor needs readings to replay: give --input FILE.jsonl");
            };
            let mut readings = replay::ReadingFile::open(input)?;
            if let Some(now) = &args.now {
                readings = readings.with_now(replay::parse_time(now).context("--now")?);
            }
            replay::replay_processor(plugin, readings, &options).map_err(anyhow::Error::from)
        }
        World::SensorModel => run_model(plugin, &args, &options),
    };
    let output = output.map_err(|error| match flag_to_raise(&format!("{error:#}"), &options.limits) {
        Some(flag) => anyhow::anyhow!("{error:#}\n{}", raise(&flag)),
        None => error,
    })?;
    report(&args, &output, &options.limits)
}

/// The limit flag (and its value now) that `reason` ran into, if it is a limit.
fn flag_to_raise(reason: &str, limits: &Limits) -> Option<(&'static str, u64)> {
    let call_deadline = Failure::Deadline { ms: limits.call_deadline_ms }.to_string();
    let init_deadline = Failure::Deadline { ms: limits.init_deadline_ms }.to_string();
    if reason.contains(&format!("over its cap of {} MiB", limits.memory_mib)) {
        Some(("--memory-mib", limits.memory_mib))
    } else if reason.contains(&call_deadline) {
        Some(("--call-deadline-ms", limits.call_deadline_ms))
    } else if reason.contains(&init_deadline) {
        Some(("--init-deadline-ms", limits.init_deadline_ms))
    } else {
        None
    }
}

fn raise((flag, now): &(&str, u64)) -> String {
    let key = flag.trim_start_matches("--").replace('-', "_");
    format!(
        "The plugin ran past a limit: raise {flag} (now {now}); in a pipeline file, `{key}` in [plugin.limits]."
    )
}

fn options(args: &TestArgs) -> anyhow::Result<ReplayOptions> {
    let mut table = match &args.config {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            toml::from_str::<toml::Table>(&text)
                .with_context(|| format!("{} is not a TOML table", path.display()))?
        }
        None => toml::Table::new(),
    };
    let mut config = flat_config(&std::mem::take(&mut table));
    for pair in &args.set {
        let Some((key, value)) = pair.split_once('=') else {
            bail!("--set takes KEY=VALUE, not {pair:?}");
        };
        config.retain(|(k, _)| k != key);
        config.push((key.trim().to_owned(), value.trim().to_owned()));
    }
    Ok(ReplayOptions {
        config,
        batch: args.batch.max(1),
        tick_ms: (args.tick_s * 1000.0) as i64,
        flush_ms: (args.flush_s * 1000.0) as i64,
        seed: args.seed,
        limits: args.limits.limits(),
    })
}

fn run_model(
    plugin: Arc<garonne::sandbox::LoadedPlugin>,
    args: &TestArgs,
    options: &ReplayOptions,
) -> anyhow::Result<ReplayOutput> {
    let (Some(stations), Some(from), Some(to)) = (&args.stations, &args.from, &args.to) else {
        bail!("a sensor model needs --stations FILE, --from TIME and --to TIME (RFC 3339)");
    };
    let stations = garonne::stations::load(stations)?;
    let from = replay::parse_time(from).context("--from")?;
    let to = replay::parse_time(to).context("--to")?;
    let interval_ms = (args.interval_s * 1000.0) as i64;
    if interval_ms <= 0 || to < from {
        bail!("--interval-s must be > 0 and --to must not be before --from");
    }
    Ok(replay::run_sensor_model(plugin, stations, from, to, interval_ms, options)?)
}

fn report(args: &TestArgs, output: &ReplayOutput, limits: &Limits) -> anyhow::Result<()> {
    let mut limits_hit = Vec::new();
    for letter in &output.dead_letters {
        let readings: Vec<String> =
            letter.readings.iter().map(|r| format!("{}={}", r.sensor_id, r.value)).collect();
        eprintln!("dead letter: {} (readings: {})", letter.reason, readings.join(", "));
        if let Some(flag) = flag_to_raise(&letter.reason, limits).filter(|f| !limits_hit.contains(f)) {
            limits_hit.push(flag);
        }
    }
    if args.expect.is_none() {
        let text: String = output.lines.iter().map(|line| format!("{line}\n")).collect();
        crate::print_out(&text)?;
    }
    if !limits_hit.is_empty() {
        let advice: Vec<String> = limits_hit.iter().map(raise).collect();
        let calls = match output.dead_letters.len() {
            1 => "1 call failed (the dead letter above)".to_owned(),
            n => format!("{n} calls failed (the dead letters above)"),
        };
        bail!("{calls}.\n{}", advice.join("\n"));
    }
    let Some(expect) = &args.expect else {
        return Ok(());
    };
    let expected = replay::read_expected(expect)?;
    match replay::diff(&expected, &output.lines) {
        None => {
            eprintln!("ok: the {} messages match {}", expected.len(), expect.display());
            Ok(())
        }
        Some(report) => bail!("the output differs from {}:\n{report}", expect.display()),
    }
}
