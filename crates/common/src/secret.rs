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
    /// a `password` field (the form the Kubernetes-side tooling writes). Whitespace around the
    /// JSON object is JSON's and is ignored; the password itself, in either form, must be
    /// non-empty and must neither start nor end with whitespace (see [`SecretFormatError`]).
    pub fn from_secret_string(raw: &str) -> Result<Secret, SecretFormatError> {
        let trimmed = raw.trim_start();
        if trimmed.starts_with('{')
            && let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(trimmed)
        {
            return match fields.get("password") {
                Some(serde_json::Value::String(password)) => Secret::password(password),
                _ => Err(SecretFormatError::NoPasswordField),
            };
        }
        Secret::password(raw)
    }

    /// A password as the webhook sender and Infinispan will compare it, byte for byte: a stray
    /// newline (`echo` adds one, `echo -n` does not) would make every request fail
    /// authentication with nothing in the logs to say why, so it is refused here instead.
    fn password(password: &str) -> Result<Secret, SecretFormatError> {
        if password.trim().is_empty() {
            return Err(SecretFormatError::Empty);
        }
        let at = match (
            password.starts_with(char::is_whitespace),
            password.ends_with(char::is_whitespace),
        ) {
            (false, false) => return Ok(Secret::new(password)),
            (true, false) => WhitespaceAt::Start,
            (false, true) => WhitespaceAt::End,
            (true, true) => WhitespaceAt::BothEnds,
        };
        Err(SecretFormatError::StrayWhitespace(at))
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

/// Why a secret's value is not a usable password. Never carries the value, so it is safe to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SecretFormatError {
    #[error("the secret is a JSON object without a string field `password`")]
    NoPasswordField,
    #[error("the secret has no SecretString (a binary secret)")]
    NoSecretString,
    #[error("the password is empty or only whitespace")]
    Empty,
    #[error(
        "the password {0} whitespace (often the newline `echo` adds); store it without, e.g. with `printf %s`"
    )]
    StrayWhitespace(WhitespaceAt),
}

/// Where a password has whitespace it should not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhitespaceAt {
    Start,
    End,
    BothEnds,
}

impl fmt::Display for WhitespaceAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WhitespaceAt::Start => "starts with",
            WhitespaceAt::End => "ends with",
            WhitespaceAt::BothEnds => "starts and ends with",
        })
    }
}

#[cfg(feature = "secrets")]
pub use cache::{MIN_REREAD_INTERVAL, SecretCache, SecretError};

#[cfg(feature = "secrets")]
mod cache {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use aws_config::SdkConfig;
    use aws_sdk_secretsmanager::Client;
    use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
    // Tokio's clock, so that tests can pause and advance it.
    use tokio::time::Instant;

    use super::{Secret, SecretFormatError};

    /// The least time between two re-reads of one secret after a rejection
    /// ([`SecretCache::refresh_after_rejection`]). A rotation is seen by the first rejected
    /// request that comes at least this long after the previous re-read, so within seconds
    /// rather than after the cache's time to live; and a stream of requests with a wrong
    /// password costs Secrets Manager at most one `GetSecretValue` per secret per interval.
    pub const MIN_REREAD_INTERVAL: Duration = Duration::from_secs(5);

    /// A secret that could not be read or is not a usable password. Names the secret, never
    /// its value.
    #[derive(Debug, Clone, thiserror::Error)]
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
        /// secret, a missing permission or a value that is not a usable password.
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

    /// The last re-read of a secret after a rejection.
    struct Reread {
        at: Instant,
        /// Why it failed, if it did: given again until the next re-read is allowed.
        failed: Option<SecretError>,
    }

    /// Where values are read: Secrets Manager, or in unit tests a map.
    #[derive(Clone)]
    enum Source {
        SecretsManager(Client),
        #[cfg(test)]
        Fake(Arc<fake::Store>),
    }

    /// Reads secrets from Secrets Manager (the `AWSCURRENT` version) and keeps them for a time
    /// to live, so that warm invocations do not call Secrets Manager at all. Every value read,
    /// at a cold start, after the time to live or after a rejection, is checked to be a usable
    /// password ([`Secret::from_secret_string`]). Cheap to clone; clones share the cache.
    #[derive(Clone)]
    pub struct SecretCache {
        source: Source,
        ttl: Duration,
        entries: Arc<Mutex<HashMap<String, Entry>>>,
        /// Each secret's last re-read after a rejection. Held across that read, so that
        /// concurrent rejections wait for it and use its value instead of reading again.
        rereads: Arc<tokio::sync::Mutex<HashMap<String, Reread>>>,
    }

    impl SecretCache {
        pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

        pub fn new(sdk: &SdkConfig, ttl: Duration) -> SecretCache {
            SecretCache::with_source(Source::SecretsManager(Client::new(sdk)), ttl)
        }

        fn with_source(source: Source, ttl: Duration) -> SecretCache {
            SecretCache {
                source,
                ttl,
                entries: Arc::default(),
                rereads: Arc::default(),
            }
        }

        /// The secret `name` (a name or an ARN), from the cache while it is fresh.
        pub async fn get(&self, name: &str) -> Result<Secret, SecretError> {
            if let Some(value) = self.cached(name) {
                return Ok(value);
            }
            let value = self.read(name).await?;
            self.keep(name, &value);
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

        /// Call when `rejected`, the value of secret `name` that was just used, did not
        /// authenticate (an incoming request carried other credentials, or a server refused
        /// ours): the secret may have been rotated since it was cached. Returns the value to
        /// check again with, or `None` when there is none:
        ///
        /// * the cache already holds another value (a concurrent rejection re-read it): that
        ///   value, without a read;
        /// * else, unless this secret was re-read less than [`MIN_REREAD_INTERVAL`] ago, it is
        ///   read from Secrets Manager now and the value read replaces the cached one, so that
        ///   [`get`](Self::get) never returns `rejected` again once it has been rotated away;
        ///   `Some` when it differs from `rejected`.
        ///
        /// A failed read (Secrets Manager unavailable, or a value that is not a usable
        /// password) is an error naming the secret, and the cached value is left as it was
        /// until its time to live ends. Until the next re-read is allowed, that same error is
        /// returned again without a read, not `None`: a sender answered 5xx and retrying must
        /// not then be told 401, which Alertmanager does not retry.
        pub async fn refresh_after_rejection(
            &self,
            name: &str,
            rejected: &Secret,
        ) -> Result<Option<Secret>, SecretError> {
            let mut rereads = self.rereads.lock().await;
            if let Some(current) = self.cached(name)
                && current != *rejected
            {
                return Ok(Some(current));
            }
            let now = Instant::now();
            if let Some(last) = rereads.get(name)
                && now.duration_since(last.at) < MIN_REREAD_INTERVAL
            {
                return match &last.failed {
                    Some(err) => Err(err.clone()),
                    None => Ok(None),
                };
            }
            let read = self.read(name).await;
            rereads.insert(
                name.to_owned(),
                Reread {
                    at: now,
                    failed: read.as_ref().err().cloned(),
                },
            );
            let value = read?;
            self.keep(name, &value);
            Ok((value != *rejected).then_some(value))
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

        fn keep(&self, name: &str, value: &Secret) {
            if let Ok(mut entries) = self.entries.lock() {
                entries.insert(
                    name.to_owned(),
                    Entry {
                        value: value.clone(),
                        read_at: Instant::now(),
                    },
                );
            }
        }

        async fn read(&self, name: &str) -> Result<Secret, SecretError> {
            let raw = match &self.source {
                Source::SecretsManager(client) => read_secret_string(client, name).await?,
                #[cfg(test)]
                Source::Fake(store) => store.read(name).await,
            };
            let raw = raw.ok_or_else(|| SecretError::Format {
                name: name.to_owned(),
                source: SecretFormatError::NoSecretString,
            })?;
            Secret::from_secret_string(&raw).map_err(|source| SecretError::Format {
                name: name.to_owned(),
                source,
            })
        }
    }

    /// `GetSecretValue` without a version: the `AWSCURRENT` version's `SecretString`.
    async fn read_secret_string(
        client: &Client,
        name: &str,
    ) -> Result<Option<String>, SecretError> {
        let output = client
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
        Ok(output.secret_string)
    }

    #[cfg(test)]
    mod fake {
        use std::collections::HashMap;
        use std::sync::Mutex;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::time::Duration;

        /// Secrets Manager as a map from name to `SecretString`, counting reads. A read takes
        /// [`Store::READ_TIME`] of (tokio's) time, so that reads can overlap.
        #[derive(Default)]
        pub(super) struct Store {
            values: Mutex<HashMap<String, String>>,
            reads: AtomicUsize,
        }

        impl Store {
            pub(super) const READ_TIME: Duration = Duration::from_millis(50);

            pub(super) fn put(&self, name: &str, value: &str) {
                if let Ok(mut values) = self.values.lock() {
                    values.insert(name.to_owned(), value.to_owned());
                }
            }

            pub(super) fn reads(&self) -> usize {
                self.reads.load(Ordering::SeqCst)
            }

            pub(super) async fn read(&self, name: &str) -> Option<String> {
                self.reads.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Self::READ_TIME).await;
                self.values.lock().ok()?.get(name).cloned()
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::secret::WhitespaceAt;

        const WEBHOOK: &str = "fence/webhook-password";
        const INFINISPAN: &str = "fence/infinispan-password";

        fn fake_cache() -> (SecretCache, Arc<fake::Store>) {
            let store = Arc::new(fake::Store::default());
            let cache =
                SecretCache::with_source(Source::Fake(store.clone()), SecretCache::DEFAULT_TTL);
            (cache, store)
        }

        fn secret(value: &str) -> Secret {
            Secret::new(value)
        }

        async fn value(cache: &SecretCache, name: &str) -> String {
            match cache.get(name).await {
                Ok(secret) => secret.expose().to_owned(),
                Err(err) => format!("error: {err}"),
            }
        }

        #[tokio::test(start_paused = true)]
        async fn rotation_is_seen_at_the_first_rejection_and_the_old_password_stops_working() {
            let (cache, store) = fake_cache();
            store.put(WEBHOOK, "old");
            assert_eq!(value(&cache, WEBHOOK).await, "old");
            store.put(WEBHOOK, "new");
            assert_eq!(value(&cache, WEBHOOK).await, "old", "cached for the TTL");

            let fresh = cache.refresh_after_rejection(WEBHOOK, &secret("old")).await;
            assert_eq!(fresh.unwrap(), Some(secret("new")));
            assert_eq!(value(&cache, WEBHOOK).await, "new", "old is forgotten");
            assert_eq!(store.reads(), 2);
        }

        #[tokio::test(start_paused = true)]
        async fn rereads_after_rejections_are_at_most_one_per_interval_per_secret() {
            let (cache, store) = fake_cache();
            store.put(WEBHOOK, "pw");
            store.put(INFINISPAN, "ispn");
            cache.get(WEBHOOK).await.unwrap();
            let pw = secret("pw");

            // A wrong password: the secret is re-read once, and holds nothing else to try.
            assert_eq!(
                cache.refresh_after_rejection(WEBHOOK, &pw).await.unwrap(),
                None
            );
            assert_eq!(store.reads(), 2);
            // More wrong passwords within the interval read nothing, even once it is rotated.
            store.put(WEBHOOK, "rotated");
            for _ in 0..10 {
                tokio::time::advance(Duration::from_millis(400)).await;
                assert_eq!(
                    cache.refresh_after_rejection(WEBHOOK, &pw).await.unwrap(),
                    None
                );
            }
            assert_eq!(store.reads(), 2);
            // Another secret has its own interval.
            let ispn = cache
                .refresh_after_rejection(INFINISPAN, &secret("stale"))
                .await;
            assert_eq!(ispn.unwrap(), Some(secret("ispn")));
            assert_eq!(store.reads(), 3);
            // Once the interval has passed, the next rejection reads the rotated value.
            tokio::time::advance(MIN_REREAD_INTERVAL).await;
            let fresh = cache.refresh_after_rejection(WEBHOOK, &pw).await.unwrap();
            assert_eq!(fresh, Some(secret("rotated")));
            assert_eq!(store.reads(), 4);
        }

        #[tokio::test(start_paused = true)]
        async fn concurrent_rejections_share_one_reread() {
            let (cache, store) = fake_cache();
            store.put(WEBHOOK, "old");
            cache.get(WEBHOOK).await.unwrap();
            store.put(WEBHOOK, "new");
            let old = secret("old");
            let (a, b, c) = tokio::join!(
                cache.refresh_after_rejection(WEBHOOK, &old),
                cache.refresh_after_rejection(WEBHOOK, &old),
                cache.refresh_after_rejection(WEBHOOK, &old),
            );
            for fresh in [a, b, c] {
                assert_eq!(fresh.unwrap(), Some(secret("new")));
            }
            assert_eq!(store.reads(), 2, "one read at start, one re-read");
            // A request that checked the old value before the re-read finds the new one at once.
            let late = cache.refresh_after_rejection(WEBHOOK, &old).await.unwrap();
            assert_eq!(late, Some(secret("new")));
            assert_eq!(store.reads(), 2);
        }

        #[tokio::test(start_paused = true)]
        async fn unusable_passwords_are_refused_at_start_and_at_every_reread() {
            let cases: &[(&str, &str, SecretFormatError)] = &[
                (
                    "echo_added_a_newline",
                    "s3cret\n",
                    SecretFormatError::StrayWhitespace(WhitespaceAt::End),
                ),
                (
                    "windows_line_end",
                    "s3cret\r\n",
                    SecretFormatError::StrayWhitespace(WhitespaceAt::End),
                ),
                (
                    "leading_space",
                    " s3cret",
                    SecretFormatError::StrayWhitespace(WhitespaceAt::Start),
                ),
                (
                    "json_password_with_newline",
                    "{\"password\":\"s3cret\\n\"}",
                    SecretFormatError::StrayWhitespace(WhitespaceAt::End),
                ),
                (
                    "empty_json_password",
                    "{\"password\":\"\"}",
                    SecretFormatError::Empty,
                ),
                ("only_a_newline", "\n", SecretFormatError::Empty),
                ("empty", "", SecretFormatError::Empty),
            ];
            for (case, raw, want) in cases {
                // At a cold start.
                let (cache, store) = fake_cache();
                store.put(WEBHOOK, raw);
                let err = cache.get(WEBHOOK).await.unwrap_err();
                assert!(
                    matches!(&err, SecretError::Format { name, source } if name == WEBHOOK && source == want),
                    "{case}: {err:?}"
                );
                assert!(!err.is_retryable(), "{case}");
                let message = err.to_string();
                assert!(message.contains(WEBHOOK), "{case}: {message}");
                assert!(!message.contains("s3cret"), "{case}: {message}");

                // At a re-read after a rotation to it: the error, and the good value stays.
                let (cache, store) = fake_cache();
                store.put(WEBHOOK, "good");
                cache.get(WEBHOOK).await.unwrap();
                store.put(WEBHOOK, raw);
                let err = cache
                    .refresh_after_rejection(WEBHOOK, &secret("good"))
                    .await
                    .unwrap_err();
                assert!(
                    matches!(&err, SecretError::Format { source, .. } if source == want),
                    "{case}: {err:?}"
                );
                assert_eq!(value(&cache, WEBHOOK).await, "good", "{case}");
            }
        }

        #[tokio::test(start_paused = true)]
        async fn a_failed_reread_is_reported_again_until_the_next_is_allowed() {
            let (cache, store) = fake_cache();
            store.put(WEBHOOK, "old");
            cache.get(WEBHOOK).await.unwrap();
            let old = secret("old");
            store.put(WEBHOOK, "new\n");
            let first = cache
                .refresh_after_rejection(WEBHOOK, &old)
                .await
                .unwrap_err();
            // Alertmanager, answered 5xx, retries within the interval: the same error, no read.
            tokio::time::advance(Duration::from_secs(1)).await;
            let again = cache
                .refresh_after_rejection(WEBHOOK, &old)
                .await
                .unwrap_err();
            assert_eq!(again.to_string(), first.to_string());
            assert_eq!(store.reads(), 2);
            // The value is fixed; the next allowed re-read finds it.
            store.put(WEBHOOK, "new");
            tokio::time::advance(MIN_REREAD_INTERVAL).await;
            let fixed = cache.refresh_after_rejection(WEBHOOK, &old).await.unwrap();
            assert_eq!(fixed, Some(secret("new")));
            assert_eq!(store.reads(), 3);
        }

        #[tokio::test(start_paused = true)]
        async fn values_are_read_again_after_the_ttl() {
            let (cache, store) = fake_cache();
            store.put(WEBHOOK, "one");
            assert_eq!(value(&cache, WEBHOOK).await, "one");
            store.put(WEBHOOK, "two");
            tokio::time::advance(SecretCache::DEFAULT_TTL - Duration::from_secs(1)).await;
            assert_eq!(value(&cache, WEBHOOK).await, "one");
            tokio::time::advance(Duration::from_secs(1)).await;
            assert_eq!(value(&cache, WEBHOOK).await, "two");
            let both = cache.get_many(&[WEBHOOK, WEBHOOK]).await.unwrap();
            assert_eq!(both, vec![secret("two"), secret("two")]);
            assert_eq!(store.reads(), 2);
        }

        #[tokio::test(start_paused = true)]
        async fn a_binary_or_missing_secret_string_is_a_format_error() {
            let (cache, _store) = fake_cache();
            let err = cache.get(WEBHOOK).await.unwrap_err();
            assert!(
                matches!(
                    &err,
                    SecretError::Format {
                        source: SecretFormatError::NoSecretString,
                        ..
                    }
                ),
                "{err:?}"
            );
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

    #[test]
    fn whitespace_inside_a_password_or_around_json_is_fine_at_its_ends_it_is_not() {
        let ok: &[(&str, &str)] = &[
            ("pass word", "pass word"),
            ("{\"password\":\"p\"}\n", "p"),
            ("  {\"password\":\"p\"}", "p"),
        ];
        for (raw, want) in ok {
            assert_eq!(
                Secret::from_secret_string(raw).map(|s| s.expose().to_owned()),
                Ok((*want).to_owned()),
                "{raw:?}"
            );
        }
        let refused: &[(&str, SecretFormatError)] = &[
            ("p\n", SecretFormatError::StrayWhitespace(WhitespaceAt::End)),
            (
                "\tp",
                SecretFormatError::StrayWhitespace(WhitespaceAt::Start),
            ),
            (
                " p ",
                SecretFormatError::StrayWhitespace(WhitespaceAt::BothEnds),
            ),
            // Not JSON, so all of it is the password.
            (
                "  {abc",
                SecretFormatError::StrayWhitespace(WhitespaceAt::Start),
            ),
            ("{\"password\":\" \"}", SecretFormatError::Empty),
            (" \n", SecretFormatError::Empty),
        ];
        for (raw, want) in refused {
            assert_eq!(Secret::from_secret_string(raw), Err(*want), "{raw:?}");
        }
        // The message says what is wrong and never shows the value.
        let message = SecretFormatError::StrayWhitespace(WhitespaceAt::End).to_string();
        assert!(
            message.starts_with("the password ends with whitespace"),
            "{message}"
        );
    }
}
