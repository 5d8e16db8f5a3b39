//! A plugin's configuration: the `[plugin.config]` table of the pipeline file, as text pairs.

/// Key/value configuration with typed getters whose errors name the key and the value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    pairs: Vec<(String, String)>,
}

impl Config {
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Self { pairs }
    }

    /// Every key and value, in the order of the pipeline file.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The text of a key, as written in the pipeline file; the first one if a key is repeated.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The text of a key, or `default` when the key is absent.
    pub fn str_or<'a>(&'a self, key: &str, default: &'a str) -> &'a str {
        self.get_str(key).unwrap_or(default)
    }

    /// A finite number, if the key is present; an error if it is present but not a finite number
    /// (`"nan"` and `"inf"` are refused: no plugin setting wants them).
    pub fn get_f64(&self, key: &str) -> Result<Option<f64>, String> {
        self.parse(key, "a number", |v| v.parse::<f64>().ok().filter(|x| x.is_finite()))
    }

    /// A whole number, if the key is present; an error if it is present but not a whole number
    /// of 0 or more.
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>, String> {
        self.parse(key, "a whole number", |v| v.parse::<u64>().ok())
    }

    /// A number, or `default` when the key is absent.
    pub fn f64_or(&self, key: &str, default: f64) -> Result<f64, String> {
        Ok(self.get_f64(key)?.unwrap_or(default))
    }

    /// A whole number, or `default` when the key is absent.
    pub fn u64_or(&self, key: &str, default: u64) -> Result<u64, String> {
        Ok(self.get_u64(key)?.unwrap_or(default))
    }

    fn parse<T>(
        &self,
        key: &str,
        what: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, String> {
        match self.get_str(key) {
            None => Ok(None),
            Some(text) => parse(text.trim())
                .map(Some)
                .ok_or_else(|| format!("config `{key}` must be {what}, not {text:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::new(vec![
            ("window_s".into(), "300".into()),
            ("ratio".into(), "0.5".into()),
            ("mode".into(), "loop".into()),
        ])
    }

    #[test]
    fn typed_getters_read_present_keys_and_default_absent_ones() {
        let c = config();
        assert_eq!(c.get_u64("window_s"), Ok(Some(300)));
        assert_eq!(c.get_f64("ratio"), Ok(Some(0.5)));
        assert_eq!(c.get_str("mode"), Some("loop"));
        assert_eq!(c.f64_or("absent", 2.0), Ok(2.0));
        assert_eq!(c.u64_or("window_s", 1), Ok(300));
        assert_eq!(c.str_or("mode", "trap"), "loop");
        assert_eq!(c.str_or("absent", "trap"), "trap");
    }

    #[test]
    fn surrounding_spaces_are_allowed_but_not_infinities_or_negative_counts() {
        let c = Config::new(vec![
            ("spaced".into(), " 2.5 ".into()),
            ("infinite".into(), "inf".into()),
            ("negative".into(), "-3".into()),
        ]);
        assert_eq!(c.get_f64("spaced"), Ok(Some(2.5)));
        assert!(c.get_f64("infinite").is_err());
        assert_eq!(c.get_u64("negative"), Err("config `negative` must be a whole number, not \"-3\"".into()));
    }

    #[test]
    fn a_bad_value_is_an_error_naming_the_key_and_the_value() {
        let c = config();
        assert_eq!(c.get_f64("mode"), Err("config `mode` must be a number, not \"loop\"".into()));
        assert!(c.get_u64("ratio").is_err());
    }
}
