//! `host plugin new`: a ready-to-build plugin, in Rust, Python or JavaScript, with recorded
//! input and a hand-worked expectation, so that `host plugin test` passes before the student
//! changes a line. The three languages compute the same thing and share their test data.

use std::path::{Path, PathBuf};

use crate::sandbox::bindings::LATEST_WIT;

const CARGO_TOML: &str = include_str!("../templates/rust/Cargo.toml.in");
const CARGO_CONFIG: &str = include_str!("../templates/rust/cargo-config.toml.in");
const RUST_PROCESSOR: &str = include_str!("../templates/rust/processor/src/lib.rs.in");
const RUST_MODEL: &str = include_str!("../templates/rust/sensor-model/src/lib.rs.in");
const PYTHON_PROCESSOR: &str = include_str!("../templates/python/processor/app.py.in");
const PYTHON_MODEL: &str = include_str!("../templates/python/sensor-model/app.py.in");
const PYTHON_BUILD: &str = include_str!("../templates/python/build.sh.in");
const PYTHON_REQUIREMENTS: &str = include_str!("../templates/python/requirements.txt");
const JS_PROCESSOR: &str = include_str!("../templates/js/processor/app.js.in");
const JS_MODEL: &str = include_str!("../templates/js/sensor-model/app.js.in");
const JS_BUILD: &str = include_str!("../templates/js/build.sh.in");
const JS_PACKAGE: &str = include_str!("../templates/js/package.json.in");
const PROCESSOR_INPUT: &str = include_str!("../templates/testdata/processor/input.jsonl");
const PROCESSOR_CONFIG: &str = include_str!("../templates/testdata/processor/config.toml");
const PROCESSOR_EXPECTED: &str = include_str!("../templates/testdata/processor/expected.jsonl.in");
const MODEL_STATIONS: &str = include_str!("../templates/testdata/sensor-model/stations.json");
const MODEL_CONFIG: &str = include_str!("../templates/testdata/sensor-model/config.toml");
const MODEL_EXPECTED: &str = include_str!("../templates/testdata/sensor-model/expected.jsonl");

#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "`{0}` is not a valid plugin name: use lower-case letters, digits and `_`, starting with a letter (for example `heat_alert`)"
    )]
    Name(String),
    #[error("{0} already exists and is not empty: choose another name or --dir")]
    Exists(PathBuf),
    #[error("cannot write {path}: {error}")]
    Write { path: PathBuf, error: std::io::Error },
}

/// The two plugin worlds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Processor,
    SensorModel,
}

impl Kind {
    fn world(self) -> &'static str {
        match self {
            Kind::Processor => "processor",
            Kind::SensorModel => "sensor-model",
        }
    }
}

/// The languages a plugin can be created in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Rust,
    /// Built with componentize-py.
    Python,
    /// Built with componentize-js.
    Js,
}

impl Lang {
    /// The limits a plugin in this language needs beyond the host's defaults, as (`memory_mib`,
    /// `call_deadline_ms`). A Python call costs about ten times a Rust one; the JavaScript
    /// engine's heap is collected lazily and a batch of 1000 readings takes about 100 ms.
    pub fn limits(self) -> Option<(u64, u64)> {
        match self {
            Lang::Rust => None,
            Lang::Python => Some((64, 500)),
            Lang::Js => Some((128, 1_000)),
        }
    }
}

/// What to create.
pub struct Scaffold {
    pub name: String,
    pub kind: Kind,
    pub lang: Lang,
    /// The folder to create (it must not exist, or be empty).
    pub dir: PathBuf,
    /// The Garonne SDK crate (`plugins/sdk` of a checkout), for Rust.
    pub sdk: PathBuf,
    /// The `plugins` folder of the Garonne checkout, whose build tools (`python/.venv`,
    /// `js/node_modules`) the Python and JavaScript build scripts use when they have none of
    /// their own.
    pub tools: PathBuf,
}

impl Scaffold {
    /// Writes the plugin's folder; returns the files written.
    pub fn create(&self) -> Result<Vec<PathBuf>, ScaffoldError> {
        check_name(&self.name)?;
        if std::fs::read_dir(&self.dir).is_ok_and(|mut entries| entries.next().is_some()) {
            return Err(ScaffoldError::Exists(self.dir.clone()));
        }
        let fill = |template: &str| {
            template
                .replace("{{name}}", &self.name)
                .replace("{{Name}}", &camel_case(&self.name))
                .replace("{{sdk}}", &self.sdk.display().to_string())
                .replace("{{tools}}", &self.tools.display().to_string())
                .replace("{{world}}", self.kind.world())
        };
        let (processor, model) = match self.lang {
            Lang::Rust => (RUST_PROCESSOR, RUST_MODEL),
            Lang::Python => (PYTHON_PROCESSOR, PYTHON_MODEL),
            Lang::Js => (JS_PROCESSOR, JS_MODEL),
        };
        let source = fill(if self.kind == Kind::Processor { processor } else { model });
        let mut files = vec![("README.md", self.readme())];
        match self.lang {
            Lang::Rust => files.extend([
                ("Cargo.toml", fill(CARGO_TOML)),
                (".cargo/config.toml", CARGO_CONFIG.to_owned()),
                (".gitignore", "/target\n".to_owned()),
                ("src/lib.rs", source),
            ]),
            Lang::Python => files.extend([
                ("app.py", source),
                ("build.sh", fill(PYTHON_BUILD)),
                ("requirements.txt", PYTHON_REQUIREMENTS.to_owned()),
                ("wit/plugin.wit", LATEST_WIT.to_owned()),
                (".gitignore", "/.venv\n__pycache__/\n/*.wasm\n".to_owned()),
            ]),
            Lang::Js => files.extend([
                ("app.js", source),
                ("build.sh", fill(JS_BUILD)),
                ("package.json", fill(JS_PACKAGE)),
                ("wit/plugin.wit", LATEST_WIT.to_owned()),
                (".gitignore", "/node_modules\n/*.wasm\n".to_owned()),
            ]),
        }
        match self.kind {
            Kind::Processor => files.extend([
                ("testdata/input.jsonl", PROCESSOR_INPUT.to_owned()),
                ("testdata/config.toml", PROCESSOR_CONFIG.to_owned()),
                ("testdata/expected.jsonl", fill(PROCESSOR_EXPECTED)),
            ]),
            Kind::SensorModel => files.extend([
                ("testdata/stations.json", MODEL_STATIONS.to_owned()),
                ("testdata/config.toml", MODEL_CONFIG.to_owned()),
                ("testdata/expected.jsonl", MODEL_EXPECTED.to_owned()),
            ]),
        }
        let mut written = Vec::new();
        for (relative, text) in files {
            let path = self.dir.join(relative);
            write(&path, &text, relative.ends_with(".sh"))?;
            written.push(path);
        }
        Ok(written)
    }

    /// The `.wasm` the build makes, relative to the plugin's folder.
    pub fn wasm(&self) -> String {
        match self.lang {
            Lang::Rust => format!("target/wasm32-wasip2/release/{}.wasm", self.name),
            Lang::Python | Lang::Js => format!("{}.wasm", self.name),
        }
    }

    /// The command that builds the plugin, from its folder.
    pub fn build_command(&self) -> &'static str {
        match self.lang {
            Lang::Rust => "cargo build --release",
            Lang::Python | Lang::Js => "./build.sh",
        }
    }

    /// The command that tests the plugin against its testdata, from its folder.
    pub fn test_command(&self) -> String {
        let wasm = self.wasm();
        let limits = match self.lang.limits() {
            Some((memory, deadline)) => format!(" --memory-mib {memory} --call-deadline-ms {deadline}"),
            None => String::new(),
        };
        match self.kind {
            Kind::Processor => format!(
                "host plugin test {wasm} --input testdata/input.jsonl --config testdata/config.toml --expect testdata/expected.jsonl{limits}"
            ),
            Kind::SensorModel => format!(
                "host plugin test {wasm} --stations testdata/stations.json --config testdata/config.toml \
                 --from 2026-01-01T00:00:00Z --to 2026-01-01T01:00:00Z --interval-s 1800 --expect testdata/expected.jsonl{limits}"
            ),
        }
    }

    fn readme(&self) -> String {
        let what = match self.kind {
            Kind::Processor => "reads readings and publishes what it computes",
            Kind::SensorModel => "simulates sensors at the stations it is given",
        };
        let (source, build) = match self.lang {
            Lang::Rust => ("src/lib.rs", "builds target/wasm32-wasip2/release/"),
            Lang::Python => ("app.py", "componentize-py 0.25.1: builds "),
            Lang::Js => ("app.js", "componentize-js 0.23.0: builds "),
        };
        let stations = match self.kind {
            Kind::Processor => "",
            Kind::SensorModel => " --stations testdata/stations.json --speed 60",
        };
        let run = match self.lang.limits() {
            None => format!("host run --plugin {}{stations}\n```\n", self.wasm()),
            Some((memory, deadline)) => format!(
                "```\n\nIn Python or JavaScript a plugin needs more than the host's default limits: in a\n\
                 pipeline file (see the Garonne README), give it\n\n\
                 ```toml\n[[plugin]]\npath = \"{wasm}\"\n{model}[plugin.limits]\nmemory_mib = {memory}\ncall_deadline_ms = {deadline}\n```\n",
                wasm = self.wasm(),
                model = match self.kind {
                    Kind::Processor => "",
                    Kind::SensorModel => "stations = \"testdata/stations.json\"\n",
                },
            ),
        };
        let tools = match self.lang {
            Lang::Rust => String::new(),
            Lang::Python | Lang::Js => {
                "\n`build.sh` uses the build tool of the Garonne checkout this plugin was created from, \
                 or says how to\ninstall it. `wit/plugin.wit` is the contract the plugin is built against.\n"
                    .to_owned()
            }
        };
        format!(
            "# {name}\n\nA Garonne {world} plugin: it {what}. The code is in `{source}`.\n\n\
             ```sh\n{build_command}      # {build}{name}.wasm\n{test}\n{run}{tools}\n\
             `testdata/expected.jsonl` is what the plugin must publish for the test input: change it\n\
             when you change the plugin (each line names only the keys it checks).\n",
            name = self.name,
            world = self.kind.world(),
            build_command = self.build_command(),
            test = self.test_command(),
        )
    }
}

fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid { Ok(()) } else { Err(ScaffoldError::Name(name.to_owned())) }
}

/// `heat_alert` → `HeatAlert`.
fn camel_case(name: &str) -> String {
    name.split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect()
}

fn write(path: &Path, text: &str, executable: bool) -> Result<(), ScaffoldError> {
    let error = |error| ScaffoldError::Write { path: path.to_owned(), error };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(error)?;
    }
    std::fs::write(path, text).map_err(error)?;
    #[cfg(unix)]
    if executable {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(error)?;
    }
    #[cfg(not(unix))]
    let _ = executable;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_become_type_names() {
        assert!(check_name("heat_alert2").is_ok());
        for bad in ["", "Heat", "2hot", "heat-alert", "héat"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert_eq!(camel_case("heat_alert"), "HeatAlert");
    }

    #[test]
    fn templates_have_no_placeholder_left() {
        let dir = std::env::temp_dir().join(format!("garonne-scaffold-{}", std::process::id()));
        for lang in [Lang::Rust, Lang::Python, Lang::Js] {
            for kind in [Kind::Processor, Kind::SensorModel] {
                let _ = std::fs::remove_dir_all(&dir);
                let scaffold = Scaffold {
                    name: "heat_alert".into(),
                    kind,
                    lang,
                    dir: dir.clone(),
                    sdk: "/sdk".into(),
                    tools: "/tools".into(),
                };
                for file in scaffold.create().expect("created") {
                    let text = std::fs::read_to_string(&file).expect("read");
                    assert!(!text.contains("{{"), "{lang:?} {kind:?}: {}", file.display());
                }
                assert!(
                    matches!(scaffold.create(), Err(ScaffoldError::Exists(_))),
                    "a second time is refused"
                );
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn python_and_javascript_plugins_carry_the_latest_wit_and_a_build_script_for_their_world() {
        let dir = std::env::temp_dir().join(format!("garonne-scaffold-wit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let scaffold = Scaffold {
            name: "my_weather".into(),
            kind: Kind::SensorModel,
            lang: Lang::Js,
            dir: dir.clone(),
            sdk: "/sdk".into(),
            tools: "/checkout/plugins".into(),
        };
        scaffold.create().expect("created");
        let wit = std::fs::read_to_string(dir.join("wit/plugin.wit")).expect("wit");
        assert_eq!(wit, LATEST_WIT);
        let build = std::fs::read_to_string(dir.join("build.sh")).expect("build.sh");
        assert!(build.contains("-n sensor-model"), "{build}");
        assert!(build.contains("-o my_weather.wasm"), "{build}");
        assert!(build.contains("'/checkout/plugins/js/node_modules'"), "{build}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("build.sh")).expect("build.sh").permissions().mode();
            assert_eq!(mode & 0o111, 0o111, "build.sh is executable");
        }
        let test = scaffold.test_command();
        assert!(test.starts_with("host plugin test my_weather.wasm --stations"), "{test}");
        assert!(test.ends_with("--memory-mib 128 --call-deadline-ms 1000"), "{test}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
