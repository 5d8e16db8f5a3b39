//! The lab (`docs/tutoriel.md`, and its English twin `docs/tutorial.md`) runs as written: its
//! commands and files are extracted from the Markdown and run in order, in a fresh home folder.
//!
//! Conventions of the two pages: every ```sh block is run line by line; a block after
//! `<!-- long-running -->` must still be running after a while (then it gets Ctrl-C); a block
//! after `<!-- file: PATH -->` is written to PATH. `git clone` and `cd garonne` are skipped: the
//! test runs in this checkout. The two commands that build the host are replaced by the host
//! this test was built with (building it again inside a test would race the test's own build):
//! `cargo build --bin host` is skipped, and `cargo xtask demo` runs what it runs once the build
//! is done, `host run --config pipelines/demo.toml --web web/public`. The Python and JavaScript
//! paths build with the tools `cargo xtask build-plugins` installed in this checkout, as a
//! student's build does after `cargo xtask demo`. The three paths take about six minutes on two
//! busy cores (minutes: the demo and the Rust path 1.7, Python 2.2, JavaScript 2.3), mostly spent
//! building the guests and compiling them in the host.

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Command(String),
    LongRunning(String),
    File { path: String, content: String },
}

fn steps(markdown: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut annotation: Option<String> = None;
    let mut lines = markdown.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        if let Some(note) = trimmed.strip_prefix("<!--").and_then(|n| n.strip_suffix("-->")) {
            annotation = Some(note.trim().to_owned());
            continue;
        }
        let Some(lang) = trimmed.strip_prefix("```") else { continue };
        let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        match (annotation.take(), lang) {
            (Some(note), _) if note.starts_with("file:") => {
                let path = note.trim_start_matches("file:").trim().to_owned();
                steps.push(Step::File { path, content: block.join("\n") + "\n" });
            }
            (Some(note), "sh") if note == "long-running" => steps.push(Step::LongRunning(block.join("\n"))),
            (_, "sh") => steps.extend(
                block
                    .iter()
                    .map(|l| l.trim())
                    .filter(|l| !l.is_empty() && !l.starts_with("git clone") && *l != "cd garonne")
                    .map(|l| Step::Command(l.to_owned())),
            ),
            _ => {}
        }
    }
    steps
}

/// What must be the same in both languages: commands, long-running commands, file paths, and
/// file contents once comments are left out.
fn skeleton(steps: &[Step]) -> Vec<Step> {
    let code = |content: &str| -> String {
        content
            .lines()
            .filter(|l| !(l.trim_start().starts_with("//") || l.trim_start().starts_with('#')))
            .collect::<Vec<_>>()
            .join("\n")
    };
    steps
        .iter()
        .map(|step| match step {
            Step::File { path, content } => Step::File { path: path.clone(), content: code(content) },
            other => other.clone(),
        })
        .collect()
}

fn script(steps: &[Step], home: &Path, repo: &Path) -> String {
    let mut script = format!(
        "set -euo pipefail\nexport HOME='{}'\ncd '{}'\n{}",
        home.display(),
        repo.display(),
        r#"
# Runs a command that serves until Ctrl-C: it must still run after 30 s, then gets Ctrl-C.
run_for_a_while() {
  local log="$HOME/long-running-$RANDOM.log"
  # The tests' other runs on the default port wait meanwhile (see `support::default_port_lock`).
  exec 9>>"$GARONNE_PORT_LOCK"
  flock 9
  setsid bash -c "$1" 9>&- > "$log" 2>&1 &
  local pid=$!
  sleep 30
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "exited early: $1"; tail -n 30 "$log"; exit 1
  fi
  kill -INT -- "-$pid" || true
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  flock -u 9
  exec 9>&-
  echo "ran for 30 s: $1"; tail -n 5 "$log"
  # The student's heat alerts (`above` = the lab's threshold), echoed by `--echo`.
  echo "student alerts: $(grep -c '^toulouse/alerts/temperature .*"above":7.0' "$log" || true)"
}
"#
    );
    for step in steps {
        match step {
            Step::Command(line) if line == "cargo build --bin host" => {}
            Step::Command(line) => script.push_str(&format!("echo '+ {}'\n{line}\n", line.replace('\'', ""))),
            Step::LongRunning(command) => {
                let command = if command == "cargo xtask demo" {
                    "target/debug/host run --config pipelines/demo.toml --web web/public"
                } else {
                    command
                };
                script.push_str(&format!("run_for_a_while '{}'\n", command.replace('\'', "'\\''")))
            }
            Step::File { path, content } => {
                let path = path.replacen('~', "$HOME", 1);
                script.push_str(&format!(
                    "mkdir -p \"$(dirname \"{path}\")\"\ncat > \"{path}\" <<'GARONNE_EOF'\n{content}GARONNE_EOF\n"
                ));
            }
        }
    }
    script
}

#[test]
fn the_two_tutorials_give_the_same_commands() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs");
    let fr = steps(&std::fs::read_to_string(root.join("tutoriel.md")).expect("tutoriel.md"));
    let en = steps(&std::fs::read_to_string(root.join("tutorial.md")).expect("tutorial.md"));
    assert!(fr.len() >= 10, "{fr:?}");
    assert!(
        fr.iter().any(|s| matches!(s, Step::LongRunning(_)))
            && fr.iter().any(|s| matches!(s, Step::File { .. }))
    );
    assert_eq!(skeleton(&fr), skeleton(&en), "the French and English labs must run the same commands");
}

#[test]
fn the_tutorial_runs_as_written() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("repo");
    let markdown = std::fs::read_to_string(repo.join("docs/tutoriel.md")).expect("tutoriel.md");
    let home = crate::support::temp_dir("tutorial-home");
    let script = script(&steps(&markdown), &home, &repo);
    std::fs::write(home.join("tutorial.sh"), &script).expect("write the script");
    let output = Command::new("bash")
        .arg(home.join("tutorial.sh"))
        // The student's Rust toolchain, from the real home.
        .env("RUSTUP_HOME", std::env::var("RUSTUP_HOME").unwrap_or_else(|_| home_of("rustup")))
        .env("CARGO_HOME", std::env::var("CARGO_HOME").unwrap_or_else(|_| home_of("cargo")))
        .env("XDG_CACHE_HOME", crate::support::temp_dir("tutorial-cache"))
        .env("GARONNE_PORT_LOCK", crate::support::default_port_lock_path())
        .output()
        .expect("bash");
    let log =
        format!("{}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the tutorial failed:\n{log}");
    // The paths in Rust, Python and JavaScript: each tests the new plugin, then the heat alert,
    // and runs it beside the demo.
    assert_eq!(log.matches("ok: the 4 messages match").count(), 3, "{log}");
    assert_eq!(log.matches("ok: the 1 messages match").count(), 3, "{log}");
    assert_eq!(log.matches("ran for 30 s").count(), 4, "{log}");
    // On the live map: the demo alone shows none of the student's alerts, and each language's
    // plugin, run beside the demo on a November afternoon, publishes some.
    let alerts: Vec<u32> = log
        .lines()
        .filter_map(|l| l.strip_prefix("student alerts: "))
        .map(|n| n.trim().parse().unwrap_or(0))
        .collect();
    assert_eq!(alerts.len(), 4, "{log}");
    assert_eq!(alerts[0], 0, "the demo alone has no heat alert plugin: {log}");
    assert!(
        alerts[1..].iter().all(|&n| n > 0),
        "a plugin published no alert on the live map: {alerts:?}\n{log}"
    );
    for lang in ["python", "js"] {
        let wasm = home.join(format!("tp-garonne/{lang}/alerte_chaleur/alerte_chaleur.wasm"));
        assert!(wasm.is_file(), "{lang}: no {}", wasm.display());
    }
}

fn home_of(tool: &str) -> String {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    format!("{home}/.{tool}")
}
