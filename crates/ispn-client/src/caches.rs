//! Which caches a container-level action must answer for, and checking that they did.
//!
//! A container-level action answers for the caches the server has with a backup to the site.
//! A server that does not have them (yet) answers for fewer, or `{}`, or 204 without a body:
//! read without knowing which caches to expect, that is "every cache ok".

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use crate::CacheResults;

/// The caches Keycloak 26 replicates across sites: the Red Hat build of Keycloak 26.0 High
/// Availability Guide (chapter 5, "Deploy Data Grid for HA with the Data Grid Operator",
/// "Creating the caches") creates exactly these with a backup to the other site, and its
/// chapter 15, "Synchronize Sites", shows `site take-offline --all-caches` answering for
/// these four.
pub const KEYCLOAK_BACKUP_CACHES: [&str; 4] = [
    "actionTokens",
    "authenticationSessions",
    "loginFailures",
    "work",
];

/// Keycloak 24 and 25 replicate the user and client sessions across sites too (from 26 they
/// are kept in the database).
pub const KEYCLOAK_24_BACKUP_CACHES: [&str; 8] = [
    "actionTokens",
    "authenticationSessions",
    "clientSessions",
    "loginFailures",
    "offlineClientSessions",
    "offlineSessions",
    "sessions",
    "work",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheListError {
    #[error("names no cache: at least one cache must answer")]
    Empty,
    #[error("has an empty cache name in `{0}`")]
    EmptyName(String),
}

/// The caches with a backup to the other site that a container-level action must answer
/// `ok` for: at least one, each named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupCaches(BTreeSet<String>);

impl BackupCaches {
    pub fn new<I, S>(names: I) -> Result<BackupCaches, CacheListError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut caches = BTreeSet::new();
        for name in names {
            let trimmed = name.as_ref().trim();
            if trimmed.is_empty() {
                return Err(CacheListError::EmptyName(name.as_ref().to_owned()));
            }
            caches.insert(trimmed.to_owned());
        }
        if caches.is_empty() {
            return Err(CacheListError::Empty);
        }
        Ok(BackupCaches(caches))
    }

    /// A comma-separated list, as in configuration (`actionTokens,work`).
    pub fn parse(list: &str) -> Result<BackupCaches, CacheListError> {
        if list.trim().is_empty() {
            return Err(CacheListError::Empty);
        }
        BackupCaches::new(list.split(',')).map_err(|err| match err {
            CacheListError::EmptyName(_) => CacheListError::EmptyName(list.to_owned()),
            other => other,
        })
    }

    /// [`KEYCLOAK_BACKUP_CACHES`].
    pub fn keycloak() -> BackupCaches {
        BackupCaches(KEYCLOAK_BACKUP_CACHES.map(String::from).into())
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl Default for BackupCaches {
    fn default() -> Self {
        BackupCaches::keycloak()
    }
}

impl fmt::Display for BackupCaches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().collect::<Vec<_>>().join(","))
    }
}

/// Why a container-level answer does not confirm the action: caches that must answer and did
/// not, caches that answered something else than `ok`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct UnconfirmedCaches {
    /// Expected caches the answer does not name.
    pub missing: Vec<String>,
    /// Cache → what it answered instead of `ok` (any cache, expected or not).
    pub failed: BTreeMap<String, String>,
    /// Every cache the answer names.
    pub answered: Vec<String>,
}

impl fmt::Display for UnconfirmedCaches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            let answered = if self.answered.is_empty() {
                "the answer names no cache".to_owned()
            } else {
                format!("it answered for {}", self.answered.join(", "))
            };
            parts.push(format!(
                "no answer for {} ({answered})",
                self.missing.join(", ")
            ));
        }
        if !self.failed.is_empty() {
            let failed: Vec<String> = self
                .failed
                .iter()
                .map(|(cache, answer)| format!("{cache}={answer}"))
                .collect();
            parts.push(format!("failed: {}", failed.join(", ")));
        }
        f.write_str(&parts.join("; "))
    }
}

impl CacheResults {
    /// `Ok` when every cache of `expected` is in the answer and every cache in the answer says
    /// `ok`. An empty answer (`{}`, 204) misses every expected cache.
    pub fn verify(&self, expected: &BackupCaches) -> Result<(), UnconfirmedCaches> {
        let missing: Vec<String> = expected
            .names()
            .filter(|cache| !self.0.contains_key(*cache))
            .map(str::to_owned)
            .collect();
        let failed: BTreeMap<String, String> = self
            .failures()
            .map(|(cache, answer)| (cache.to_owned(), answer.to_owned()))
            .collect();
        if missing.is_empty() && failed.is_empty() {
            return Ok(());
        }
        Err(UnconfirmedCaches {
            missing,
            failed,
            answered: self.caches().map(str::to_owned).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response;

    fn results(body: &str, no_content: bool) -> CacheResults {
        response::cache_results(response::json_body(no_content, body).unwrap()).unwrap()
    }

    /// One answer to a take-offline and what verifying it against Keycloak's caches finds.
    struct Row {
        case: &'static str,
        body: &'static str,
        no_content: bool,
        missing: &'static [&'static str],
        failed: &'static [&'static str],
    }

    const fn row(case: &'static str, body: &'static str) -> Row {
        Row {
            case,
            body,
            no_content: false,
            missing: &[],
            failed: &[],
        }
    }

    #[test]
    fn verify_against_keycloaks_caches() {
        let table = [
            row(
                "every cache ok",
                r#"{"actionTokens":"ok","authenticationSessions":"ok","loginFailures":"OK","work":"ok"}"#,
            ),
            row(
                "more caches than expected, all ok",
                r#"{"actionTokens":"ok","authenticationSessions":"ok","loginFailures":"ok","work":"ok","custom":"ok"}"#,
            ),
            Row {
                missing: &KEYCLOAK_BACKUP_CACHES,
                ..row("seed_trusted_an_empty_object", "{}")
            },
            Row {
                no_content: true,
                missing: &KEYCLOAK_BACKUP_CACHES,
                ..row("seed_trusted_204_without_a_body", "")
            },
            Row {
                missing: &["work"],
                ..row(
                    "a cache the server does not have yet",
                    r#"{"actionTokens":"ok","authenticationSessions":"ok","loginFailures":"ok"}"#,
                )
            },
            Row {
                failed: &["work"],
                ..row(
                    "a cache that failed behind a 200",
                    r#"{"actionTokens":"ok","authenticationSessions":"ok","loginFailures":"ok","work":"Incorrect site name: site-x"}"#,
                )
            },
            Row {
                failed: &["custom"],
                ..row(
                    "an unexpected cache that failed",
                    r#"{"actionTokens":"ok","authenticationSessions":"ok","loginFailures":"ok","work":"ok","custom":"boom"}"#,
                )
            },
        ];
        let keycloak = BackupCaches::keycloak();
        for Row {
            case,
            body,
            no_content,
            missing,
            failed,
        } in table
        {
            match results(body, no_content).verify(&keycloak) {
                Ok(()) => assert!(missing.is_empty() && failed.is_empty(), "{case}"),
                Err(unconfirmed) => {
                    assert_eq!(unconfirmed.missing, missing, "{case}");
                    assert_eq!(
                        unconfirmed.failed.keys().collect::<Vec<_>>(),
                        failed.iter().collect::<Vec<_>>(),
                        "{case}"
                    );
                }
            }
        }
        // What the unverified reading says of the same answers: all ok.
        assert!(results("{}", false).all_ok());
        assert!(results("", true).all_ok());
    }

    #[test]
    fn unconfirmed_caches_name_the_cache_and_its_answer() {
        let empty = results("{}", false)
            .verify(&BackupCaches::keycloak())
            .unwrap_err();
        assert_eq!(
            empty.to_string(),
            "no answer for actionTokens, authenticationSessions, loginFailures, work \
             (the answer names no cache)"
        );
        let mixed = results(r#"{"actionTokens":"ok","work":"ISPN000000: boom"}"#, false)
            .verify(&BackupCaches::new(["actionTokens", "loginFailures", "work"]).unwrap())
            .unwrap_err();
        assert_eq!(
            mixed.to_string(),
            "no answer for loginFailures (it answered for actionTokens, work); \
             failed: work=ISPN000000: boom"
        );
    }

    #[test]
    fn cache_lists_from_configuration() {
        assert_eq!(
            BackupCaches::parse(" work , actionTokens")
                .unwrap()
                .to_string(),
            "actionTokens,work"
        );
        assert_eq!(BackupCaches::parse("work,work").unwrap().names().count(), 1);
        assert_eq!(BackupCaches::parse(""), Err(CacheListError::Empty));
        assert_eq!(BackupCaches::parse("  "), Err(CacheListError::Empty));
        assert_eq!(
            BackupCaches::parse("work,,actionTokens"),
            Err(CacheListError::EmptyName("work,,actionTokens".to_owned()))
        );
        assert_eq!(
            BackupCaches::new(Vec::<String>::new()),
            Err(CacheListError::Empty)
        );
        assert_eq!(
            BackupCaches::default().names().collect::<Vec<_>>(),
            KEYCLOAK_BACKUP_CACHES
        );
        assert!(
            KEYCLOAK_BACKUP_CACHES
                .iter()
                .all(|cache| KEYCLOAK_24_BACKUP_CACHES.contains(cache))
        );
    }
}
