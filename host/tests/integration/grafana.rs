//! The Grafana dashboards (`grafana/dashboards/*.json`) against real data: InfluxDB 1.6 filled
//! by the historian from a simulated run of the weather stations, the quality filter, the
//! per-quartier averages and the alerts, plus the host's and the historian's own status
//! (`garonne_host`, `garonne_plugin`, `garonne_historian`). Every query of every panel,
//! annotation and template variable runs with its variables expanded as Grafana would, and
//! must return data. The provisioning files are checked too (parsed with Python's `yaml`,
//! package `python3-yaml`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use garonne::config::{MqttConfig, PipelineConfig};
use garonne::historian::{Historian, HistorianConfig, InfluxConfig};
use garonne::mqtt::BrokerAddress;
use garonne::pipeline::RunningPipeline;
use serde_json::Value;

use crate::databases::{InfluxDb, http};
use crate::support::{Mosquitto, TestClient, plugin, temp_dir};

/// The uid of the provisioned data source, which every panel must name.
pub const DATASOURCE_UID: &str = "garonne-influxdb";
/// The simulated interval: a winter night, so that `below.temperature = 30` surely fires.
const FROM: &str = "2026-01-15T00:00:00Z";
const TO: &str = "2026-01-15T06:00:00Z";
/// Stored by the historian but read by no dashboard: tells when its subscriptions are in place.
const PROBE_TOPIC: &str = "toulouse/garonne-test-probe/probe";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A Python with the `yaml` module (PyYAML): the first `python3` on the PATH, else Debian's.
fn python_with_yaml() -> &'static str {
    static FOUND: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    FOUND.get_or_init(|| {
        ["python3", "/usr/bin/python3"]
            .into_iter()
            .find(|python| {
                Command::new(python).args(["-c", "import yaml"]).output().is_ok_and(|o| o.status.success())
            })
            .expect(
                "no python3 with the yaml module (it parses the YAML files): \
                 `apt-get install python3-yaml` (or `pip install pyyaml`)",
            )
    })
}

/// A YAML file as JSON, read by a real YAML parser: Python's `yaml` module (PyYAML).
pub fn yaml_to_json(path: &Path) -> Value {
    let script = "import json, sys, yaml\nwith open(sys.argv[1], encoding='utf-8') as f:\n    \
                  json.dump(yaml.safe_load(f), sys.stdout)\n";
    let output =
        Command::new(python_with_yaml()).args(["-c", script]).arg(path).output().expect("run python3");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{} is not valid YAML:\n{stderr}", path.display());
    serde_json::from_slice(&output.stdout).expect("python3 prints JSON")
}

/// Every dashboard of `grafana/dashboards/`, with its file name.
pub fn dashboards() -> Vec<(String, Value)> {
    let dir = root().join("grafana/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no dashboard in {}", dir.display());
    files
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).expect("readable dashboard");
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()));
            (path.file_name().unwrap_or_default().to_string_lossy().into_owned(), json)
        })
        .collect()
}

/// Every panel, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        all.push(panel);
        all.extend(panel["panels"].as_array().into_iter().flatten());
    }
    all
}

fn text<'v>(value: &'v Value, key: &str) -> &'v str {
    value[key].as_str().unwrap_or_default()
}

fn pipeline(url: String) -> PipelineConfig {
    let text = format!(
        r#"
        [mqtt]
        url = "{url}"
        client_id = "grafana-test-{pid}"
        [runtime]
        start = "{FROM}"
        end = "{TO}"
        seed = 7
        cache_dir = "{cache}"
        [[plugin]]
        path = "{weather}"
        stations = "{stations}"
        interval_s = 600
        [[plugin]]
        path = "{quality_filter}"
        inputs = ["toulouse/sensors/#"]
        [[plugin]]
        path = "{avg_quartier}"
        inputs = ["toulouse/clean/#"]
        [plugin.config]
        polygons = "quartiers"
        window_s = 1800
        lateness_s = 0
        [[plugin]]
        path = "{thresholds}"
        inputs = ["toulouse/quartiers/#"]
        [plugin.config]
        below.temperature = 30
        above.humidity = 88
        "#,
        pid = std::process::id(),
        cache = temp_dir("cache").display(),
        weather = plugin("weather").display(),
        stations = root().join("data/stations/meteo.json").display(),
        quality_filter = plugin("quality_filter").display(),
        avg_quartier = plugin("avg_quartier").display(),
        thresholds = plugin("thresholds").display(),
    );
    toml::from_str(&text).expect("the test pipeline parses")
}

/// InfluxDB 1.6 filled by the historian (in-process, through a real Mosquitto) from a
/// simulated run: readings in `sensors`, averages in `quartiers`, alerts in `alerts` (at the
/// simulated times), and the status metrics (at the time they arrive, from `live_from` on).
async fn filled_database() -> (InfluxDb, Mosquitto, i64) {
    let mosquitto = Mosquitto::start();
    let db = InfluxDb::start().await;
    let live_from = garonne::clock::wall_clock_millis();
    let mut topics: Vec<String> =
        ["sensors", "quartiers", "alerts"].iter().map(|s| format!("toulouse/{s}/#")).collect();
    topics.push("garonne/status/#".into());
    // Subscribed last: once a probe (or the historian's own retained status) is stored, the
    // subscriptions before it are in place.
    topics.push(PROBE_TOPIC.into());
    let config = HistorianConfig {
        topics,
        client_id: format!("grafana-test-historian-{}", std::process::id()),
        spool_dir: Some(temp_dir("spool")),
        out_dir: temp_dir("history"),
        batch_size: 2_000,
        linger_ms: 200,
        influxdb: Some(InfluxConfig {
            url: db.url.clone(),
            database: Some("garonne".into()),
            ..InfluxConfig::default()
        }),
        ..HistorianConfig::default()
    };
    let broker = BrokerAddress { host: "127.0.0.1".into(), port: mosquitto.port };
    let historian =
        Historian::start(config, &MqttConfig::default(), &broker).await.expect("historian starts");
    let mut client = TestClient::connect(mosquitto.port, &[]).await;
    let mut attempt = 0;
    while historian.metrics.snapshot().received == 0 {
        assert!(attempt < 200, "the historian never stored a probe");
        let probe = serde_json::json!({"sensor_id": "probe", "kind": "probe", "value": attempt, "ts": 0});
        client.publish(PROBE_TOPIC, probe.to_string()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        attempt += 1;
    }
    let mut running = RunningPipeline::start(pipeline(mosquitto.url())).await.expect("pipeline starts");
    tokio::time::timeout(Duration::from_secs(120), running.simulation_finished())
        .await
        .expect("the simulation reaches its end within 2 minutes");
    // The host and the historian publish their status every 10 s: two of each make a rate.
    let deadline = std::time::Instant::now() + Duration::from_secs(45);
    for (measurement, field) in [("garonne_plugin", "calls"), ("garonne_historian", "written")] {
        let query = format!("SELECT count(\"{field}\") FROM \"{measurement}\" GROUP BY *");
        loop {
            let rows = db.select(&query).await;
            let least = rows.iter().filter_map(|r| r["count"].as_u64()).min().unwrap_or(0);
            if least >= 2 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "fewer than two statuses in {measurement}: {rows:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    running.stop().await;
    let metrics = historian.stop().await;
    assert_eq!((metrics.rejected, metrics.dead_letters, metrics.spooled), (0, 0, 0), "{metrics:?}");
    for measurement in [
        "sensors",
        "quartiers",
        "alerts",
        "garonne_host",
        "garonne_plugin",
        "garonne_plugin_metric",
        "garonne_historian",
    ] {
        let rows = db.select(&format!("SELECT * FROM \"{measurement}\" LIMIT 1")).await;
        assert!(!rows.is_empty(), "the run stored nothing in {measurement}");
    }
    (db, mosquitto, live_from)
}

/// Grafana's `escapeRegex` (what the `${name:regex}` format applies to each value).
fn escape_regex(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        if "\\^$*+?.()|[]{}/".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// What a template variable stands for in one run of the queries.
#[derive(Clone, Debug)]
enum Selection {
    /// These values (one, or several for a multi-value variable).
    Values(Vec<String>),
    /// "All", with the variable's custom all value if it has one.
    All { custom: Option<String>, values: Vec<String> },
}

/// The time range and interval Grafana would give a panel.
#[derive(Clone)]
struct Frame {
    from_ms: i64,
    to_ms: i64,
    interval: String,
}

/// Expands Grafana's variables in an InfluxQL query: `$timeFilter`, `$__interval`,
/// `$__interval_ms`, and template variables in the `${name:regex}` form (the only form the
/// dashboards may use in a query: the data source's default format does not escape the `/` of
/// quartier names inside a `/regex/`).
fn expand(query: &str, variables: &BTreeMap<String, Selection>, frame: &Frame) -> Result<String, String> {
    let mut out = query
        .replace("$timeFilter", &format!("time >= {}ms and time <= {}ms", frame.from_ms, frame.to_ms))
        .replace("$__interval_ms", &interval_ms(&frame.interval).to_string())
        .replace("$__interval", &frame.interval);
    for (name, selection) in variables {
        let formatted = match selection {
            Selection::All { custom: Some(all), .. } => all.clone(),
            Selection::All { custom: None, values } | Selection::Values(values) => {
                let escaped: Vec<String> = values.iter().map(|v| escape_regex(v)).collect();
                if escaped.len() == 1 { escaped[0].clone() } else { format!("({})", escaped.join("|")) }
            }
        };
        out = out.replace(&format!("${{{name}:regex}}"), &formatted);
    }
    // Anything left that looks like a variable was not expanded: a typo, or another format.
    let bytes = out.as_bytes();
    for (i, _) in out.match_indices('$') {
        if let Some(next) = bytes.get(i + 1)
            && (next.is_ascii_alphabetic() || *next == b'{' || *next == b'_')
        {
            return Err(format!(
                "`{}` is not expanded: use $timeFilter, $__interval or ${{name:regex}} with a variable \
                 of the dashboard",
                &out[i..(i + 20).min(out.len())]
            ));
        }
    }
    Ok(out)
}

fn interval_ms(interval: &str) -> u64 {
    let digits: String = interval.chars().take_while(char::is_ascii_digit).collect();
    let n: u64 = digits.parse().unwrap_or(1);
    n * match &interval[digits.len()..] {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        unit => panic!("unknown interval unit {unit} in {interval}"),
    }
}

/// Runs an InfluxQL query like Grafana's data source (POST /query, epoch=ms): the series it
/// returns, or why it failed.
async fn run(db: &InfluxDb, query: &str) -> Result<Vec<Value>, String> {
    let url = format!("{}/query?db=garonne&epoch=ms", db.url);
    let body =
        format!("q={}", percent_encoding::utf8_percent_encode(query, percent_encoding::NON_ALPHANUMERIC));
    let (status, body) = http("POST", &url, Some(body)).await;
    let short: String = body.chars().take(600).collect();
    if status != 200 {
        return Err(format!("HTTP {status}: {short}"));
    }
    let json: Value = serde_json::from_str(&body).map_err(|e| format!("not JSON ({e}): {short}"))?;
    let result = &json["results"][0];
    if let Some(error) = json["error"].as_str().or_else(|| result["error"].as_str()) {
        return Err(format!("InfluxDB: {error}"));
    }
    let series = result["series"].as_array().cloned().unwrap_or_default();
    let has_data = series.iter().any(|s| {
        s["values"].as_array().into_iter().flatten().any(|row| {
            let columns = s["columns"].as_array();
            row.as_array().into_iter().flatten().enumerate().any(|(i, cell)| {
                let name = columns.and_then(|c| c.get(i)).and_then(Value::as_str).unwrap_or_default();
                name != "time" && !cell.is_null()
            })
        })
    });
    if has_data { Ok(series) } else { Err(format!("no data: {short}")) }
}

/// The values of a `SHOW TAG VALUES` (column `value`), or of the first column otherwise.
fn values_of(series: &[Value]) -> Vec<String> {
    let mut values = BTreeSet::new();
    for s in series {
        let columns: Vec<&str> =
            s["columns"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let index = columns.iter().position(|c| *c == "value").unwrap_or(0);
        for row in s["values"].as_array().into_iter().flatten() {
            if let Some(v) = row.get(index) {
                values.insert(v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string()));
            }
        }
    }
    values.into_iter().collect()
}

/// One run of a dashboard's queries: how its variables are chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Scenario {
    /// Every variable set to one real value (its saved current value, else the first).
    OneValue,
    /// Variables that allow "All" set to All; repeated panels once per value.
    All,
}

struct Checker<'d> {
    db: &'d InfluxDb,
    /// The simulated interval: readings, averages, alerts.
    simulated: (i64, i64),
    /// The test's own wall-clock time: the status metrics, stored at the time they arrived.
    live: (i64, i64),
    failures: Vec<String>,
    ran: usize,
}

impl Checker<'_> {
    /// The time range a query is run over: the one its data has (`garonne_*` measurements are
    /// stored at the time of receipt), with the panel's minimum interval as `$__interval`.
    fn frame(&self, panel: Option<&Value>, query: &str) -> Frame {
        let interval = panel.and_then(|p| p["interval"].as_str()).unwrap_or("1m");
        let (from_ms, to_ms) = if query.contains("\"garonne_") { self.live } else { self.simulated };
        Frame { from_ms, to_ms, interval: interval.to_owned() }
    }

    async fn check(
        &mut self,
        context: &str,
        query: &str,
        variables: &BTreeMap<String, Selection>,
        frame: &Frame,
    ) {
        let expanded = match expand(query, variables, frame) {
            Ok(expanded) => expanded,
            Err(why) => {
                self.failures.push(format!("{context}\n    query: {query}\n    {why}"));
                return;
            }
        };
        self.ran += 1;
        if let Err(why) = run(self.db, &expanded).await {
            self.failures.push(format!("{context}\n    query: {expanded}\n    {why}"));
        }
    }

    /// Resolves the template variables in order (a variable's query may use the ones before
    /// it), checking that each query returns values.
    async fn variables(
        &mut self,
        title: &str,
        dashboard: &Value,
        scenario: Scenario,
    ) -> BTreeMap<String, Selection> {
        let mut chosen = BTreeMap::new();
        for variable in dashboard["templating"]["list"].as_array().into_iter().flatten() {
            let name = text(variable, "name").to_owned();
            let kind = text(variable, "type");
            let values: Vec<String> = match kind {
                "query" => {
                    assert_eq!(
                        variable["datasource"]["uid"], DATASOURCE_UID,
                        "{title}: variable {name} must use the provisioned data source"
                    );
                    let query = variable["query"].as_str().or_else(|| variable["query"]["query"].as_str());
                    let query = query.unwrap_or_else(|| panic!("{title}: variable {name} has no query"));
                    let expanded = match expand(query, &chosen, &self.frame(None, query)) {
                        Ok(expanded) => expanded,
                        Err(why) => panic!("{title}: variable {name}: {why}"),
                    };
                    self.ran += 1;
                    match run(self.db, &expanded).await {
                        Ok(series) => values_of(&series),
                        Err(why) => {
                            self.failures.push(format!(
                                "{title} ({scenario:?}): variable {name}\n    query: {expanded}\n    {why}"
                            ));
                            return chosen;
                        }
                    }
                }
                "custom" => text(variable, "query").split(',').map(|v| v.trim().to_owned()).collect(),
                "constant" | "textbox" => vec![text(variable, "query").to_owned()],
                other => panic!("{title}: variable {name} has type {other}, which this test does not know"),
            };
            assert!(!values.is_empty(), "{title}: variable {name} has no value");
            let include_all = variable["includeAll"].as_bool().unwrap_or(false);
            let selection = if scenario == Scenario::All && include_all {
                let custom = variable["allValue"].as_str().filter(|v| !v.is_empty()).map(str::to_owned);
                Selection::All { custom, values }
            } else {
                let current = &variable["current"]["value"];
                let current = current.as_str().or_else(|| current[0].as_str()).unwrap_or_default();
                let value = if values.iter().any(|v| v == current) { current } else { &values[0] };
                Selection::Values(vec![value.to_owned()])
            };
            chosen.insert(name, selection);
        }
        chosen
    }

    async fn dashboard(&mut self, file: &str, dashboard: &Value, scenario: Scenario) {
        let title = format!("{file} «{}»", text(dashboard, "title"));
        let variables = self.variables(&title, dashboard, scenario).await;
        for annotation in dashboard["annotations"]["list"].as_array().into_iter().flatten() {
            if annotation["datasource"]["uid"] != DATASOURCE_UID {
                continue;
            }
            let context = format!("{title} ({scenario:?}): annotation «{}»", text(annotation, "name"));
            let query = text(annotation, "query");
            let frame = self.frame(None, query);
            self.check(&context, query, &variables, &frame).await;
        }
        for panel in panels(dashboard) {
            let Some(targets) = panel["targets"].as_array() else { continue };
            let panel_title = text(panel, "title");
            // A repeated panel gets one copy per value of its variable, each with that value.
            let mut copies = vec![variables.clone()];
            if let Some(repeat) = panel["repeat"].as_str() {
                let selection = variables
                    .get(repeat)
                    .unwrap_or_else(|| panic!("{title}: «{panel_title}» repeats unknown variable {repeat}"));
                if let Selection::All { values, .. } = selection {
                    copies = values
                        .iter()
                        .map(|value| {
                            let mut copy = variables.clone();
                            copy.insert(repeat.to_owned(), Selection::Values(vec![value.clone()]));
                            copy
                        })
                        .collect();
                }
            }
            assert_eq!(
                panel["datasource"]["uid"], DATASOURCE_UID,
                "{title}: panel «{panel_title}» must use the provisioned data source"
            );
            for target in targets {
                let ref_id = text(target, "refId");
                assert_eq!(
                    target["rawQuery"], true,
                    "{title}: «{panel_title}» {ref_id} must be a raw InfluxQL query"
                );
                if let Some(uid) = target["datasource"]["uid"].as_str() {
                    assert_eq!(uid, DATASOURCE_UID, "{title}: «{panel_title}» {ref_id}");
                }
                let query = text(target, "query");
                for copy in &copies {
                    let context = format!("{title} ({scenario:?}): panel «{panel_title}» query {ref_id}");
                    let frame = self.frame(Some(panel), query);
                    self.check(&context, query, copy, &frame).await;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_grafana_query_returns_data_from_what_the_historian_stored() {
    let (db, _mosquitto, live_from) = filled_database().await;
    let simulated = (
        garonne::payload::parse_rfc3339(FROM).expect("time"),
        garonne::payload::parse_rfc3339(TO).expect("time"),
    );
    let live = (live_from - 60_000, garonne::clock::wall_clock_millis() + 60_000);
    let mut checker = Checker { db: &db, simulated, live, failures: Vec::new(), ran: 0 };
    let dashboards = dashboards();
    for (file, dashboard) in &dashboards {
        for scenario in [Scenario::OneValue, Scenario::All] {
            checker.dashboard(file, dashboard, scenario).await;
        }
    }
    assert!(
        checker.failures.is_empty(),
        "{} of {} queries failed:\n{}",
        checker.failures.len(),
        checker.ran,
        checker.failures.join("\n")
    );
    // Two scenarios per dashboard, and every dashboard has variables and panels.
    assert!(checker.ran >= dashboards.len() * 2 * 3, "only {} queries ran", checker.ran);
}

#[test]
fn grafana_variables_expand_like_grafana() {
    let frame = Frame { from_ms: 1_000, to_ms: 2_000, interval: "5m".into() };
    let variables = BTreeMap::from([
        ("quartier".to_owned(), Selection::Values(vec!["Saint-Michel / Empalot (Nord)".into()])),
        ("kind".to_owned(), Selection::Values(vec!["humidity".into(), "temperature".into()])),
        ("all".to_owned(), Selection::All { custom: Some(".*".into()), values: vec!["x".into()] }),
    ]);
    let query = "SELECT mean(value) FROM q WHERE quartier =~ /^${quartier:regex}$/ AND kind =~ /^${kind:regex}$/ \
                 AND x =~ /^${all:regex}$/ AND $timeFilter GROUP BY time($__interval)";
    assert_eq!(
        expand(query, &variables, &frame).expect("expands"),
        "SELECT mean(value) FROM q WHERE quartier =~ /^Saint-Michel \\/ Empalot \\(Nord\\)$/ AND \
         kind =~ /^(humidity|temperature)$/ AND x =~ /^.*$/ AND time >= 1000ms and time <= 2000ms \
         GROUP BY time(5m)"
    );
    // The data source's default format, and unknown variables, are refused.
    assert!(expand("WHERE quartier =~ /^$quartier$/", &variables, &frame).is_err());
    assert!(expand("WHERE x = '${typo:regex}'", &variables, &frame).is_err());
}

/// The environment variables `${NAME}` a YAML file refers to, outside comment lines.
pub fn env_references(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines().filter(|line| !line.trim_start().starts_with('#')) {
        for (i, _) in line.match_indices("${") {
            let rest = &line[i + 2..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                names.insert(name);
            }
        }
    }
    names
}

#[test]
fn grafana_provisioning_names_the_data_source_every_dashboard_uses() {
    let provisioning = root().join("grafana/provisioning");
    let datasources = yaml_to_json(&provisioning.join("datasources/influxdb.yml"));
    assert_eq!(datasources["apiVersion"], 1);
    let list = datasources["datasources"].as_array().expect("a datasources list");
    assert_eq!(list.len(), 1, "one data source");
    let source = &list[0];
    assert_eq!(source["uid"], DATASOURCE_UID);
    assert_eq!(source["type"], "influxdb");
    assert_eq!(source["access"], "proxy");
    // InfluxQL (not Flux or SQL): the one language of 1.x, 2.x (v1 API) and 3.x.
    assert_eq!(source["jsonData"]["version"], "InfluxQL");
    assert_eq!(source["jsonData"]["httpMode"], "POST");
    for key in ["url", "user"] {
        assert!(source[key].as_str().is_some_and(|v| !v.is_empty()), "{key} is missing");
    }
    assert!(source["jsonData"]["dbName"].as_str().is_some_and(|v| !v.is_empty()), "dbName is missing");
    assert!(source["secureJsonData"]["password"].is_string(), "the password goes in secureJsonData");
    assert!(source.get("password").is_none(), "a password outside secureJsonData is stored in clear");

    let providers = yaml_to_json(&provisioning.join("dashboards/garonne.yml"));
    assert_eq!(providers["apiVersion"], 1);
    let provider = &providers["providers"][0];
    assert_eq!(provider["type"], "file");
    assert_eq!(provider["options"]["path"], "${GARONNE_GRAFANA_DASHBOARDS}");

    let mut uids = BTreeSet::new();
    for (file, dashboard) in dashboards() {
        let uid = text(&dashboard, "uid");
        assert!(!uid.is_empty() && uid.len() <= 40, "{file}: a uid of 1 to 40 characters");
        assert!(uids.insert(uid.to_owned()), "{file}: uid {uid} is used twice");
        assert!(!text(&dashboard, "title").is_empty(), "{file}: no title");
        assert!(dashboard.get("__inputs").is_none(), "{file}: an export for import, not for provisioning");
        let json = dashboard.to_string();
        assert!(!json.contains("${DS_"), "{file}: names an import-time data source placeholder");
        let variables = dashboard["templating"]["list"].as_array().map(Vec::len).unwrap_or(0);
        assert!(variables > 0, "{file}: no template variable");
        for panel in panels(&dashboard) {
            if panel["type"] != "row" {
                assert_eq!(panel["datasource"]["uid"], DATASOURCE_UID, "{file}: «{}»", text(panel, "title"));
            }
        }
    }
    let kinds: BTreeSet<String> = dashboards()
        .iter()
        .flat_map(|(_, d)| panels(d).into_iter().map(|p| text(p, "type").to_owned()).collect::<Vec<_>>())
        .collect();
    for wanted in ["geomap", "timeseries", "table"] {
        assert!(kinds.contains(wanted), "no {wanted} panel in the dashboards");
    }

    // Grafana reads ${NAME} from its environment: compose and the no-Docker script set them all.
    let mut wanted = BTreeSet::new();
    for file in ["datasources/influxdb.yml", "dashboards/garonne.yml"] {
        let text = std::fs::read_to_string(provisioning.join(file)).expect("readable");
        wanted.extend(env_references(&text));
    }
    let compose = yaml_to_json(&root().join("docker-compose.yml"));
    let grafana = &compose["services"]["grafana"];
    let environment = grafana["environment"].as_object().expect("grafana's environment, as a map");
    let script = std::fs::read_to_string(root().join("deploy/stack/run.sh")).expect("deploy/stack/run.sh");
    for name in &wanted {
        assert!(environment.contains_key(name), "docker-compose.yml: grafana does not set {name}");
        assert!(script.contains(&format!("{name}=")), "deploy/stack/run.sh does not set {name}");
    }
    // The dashboards folder is mounted where the provider looks for it.
    let dashboards_dir = environment["GARONNE_GRAFANA_DASHBOARDS"].as_str().expect("a path");
    let volumes: Vec<&str> =
        grafana["volumes"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    assert!(
        volumes.iter().any(|v| v.starts_with(&format!("./grafana/dashboards:{dashboards_dir}"))),
        "grafana must mount ./grafana/dashboards at {dashboards_dir}: {volumes:?}"
    );
    assert!(
        volumes.iter().any(|v| v.starts_with("./grafana/provisioning:/etc/grafana/provisioning")),
        "grafana must mount ./grafana/provisioning at /etc/grafana/provisioning: {volumes:?}"
    );
}
