//! Project tasks, so that a fresh machine needs only cargo:
//!
//! - `cargo xtask build-plugins`: every plugin and test guest to `wasm32-wasip2`;
//! - `cargo xtask test`: check formatting, build the plugins, lint them, then every test of the
//!   host (linted by clippy as it is compiled) and the SDK, the web map in Chromium, and every
//!   benchmark command once at a small size;
//! - `cargo xtask bench-smoke`: only the benchmark commands, once each at a small size;
//! - `cargo xtask demo [ARGS]`: build what the demo needs and run it (ARGS go to `host run`);
//! - `cargo xtask lint`: rustfmt and clippy, on the host and the plugins.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::OnceLock;
use std::time::Instant;

const WASM_TARGET: &str = "wasm32-wasip2";

fn main() -> ExitCode {
    STARTED.get_or_init(Instant::now);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("build-plugins") => build_plugins(),
        Some("test") => test(&args[1..]),
        Some("demo") => build_plugins().and_then(|()| demo(&args[1..])),
        Some("bench-smoke") => build_plugins().and_then(|()| bench_smoke_alone()),
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
    "usage: cargo xtask <build-plugins | test [CARGO TEST ARGS] | bench-smoke | demo [HOST RUN ARGS] | lint>";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// When the task started: each command's start and end are logged with the time since, so that
/// a CI log shows where its minutes go (the limit is 40, and the host's test build takes half).
static STARTED: OnceLock<Instant> = OnceLock::new();

fn since_start() -> String {
    let elapsed = STARTED.get_or_init(Instant::now).elapsed().as_secs();
    format!("{:02}:{:02}", elapsed / 60, elapsed % 60)
}

/// Logs a command as it starts; the returned guard logs how long it took when it ends.
fn announce(shown: &str) -> Timed {
    eprintln!("xtask: [{}] running {shown}", since_start());
    Timed(Instant::now())
}

struct Timed(Instant);

impl Drop for Timed {
    fn drop(&mut self) {
        eprintln!("xtask: [{}] took {} s", since_start(), self.0.elapsed().as_secs());
    }
}

fn run(command: &mut Command) -> Result<(), String> {
    let shown = format!("{command:?}");
    let _timed = announce(&shown);
    let status = command.status().map_err(|e| format!("cannot start {shown}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{shown} failed ({status})")) }
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Cargo with clippy as the compiler of the host workspace's own crates, warnings denied: the
/// same lints as `cargo clippy --all-targets -- -D warnings`, given while the tests are built.
/// `cargo clippy` would check wasmtime, Cranelift and tokio in a build of their own, which cannot
/// share its output with the test build: on two cores that is ten more minutes for each run.
/// The wrapper is passed with `--config`, not the environment, so that the cargo builds that the
/// tests themselves run (a new plugin, the tutorial's) are a student's plain builds.
struct LintedCargo {
    clippy_driver: PathBuf,
}

impl LintedCargo {
    fn find() -> Result<Self, String> {
        let which = || Command::new("rustup").args(["which", "clippy-driver"]).output();
        let found = |output: std::io::Result<std::process::Output>| {
            output
                .ok()
                .filter(|o| o.status.success())
                .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim().to_owned()))
        };
        let clippy_driver = match found(which()) {
            Some(path) => path,
            None => {
                eprintln!("xtask: clippy is missing; adding it");
                run(Command::new("rustup").args(["component", "add", "clippy"]))
                    .map_err(|e| format!("{e}: run `rustup component add clippy` yourself"))?;
                found(which()).ok_or("rustup does not find clippy-driver after adding clippy")?
            }
        };
        Ok(Self { clippy_driver })
    }

    fn cargo(&self) -> Command {
        let mut command = cargo();
        // A TOML literal string: the path is taken as it is.
        command
            .arg("--config")
            .arg(format!("build.rustc-workspace-wrapper='{}'", self.clippy_driver.display()))
            // How cargo-clippy hands its `-- ARGS` to clippy-driver.
            .env("CLIPPY_ARGS", "-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__");
        command
    }
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
    build_python_and_js_plugins()
}

/// The processors written in Python (`plugins/python/NAME/app.py`, built with componentize-py)
/// and JavaScript (`plugins/js/NAME/app.js`, componentize-js), against the same WIT world as the
/// Rust ones and into the same folder, as `NAME.wasm`. Their tools are installed inside the
/// repository on first use, never globally: a virtual environment in `plugins/python/.venv` (from
/// `requirements.txt`) and `npm ci` in `plugins/js` (from `package-lock.json`). A plugin whose
/// `.wasm` is newer than its folder, the WIT files and that pin file is not built again: each
/// build takes 15 to 60 s.
fn build_python_and_js_plugins() -> Result<(), String> {
    use std::process::Stdio;
    use std::time::SystemTime;

    /// The newest modification time of the files under `path`, test data and caches aside.
    fn newest(path: &Path) -> SystemTime {
        let Ok(entries) = std::fs::read_dir(path) else {
            return std::fs::metadata(path).and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
        };
        entries
            .flatten()
            .filter(|e| !matches!(e.file_name().to_str(), Some("testdata" | "__pycache__")))
            .map(|e| newest(&e.path()))
            .fold(SystemTime::UNIX_EPOCH, SystemTime::max)
    }
    let root = root();
    let out = root.join("plugins").join("target").join(WASM_TARGET).join("release");
    // The Python and JavaScript examples stay on the first released contract on purpose: with
    // `contract_v0_1` they are the plugins "built last term" that the host must keep loading.
    let wit = root.join("wit").join("v0.1.0");
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    // The folders of `dir` that hold `entry`, by name, whose `.wasm` is missing or older than
    // the folder, the WIT files or `pin`: the plugins to build.
    let stale = |dir: &Path, entry: &str, pin: &Path| -> Vec<(String, PathBuf)> {
        let mut found: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join(entry).is_file())
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            .filter(|(name, folder)| {
                let built = newest(&out.join(format!("{name}.wasm")));
                [folder.as_path(), &wit, pin].iter().any(|source| newest(source) >= built)
            })
            .collect();
        found.sort();
        found
    };
    // Builds into `NAME.wasm.part`, then renames it: a failed build leaves no plugin that would
    // look up to date.
    let build = |name: &str, command: &mut Command| -> Result<(), String> {
        let part = out.join(format!("{name}.wasm.part"));
        run(command.arg("-o").arg(&part))?;
        std::fs::rename(&part, out.join(format!("{name}.wasm")))
            .map_err(|e| format!("cannot rename {}: {e}", part.display()))
    };

    // Whether a command runs and succeeds, its output aside.
    let works = |command: &mut Command| {
        command.stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
    };
    // A machine without the language's tools (the Docker build stage) still gets the Rust
    // plugins; the tests of these ones then say that their `.wasm` is missing.
    let skip = |language: &str, plugins: &[(String, PathBuf)], why: &str| {
        let names: Vec<&str> = plugins.iter().map(|(name, _)| name.as_str()).collect();
        eprintln!("xtask: warning: the {language} plugins ({}) are not built: {why}", names.join(", "));
    };

    let python = root.join("plugins").join("python");
    let requirements = python.join("requirements.txt");
    let python_plugins = stale(&python, "app.py", &requirements);
    if !python_plugins.is_empty() {
        let venv = python.join(".venv");
        let componentize_py = venv.join("bin").join("componentize-py");
        let wanted = std::fs::read_to_string(&requirements)
            .map_err(|e| format!("cannot read {}: {e}", requirements.display()))?;
        let stamp = venv.join("installed-requirements.txt");
        // Running the tool also catches a virtual environment copied from another path, whose
        // scripts still name the old one.
        let ready = std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str())
            && works(Command::new(&componentize_py).arg("--version"));
        if !ready && !works(Command::new("python3").args(["-c", "import ensurepip, venv"])) {
            skip(
                "Python",
                &python_plugins,
                "they need python3 and its venv module (apt-get install python3-venv)",
            );
        } else {
            if !ready {
                run(Command::new("python3").args(["-m", "venv", "--clear"]).arg(&venv))?;
                run(Command::new(venv.join("bin").join("python"))
                    .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
                    .arg(&requirements))?;
                std::fs::write(&stamp, wanted)
                    .map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
            }
            for (name, folder) in &python_plugins {
                let (wit, world) = guest_contract(folder, "app.py", &wit, "SensorModelApi");
                let mut command = Command::new(&componentize_py);
                command.current_dir(folder).arg("-d").arg(&wit);
                build(name, command.args(["-w", world, "componentize", "app", "-p", "."]))?;
            }
        }
    }

    let js = root.join("plugins").join("js");
    let lock = js.join("package-lock.json");
    let js_plugins = stale(&js, "app.js", &lock);
    if !js_plugins.is_empty() {
        let ready = newest(&js.join("node_modules").join(".package-lock.json")) >= newest(&lock);
        match (ready, npm()) {
            (false, Err(why)) => skip("JavaScript", &js_plugins, &why),
            (ready, npm) => {
                if !ready {
                    run(npm?.current_dir(&js).args(["ci", "--no-audit", "--no-fund"]))?;
                }
                for (name, folder) in &js_plugins {
                    let (wit, world) = guest_contract(folder, "app.js", &wit, "sensorModelApi");
                    let mut command =
                        Command::new(js.join("node_modules").join(".bin").join("componentize-js"));
                    command.current_dir(folder).arg("app.js").arg("--wit").arg(&wit);
                    // No wasi:http (the host does not link it); stdio stays, for the guest's errors.
                    build(name, command.args(["-n", world, "-d", "http", "fetch-event"]))?;
                }
            }
        }
    }
    Ok(())
}

/// The WIT folder and world a Python or JavaScript plugin builds against: a plugin made by
/// `host plugin new` carries its own `wit/` (the newest contract), the examples use `default`;
/// a source that exports the sensor model's interface (`sensor_export`) is a sensor model.
fn guest_contract(
    folder: &Path,
    source: &str,
    default: &Path,
    sensor_export: &str,
) -> (PathBuf, &'static str) {
    let own = folder.join("wit");
    let wit = if own.join("plugin.wit").is_file() { own } else { default.to_owned() };
    let text = std::fs::read_to_string(folder.join(source)).unwrap_or_default();
    let world = if text.contains(sensor_export) { "sensor-model" } else { "processor" };
    (wit, world)
}

fn host_triple() -> Result<String, String> {
    let output = Command::new("rustc").arg("-vV").output().map_err(|e| format!("cannot run rustc: {e}"))?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: ").map(str::to_owned))
        .ok_or_else(|| "rustc -vV did not name the host target".to_owned())
}

fn test(extra: &[String]) -> Result<(), String> {
    check_format()?;
    build_plugins()?;
    lint_plugins()?;
    let linted = LintedCargo::find()?;
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
    totals.run(linted.cargo().current_dir(root()).args(["test", "--workspace"]).args(extra))?;
    // The web map end to end: real nginx, Mosquitto and Chromium against the host built above.
    let web = root().join("web");
    run(npm()?.current_dir(&web).args(["ci", "--no-audit", "--no-fund"]))?;
    let host = root().join("target/debug/host");
    totals.run(npm()?.current_dir(&web).arg("test").env("HOST_BIN", &host))?;
    bench_smoke(&host, &|| linted.cargo(), &mut totals)?;
    // One closing line for the whole suite, as CI and humans read it.
    println!("tests: {} passed, {} failed", totals.passed, totals.failed);
    Ok(())
}

/// Every benchmark command of BENCHMARKS.md, once, at a size that checks that it still works,
/// not how fast: the figures printed here mean nothing. A bench broken by a change (a renamed
/// file, a new flag, a stage that loses readings) then fails the suite at once, rather than in
/// front of the next person who measures. Each command counts as one test: it fails when it
/// exits non-zero, and the scripts exit non-zero when what they check does not hold (every point
/// stored, every step of the load bench without loss, both sides of the offline comparison
/// publishing, every large reading taken in once). The scripts start their own Mosquitto and InfluxDB on loopback, and run the debug
/// host that the tests above built.
fn bench_smoke(host: &Path, cargo: &dyn Fn() -> Command, totals: &mut Totals) -> Result<(), String> {
    let root = root();
    let host = host.to_string_lossy().into_owned();
    let plugin = root.join("plugins/target").join(WASM_TARGET).join("release/rolling_stats.wasm");
    // divan runs each bench function once when the binary is started by `cargo test`.
    totals.check(cargo().current_dir(&root).args(["test", "--quiet", "-p", "garonne-host", "--benches"]))?;
    let python = |script: &str| {
        let mut command = Command::new("python3");
        command.current_dir(&root).arg(script).arg(&host);
        command
    };
    totals.check(python("bench/startup.py").arg(&plugin).arg("1"))?;
    totals.check(python("bench/historian.py").args(["5000", "1000"]))?;
    totals.check(python("bench/historian.py").args(["5000", "1000", "--pack=50"]))?;
    totals.check(python("bench/chain.py").args(["--fleet", "1", "--hours", "1", "--chain", "process"]))?;
    // The Python baseline needs paho-mqtt and shapely, in the virtual environment of bench/load.
    let in_venv = |script: &str| {
        let mut command = Command::new("bash");
        command.current_dir(&root).args([
            "-c",
            r#"source bench/load/venv.sh && exec "$venv/bin/python" "$@""#,
            "venv",
            script,
        ]);
        command
    };
    totals.check(in_venv("bench/offline.py").args([&host, "1"]))?;
    totals.check(in_venv("bench/load/driver.py").args(["--smoke", "--host", &host]))?;
    totals.check(in_venv("bench/load/driver.py").args(["--smoke", "--pack", "10", "--host", &host]))?;
    totals.check(in_venv("bench/large_readings.py").args([&host, "--readings", "300", "--tag-bytes", "2000"]))
}

/// `cargo xtask bench-smoke`: the last part of `cargo xtask test` alone.
fn bench_smoke_alone() -> Result<(), String> {
    run(cargo().current_dir(root()).args(["build", "--bin", "host"]))?;
    let mut totals = Totals::default();
    let result = bench_smoke(&root().join("target/debug/host"), &cargo, &mut totals);
    println!("bench smoke: {} passed, {} failed", totals.passed, totals.failed);
    result
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
        let _timed = announce(&shown);
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

    /// Runs a command that is one test on its own: it passes when it exits with success.
    fn check(&mut self, command: &mut Command) -> Result<(), String> {
        match run(command) {
            Ok(()) => {
                self.passed += 1;
                Ok(())
            }
            Err(message) => {
                self.failed += 1;
                Err(message)
            }
        }
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
    check_format()?;
    run(cargo().current_dir(root()).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    lint_plugins()
}

fn check_format() -> Result<(), String> {
    run(cargo().current_dir(root()).args(["fmt", "--all", "--check"]))?;
    run(cargo().current_dir(root().join("plugins")).args(["fmt", "--all", "--check"]))
}

/// Clippy on the plugins, for their wasm target: a check of their few dependencies takes seconds.
fn lint_plugins() -> Result<(), String> {
    let plugins = root().join("plugins");
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
