//! Alerts when a measure stays above (or below) a threshold for a while, and says when it ends.
//!
//! Config, per kind of measure:
//! - `above.{kind}` and/or `below.{kind}`: the threshold (`above.no2 = 200`, `below.temperature = -5`);
//! - `for_s.{kind}`: how long the value must stay past it before the alert starts (default 0).
//!
//! Kinds without a threshold are ignored, so the plugin can read every stream. Fed with
//! `avg_quartier`'s hourly means (`toulouse/quartiers/#`), `above.no2 = 200` is the regulatory
//! NO2 hourly alert; fed with raw readings, `above.temperature = 35` with `for_s.temperature =
//! 3600` is a heat alert.
//!
//! Output on `alerts/{kind}`: one message when an alert starts (`state = "start"`) and one when
//! it ends (`state = "end"`), with the value, the thresholds (`above`, `below`), and the start
//! time (`since`) and duration (`duration_s`) in the fields. Alerts are per subject (`sensor_id`: a station, or a quartier).

use std::collections::BTreeMap;

use garonne_sdk::{Config, Message, Output, Processor, Reading};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Rule {
    above: Option<f64>,
    below: Option<f64>,
    for_ms: i64,
}

impl Rule {
    fn crossed(&self, value: f64) -> bool {
        self.above.is_some_and(|t| value > t) || self.below.is_some_and(|t| value < t)
    }
}

/// Where one subject stands: past the threshold since when, and whether the alert is on.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Watch {
    since: Option<i64>,
    alerting: bool,
}

#[derive(Default, Serialize, Deserialize)]
struct Thresholds {
    /// By sensor index.
    watches: BTreeMap<u32, Watch>,
    #[serde(skip)]
    rules: BTreeMap<String, Rule>,
}

impl Processor for Thresholds {
    fn init(&mut self, config: &Config) -> Result<(), String> {
        self.rules.clear();
        for (key, _) in config.pairs() {
            let Some((setting, kind)) = key.split_once('.') else {
                return Err(format!("unknown config key `{key}`: use above.KIND, below.KIND or for_s.KIND"));
            };
            let value = config.get_f64(key)?.unwrap_or(f64::NAN);
            let rule =
                self.rules.entry(kind.to_owned()).or_insert(Rule { above: None, below: None, for_ms: 0 });
            match setting {
                "above" => rule.above = Some(value),
                "below" => rule.below = Some(value),
                "for_s" => rule.for_ms = (value * 1000.0) as i64,
                _ => {
                    return Err(format!(
                        "unknown config key `{key}`: use above.KIND, below.KIND or for_s.KIND"
                    ));
                }
            }
        }
        if let Some((kind, _)) = self.rules.iter().find(|(_, r)| r.above.is_none() && r.below.is_none()) {
            return Err(format!("kind `{kind}` has for_s but no above.{kind} or below.{kind}"));
        }
        Ok(())
    }

    fn on_reading(&mut self, reading: &Reading<'_>, out: &mut Output) -> Result<(), String> {
        let sensor = reading.sensor();
        let Some(rule) = self.rules.get(&sensor.kind).copied() else { return Ok(()) };
        let (time, value) = (reading.time(), reading.value());
        let watch = self.watches.entry(reading.sensor_index()).or_default();
        if rule.crossed(value) {
            let since = *watch.since.get_or_insert(time);
            if !watch.alerting && time - since >= rule.for_ms {
                watch.alerting = true;
                out.emit(alert(reading, "start", &rule, since));
            }
        } else {
            if watch.alerting {
                out.emit(alert(reading, "end", &rule, watch.since.unwrap_or(time)));
            }
            *watch = Watch::default();
        }
        Ok(())
    }
}

fn alert(reading: &Reading<'_>, state: &str, rule: &Rule, since: i64) -> Message {
    let mut message = Message::about(format!("alerts/{}", reading.sensor().kind), reading)
        .field("since", since as f64)
        .field("duration_s", (reading.time() - since) as f64 / 1000.0)
        .tag("state", state);
    if let Some(above) = rule.above {
        message = message.field("above", above);
    }
    if let Some(below) = rule.below {
        message = message.field("below", below);
    }
    message
}

garonne_sdk::export_processor!(Thresholds);
