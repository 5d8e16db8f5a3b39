//! Project tasks, so that a fresh machine needs only cargo:
//!
//! - `cargo xtask build-plugins`: every plugin and test guest to `wasm32-wasip2`;
//! - `cargo xtask test`: build the plugins, then every test of the host and the SDK;
//! - `cargo xtask demo [ARGS]`: build what the demo needs and run it (ARGS go to `host run`);
//! - `cargo xtask lint`: rustfmt and clippy, on the host and the plugins.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const WASM_TARGET: &str = "wasm32-wasip2";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("build-plugins") => build_plugins(),
        Some("test") => build_plugins().and_then(|()| test(&args[1..])),
        Some("demo") => build_plugins().and_then(|()| demo(&args[1..])),
        Some("lint") => lint(),
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str =
    "usage: cargo xtask <build-plugins | test [CARGO TEST ARGS] | demo [HOST RUN ARGS] | lint>";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn run(command: &mut Command) -> Result<(), String> {
    let shown = format!("{command:?}");
    eprintln!("xtask: running {shown}");
    let status = command.status().map_err(|e| format!("cannot start {shown}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{shown} failed ({status})")) }
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn check_wasm_target() -> Result<(), String> {
    let output = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| format!("cannot run rustup to check the {WASM_TARGET} target: {e}"))?;
    if String::from_utf8_lossy(&output.stdout).lines().any(|t| t.trim() == WASM_TARGET) {
        return Ok(());
    }
    eprintln!("xtask: the {WASM_TARGET} target is missing; adding it");
    run(Command::new("rustup").args(["target", "add", WASM_TARGET]))
        .map_err(|e| format!("{e}: run `rustup target add {WASM_TARGET}` yourself"))
}

/// Builds the plugin workspace; its `.cargo/config.toml` sets the wasm target, which is why the
/// build runs from that folder rather than with `--manifest-path`.
fn build_plugins() -> Result<(), String> {
    check_wasm_target()?;
    let plugins = root().join("plugins");
    run(cargo().current_dir(&plugins).args(["build", "--release", "--quiet"]))?;
    eprintln!("xtask: plugins are in {}", plugins.join("target").join(WASM_TARGET).join("release").display());
    Ok(())
}

fn host_triple() -> Result<String, String> {
    let output = Command::new("rustc").arg("-vV").output().map_err(|e| format!("cannot run rustc: {e}"))?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: ").map(str::to_owned))
        .ok_or_else(|| "rustc -vV did not name the host target".to_owned())
}

fn test(extra: &[String]) -> Result<(), String> {
    let triple = host_triple()?;
    let plugins = root().join("plugins");
    let mut totals = Totals::default();
    // The plugins' own unit tests, and the SDK's documented example, run natively (the SDK's
    // export macros are wasm-only, so every plugin crate also builds for the host).
    totals.run(cargo().current_dir(&plugins).args(["test", "--workspace", "--lib", "--target", &triple]))?;
    totals.run(cargo().current_dir(&plugins).args([
        "test",
        "--doc",
        "-p",
        "garonne-sdk",
        "--target",
        &triple,
    ]))?;
    totals.run(cargo().current_dir(root()).args(["test", "--workspace"]).args(extra))?;
    // The web map end to end: real nginx, Mosquitto and Chromium against the host built above.
    let web = root().join("web");
    run(npm()?.current_dir(&web).args(["ci", "--no-audit", "--no-fund"]))?;
    let host = root().join("target/debug/host");
    totals.run(npm()?.current_dir(&web).arg("test").env("HOST_BIN", host))?;
    // One closing line for the whole suite, as CI and humans read it.
    println!("tests: {} passed, {} failed", totals.passed, totals.failed);
    Ok(())
}

/// Adds up the `test result:` lines of several cargo test runs.
#[derive(Default)]
struct Totals {
    passed: u64,
    failed: u64,
}

impl Totals {
    fn run(&mut self, command: &mut Command) -> Result<(), String> {
        let shown = format!("{command:?}");
        eprintln!("xtask: running {shown}");
        let mut child = command
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {shown}: {e}"))?;
        if let Some(stdout) = child.stdout.take() {
            for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
                println!("{line}");
                self.count(&line);
            }
        }
        let status = child.wait().map_err(|e| format!("{shown}: {e}"))?;
        if status.success() { Ok(()) } else { Err(format!("{shown} failed ({status})")) }
    }

    /// Reads `test result: ok. 3 passed; 0 failed; ...` (cargo) and `17 passed, 0 failed` (the
    /// web map's end-to-end test).
    fn count(&mut self, line: &str) {
        if let Some((passed, failed)) = line.trim().split_once(" passed, ")
            && let (Ok(passed), Some(Ok(failed))) =
                (passed.parse::<u64>(), failed.strip_suffix(" failed").map(str::parse::<u64>))
        {
            self.passed += passed;
            self.failed += failed;
            return;
        }
        let Some(rest) = line.strip_prefix("test result: ") else { return };
        for part in rest.split(';') {
            let words: Vec<&str> = part.split_whitespace().collect();
            let number = |i: usize| words.get(i).and_then(|w| w.parse::<u64>().ok()).unwrap_or(0);
            match words.as_slice() {
                [.., _, "passed"] => self.passed += number(words.len() - 2),
                [_, "failed"] => self.failed += number(0),
                _ => {}
            }
        }
    }
}

/// Runs the demo pipeline and, unless told otherwise, prints the per-quartier temperatures so
/// that a newcomer sees the processors' output scroll by.
fn demo(extra: &[String]) -> Result<(), String> {
    let mut command = cargo();
    command.current_dir(root());
    command.args(["run", "--quiet", "--bin", "host", "--", "run", "--config", "pipelines/demo.toml"]);
    // The live map, when npm can install its two libraries (once; they are served locally).
    let web = root().join("web");
    let assets = web.join("public/vendor");
    if !assets.exists() {
        match npm() {
            Ok(mut npm) => {
                if let Err(error) = run(npm.current_dir(&web).args(["ci", "--no-audit", "--no-fund"])) {
                    eprintln!("xtask: the web map is not available ({error}); running without it");
                }
            }
            Err(error) => eprintln!("xtask: {error}; running without the web map"),
        }
    }
    if assets.exists() {
        command.args(["--web", "web/public"]);
    }
    if !extra.iter().any(|arg| arg.starts_with("--echo")) {
        command.args(["--echo", "toulouse/quartiers/+/temperature"]);
    }
    run(command.args(extra))
}

/// npm, for the web map's libraries and its end-to-end test.
fn npm() -> Result<Command, String> {
    let found = Command::new("npm").arg("--version").output().is_ok_and(|o| o.status.success());
    if found { Ok(Command::new("npm")) } else { Err("npm is not installed (apt-get install npm)".into()) }
}

fn lint() -> Result<(), String> {
    run(cargo().current_dir(root()).args(["fmt", "--all", "--check"]))?;
    run(cargo().current_dir(root()).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    let plugins = root().join("plugins");
    run(cargo().current_dir(&plugins).args(["fmt", "--all", "--check"]))?;
    run(cargo().current_dir(&plugins).args([
        "clippy",
        "--release",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))
}
