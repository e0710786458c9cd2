//! The function's settings, read once at cold start. Errors name the variable and fail the
//! start.
//!
//! This module is the one place naming the variables the function reads ([`vars`]): the reader
//! ([`Policy::from_lookup`]) and the writer ([`Environment::to_vars`], what `deploy` sets) spell
//! them through the same constants, so what deploy creates is what the function reads.

use std::collections::{BTreeMap, BTreeSet};

use aws_topology::route53::{self, HealthCheckId};
use common::config::{ConfigError, first_of, parse_list};
use common::mode::Mode;

pub use crate::decide::Policy;

/// The names of the variables the function reads.
pub mod vars {
    /// Where a failed health check is pointed so that it stays failed.
    pub const FAILED_OVER_PATH: &str = "FAILED_OVER_PATH";
    /// Health check ids, separated by commas or spaces: when set, only these are ever pinned.
    pub const HEALTH_CHECK_IDS: &str = "HEALTH_CHECK_IDS";
    /// Read by `common::notify` for every function, so named there.
    pub use common::config::NOTIFY_TOPIC_ARN;
    /// `enforce` (the default) or `monitor`: read by all three functions, so named in
    /// `common::mode`.
    pub use common::mode::MODE_VAR;
}

/// The function's mode ([`vars::MODE_VAR`]), read through `lookup`: outside [`Policy`], which
/// is the pure decision's, because the mode is applied by the handler after the decision.
pub fn mode_from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Mode, ConfigError> {
    common::mode::from_lookup(lookup)
}

impl Policy {
    /// Reads [`vars::FAILED_OVER_PATH`] and [`vars::HEALTH_CHECK_IDS`] through `lookup` (the
    /// process environment in production).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let failed_over_path = first_of(&[vars::FAILED_OVER_PATH], &lookup)
            .unwrap_or_else(|| route53::FAILED_OVER_PATH.to_owned());
        if !failed_over_path.starts_with('/') || failed_over_path.contains(char::is_whitespace) {
            return Err(ConfigError::invalid(
                vars::FAILED_OVER_PATH,
                format!("`{failed_over_path}` is not an absolute URL path (it must start with /)"),
            ));
        }
        let allowed = match first_of(&[vars::HEALTH_CHECK_IDS], &lookup) {
            None => None,
            Some(list) => {
                let ids = parse_list(&list)
                    .iter()
                    .map(|id| id.parse::<HealthCheckId>())
                    .collect::<Result<BTreeSet<_>, _>>()
                    .map_err(|err| ConfigError::invalid(vars::HEALTH_CHECK_IDS, err.to_string()))?;
                if ids.is_empty() {
                    return Err(ConfigError::invalid(
                        vars::HEALTH_CHECK_IDS,
                        "lists no health check id; unset it to allow every health check",
                    ));
                }
                Some(ids)
            }
        };
        Ok(Self {
            failed_over_path,
            allowed,
        })
    }
}

/// What a deployment sets for the function: the writing side of [`Policy::from_lookup`] (and of
/// the notifier's topic).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// `None`: the function's default, `aws_topology::route53::FAILED_OVER_PATH`.
    pub failed_over_path: Option<String>,
    /// Empty: not written, every health check may be pinned.
    pub health_check_ids: Vec<String>,
    pub notify_topic_arn: Option<String>,
    /// Written only when not the default (`enforce`).
    pub mode: Mode,
}

impl Environment {
    /// The variables to set, by name.
    pub fn to_vars(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        if let Some(path) = &self.failed_over_path {
            env.insert(vars::FAILED_OVER_PATH.to_owned(), path.clone());
        }
        // An empty list would read as unset anyway; not writing it says so.
        if !self.health_check_ids.is_empty() {
            env.insert(
                vars::HEALTH_CHECK_IDS.to_owned(),
                self.health_check_ids.join(","),
            );
        }
        if let Some(topic) = &self.notify_topic_arn {
            env.insert(vars::NOTIFY_TOPIC_ARN.to_owned(), topic.clone());
        }
        env.extend(common::mode::to_var(self.mode));
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIMARY: &str = "233e180f-f023-45a3-954e-415303f21eab";
    const SECONDARY: &str = "8c1b7e52-0f3a-4d8e-9a51-2b6f0c9d4e11";

    fn lookup(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn policy_defaults_to_the_guides_path_and_no_allowlist() {
        let policy = Policy::from_lookup(lookup(&[])).unwrap();
        assert_eq!(policy.failed_over_path, "/lb-check-failed-over");
        assert_eq!(policy.allowed, None);
    }

    #[test]
    fn policy_reads_path_and_allowlist() {
        let policy = Policy::from_lookup(lookup(&[
            ("FAILED_OVER_PATH", "/never"),
            ("HEALTH_CHECK_IDS", "hc-1, hc-2"),
        ]))
        .unwrap();
        assert_eq!(policy.failed_over_path, "/never");
        assert_eq!(policy.allowed.map(|ids| ids.len()), Some(2));
    }

    #[test]
    fn policy_errors_name_the_setting() {
        let rows: [&'static [(&str, &str)]; 3] = [
            &[("FAILED_OVER_PATH", "lb-check-failed-over")],
            &[("HEALTH_CHECK_IDS", "hc-1, not/an/id")],
            &[("HEALTH_CHECK_IDS", " , ")],
        ];
        for vars in rows {
            let err = Policy::from_lookup(lookup(vars)).unwrap_err().to_string();
            assert!(err.contains(vars[0].0), "{err}");
        }
    }

    #[test]
    fn what_the_environment_writes_the_function_reads() {
        let env = Environment {
            failed_over_path: Some("/never-answers".into()),
            health_check_ids: vec![PRIMARY.into(), SECONDARY.into()],
            notify_topic_arn: Some("arn:aws:sns:eu-west-1:123456789012:failover".into()),
            mode: Mode::Monitor,
        }
        .to_vars();
        let read = |name: &str| env.get(name).cloned();
        let policy = Policy::from_lookup(read).unwrap_or_else(|e| panic!("{e}: {env:?}"));
        assert_eq!(policy.failed_over_path, "/never-answers");
        let allowed: Vec<String> = policy
            .allowed
            .iter()
            .flatten()
            .map(ToString::to_string)
            .collect();
        assert_eq!(allowed, [PRIMARY, SECONDARY]);
        assert_eq!(
            common::config::notify_topic_arn(read).as_deref(),
            Some("arn:aws:sns:eu-west-1:123456789012:failover")
        );
        assert_eq!(mode_from_lookup(read).unwrap(), Mode::Monitor);
    }

    #[test]
    fn a_bad_mode_is_named() {
        let err = mode_from_lookup(lookup(&[("SITEFENCE_MODE", "shadow")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("SITEFENCE_MODE"), "{err}");
        assert_eq!(mode_from_lookup(lookup(&[])).unwrap(), Mode::Enforce);
    }

    #[test]
    fn an_empty_environment_is_the_functions_defaults() {
        let env = Environment::default().to_vars();
        assert!(env.is_empty(), "{env:?}");
        let policy = Policy::from_lookup(|name| env.get(name).cloned())
            .unwrap_or_else(|e| panic!("{e}: {env:?}"));
        assert_eq!(policy.failed_over_path, route53::FAILED_OVER_PATH);
        assert_eq!(policy.allowed, None);
        assert_eq!(
            mode_from_lookup(|name| env.get(name).cloned()).unwrap(),
            Mode::Enforce
        );
    }
}
