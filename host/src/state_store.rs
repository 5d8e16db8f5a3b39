//! Processors' state on disk, so that a restart of the host loses no window in progress.
//!
//! `runtime.state_dir` names a folder; each processor's state is a file there, `{name}.state`,
//! written when the host stops and every `runtime.state_save_s` while it runs, and given back to
//! the processor when the host starts again. With the broker's persistent session holding the
//! readings sent while the host was down, a planned restart (an upgrade, a reboot) loses nothing;
//! a crash loses at most what came since the last save.
//!
//! A file holds one JSON line (the format, the plugin's name, its random state and the sensors
//! the plugin had been told of, in their order, since its state refers to them by index), then
//! the plugin's own snapshot as raw bytes. It is written to a temporary file, synced, then
//! renamed over the old one: a crash mid-write leaves the previous file whole.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::sandbox::{Position, SavedState, Sensor};

/// The format's name and version, first in every file: a later host that changes the format
/// refuses an old file with its reason rather than misreading it.
const FORMAT: &str = "garonne-state";
const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot use the state folder {path}: {error}")]
    Folder { path: PathBuf, error: std::io::Error },
    #[error("cannot write the state file {path}: {error}")]
    Write { path: PathBuf, error: std::io::Error },
    #[error("cannot read the state file {path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("the state file {path} is not a state this host can read: {reason}")]
    Format { path: PathBuf, reason: String },
}

/// The folder of the processors' state files.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    plugin: String,
    rng: u64,
    sensors: Vec<SavedSensor>,
    state_bytes: usize,
}

#[derive(Serialize, Deserialize)]
struct SavedSensor {
    id: String,
    kind: String,
    unit: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    position: Option<(f64, f64)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tags: Vec<(String, String)>,
}

impl StateStore {
    /// Opens (and creates) the folder.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        std::fs::create_dir_all(dir).map_err(|error| StateError::Folder { path: dir.into(), error })?;
        Ok(Self { dir: dir.to_owned() })
    }

    pub fn path(&self, plugin: &str) -> PathBuf {
        self.dir.join(format!("{plugin}.state"))
    }

    /// The state saved for `plugin`, if there is one.
    pub fn load(&self, plugin: &str) -> Result<Option<SavedState>, StateError> {
        let path = self.path(plugin);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(StateError::Read { path, error }),
        };
        let mut reader = BufReader::new(file);
        let read = |error| StateError::Read { path: path.clone(), error };
        let format = |reason: String| StateError::Format { path: path.clone(), reason };
        let mut line = String::new();
        reader.read_line(&mut line).map_err(read)?;
        let header: Header = serde_json::from_str(&line).map_err(|e| format(e.to_string()))?;
        if header.format != FORMAT || header.version != VERSION {
            let found = format!("{} version {}", header.format, header.version);
            return Err(format(format!("{found}, where this host reads {FORMAT} version {VERSION}")));
        }
        if header.plugin != plugin {
            return Err(format(format!("it holds the state of `{}`, not of `{plugin}`", header.plugin)));
        }
        let mut state = Vec::with_capacity(header.state_bytes);
        reader.read_to_end(&mut state).map_err(read)?;
        if state.len() != header.state_bytes {
            let (said, found) = (header.state_bytes, state.len());
            return Err(format(format!("its header says {said} bytes of state, the file holds {found}")));
        }
        Ok(Some(SavedState {
            sensors: header.sensors.into_iter().map(Sensor::from).collect(),
            state,
            rng: header.rng,
        }))
    }

    /// Writes `saved` for `plugin`, replacing the previous file only once the new one is whole.
    pub fn save(&self, plugin: &str, saved: &SavedState) -> Result<(), StateError> {
        let path = self.path(plugin);
        let temporary = self.dir.join(format!("{plugin}.state.tmp"));
        let header = Header {
            format: FORMAT.into(),
            version: VERSION,
            plugin: plugin.into(),
            rng: saved.rng,
            sensors: saved.sensors.iter().map(SavedSensor::from).collect(),
            state_bytes: saved.state.len(),
        };
        let write = |error| StateError::Write { path: path.clone(), error };
        let mut file = File::create(&temporary).map_err(write)?;
        let mut text = serde_json::to_vec(&header).map_err(|e| write(std::io::Error::other(e)))?;
        text.push(b'\n');
        file.write_all(&text).map_err(write)?;
        file.write_all(&saved.state).map_err(write)?;
        file.sync_all().map_err(write)?;
        std::fs::rename(&temporary, &path).map_err(write)
    }

    /// Moves a file that could not be used out of the way, keeping it for a person to look at;
    /// returns where it went.
    pub fn set_aside(&self, plugin: &str) -> Result<PathBuf, StateError> {
        let path = self.path(plugin);
        let seconds = crate::clock::wall_clock_millis() / 1000;
        let aside = self.dir.join(format!("{plugin}.state.refused-{seconds}"));
        std::fs::rename(&path, &aside).map_err(|error| StateError::Write { path, error })?;
        Ok(aside)
    }
}

impl From<&Sensor> for SavedSensor {
    fn from(sensor: &Sensor) -> Self {
        SavedSensor {
            id: sensor.id.clone(),
            kind: sensor.kind.clone(),
            unit: sensor.unit.clone(),
            position: sensor.position.map(|p| (p.lat, p.lon)),
            tags: sensor.tags.clone(),
        }
    }
}

impl From<SavedSensor> for Sensor {
    fn from(saved: SavedSensor) -> Self {
        Sensor {
            id: saved.id,
            kind: saved.kind,
            unit: saved.unit,
            position: saved.position.map(|(lat, lon)| Position { lat, lon }),
            tags: saved.tags,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(name: &str) -> StateStore {
        let dir = std::env::temp_dir().join(format!("garonne-state-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        StateStore::open(&dir).expect("a temp folder")
    }

    fn saved() -> SavedState {
        let sensor = |id: &str, position| Sensor {
            id: id.into(),
            kind: "temperature".into(),
            unit: "°C".into(),
            position,
            tags: vec![("quartier".into(), "Capitole".into())],
        };
        SavedState {
            sensors: vec![sensor("a", Some(Position { lat: 43.6, lon: 1.44 })), sensor("b", None)],
            // Bytes that are not text, with a newline inside: the state is not a line.
            state: vec![0, 159, 10, 255, 7],
            rng: 0xdead_beef,
        }
    }

    #[test]
    fn a_saved_state_loads_back_whole_and_a_missing_one_is_none() {
        let store = store("round-trip");
        assert!(store.load("avg_quartier").expect("no error").is_none());
        let state = saved();
        store.save("avg_quartier", &state).expect("saves");
        let loaded = store.load("avg_quartier").expect("reads").expect("a state");
        assert_eq!((loaded.sensors, loaded.state, loaded.rng), (state.sensors, state.state, state.rng));
        // Saved again: replaced, no temporary file left behind.
        store.save("avg_quartier", &SavedState { state: vec![1], ..saved() }).expect("saves");
        assert_eq!(store.load("avg_quartier").expect("reads").map(|s| s.state), Some(vec![1]));
        assert!(!store.dir.join("avg_quartier.state.tmp").exists());
    }

    #[test]
    fn a_damaged_or_foreign_file_is_refused_with_why_and_can_be_set_aside() {
        let store = store("damaged");
        store.save("a", &saved()).expect("saves");
        let text = std::fs::read(store.path("a")).expect("reads");
        std::fs::write(store.path("a"), &text[..text.len() - 2]).expect("writes");
        let error = store.load("a").expect_err("two bytes short").to_string();
        assert!(error.contains("says 5 bytes of state, the file holds 3"), "{error}");
        std::fs::copy(store.path("a"), store.path("b")).expect("copies");
        let error = store.load("b").expect_err("another plugin's").to_string();
        assert!(error.contains("holds the state of `a`, not of `b`"), "{error}");
        std::fs::write(store.path("c"), "not a header\n").expect("writes");
        assert!(matches!(store.load("c"), Err(StateError::Format { .. })));
        let aside = store.set_aside("a").expect("moved");
        assert!(aside.exists() && !store.path("a").exists());
        assert!(store.load("a").expect("no error").is_none());
    }
}
