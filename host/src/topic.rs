//! MQTT topic names and filters.
//!
//! Readings travel on `{prefix}/sensors/{kind}/{sensor_id}`, processor outputs on
//! `{prefix}/{message topic}`, and the host's own messages under `garonne/`. Filters are
//! matched with `rumqttc::matches`.

/// Makes a string safe as one topic level: no `/`, `+`, `#`, and no empty level.
pub fn level(raw: &str) -> String {
    let cleaned: String = raw
        .chars()
        .map(|c| match c {
            '/' | '+' | '#' | '\0' => '_',
            c => c,
        })
        .collect();
    if cleaned.is_empty() { "_".to_owned() } else { cleaned }
}

/// The topic a reading is published on.
pub fn reading(prefix: &str, kind: &str, sensor_id: &str) -> String {
    format!("{prefix}/sensors/{}/{}", level(kind), level(sensor_id))
}

/// The topic where the input a plugin could not process is kept, for a human to look at.
pub fn dead_letter(plugin: &str) -> String {
    format!("garonne/dead-letter/{}", level(plugin))
}

/// The retained status topic of one host instance.
pub fn status(instance: &str) -> String {
    format!("garonne/status/{}", level(instance))
}

/// Joins the prefix and a topic a plugin asked for, refusing wildcards and empty levels so a
/// plugin cannot publish outside its prefix or on an invalid topic.
pub fn under_prefix(prefix: &str, relative: &str) -> Option<String> {
    let relative = relative.trim_matches('/');
    let valid =
        !relative.is_empty() && relative.split('/').all(|l| !l.is_empty() && !l.contains(['+', '#', '\0']));
    valid.then(|| format!("{prefix}/{relative}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_topics_stay_under_the_prefix() {
        assert_eq!(under_prefix("toulouse", "stats/t/42").as_deref(), Some("toulouse/stats/t/42"));
        assert_eq!(under_prefix("toulouse", "/x/").as_deref(), Some("toulouse/x"));
        assert_eq!(under_prefix("toulouse", "a/#"), None);
        assert_eq!(under_prefix("toulouse", "a//b"), None);
        assert_eq!(under_prefix("toulouse", ""), None);
    }

    #[test]
    fn levels_lose_their_separators() {
        assert_eq!(level("a/b+c#"), "a_b_c_");
        assert_eq!(level(""), "_");
    }
}
