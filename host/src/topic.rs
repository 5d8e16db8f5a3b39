//! MQTT topic names and filters.
//!
//! Readings travel on `{prefix}/sensors/{kind}/{sensor_id}`, processor outputs on
//! `{prefix}/{message topic}`, and the host's own messages under `garonne/`. Filters are
//! matched as `rumqttc::matches` does, through [`TopicFilters`].

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

/// Whether `topic` is one of the host's own: a status or a dead letter, not a reading.
pub fn is_hosts_own(topic: &str) -> bool {
    topic.starts_with("garonne/status/") || topic.starts_with("garonne/dead-letter/")
}

/// The retained status topic of one host instance.
pub fn status(instance: &str) -> String {
    format!("garonne/status/{}", level(instance))
}

/// Joins the prefix and a topic a plugin asked for, refusing wildcards and empty levels so a
/// plugin cannot publish outside its prefix or on an invalid topic.
pub fn under_prefix(prefix: &str, relative: &str) -> Option<String> {
    let relative = relative.trim_matches('/');
    // Trimmed, an empty level can only be a `//`. One pass over the bytes: this runs for every
    // message a plugin emits, and three searches and a `format!` were about 2 % of the host's
    // samples in `perf` (packs of 10 readings, 120,000 readings/s).
    let mut after_slash = false;
    let valid = !relative.is_empty()
        && relative.bytes().all(|byte| {
            let empty_level = byte == b'/' && after_slash;
            after_slash = byte == b'/';
            !empty_level && !matches!(byte, b'+' | b'#' | 0)
        });
    valid.then(|| [prefix, "/", relative].concat())
}

/// Topic filters, prepared once for the messages matched against them: a plugin's `publish`
/// filters, the filters of the processors that read it, the input's routes. The host matches
/// every message a plugin emits against them, and splitting each filter for each message was a
/// quarter of its CPU in the load bench's `perf` (with the latency sample's twelve filters).
/// A filter without wildcards is compared whole; one with wildcards is first checked on its
/// literal head, then matched level by level on the rest only.
#[derive(Debug, Clone, Default)]
pub struct TopicFilters {
    filters: Vec<Filter>,
}

#[derive(Debug, Clone)]
struct Filter {
    text: String,
    /// The length of the part before the first wildcard level, without its `/`; the whole
    /// filter's when it has no wildcard.
    head: usize,
}

impl Filter {
    fn new(text: String) -> Self {
        let levels = text.split('/');
        let literal = levels.take_while(|level| *level != "+" && *level != "#");
        let head = literal.map(|level| level.len() + 1).sum::<usize>().saturating_sub(1).min(text.len());
        Self { text, head }
    }

    fn matches(&self, topic: &str) -> bool {
        if self.head == self.text.len() {
            return topic == self.text;
        }
        let (head, rest) = self.text.split_at(self.head);
        topic.strip_prefix(head).is_some_and(|tail| levels_match(tail, rest))
    }
}

/// The level-by-level match of `rumqttc::matches`, without its check for `$`, which slices the
/// topic's first byte and panics when that byte starts a longer character (a reading on
/// `été/…` stopped the input connection); [`TopicFilters::matches`] looks for `$` itself.
fn levels_match(topic: &str, filter: &str) -> bool {
    let mut topic_levels = topic.split('/');
    for level in filter.split('/') {
        if level == "#" {
            return true;
        }
        match topic_levels.next() {
            Some("#") | None => return false,
            Some(t) if level != "+" && level != t => return false,
            Some(_) => {}
        }
    }
    topic_levels.next().is_none()
}

impl TopicFilters {
    pub fn new<S: Into<String>>(filters: impl IntoIterator<Item = S>) -> Self {
        Self { filters: filters.into_iter().map(|f| Filter::new(f.into())).collect() }
    }

    /// Whether any filter matches `topic`. As in `rumqttc::matches`, a topic starting with `$`
    /// matches none: those are the broker's own.
    pub fn matches(&self, topic: &str) -> bool {
        !topic.starts_with('$') && self.filters.iter().any(|filter| filter.matches(topic))
    }

    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// The filters as they were given.
    pub fn iter(&self) -> impl Iterator<Item = &String> {
        self.filters.iter().map(|filter| &filter.text)
    }
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
        assert_eq!(under_prefix("toulouse", "a///b"), None);
        assert_eq!(under_prefix("toulouse", "a/b+"), None);
        assert_eq!(under_prefix("toulouse", "a/\0"), None);
        assert_eq!(under_prefix("toulouse", "///"), None);
        assert_eq!(under_prefix("toulouse", "é/à/ü").as_deref(), Some("toulouse/é/à/ü"));
        assert_eq!(under_prefix("toulouse", ""), None);
    }

    /// Every filter against every topic, as `rumqttc::matches` answers (but for topics that
    /// start with a character of more than one byte, on which it panics: see below).
    #[test]
    fn filters_match_as_rumqttc_matches() {
        let filters = [
            "#", "+", "a", "a/#", "a/+", "a/b", "a/b/#", "a/+/c", "+/b/#", "a//c", "a/+/+", "ab/#",
            "a/b/c/#", "/#", "+/+", "é/+/c", "a/b/", "",
        ];
        let topics = [
            "a", "a/b", "a/b/c", "a/b/c/d", "ab", "ab/c", "a/bc", "a//c", "a/b/", "/a", "/", "", "$SYS/a",
            "a/$b", "a/é/c", "b/b/x", "x/b",
        ];
        for filter in filters {
            let set = TopicFilters::new([filter]);
            for topic in topics {
                let expected = rumqttc::matches(topic, filter);
                assert_eq!(set.matches(topic), expected, "filter {filter:?} on topic {topic:?}");
            }
        }
    }

    #[test]
    fn a_topic_may_start_with_any_character() {
        let set = TopicFilters::new(["#", "+/b/c"]);
        assert!(set.matches("é/b/c"));
        assert!(TopicFilters::new(["é/+/c"]).matches("é/b/c"));
        assert!(!TopicFilters::new(["+/x"]).matches("é/b/c"));
    }

    #[test]
    fn a_set_matches_when_any_of_its_filters_does() {
        let set = TopicFilters::new(["t/rejected/#", "t/clean/+/probe", "t/clean/rain/42"]);
        assert!(set.matches("t/rejected/x/1"));
        assert!(set.matches("t/clean/rain/probe"));
        assert!(set.matches("t/clean/rain/42"));
        assert!(!set.matches("t/clean/rain/43"));
        assert!(!TopicFilters::default().matches("t"));
        assert_eq!(
            set.iter().map(String::as_str).collect::<Vec<_>>(),
            ["t/rejected/#", "t/clean/+/probe", "t/clean/rain/42"]
        );
    }

    #[test]
    fn levels_lose_their_separators() {
        assert_eq!(level("a/b+c#"), "a_b_c_");
        assert_eq!(level(""), "_");
    }
}
