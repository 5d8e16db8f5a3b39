//! The `host` binary as a user meets it.

use std::process::{Command, Output};

use crate::support::{plugin, temp_dir};

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
    assert!(stdout.contains("wit:      garonne:plugin@0.1.0"), "{stdout}");
    assert!(stdout.contains("garonne:plugin/processor-api@0.1.0"), "{stdout}");
    assert!(stdout.contains("garonne:plugin/types@0.1.0"), "{stdout}");
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
