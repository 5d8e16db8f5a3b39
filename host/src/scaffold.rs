//! `host plugin new`: a ready-to-build plugin crate, with recorded input and a hand-worked
//! expectation, so that `host plugin test` passes before the student changes a line.

use std::path::{Path, PathBuf};

const CARGO_TOML: &str = include_str!("../templates/rust/Cargo.toml.in");
const CARGO_CONFIG: &str = include_str!("../templates/rust/cargo-config.toml.in");
const PROCESSOR_LIB: &str = include_str!("../templates/rust/processor/src/lib.rs.in");
const PROCESSOR_INPUT: &str = include_str!("../templates/rust/processor/testdata/input.jsonl");
const PROCESSOR_CONFIG: &str = include_str!("../templates/rust/processor/testdata/config.toml");
const PROCESSOR_EXPECTED: &str = include_str!("../templates/rust/processor/testdata/expected.jsonl.in");
const MODEL_LIB: &str = include_str!("../templates/rust/sensor-model/src/lib.rs.in");
const MODEL_STATIONS: &str = include_str!("../templates/rust/sensor-model/testdata/stations.json");
const MODEL_CONFIG: &str = include_str!("../templates/rust/sensor-model/testdata/config.toml");
const MODEL_EXPECTED: &str = include_str!("../templates/rust/sensor-model/testdata/expected.jsonl");

#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "`{0}` is not a valid plugin name: use lower-case letters, digits and `_`, starting with a letter (for example `heat_alert`)"
    )]
    Name(String),
    #[error("{0} already exists and is not empty: choose another name or --dir")]
    Exists(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// The two plugin worlds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Processor,
    SensorModel,
}

/// What to create.
pub struct Scaffold {
    pub name: String,
    pub kind: Kind,
    /// The folder to create (it must not exist, or be empty).
    pub dir: PathBuf,
    /// The Garonne SDK crate (`plugins/sdk` of a checkout).
    pub sdk: PathBuf,
}

impl Scaffold {
    /// Writes the crate; returns the files written.
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
        };
        let mut files = vec![
            ("Cargo.toml", fill(CARGO_TOML)),
            (".cargo/config.toml", CARGO_CONFIG.to_owned()),
            (".gitignore", "/target\n".to_owned()),
            ("README.md", self.readme()),
        ];
        match self.kind {
            Kind::Processor => files.extend([
                ("src/lib.rs", fill(PROCESSOR_LIB)),
                ("testdata/input.jsonl", PROCESSOR_INPUT.to_owned()),
                ("testdata/config.toml", PROCESSOR_CONFIG.to_owned()),
                ("testdata/expected.jsonl", fill(PROCESSOR_EXPECTED)),
            ]),
            Kind::SensorModel => files.extend([
                ("src/lib.rs", fill(MODEL_LIB)),
                ("testdata/stations.json", MODEL_STATIONS.to_owned()),
                ("testdata/config.toml", MODEL_CONFIG.to_owned()),
                ("testdata/expected.jsonl", MODEL_EXPECTED.to_owned()),
            ]),
        }
        let mut written = Vec::new();
        for (relative, text) in files {
            let path = self.dir.join(relative);
            write(&path, &text)?;
            written.push(path);
        }
        Ok(written)
    }

    /// The command that tests the plugin against its testdata, from its folder.
    pub fn test_command(&self) -> String {
        let wasm = format!("target/wasm32-wasip2/release/{}.wasm", self.name);
        match self.kind {
            Kind::Processor => format!(
                "host plugin test {wasm} --input testdata/input.jsonl --config testdata/config.toml --expect testdata/expected.jsonl"
            ),
            Kind::SensorModel => format!(
                "host plugin test {wasm} --stations testdata/stations.json --config testdata/config.toml \
                 --from 2026-01-01T00:00:00Z --to 2026-01-01T01:00:00Z --interval-s 1800 --expect testdata/expected.jsonl"
            ),
        }
    }

    fn readme(&self) -> String {
        let (world, what) = match self.kind {
            Kind::Processor => ("processor", "reads readings and publishes what it computes"),
            Kind::SensorModel => ("sensor-model", "simulates sensors at the stations it is given"),
        };
        let run = match self.kind {
            Kind::Processor => format!("host run --plugin target/wasm32-wasip2/release/{}.wasm", self.name),
            Kind::SensorModel => format!(
                "host run --plugin target/wasm32-wasip2/release/{}.wasm --stations testdata/stations.json --speed 60",
                self.name
            ),
        };
        format!(
            "# {name}\n\nA Garonne {world} plugin: it {what}. The code is in `src/lib.rs`.\n\n\
             ```sh\ncargo build --release      # builds target/wasm32-wasip2/release/{name}.wasm\n\
             {test}\n{run}\n```\n\n\
             `testdata/expected.jsonl` is what the plugin must publish for the test input: change it\n\
             when you change the plugin (each line names only the keys it checks).\n",
            name = self.name,
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

fn write(path: &Path, text: &str) -> Result<(), ScaffoldError> {
    let error = |source| ScaffoldError::Write { path: path.to_owned(), source };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(error)?;
    }
    std::fs::write(path, text).map_err(error)
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
        let _ = std::fs::remove_dir_all(&dir);
        let scaffold = Scaffold {
            name: "heat_alert".into(),
            kind: Kind::Processor,
            dir: dir.clone(),
            sdk: "/sdk".into(),
        };
        for file in scaffold.create().expect("created") {
            let text = std::fs::read_to_string(&file).expect("read");
            assert!(!text.contains("{{"), "{}", file.display());
        }
        assert!(matches!(scaffold.create(), Err(ScaffoldError::Exists(_))), "a second time is refused");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
