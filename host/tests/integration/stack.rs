//! The deployment: `docker-compose.yml` (parsed with a real YAML parser and checked against the
//! repository; validated by `docker compose config` or `docker-compose config` where one is
//! installed), the pipeline files it and the no-Docker script run, and `deploy/stack/run.sh`
//! itself: it starts Mosquitto, InfluxDB 1.x, nginx and the host on free loopback ports, data
//! flows from the simulated fleet into InfluxDB, and `stop` leaves no process and no port behind.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use garonne::config::PipelineConfig;
use garonne::historian::config::InfluxApi;
use serde_json::Value;

use crate::databases::http;
use crate::grafana::{env_references, root, yaml_to_json};
use crate::support::{free_port, temp_dir};

/// The services the README's compose section names.
const SERVICES: [&str; 5] = ["mosquitto", "influxdb", "grafana", "nginx", "host"];

fn compose() -> Value {
    yaml_to_json(&root().join("docker-compose.yml"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// `NAME=value` lines of `.env.example`.
fn env_example() -> BTreeMap<String, String> {
    read(".env.example")
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

/// The stages of the Dockerfile (`FROM image AS name`).
fn dockerfile_stages() -> BTreeSet<String> {
    read("Dockerfile")
        .lines()
        .filter(|line| line.trim_start().to_ascii_uppercase().starts_with("FROM "))
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let index = words.iter().position(|w| w.eq_ignore_ascii_case("as"))?;
            words.get(index + 1).map(|w| w.to_string())
        })
        .collect()
}

fn strings(value: &Value) -> Vec<&str> {
    value.as_array().into_iter().flatten().filter_map(Value::as_str).collect()
}

#[test]
fn stack_compose_file_names_every_service_and_only_files_that_exist() {
    let compose = compose();
    let services = compose["services"].as_object().expect("services");
    for name in SERVICES {
        assert!(services.contains_key(name), "docker-compose.yml has no service {name}");
    }
    let declared: BTreeSet<&str> =
        compose["volumes"].as_object().map(|v| v.keys().map(String::as_str).collect()).unwrap_or_default();
    let stages = dockerfile_stages();
    let mut used_volumes = BTreeSet::new();
    for (name, service) in services {
        // An image pinned to a tag, or built here from a stage of the Dockerfile.
        if let Some(build) = service.get("build") {
            let context = root().join(text(build, "context"));
            assert!(context.is_dir(), "{name}: build context {} does not exist", context.display());
            let dockerfile = context.join(build["dockerfile"].as_str().unwrap_or("Dockerfile"));
            assert!(dockerfile.is_file(), "{name}: {} does not exist", dockerfile.display());
            let target = text(build, "target");
            assert!(stages.contains(target), "{name}: the Dockerfile has no stage {target:?}: {stages:?}");
        } else {
            let image = text(service, "image");
            let tag = image.rsplit_once(':').map(|(_, tag)| tag).unwrap_or_default();
            assert!(!tag.is_empty() && tag != "latest", "{name}: pin the image's tag ({image})");
        }
        assert!(
            matches!(text(service, "restart"), "unless-stopped" | "always" | "on-failure"),
            "{name}: no restart policy"
        );
        assert!(!strings(&service["healthcheck"]["test"]).is_empty(), "{name}: no health check");
        for port in strings(&service["ports"]) {
            assert!(
                port.starts_with("${GARONNE_BIND:-127.0.0.1}:") || port.starts_with("127.0.0.1:"),
                "{name}: published port {port} must bind 127.0.0.1 by default"
            );
        }
        for volume in strings(&service["volumes"]) {
            let source = volume.split(':').next().unwrap_or_default();
            if source.starts_with("./") {
                let path = root().join(source);
                assert!(path.exists(), "{name}: mounts {source}, which does not exist");
            } else {
                assert!(!source.starts_with('/'), "{name}: mounts the host's {source}: use a named volume");
                assert!(declared.contains(source), "{name}: volume {source} is not declared");
                used_volumes.insert(source);
            }
        }
        if let Some(dependencies) = service["depends_on"].as_object() {
            for (dependency, how) in dependencies {
                assert!(services.contains_key(dependency), "{name}: depends on unknown {dependency}");
                if how["condition"] == "service_healthy" {
                    assert!(
                        services[dependency].get("healthcheck").is_some(),
                        "{dependency}: no health check"
                    );
                }
            }
        }
    }
    assert_eq!(used_volumes, declared, "declared volumes that no service uses, or the reverse");
    // The influxdb image runs only executable *.sh files of /docker-entrypoint-initdb.d.
    for entry in std::fs::read_dir(root().join("deploy/compose/influxdb-init")).expect("init folder") {
        let path = entry.expect("entry").path();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("metadata").permissions().mode();
        assert!(path.extension().is_some_and(|e| e == "sh"), "{}: not a .sh", path.display());
        assert!(mode & 0o111 != 0, "{} must be executable (chmod +x)", path.display());
    }
    // Every file the Dockerfile copies from the repository exists.
    for line in read("Dockerfile").lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() != Some(&"COPY") || words.iter().any(|w| w.starts_with("--from")) {
            continue;
        }
        for source in &words[1..words.len() - 1] {
            if *source != "." {
                assert!(root().join(source).exists(), "the Dockerfile copies {source}, which does not exist");
            }
        }
    }
    let ignored = read(".dockerignore");
    for wanted in [".env", "target/", ".git/", ".stack/", "web/node_modules/"] {
        assert!(ignored.lines().any(|l| l.trim() == wanted), ".dockerignore must exclude {wanted}");
    }
}

#[test]
fn stack_compose_settings_are_all_documented_and_no_secret_is_committed() {
    let text = read("docker-compose.yml");
    let documented = env_example();
    for name in env_references(&text) {
        assert!(documented.contains_key(&name), ".env.example does not document {name}");
    }
    for (name, value) in &documented {
        if name.contains("PASSWORD") || name.contains("TOKEN") {
            assert!(value.is_empty(), ".env.example must leave {name} empty (a secret), not {value:?}");
            // Compose refuses to start without it (`${NAME:?message}`).
            if text.contains(&format!("${{{name}")) {
                assert!(text.contains(&format!("${{{name}:?")), "docker-compose.yml must require {name}");
            }
        }
    }
    assert_eq!(documented.get("GARONNE_BIND").map(String::as_str), Some("127.0.0.1"));
    // The host's and the historian's secrets come from the environment, never from a file.
    let host = &compose()["services"]["host"]["environment"];
    for name in ["GARONNE_MQTT_PASSWORD", "GARONNE_INFLUX_TOKEN"] {
        assert_eq!(host[name], format!("${{{name}:?set {name} in .env}}"), "host: {name}");
    }
}

/// Runs `docker compose config` (or `docker-compose config`) when one is installed: the
/// compose implementation's own schema and interpolation. No daemon is needed.
#[test]
fn stack_compose_config_is_accepted_by_docker_compose_where_installed() {
    let tools: [&[&str]; 2] = [&["docker", "compose"], &["docker-compose"]];
    let Some(tool) = tools.iter().find(|tool| {
        Command::new(tool[0])
            .args(&tool[1..])
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }) else {
        eprintln!("neither `docker compose` nor `docker-compose` is installed: checked with PyYAML only");
        return;
    };
    let dir = temp_dir("compose-env");
    let documented = env_example();
    let run = |env_file: &Path| {
        let mut command = Command::new(tool[0]);
        command
            .args(&tool[1..])
            .arg("--env-file")
            .arg(env_file)
            .arg("-f")
            .arg(root().join("docker-compose.yml"));
        command.args(["config", "-q"]).current_dir(&dir);
        for name in documented.keys() {
            command.env_remove(name);
        }
        command.output().expect("run compose")
    };
    // As shipped, the secrets are empty: compose must refuse.
    let refused = run(&root().join(".env.example"));
    assert!(!refused.status.success(), "compose accepted empty secrets");
    let filled: String = read(".env.example")
        .lines()
        .map(|line| match line.split_once('=') {
            Some((name, "")) if name.contains("PASSWORD") || name.contains("TOKEN") => {
                format!("{name}=test-secret-{}\n", name.len())
            }
            _ => format!("{line}\n"),
        })
        .collect();
    let env_file = dir.join("test.env");
    std::fs::write(&env_file, filled).expect("write env");
    let output = run(&env_file);
    assert!(
        output.status.success(),
        "{} config refuses docker-compose.yml:\n{}",
        tool.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn text<'v>(value: &'v Value, key: &str) -> &'v str {
    value[key].as_str().unwrap_or_default()
}

#[test]
fn stack_pipeline_files_load_and_name_what_the_images_ship() {
    let compose = compose();
    let influx = &compose["services"]["influxdb"]["environment"];
    let dockerfile = read("Dockerfile");
    for (file, in_docker) in [("deploy/compose/pipeline.toml", true), ("deploy/stack/pipeline.toml", false)] {
        let config = PipelineConfig::load(&root().join(file)).unwrap_or_else(|e| panic!("{e}"));
        config.validate().unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(config.runtime.speed, 1.0, "{file}: real time, for Grafana's relative time ranges");
        for plugin in &config.plugins {
            let name = plugin.name();
            assert!(
                plugin.path.exists(),
                "{file}: {} is missing (cargo xtask build-plugins)",
                plugin.path.display()
            );
            assert!(
                root().join("plugins").join(&name).join("Cargo.toml").exists(),
                "{file}: no plugin {name}"
            );
            if let Some(stations) = &plugin.stations {
                assert!(stations.exists(), "{file}: {} is missing", stations.display());
            }
            if in_docker {
                assert!(
                    dockerfile.contains(&format!(" {name} ")),
                    "the Dockerfile does not ship {name}.wasm"
                );
            }
        }
        let historian = config.historian.as_ref().unwrap_or_else(|| panic!("{file}: no [historian]"));
        historian.validate().unwrap_or_else(|e| panic!("{file}: {e}"));
        let influx_config = historian.influxdb.as_ref().expect("[historian.influxdb]");
        match (in_docker, influx_config.api().expect("an API")) {
            (true, InfluxApi::V2 { org, bucket }) => {
                assert_eq!(influx["DOCKER_INFLUXDB_INIT_ORG"], org, "{file}: the org compose creates");
                assert_eq!(
                    influx["DOCKER_INFLUXDB_INIT_BUCKET"], bucket,
                    "{file}: the bucket compose creates"
                );
            }
            (false, InfluxApi::V1 { database }) => assert_eq!(database, "garonne", "{file}"),
            _ => panic!("{file}: InfluxDB 2.x (org, bucket) in compose, 1.x (database) without Docker"),
        }
        let topics = historian.topics(&config.mqtt.prefix);
        for topic in ["toulouse/sensors/#", "toulouse/quartiers/#", "toulouse/alerts/#", "garonne/status/#"] {
            assert!(
                topics.iter().any(|t| t == topic),
                "{file}: {topic} is not stored (the dashboards read it)"
            );
        }
    }
}

// --- the no-Docker stack -------------------------------------------------------------------------

struct Stack {
    state: PathBuf,
    ports: BTreeMap<&'static str, u16>,
    stopped: bool,
}

impl Stack {
    fn new() -> Self {
        let names = ["MQTT", "WS", "INFLUX", "INFLUX_RPC", "WEB", "GRAFANA"];
        let mut ports = BTreeMap::new();
        let mut taken = BTreeSet::new();
        for name in names {
            let port = loop {
                let port = free_port();
                if taken.insert(port) {
                    break port;
                }
            };
            ports.insert(name, port);
        }
        Self { state: temp_dir("stack"), ports, stopped: false }
    }

    /// `run.sh COMMAND`, with a deadline: (success, stdout and stderr).
    fn run(&self, command: &str, deadline: Duration) -> (bool, String) {
        let mut script = Command::new("bash");
        script.arg(root().join("deploy/stack/run.sh")).arg(command);
        script.env("GARONNE_STACK_DIR", &self.state).env("GARONNE_HOST_BIN", env!("CARGO_BIN_EXE_host"));
        for (name, port) in &self.ports {
            script.env(format!("GARONNE_STACK_{name}_PORT"), port.to_string());
        }
        for name in ["GARONNE_MQTT_PASSWORD", "GARONNE_MQTT_READER_PASSWORD", "GARONNE_STACK_PIPELINE"] {
            script.env_remove(name);
        }
        let output_file = self.state.with_extension(format!("{command}.out"));
        let out = std::fs::File::create(&output_file).expect("output file");
        let mut child = script
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone"))
            .stderr(out)
            .spawn()
            .expect("run bash deploy/stack/run.sh");
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break Some(status);
            }
            if started.elapsed() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let mut text = String::new();
        let _ = std::fs::File::open(&output_file).and_then(|mut f| f.read_to_string(&mut text));
        match status {
            Some(status) => (status.success(), text),
            None => (false, format!("{text}\n(run.sh {command} did not finish within {deadline:?})")),
        }
    }

    fn logs(&self) -> String {
        let mut all = String::new();
        for entry in std::fs::read_dir(self.state.join("logs")).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(25).collect();
            all.push_str(&format!("--- {}\n", entry.path().display()));
            for line in tail.iter().rev() {
                all.push_str(line);
                all.push('\n');
            }
        }
        all
    }

    /// The services' pids (from their pid files) and every process of their sessions.
    fn processes(&self) -> BTreeSet<u32> {
        let mut pids = BTreeSet::new();
        for entry in std::fs::read_dir(self.state.join("run")).into_iter().flatten().flatten() {
            if entry.path().extension().is_some_and(|e| e == "pid")
                && let Ok(pid) = std::fs::read_to_string(entry.path()).unwrap_or_default().trim().parse()
            {
                pids.insert(pid);
            }
        }
        let sessions = pids.clone();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            if let Some((_, session)) = stat(pid)
                && sessions.contains(&session)
            {
                pids.insert(pid);
            }
        }
        pids
    }
}

/// (state, session id) of a process, from /proc/PID/stat.
fn stat(pid: u32) -> Option<(char, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    Some((fields.first()?.chars().next()?, fields.get(3)?.parse().ok()?))
}

fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

fn listening(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(300)).is_ok()
}

impl Drop for Stack {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.run("stop", Duration::from_secs(120));
        }
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(future)
}

fn influx_count(port: u16, measurement: &str) -> u64 {
    influx_count_field(port, measurement, "value")
}

fn influx_count_field(port: u16, measurement: &str, field: &str) -> u64 {
    let query = format!("SELECT count(\"{field}\") FROM \"{measurement}\"");
    let url = format!(
        "http://127.0.0.1:{port}/query?db=garonne&q={}",
        percent_encoding::utf8_percent_encode(&query, percent_encoding::NON_ALPHANUMERIC)
    );
    let (status, body) = block_on(http("GET", &url, None));
    assert_eq!(status, 200, "{body}");
    let json: Value = serde_json::from_str(&body).expect("JSON");
    json["results"][0]["series"][0]["values"][0][1].as_u64().unwrap_or(0)
}

/// The status line and headers nginx answers to a WebSocket upgrade on /mqtt.
fn websocket_upgrade(port: u16) -> String {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to nginx");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let request = format!(
        "GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: mqtt\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).expect("send the upgrade");
    let mut answer = Vec::new();
    let mut buffer = [0u8; 1024];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn stack_script_starts_everything_on_loopback_data_flows_and_stop_leaves_nothing() {
    let mut stack = Stack::new();
    let (ok, output) = stack.run("start", Duration::from_secs(100));
    assert!(ok, "run.sh start failed:\n{output}\n{}", stack.logs());

    let (ok, status) = stack.run("status", Duration::from_secs(20));
    assert!(ok, "run.sh status says something is not running:\n{status}\n{}", stack.logs());
    for service in ["influxdb", "mosquitto", "nginx", "host"] {
        assert!(
            status.lines().any(|l| l.starts_with(service) && l.contains("running (pid")),
            "{service} is not running:\n{status}"
        );
    }

    // The fleet's readings reach InfluxDB through Mosquitto and the historian.
    let influx = stack.ports["INFLUX"];
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut count = 0;
    while count == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        count = influx_count(influx, "sensors");
    }
    assert!(count > 0, "no reading reached InfluxDB within 60 s\n{}", stack.logs());
    // And the historian's own status, as metrics for the Operations dashboard.
    let deadline = Instant::now() + Duration::from_secs(30);
    while influx_count_field(influx, "garonne_historian", "written") == 0 {
        assert!(Instant::now() < deadline, "no garonne_historian point within 30 s\n{}", stack.logs());
        std::thread::sleep(Duration::from_millis(500));
    }

    // nginx serves the map.
    let web = stack.ports["WEB"];
    let (status_code, page) = block_on(http("GET", &format!("http://127.0.0.1:{web}/"), None));
    assert_eq!(status_code, 200, "{page}");
    assert!(page.contains("<html") || page.contains("<!doctype") || page.contains("<!DOCTYPE"), "{page}");
    // nginx's /mqtt reaches Mosquitto's WebSocket listener (the page's MQTT connection).
    let upgrade = websocket_upgrade(web);
    assert!(
        upgrade.starts_with("HTTP/1.1 101"),
        "/mqtt does not reach Mosquitto's WebSocket listener:\n{upgrade}"
    );
    // MQTT over TCP wants a password: the ACLs and password file of deploy/mosquitto are in use.
    let mosquitto_conf =
        std::fs::read_to_string(stack.state.join("mosquitto/mosquitto.conf")).expect("mosquitto.conf");
    assert!(mosquitto_conf.contains("allow_anonymous false"), "{mosquitto_conf}");
    assert!(
        mosquitto_conf.contains(&format!("listener {} 127.0.0.1", stack.ports["MQTT"])),
        "{mosquitto_conf}"
    );

    let processes = stack.processes();
    assert!(processes.len() >= 4, "pids of the services: {processes:?}");
    let (ok, output) = stack.run("stop", Duration::from_secs(100));
    stack.stopped = true;
    assert!(ok, "run.sh stop failed:\n{output}\n{}", stack.logs());
    // The host saved its processors' state at the stop, for the next start to go on from.
    for processor in ["rolling_stats", "quality_filter", "avg_quartier", "thresholds"] {
        let saved = stack.state.join(format!("host/processors/{processor}.state"));
        assert!(saved.exists(), "no saved state at {}\n{}", saved.display(), stack.logs());
    }
    let left: Vec<u32> = processes.iter().copied().filter(|pid| alive(*pid)).collect();
    assert!(left.is_empty(), "processes left after stop: {left:?}\n{output}");
    for (name, port) in &stack.ports {
        assert!(!listening(*port), "{name} port {port} still answers after stop");
    }
    let pid_files: Vec<_> = std::fs::read_dir(stack.state.join("run"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "pid"))
        .map(|e| e.path())
        .collect();
    assert!(pid_files.is_empty(), "pid files left: {pid_files:?}");
    // Stopping again is harmless.
    let (ok, output) = stack.run("stop", Duration::from_secs(30));
    assert!(ok, "a second stop fails:\n{output}");
}
