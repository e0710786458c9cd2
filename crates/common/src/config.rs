//! Settings from the environment.
//!
//! Every setting can have aliases (the seeds' names stay valid), so lookups take a list of names
//! and errors name all of them.

use std::time::Duration;

/// A setting is missing or cannot be used; found at cold start, so the function fails fast.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("missing setting: set the environment variable {}", names.join(" or "))]
    Missing { names: Vec<String> },
    #[error("invalid setting {name}: {reason}")]
    Invalid { name: String, reason: String },
}

impl ConfigError {
    pub fn invalid(name: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            name: name.into(),
            reason: reason.into(),
        }
    }
}

/// The SNS topic every function tells of each action it takes (optional). Named here, not in
/// the functions' own settings, because `notify::Notifier` reads it for all three.
pub const NOTIFY_TOPIC_ARN: &str = "NOTIFY_TOPIC_ARN";

/// The topic of [`NOTIFY_TOPIC_ARN`] through `lookup`; `None` when unset or blank (no
/// notifications). Outside `notify` so that it compiles, and is tested, without the SNS client.
pub fn notify_topic_arn(lookup: impl Fn(&str) -> Option<String>) -> Option<String> {
    first_of(&[NOTIFY_TOPIC_ARN], lookup)
}

/// The first of `names` that is set to a non-blank value (trimmed).
pub fn env_first(names: &[&str]) -> Option<String> {
    first_of(names, |name| std::env::var(name).ok())
}

/// Like [`env_first`], but a missing setting is an error naming every alias.
pub fn require(names: &[&str]) -> Result<String, ConfigError> {
    env_first(names).ok_or_else(|| missing(names))
}

/// [`env_first`] over any source of variables, so that configuration parsing can be tested
/// without touching the process environment.
pub fn first_of(names: &[&str], lookup: impl Fn(&str) -> Option<String>) -> Option<String> {
    names.iter().find_map(|name| {
        lookup(name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    })
}

/// The error for a setting that none of `names` provides.
pub fn missing(names: &[&str]) -> ConfigError {
    ConfigError::Missing {
        names: names.iter().map(|name| (*name).to_owned()).collect(),
    }
}

/// Splits a list given as one value, separated by commas and/or whitespace
/// (`HEALTH_CHECK_IDS`, `ROUTE_TABLE_IDS`); empty items are dropped.
pub fn parse_list(value: &str) -> Vec<String> {
    value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Reads a boolean the way operators write them (`true/false`, `1/0`, `yes/no`, `on/off`).
pub fn parse_bool(name: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        other => Err(ConfigError::invalid(
            name,
            format!("`{other}` is not a boolean (true/false)"),
        )),
    }
}

/// Reads a whole number of seconds.
pub fn parse_seconds(name: &str, value: &str) -> Result<Duration, ConfigError> {
    value
        .trim()
        .parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| ConfigError::invalid(name, format!("`{value}` is not a number of seconds")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn first_non_blank_alias_wins() {
        let env = vars(&[("PRIMARY_ENI", "  "), ("host1eni", "eni-1")]);
        assert_eq!(
            first_of(&["PRIMARY_ENI", "host1eni"], env),
            Some("eni-1".to_owned())
        );
    }

    #[test]
    fn a_blank_notify_topic_means_no_notifications() {
        assert_eq!(notify_topic_arn(vars(&[(NOTIFY_TOPIC_ARN, " ")])), None);
        assert_eq!(
            notify_topic_arn(vars(&[(NOTIFY_TOPIC_ARN, "arn:aws:sns:eu-west-1:1:t")])),
            Some("arn:aws:sns:eu-west-1:1:t".to_owned())
        );
    }

    #[test]
    fn missing_setting_names_every_alias() {
        let message = missing(&["PRIMARY_ENI", "host1eni"]).to_string();
        assert!(message.contains("PRIMARY_ENI or host1eni"), "{message}");
    }

    #[test]
    fn lists_split_on_commas_and_spaces() {
        assert_eq!(
            parse_list(" rtb-1, rtb-2 rtb-3,,\nrtb-4 "),
            vec!["rtb-1", "rtb-2", "rtb-3", "rtb-4"]
        );
        assert!(parse_list("  ").is_empty());
    }

    #[test]
    fn booleans_and_seconds() {
        assert!(parse_bool("X", "TRUE").unwrap());
        assert!(!parse_bool("X", "0").unwrap());
        assert!(parse_bool("X", "maybe").is_err());
        assert_eq!(parse_seconds("T", "300").unwrap(), Duration::from_secs(300));
        assert!(parse_seconds("T", "-1").is_err());
    }
}
