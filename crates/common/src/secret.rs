//! Secrets: a value that never prints, and (feature `secrets`) a Secrets Manager reader that
//! keeps values across warm invocations.

use std::fmt;

/// A password or other secret value. `Debug` and `Display` print `***`, so a secret cannot reach
/// a log through formatting; read it with [`Secret::expose`] where it is used.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads a Secrets Manager `SecretString`: either the password itself, or a JSON object with
    /// a `password` field (the form the Kubernetes-side tooling writes).
    pub fn from_secret_string(raw: &str) -> Result<Secret, SecretFormatError> {
        let trimmed = raw.trim_start();
        if trimmed.starts_with('{')
            && let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(trimmed)
        {
            return match fields.get("password") {
                Some(serde_json::Value::String(password)) => Ok(Secret::new(password.clone())),
                _ => Err(SecretFormatError::NoPasswordField),
            };
        }
        if raw.is_empty() {
            return Err(SecretFormatError::Empty);
        }
        Ok(Secret::new(raw))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretFormatError {
    #[error("the secret is a JSON object without a string field `password`")]
    NoPasswordField,
    #[error("the secret is empty")]
    Empty,
}

#[cfg(feature = "secrets")]
pub use cache::{SecretCache, SecretError};

#[cfg(feature = "secrets")]
mod cache {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use aws_config::SdkConfig;
    use aws_sdk_secretsmanager::Client;
    use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

    use super::{Secret, SecretFormatError};

    #[derive(Debug, thiserror::Error)]
    pub enum SecretError {
        #[error("secret {name}: {message}")]
        Read {
            name: String,
            message: String,
            retryable: bool,
        },
        #[error("secret {name}: {source}")]
        Format {
            name: String,
            source: SecretFormatError,
        },
    }

    impl SecretError {
        /// Whether reading again later may succeed (throttling, network), as opposed to a missing
        /// secret or a missing permission.
        pub fn is_retryable(&self) -> bool {
            matches!(
                self,
                SecretError::Read {
                    retryable: true,
                    ..
                }
            )
        }
    }

    struct Entry {
        value: Secret,
        read_at: Instant,
    }

    /// Reads secrets from Secrets Manager and keeps them for a time to live, so that warm
    /// invocations do not call Secrets Manager at all. Cheap to clone; clones share the cache.
    #[derive(Clone)]
    pub struct SecretCache {
        client: Client,
        ttl: Duration,
        entries: Arc<Mutex<HashMap<String, Entry>>>,
    }

    impl SecretCache {
        pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

        pub fn new(sdk: &SdkConfig, ttl: Duration) -> SecretCache {
            SecretCache {
                client: Client::new(sdk),
                ttl,
                entries: Arc::default(),
            }
        }

        /// The secret `name` (a name or an ARN), from the cache while it is fresh.
        pub async fn get(&self, name: &str) -> Result<Secret, SecretError> {
            if let Some(value) = self.cached(name) {
                return Ok(value);
            }
            let value = self.read(name).await?;
            if let Ok(mut entries) = self.entries.lock() {
                entries.insert(
                    name.to_owned(),
                    Entry {
                        value: value.clone(),
                        read_at: Instant::now(),
                    },
                );
            }
            Ok(value)
        }

        /// Several secrets at once; those not cached are read concurrently (a cold start pays
        /// one round trip, not one per secret). Results are in the order of `names`.
        pub async fn get_many(&self, names: &[&str]) -> Result<Vec<Secret>, SecretError> {
            let mut tasks = tokio::task::JoinSet::new();
            let mut values: Vec<Option<Secret>> = vec![None; names.len()];
            for (index, name) in names.iter().enumerate() {
                match self.cached(name) {
                    Some(value) => values[index] = Some(value),
                    None => {
                        let cache = self.clone();
                        let name = (*name).to_owned();
                        tasks.spawn(async move { (index, cache.get(&name).await) });
                    }
                }
            }
            while let Some(joined) = tasks.join_next().await {
                let (index, result) = joined.map_err(|e| SecretError::Read {
                    name: names.join(","),
                    message: format!("reading task failed: {e}"),
                    retryable: true,
                })?;
                values[index] = Some(result?);
            }
            values
                .into_iter()
                .zip(names)
                .map(|(value, name)| {
                    value.ok_or_else(|| SecretError::Read {
                        name: (*name).to_owned(),
                        message: "not read".to_owned(),
                        retryable: true,
                    })
                })
                .collect()
        }

        /// Forgets a value, e.g. after the server it was sent to rejected it (it may have been
        /// rotated), so that the next [`get`](Self::get) reads it again.
        pub fn invalidate(&self, name: &str) {
            if let Ok(mut entries) = self.entries.lock() {
                entries.remove(name);
            }
        }

        fn cached(&self, name: &str) -> Option<Secret> {
            let entries = self.entries.lock().ok()?;
            let entry = entries.get(name)?;
            (entry.read_at.elapsed() < self.ttl).then(|| entry.value.clone())
        }

        async fn read(&self, name: &str) -> Result<Secret, SecretError> {
            let output = self
                .client
                .get_secret_value()
                .secret_id(name)
                .send()
                .await
                .map_err(|err| {
                    let retryable = match &err {
                        SdkError::TimeoutError(_)
                        | SdkError::DispatchFailure(_)
                        | SdkError::ResponseError(_) => true,
                        SdkError::ServiceError(service) => {
                            service.raw().status().is_server_error()
                                || matches!(
                                    err.code(),
                                    Some("ThrottlingException" | "InternalServiceError")
                                )
                        }
                        _ => false,
                    };
                    SecretError::Read {
                        name: name.to_owned(),
                        message: DisplayErrorContext(&err).to_string(),
                        retryable,
                    }
                })?;
            let raw = output.secret_string().ok_or_else(|| SecretError::Format {
                name: name.to_owned(),
                source: SecretFormatError::Empty,
            })?;
            Secret::from_secret_string(raw).map_err(|source| SecretError::Format {
                name: name.to_owned(),
                source,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret}"), "***");
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(format!("{:?}", Some(&secret)), "Some(***)");
    }

    #[test]
    fn secret_string_plain_or_json() {
        assert_eq!(
            Secret::from_secret_string("s3cret").unwrap().expose(),
            "s3cret"
        );
        assert_eq!(
            Secret::from_secret_string(r#"{"username":"u","password":"p@ss"}"#)
                .unwrap()
                .expose(),
            "p@ss"
        );
        assert_eq!(
            Secret::from_secret_string(r#"{"user":"u"}"#),
            Err(SecretFormatError::NoPasswordField)
        );
        // Looks like JSON but is not: a password may start with a brace.
        assert_eq!(Secret::from_secret_string("{abc").unwrap().expose(), "{abc");
        assert_eq!(
            Secret::from_secret_string(""),
            Err(SecretFormatError::Empty)
        );
    }
}
