//! The `[historian]` section of a pipeline file.
//!
//! ```toml
//! [historian]
//! topics = ["toulouse/sensors/#", "toulouse/quartiers/#", "toulouse/alerts/#", "garonne/status/#"]
//! batch_size = 5000          # points per write, InfluxDB's own advice
//! linger_ms = 1000           # the longest a point waits for its batch to fill
//! spool_dir = "/var/lib/garonne/spool"
//! [historian.influxdb]       # leave out: line-protocol files in `out_dir`
//! url = "http://127.0.0.1:8086"
//! database = "garonne"       # InfluxDB 1.x; or org + bucket for 2.x/3.x
//! ```
//!
//! Secrets never go in the file or on the command line: the token comes from
//! `GARONNE_INFLUX_TOKEN` or `token_file`, the 1.x password from `GARONNE_INFLUX_PASSWORD`.

use std::path::PathBuf;

use serde::Deserialize;

use super::HistorianError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistorianConfig {
    /// Topic filters to store (default: readings, per-quartier aggregates, alerts, and the
    /// hosts' status, stored as metrics).
    pub topics: Vec<String>,
    /// MQTT client id: keep it stable, the broker keeps the session (and what arrives while
    /// the historian is down) under it.
    pub client_id: String,
    pub batch_size: usize,
    pub linger_ms: u64,
    /// Write the batch as soon as the input pauses this long (0: only on size or linger). A
    /// broker sends only so many unacknowledged messages at once (Mosquitto's
    /// `max_inflight_messages`, 20 by default), so waiting for a full batch could stall.
    pub idle_flush_ms: u64,
    /// Compress each batch (InfluxDB's advice for large batches).
    pub gzip: bool,
    /// Where batches wait while the database is unreachable (default: the user's state folder).
    pub spool_dir: Option<PathBuf>,
    pub spool_max_mib: u64,
    /// Measurement name template: `{stream}` (`sensors`, `quartiers`, `alerts`) and `{kind}`.
    pub measurement: String,
    /// With no database: the folder of the line-protocol files.
    pub out_dir: PathBuf,
    pub influxdb: Option<InfluxConfig>,
}

impl Default for HistorianConfig {
    fn default() -> Self {
        Self {
            topics: Vec::new(),
            client_id: "garonne-historian".into(),
            batch_size: 5_000,
            linger_ms: 1_000,
            idle_flush_ms: 20,
            gzip: true,
            spool_dir: None,
            spool_max_mib: 1_024,
            measurement: "{stream}".into(),
            out_dir: PathBuf::from("garonne-history"),
            influxdb: None,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InfluxConfig {
    /// `http://host:8086`
    pub url: String,
    /// InfluxDB 1.x: the database (`/write?db=`), optional retention policy and user.
    pub database: Option<String>,
    pub retention_policy: Option<String>,
    pub username: Option<String>,
    #[serde(skip)]
    pub password: Option<String>,
    /// InfluxDB 2.x and 3.x: organisation and bucket (`/api/v2/write`).
    pub org: Option<String>,
    pub bucket: Option<String>,
    /// A file holding the token (for Docker secrets); `GARONNE_INFLUX_TOKEN` takes precedence.
    pub token_file: Option<PathBuf>,
    #[serde(skip)]
    pub token: Option<String>,
}

/// Which write API a configuration speaks.
pub enum InfluxApi<'c> {
    V1 { database: &'c str },
    V2 { org: &'c str, bucket: &'c str },
}

impl InfluxConfig {
    pub fn api(&self) -> Result<InfluxApi<'_>, HistorianError> {
        match (&self.database, &self.org, &self.bucket) {
            (Some(database), None, None) => Ok(InfluxApi::V1 { database }),
            (None, Some(org), Some(bucket)) => Ok(InfluxApi::V2 { org, bucket }),
            _ => Err(HistorianError::Config(
                "historian.influxdb: give `database` (InfluxDB 1.x) or both `org` and `bucket` \
                 (InfluxDB 2.x/3.x), not both"
                    .into(),
            )),
        }
    }
}

impl HistorianConfig {
    /// Fills what the environment gives: the database URL and the secrets.
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), HistorianError> {
        if let Some(url) = env("GARONNE_INFLUX_URL") {
            self.influxdb.get_or_insert_with(InfluxConfig::default).url = url;
        }
        let Some(influx) = &mut self.influxdb else { return Ok(()) };
        if let Some(user) = env("GARONNE_INFLUX_USERNAME") {
            influx.username = Some(user);
        }
        influx.password = env("GARONNE_INFLUX_PASSWORD");
        influx.token = match (env("GARONNE_INFLUX_TOKEN"), &influx.token_file) {
            (Some(token), _) => Some(token),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    HistorianError::Config(format!("cannot read the token file {}: {e}", path.display()))
                })?;
                Some(text.trim().to_owned())
            }
            (None, None) => None,
        };
        Ok(())
    }

    /// The topics, with the defaults under `prefix` when none are given.
    pub fn topics(&self, prefix: &str) -> Vec<String> {
        if self.topics.is_empty() {
            let mut topics: Vec<String> =
                ["sensors", "quartiers", "alerts"].iter().map(|s| format!("{prefix}/{s}/#")).collect();
            topics.push("garonne/status/#".into());
            topics
        } else {
            self.topics.clone()
        }
    }

    pub fn validate(&self) -> Result<(), HistorianError> {
        if self.batch_size == 0 || self.linger_ms == 0 {
            return Err(HistorianError::Config("historian.batch_size and linger_ms must be > 0".into()));
        }
        if let Some(influx) = &self.influxdb {
            if influx.url.is_empty() {
                return Err(HistorianError::Config(
                    "historian.influxdb.url is missing (or set GARONNE_INFLUX_URL)".into(),
                ));
            }
            influx.api()?;
        }
        Ok(())
    }

    /// The spool folder: the configured one, or `$XDG_STATE_HOME/garonne/spool/{client_id}`.
    pub fn spool_dir(&self) -> PathBuf {
        if let Some(dir) = &self.spool_dir {
            return dir.clone();
        }
        let base = std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
            .unwrap_or_else(|| PathBuf::from("."));
        base.join("garonne/spool").join(crate::topic::level(&self.client_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_come_from_the_environment() {
        let mut config: HistorianConfig = toml::from_str(
            "[influxdb]\nurl = \"http://127.0.0.1:8086\"\norg = \"city\"\nbucket = \"sensors\"\n",
        )
        .expect("valid");
        config.apply_env(|key| (key == "GARONNE_INFLUX_TOKEN").then(|| "s3cret".to_owned())).expect("env");
        let influx = config.influxdb.as_ref().expect("influx");
        assert_eq!(influx.token.as_deref(), Some("s3cret"));
        assert!(matches!(influx.api(), Ok(InfluxApi::V2 { org: "city", bucket: "sensors" })));
        assert!(config.validate().is_ok());
    }

    #[test]
    fn a_token_in_the_file_is_refused_and_both_apis_at_once_too() {
        let result: Result<HistorianConfig, _> = toml::from_str("[influxdb]\nurl = \"x\"\ntoken = \"t\"\n");
        assert!(result.is_err(), "a token must not be accepted in the file");
        let config: HistorianConfig =
            toml::from_str("[influxdb]\nurl = \"http://x\"\ndatabase = \"d\"\nbucket = \"b\"\n")
                .expect("parses");
        let message = config.validate().expect_err("ambiguous").to_string();
        assert!(message.contains("not both"), "{message}");
    }

    #[test]
    fn default_topics_follow_the_prefix() {
        let config = HistorianConfig::default();
        assert_eq!(
            config.topics("city"),
            vec!["city/sensors/#", "city/quartiers/#", "city/alerts/#", "garonne/status/#"]
        );
    }
}
