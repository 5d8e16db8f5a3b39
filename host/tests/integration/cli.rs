//! The `host` binary as a user meets it.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::support::{Mosquitto, TestClient, plugin, reading, temp_dir};

fn host(args: &[&str]) -> Output {
    let cache = temp_dir("cli-cache");
    Command::new(env!("CARGO_BIN_EXE_host"))
        .args(args)
        .env("XDG_CACHE_HOME", cache)
        .output()
        .expect("cannot run the host binary")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn inspect_shows_the_world_version_and_exports_of_a_processor() {
    let path = plugin("rolling_stats");
    let output = host(&["plugin", "inspect", path.to_str().expect("utf-8 path")]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(stdout.contains("world:    processor"), "{stdout}");
    assert!(stdout.contains("wit:      garonne:plugin@0.3.0"), "{stdout}");
    assert!(stdout.contains("garonne:plugin/processor-api@0.3.0"), "{stdout}");
    assert!(stdout.contains("garonne:plugin/types@0.3.0"), "{stdout}");
}

#[test]
fn inspect_tells_a_sensor_model() {
    let path = plugin("synthetic");
    let output = host(&["plugin", "inspect", path.to_str().expect("utf-8 path")]);
    assert!(output.status.success());
    assert!(text(&output.stdout).contains("world:    sensor-model"));
}

fn inspect_fails_with(path: &std::path::Path, expected: &str) {
    let output = host(&["plugin", "inspect", path.to_str().expect("utf-8 path")]);
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "inspect of {} should fail", path.display());
    assert!(stderr.contains(expected), "expected {expected:?} in: {stderr}");
}

#[test]
fn inspect_refuses_a_core_module_and_says_how_to_build_a_component() {
    let path = temp_dir("core").join("core.wasm");
    // The smallest valid core module: magic and version 1.
    std::fs::write(&path, b"\0asm\x01\0\0\0").expect("write");
    inspect_fails_with(&path, "core WebAssembly module, not a component");
    inspect_fails_with(&path, "wasm32-wasip2");
}

#[test]
fn inspect_refuses_a_file_that_is_not_wasm() {
    let path = temp_dir("text").join("notes.wasm");
    std::fs::write(&path, "hello").expect("write");
    inspect_fails_with(&path, "is not a WebAssembly file");
}

#[test]
fn inspect_refuses_a_component_of_another_world() {
    inspect_fails_with(&plugin("not_a_plugin"), "not a Garonne plugin");
    inspect_fails_with(&plugin("not_a_plugin"), "wasi:cli/run");
}

#[test]
fn inspect_of_a_missing_file_says_so() {
    inspect_fails_with(std::path::Path::new("/nonexistent/x.wasm"), "cannot read /nonexistent/x.wasm");
}

/// Each file the host reads, missing: the error names the file and gives the system's reason once
/// (a reason printed twice reads as two failures).
#[test]
fn a_missing_file_is_named_with_the_reason_given_once() {
    let (processor, model) = (plugin("rolling_stats"), plugin("synthetic"));
    let (processor, model) = (processor.to_str().expect("utf-8 path"), model.to_str().expect("utf-8 path"));
    let missing = "/nonexistent/garonne-missing";
    const FROM: &str = "2026-11-29T00:00:00Z";
    let cases: [(&str, Vec<&str>); 4] = [
        ("a plugin", vec!["plugin", "inspect", missing]),
        ("a pipeline file", vec!["run", "--config", missing]),
        ("recorded readings", vec!["plugin", "test", processor, "--input", missing]),
        (
            "a stations file",
            vec!["plugin", "test", model, "--stations", missing, "--from", FROM, "--to", FROM],
        ),
    ];
    for (what, args) in cases {
        let output = host(&args);
        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "{what}: {stderr}");
        assert!(stderr.contains(missing), "{what}: the path is not named: {stderr}");
        let reason = "No such file or directory";
        assert_eq!(stderr.matches(reason).count(), 1, "{what}: the reason once: {stderr}");
    }
}

/// `host run` compiles a plugin it does not find in the cache in a child process (`host plugin
/// precompile`), so that its own memory never holds what compiling takes; a plugin that cannot
/// load still gets its own error.
#[test]
fn a_first_start_compiles_in_a_child_process_and_errors_stay_the_same() {
    let cache = temp_dir("precompile");
    let precompiled = host(&[
        "plugin",
        "precompile",
        "--cache-dir",
        cache.to_str().expect("utf-8"),
        plugin("rolling_stats").to_str().expect("utf-8"),
    ]);
    assert!(precompiled.status.success(), "{}", text(&precompiled.stderr));
    let files = |dir: &std::path::Path| walk(dir).len();
    assert!(files(&cache) > 0, "the cache holds the compiled plugin");

    let _port = crate::support::default_port_lock();
    let run = |wasm: &str| {
        Command::new(env!("CARGO_BIN_EXE_host"))
            .args(["run", "--plugin", plugin(wasm).to_str().expect("utf-8"), "--duration", "0"])
            .env("XDG_CACHE_HOME", temp_dir("first-start"))
            .env("RUST_LOG", "garonne=debug")
            .output()
            .expect("host run")
    };
    let first = run("rolling_stats");
    let log = text(&first.stderr);
    assert!(first.status.success(), "{log}");
    assert!(log.contains("rolling_stats.wasm in a child process"), "{log}");
    let refused = run("not_a_plugin");
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("not a Garonne plugin"), "{}", text(&refused.stderr));
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn run_without_plugins_explains_what_to_give() {
    let output = host(&["run"]);
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("--plugin PATH.wasm"), "{}", text(&output.stderr));
}

#[test]
fn every_command_has_help_with_examples() {
    for args in [&["--help"][..], &["run", "--help"], &["plugin", "inspect", "--help"]] {
        let output = host(args);
        assert!(output.status.success());
        assert!(text(&output.stdout).contains("Example"), "{args:?}: {}", text(&output.stdout));
    }
}

#[test]
fn the_readme_plugin_example_is_the_one_that_is_built() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let start = readme.find("```rust\n").expect("a rust block in the README") + "```rust\n".len();
    let end = start + readme[start..].find("```").expect("the end of the block");
    let source = std::fs::read_to_string(root.join("plugins/fahrenheit/src/lib.rs")).expect("fahrenheit");
    assert_eq!(&readme[start..end], source, "README.md and plugins/fahrenheit/src/lib.rs differ");
}

fn testdata(file: &str) -> String {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/rolling_stats/testdata").join(file);
    path.to_str().expect("utf-8 path").to_owned()
}

fn plugin_test(extra: &[&str]) -> Output {
    plugin_test_of(std::path::Path::new(&testdata("input.jsonl")), extra)
}

/// `host plugin test` of rolling_stats, with its test configuration, over `input`.
fn plugin_test_of(input: &std::path::Path, extra: &[&str]) -> Output {
    let plugin = plugin("rolling_stats");
    let mut args = vec!["plugin", "test", plugin.to_str().expect("utf-8 path")];
    let config = testdata("config.toml");
    args.extend(["--input", input.to_str().expect("utf-8 path"), "--config", &config]);
    args.extend(extra);
    host(&args)
}

#[test]
fn plugin_test_prints_the_messages_as_json_lines() {
    let output = plugin_test(&[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let lines: Vec<serde_json::Value> =
        text(&output.stdout).lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[3]["topic"], "stats/temperature/A");
    assert_eq!(lines[3]["fields"]["mean"], 25.0);
}

#[test]
fn plugin_test_passes_on_the_hand_computed_expectation() {
    let expected = testdata("expected.jsonl");
    let output = plugin_test(&["--expect", &expected]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("ok: the 5 messages match"));
}

/// SenML times below 2^28 s count from now: `--now` fixes it, so a recording replays the same.
#[test]
fn plugin_test_counts_senml_relative_times_from_the_given_now() {
    let input = temp_dir("senml-now").join("relative.jsonl");
    let pack = r#"[{"bn":"A:","bu":"Cel","n":"temperature","v":20},{"n":"temperature","v":22,"t":60}]"#;
    std::fs::write(&input, pack).expect("write");
    let output = plugin_test_of(&input, &["--now", "2026-11-29T08:00:00Z"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let times: Vec<serde_json::Value> = text(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("each line is JSON")["ts"].clone())
        .collect();
    assert_eq!(times, ["2026-11-29T08:00:00.000Z", "2026-11-29T08:01:00.000Z"]);
    let wrong = plugin_test_of(&input, &["--now", "yesterday"]);
    assert!(!wrong.status.success());
    assert!(text(&wrong.stderr).contains("--now"), "{}", text(&wrong.stderr));
}

#[test]
fn plugin_test_fails_with_a_readable_diff_on_a_wrong_expectation() {
    let wrong = temp_dir("expect").join("wrong.jsonl");
    let good = std::fs::read_to_string(testdata("expected.jsonl")).expect("expected.jsonl");
    std::fs::write(&wrong, good.replace(r#""value":25.0"#, r#""value":26.0"#)).expect("write");
    let output = plugin_test(&["--expect", wrong.to_str().expect("utf-8 path")]);
    let stderr = text(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("line 4:"), "{stderr}");
    assert!(stderr.contains("`value`: expected 26.0, got 25.0"), "{stderr}");
}

#[test]
fn plugin_test_runs_a_sensor_model_deterministically_for_a_seed() {
    let model = plugin("synthetic");
    let stations = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/stations/meteo.json");
    let run = |seed: &str| {
        let output = host(&[
            "plugin",
            "test",
            model.to_str().expect("utf-8 path"),
            "--stations",
            stations.to_str().expect("utf-8 path"),
            "--from",
            "2026-01-01T00:00:00Z",
            "--to",
            "2026-01-01T06:00:00Z",
            "--interval-s",
            "3600",
            "--seed",
            seed,
        ]);
        assert!(output.status.success(), "{}", text(&output.stderr));
        text(&output.stdout)
    };
    let first = run("1");
    // 7 ticks (00:00 to 06:00 inclusive) of 77 stations with two sensors each.
    assert_eq!(first.lines().count(), 7 * 77 * 2);
    assert_eq!(first, run("1"), "the same seed gives the same readings");
    assert_ne!(first, run("2"), "another seed gives other readings");
}

/// `host plugin test … | head`: the reader leaves after one line of several hundred KB.
#[test]
fn a_reader_that_stops_early_is_not_an_error() {
    use std::io::{BufRead, BufReader};
    let model = plugin("synthetic");
    let stations = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/stations/meteo.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_host"))
        .args(["plugin", "test", model.to_str().expect("utf-8 path"), "--stations"])
        .arg(&stations)
        .args(["--from", "2026-01-01T00:00:00Z", "--to", "2026-01-02T00:00:00Z", "--interval-s", "600"])
        .env("XDG_CACHE_HOME", temp_dir("cli-cache"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("cannot run the host binary");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).expect("a first line");
    assert!(first.starts_with('{'), "{first}");
    // The reader is gone (its end of the pipe closed when the BufReader dropped).
    let output = child.wait_with_output().expect("the host exits");
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn every_plugins_own_testdata_passes_plugin_test() {
    let plugins = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
    let mut tested = Vec::new();
    for entry in std::fs::read_dir(&plugins).expect("plugins folder").flatten() {
        let testdata = entry.path().join("testdata");
        if !testdata.join("expected.jsonl").exists() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let wasm = plugin(&name);
        let arg = |file: &str| testdata.join(file).to_string_lossy().into_owned();
        let (input, config, expected) = (arg("input.jsonl"), arg("config.toml"), arg("expected.jsonl"));
        let wasm = wasm.to_string_lossy().into_owned();
        let output =
            host(&["plugin", "test", &wasm, "--input", &input, "--config", &config, "--expect", &expected]);
        assert!(output.status.success(), "{name}: {}", text(&output.stderr));
        tested.push(name);
    }
    tested.sort();
    assert_eq!(tested, ["avg_quartier", "quality_filter", "rolling_stats", "thresholds"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_of_a_live_broker_replays_through_plugin_test() {
    let mosquitto = Mosquitto::start();
    let publisher = TestClient::connect(mosquitto.port, &[]).await;
    // Retained, so the recorder gets them whenever its subscription lands.
    for (i, sensor) in ["r1", "r2", "r3"].iter().enumerate() {
        let topic = format!("toulouse/sensors/temperature/{sensor}");
        publisher
            .publish_retained(&topic, reading(sensor, "temperature", 10.0 + i as f64, 1_000 * i as i64))
            .await;
    }
    publisher.publish_retained("toulouse/sensors/temperature/junk", "not json").await;
    let out = temp_dir("record").join("recorded.jsonl");
    let out_arg = out.to_str().expect("utf-8 path").to_owned();
    let url = mosquitto.url();
    let recorded = tokio::task::spawn_blocking(move || {
        host(&[
            "record",
            "--mqtt",
            &url,
            "--topic",
            "toulouse/sensors/#",
            "--out",
            &out_arg,
            "--count",
            "3",
            "--duration",
            "20",
        ])
    })
    .await
    .expect("record");
    assert!(recorded.status.success(), "{}", text(&recorded.stderr));
    assert!(text(&recorded.stderr).contains("recorded 3 messages"), "{}", text(&recorded.stderr));

    let wasm = plugin("rolling_stats");
    let replayed = host(&[
        "plugin",
        "test",
        wasm.to_str().expect("utf-8 path"),
        "--input",
        out.to_str().expect("utf-8"),
    ]);
    assert!(replayed.status.success(), "{}", text(&replayed.stderr));
    let mut sensors: Vec<String> = text(&replayed.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|json| json["sensor_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    sensors.sort();
    assert_eq!(sensors, ["r1", "r2", "r3"]);
}

#[test]
fn the_demo_stores_its_streams_with_the_historian_in_line_protocol_files() {
    let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../pipelines/demo.toml");
    let folder = temp_dir("demo-run");
    let _port = crate::support::default_port_lock();
    let output = Command::new(env!("CARGO_BIN_EXE_host"))
        .args(["run", "--config", demo.to_str().expect("utf-8"), "--speed", "3000", "--duration", "12"])
        .current_dir(&folder)
        .env("XDG_CACHE_HOME", temp_dir("cli-cache"))
        .env("XDG_STATE_HOME", folder.join("state"))
        .output()
        .expect("cannot run the host binary");
    let log = text(&output.stderr);
    assert!(output.status.success(), "{log}");
    assert!(log.contains("no InfluxDB configured"), "the demo says where the points go:\n{log}");
    let files: Vec<PathBuf> = std::fs::read_dir(folder.join("garonne-history"))
        .expect("the demo writes garonne-history/")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let points = std::fs::read_to_string(&files[0]).expect("read");
    let count = |measurement: &str| points.lines().filter(|l| l.starts_with(measurement)).count();
    // At this speed a debug build's historian falls behind the sensors: it still stores every
    // reading they published, the first ones (before it subscribed, once) and the last ones
    // (still in the embedded broker at the stop, once) included.
    let published: u64 =
        ["weather", "air_quality", "bikes"].iter().map(|model| messages_out(&log, model)).sum();
    assert!(published > 10_000, "{log}");
    assert_eq!(count("sensors,") as u64, published, "{log}");
    assert!(count("quartiers,") > 0, "no quartiers point in\n{log}");
}

/// A plugin's `messages_out` in the counters `host run` prints when it stops.
fn messages_out(log: &str, plugin: &str) -> u64 {
    let prefix = format!("  {plugin}: ");
    let line = log.lines().find_map(|l| l.strip_prefix(&prefix)).expect("the plugin's counters");
    let counters: serde_json::Value = serde_json::from_str(line).expect("JSON counters");
    counters["messages_out"].as_u64().expect("messages_out")
}

/// `host plugin new NAME --lang LANG --kind KIND` in a fresh folder; returns the folder and the
/// two commands it prints, to build the plugin and to test it.
fn new_plugin(name: &str, lang: &str, kind: &str) -> (PathBuf, String, String) {
    let dir = temp_dir("scaffold").join(name);
    let created =
        host(&["plugin", "new", name, "--lang", lang, "--kind", kind, "--dir", dir.to_str().expect("utf-8")]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    let printed = text(&created.stdout);
    let next: Vec<&str> =
        printed.lines().skip_while(|l| !l.starts_with("next")).skip(1).map(str::trim).collect();
    let build = next.iter().rev().nth(1).expect("a build command").to_string();
    let test = next.last().filter(|l| l.starts_with("host plugin test")).expect("a test command").to_string();
    (dir, build, test)
}

/// Runs a printed `host plugin test` command in `dir` (with `wasm` instead of the command's own
/// path, if given); checks that `messages` messages match its expectation.
fn passes_its_own_test(
    dir: &std::path::Path,
    command: &str,
    wasm: Option<&std::path::Path>,
    messages: usize,
) {
    let mut args: Vec<String> = command.split_whitespace().skip(1).map(str::to_owned).collect();
    if let Some(wasm) = wasm {
        args[2] = wasm.to_str().expect("utf-8").to_owned();
    }
    let tested = Command::new(env!("CARGO_BIN_EXE_host"))
        .args(&args)
        .current_dir(dir)
        .env("XDG_CACHE_HOME", temp_dir("cli-cache"))
        .output()
        .expect("host");
    let stderr = text(&tested.stderr);
    assert!(tested.status.success(), "{command}: {stderr}");
    // The count guards against an expectation that lost its lines.
    let ok = format!("ok: the {messages} messages match testdata/expected.jsonl");
    assert!(stderr.contains(&ok), "{command}: {stderr}");
    assert!(!stderr.contains("dead letter"), "{command}: {stderr}");
}

/// `host plugin new`, then the commands it prints: the new plugin builds and passes its own
/// test, for each kind.
#[test]
fn a_new_plugin_of_each_kind_builds_and_passes_its_own_test() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    // Shared between runs, so the SDK's dependencies are compiled once.
    let target = root.join("plugins/target/scaffold-test");
    for (name, kind, messages) in [("heat_alert", "processor", 4), ("my_weather", "sensor-model", 6)] {
        let (dir, build, test) = new_plugin(name, "rust", kind);
        assert_eq!(build, "cargo build --release");
        let built = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "--quiet"])
            .current_dir(&dir)
            .env("CARGO_TARGET_DIR", &target)
            .output()
            .expect("cargo");
        assert!(built.status.success(), "{name} does not build: {}", text(&built.stderr));
        // The printed command, with the build where CARGO_TARGET_DIR put it.
        let wasm = target.join(format!("wasm32-wasip2/release/{name}.wasm"));
        passes_its_own_test(&dir, &test, Some(&wasm), messages);
    }
}

/// The same in Python or JavaScript: `./build.sh` finds the build tool that `cargo xtask
/// build-plugins` installed in this checkout (no network), and the test command it prints gives
/// the limits the language needs. Each build takes 10 to 30 s, and compiling the component as
/// much again: about a minute per plugin.
fn new_guest_plugins_build_and_pass_their_own_test(lang: &str, limits: &str) {
    for (name, kind, messages) in [("heat_alert", "processor", 4), ("my_weather", "sensor-model", 6)] {
        let (dir, build, test) = new_plugin(name, lang, kind);
        assert_eq!(build, "./build.sh");
        assert!(dir.join("wit/plugin.wit").is_file(), "the WIT is in the plugin's folder");
        let built = Command::new(dir.join("build.sh")).current_dir(&dir).output().expect("build.sh");
        assert!(
            built.status.success(),
            "{lang} {name} does not build: {}{}",
            text(&built.stdout),
            text(&built.stderr)
        );
        assert!(dir.join(format!("{name}.wasm")).is_file(), "{lang} {name}: no {name}.wasm");
        assert!(test.starts_with(&format!("host plugin test {name}.wasm ")), "{test}");
        assert!(test.ends_with(limits), "{test}");
        passes_its_own_test(&dir, &test, None, messages);
    }
}

#[test]
fn a_new_python_plugin_of_each_kind_builds_and_passes_its_own_test() {
    new_guest_plugins_build_and_pass_their_own_test("python", "--memory-mib 64 --call-deadline-ms 500");
}

#[test]
fn a_new_javascript_plugin_of_each_kind_builds_and_passes_its_own_test() {
    new_guest_plugins_build_and_pass_their_own_test("js", "--memory-mib 128 --call-deadline-ms 1000");
}

/// `hostile` with `mode` on a poison reading, under the given limit flags.
fn hostile_test(mode: &str, limits: &[&str]) -> Output {
    let input = temp_dir("limits").join("input.jsonl");
    let line = |value: u32, second: u32| {
        format!(
            r#"{{"sensor_id":"a","kind":"temperature","value":{value},"unit":"°C","ts":"2026-11-29T08:00:0{second}Z"}}"#
        )
    };
    std::fs::write(&input, format!("{}\n{}\n", line(1, 0), line(13, 1))).expect("write");
    let wasm = plugin("hostile");
    let mode = format!("mode={mode}");
    let mut args =
        vec!["plugin", "test", wasm.to_str().expect("utf-8"), "--input", input.to_str().expect("utf-8")];
    args.extend(["--set", &mode, "--set", "poison=13"]);
    args.extend(limits);
    host(&args)
}

#[test]
fn plugin_test_takes_the_limits_and_names_the_flag_to_raise() {
    // An endless loop, stopped at the deadline the flag gave.
    let output = hostile_test("loop", &["--call-deadline-ms", "50"]);
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("dead letter: plugin ran past its CPU deadline of 50 ms"), "{stderr}");
    assert!(stderr.contains("raise --call-deadline-ms (now 50)"), "{stderr}");
    assert!(stderr.contains("`call_deadline_ms` in [plugin.limits]"), "{stderr}");
    // The reading before the poison one was processed: its message is still printed.
    assert_eq!(text(&output.stdout).lines().count(), 1, "{}", text(&output.stdout));

    let output = hostile_test("oom", &["--memory-mib", "8"]);
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("over its cap of 8 MiB"), "{stderr}");
    assert!(stderr.contains("raise --memory-mib (now 8)"), "{stderr}");

    // Too little memory to start at all.
    let output = hostile_test("oom", &["--memory-mib", "1"]);
    let stderr = text(&output.stderr);
    assert!(stderr.contains("the plugin failed to start"), "{stderr}");
    assert!(stderr.contains("raise --memory-mib (now 1)"), "{stderr}");

    // Without the poison reading's trouble (`error` keeps the instance), no limit is blamed.
    let output = hostile_test("error", &["--call-deadline-ms", "50"]);
    let stderr = text(&output.stderr);
    assert!(!stderr.contains("raise --"), "{stderr}");
}

/// Away from a checkout with the tools installed, `build.sh` says how to install its tool, at
/// the pinned version.
#[test]
fn a_build_script_without_its_tool_says_how_to_install_it() {
    use garonne::scaffold::{Kind, Lang, Scaffold};
    for (lang, install, pin_file, pin) in [
        (
            Lang::Python,
            ".venv/bin/pip install -r requirements.txt",
            "requirements.txt",
            "componentize-py==0.25.1",
        ),
        (Lang::Js, "npm install", "package.json", r#""@bytecodealliance/componentize-js": "0.23.0""#),
    ] {
        let dir = temp_dir("no-tool").join("heat_alert");
        let scaffold = Scaffold {
            name: "heat_alert".into(),
            kind: Kind::Processor,
            lang,
            dir: dir.clone(),
            sdk: "/nonexistent/sdk".into(),
            tools: "/nonexistent/plugins".into(),
        };
        scaffold.create().expect("created");
        let built = Command::new(dir.join("build.sh"))
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .output()
            .expect("build.sh");
        let stderr = text(&built.stderr);
        assert!(!built.status.success(), "{lang:?}: {stderr}");
        assert!(stderr.contains(install), "{lang:?}: {stderr}");
        let pins = std::fs::read_to_string(dir.join(pin_file)).expect("the pin file");
        assert!(pins.contains(pin), "{lang:?}: {pins}");
    }
}
