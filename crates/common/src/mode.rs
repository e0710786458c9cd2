//! Whether a function changes anything or only says what it would do.
//!
//! One type for the three functions, their decision records and the operator's tool: the fence
//! records it in each decision (`aws_topology::decisions`), `sitefence.toml` sets it (`mode`),
//! deploy writes it as [`MODE_VAR`] and each function's `config` reads it with [`from_lookup`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, first_of};

/// The variable every function reads its mode from. Unset means [`Mode::Enforce`]; deploy
/// writes it only for [`Mode::Monitor`], so that a deployment that never used monitor mode
/// sees no change in its functions' environment.
pub const MODE_VAR: &str = "SITEFENCE_MODE";

/// Whether a function changes anything or only says what it would do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Decide and carry the decision out.
    #[default]
    Enforce,
    /// Decide, record, notify and log the plan; change nothing. For rehearsing a deployment
    /// before it is trusted to act.
    Monitor,
}

impl Mode {
    pub const ALL: [Mode; 2] = [Mode::Enforce, Mode::Monitor];

    /// The name `sitefence.toml`, [`MODE_VAR`] and the decision records use.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Monitor => "monitor",
        }
    }

    pub fn is_monitor(self) -> bool {
        self == Mode::Monitor
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A mode name that is neither `enforce` nor `monitor`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a mode: use `enforce` or `monitor`")]
pub struct UnknownMode(pub String);

impl FromStr for Mode {
    type Err = UnknownMode;

    /// Strict: exactly `enforce` or `monitor` (surrounding blanks aside). A typo must stop the
    /// function at its start rather than make it enforce, or monitor, unintended.
    fn from_str(value: &str) -> Result<Mode, UnknownMode> {
        match value.trim() {
            "enforce" => Ok(Mode::Enforce),
            "monitor" => Ok(Mode::Monitor),
            other => Err(UnknownMode(other.to_owned())),
        }
    }
}

/// The mode of [`MODE_VAR`] through `lookup`: [`Mode::Enforce`] when unset or blank, an error
/// naming the variable for any other value than `enforce` or `monitor`.
pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Mode, ConfigError> {
    match first_of(&[MODE_VAR], lookup) {
        None => Ok(Mode::Enforce),
        Some(value) => value
            .parse()
            .map_err(|e: UnknownMode| ConfigError::invalid(MODE_VAR, e.to_string())),
    }
}

/// The variable a deployment sets for `mode`: none for the default.
pub fn to_var(mode: Mode) -> Option<(String, String)> {
    mode.is_monitor()
        .then(|| (MODE_VAR.to_owned(), mode.as_str().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(value: Option<&'static str>) -> impl Fn(&str) -> Option<String> {
        move |name| {
            (name == MODE_VAR)
                .then(|| value.map(str::to_owned))
                .flatten()
        }
    }

    #[test]
    fn unset_or_blank_is_enforce() {
        assert_eq!(from_lookup(lookup(None)).unwrap(), Mode::Enforce);
        assert_eq!(from_lookup(lookup(Some("  "))).unwrap(), Mode::Enforce);
    }

    #[test]
    fn each_mode_reads_back_what_a_deployment_writes() {
        for mode in Mode::ALL {
            let written = to_var(mode);
            let read = from_lookup(|name| {
                written
                    .as_ref()
                    .filter(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            })
            .unwrap();
            assert_eq!(read, mode);
        }
        assert_eq!(to_var(Mode::Enforce), None, "the default is not written");
    }

    #[test]
    fn anything_else_is_an_error_naming_the_variable() {
        for bad in ["Monitor", "dry-run", "enforcing", "true"] {
            let err = from_lookup(lookup(Some(bad))).unwrap_err().to_string();
            assert!(err.contains(MODE_VAR) && err.contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn serde_names_are_the_config_names() {
        for mode in Mode::ALL {
            assert_eq!(
                serde_json::to_value(mode).unwrap(),
                serde_json::json!(mode.as_str())
            );
        }
    }
}
