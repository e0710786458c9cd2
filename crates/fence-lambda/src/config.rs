//! The function's settings, read once at cold start. Errors name the variable and fail the
//! start (the seed's variable names are the primary names, so a deployment of the seed can
//! switch binaries without new settings).
//!
//! This module is the one place naming the variables the fence reads ([`vars`]): the reader
//! ([`FenceConfig::from_lookup`]) and the writer ([`Environment::to_vars`], what `deploy` sets)
//! spell them through the same constants, so what deploy creates is what the function reads.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::config::{ConfigError, first_of, missing, parse_bool, parse_seconds};
use common::mode::Mode;
use common::site::{AcceleratorDns, SiteName};
use ispn_client::{BackupCaches, SiteEndpoint, TlsConfig};

use crate::decide::Policy;

/// The names of the variables the fence reads.
pub mod vars {
    pub const WEBHOOK_USER: &str = "WEBHOOK_USER";
    /// Name or ARN of the Secrets Manager secret holding the webhook password.
    pub const WEBHOOK_USER_SECRET: &str = "WEBHOOK_USER_SECRET";
    pub const INFINISPAN_USER: &str = "INFINISPAN_USER";
    /// Name or ARN of the Secrets Manager secret holding the Infinispan password.
    pub const INFINISPAN_USER_SECRET: &str = "INFINISPAN_USER_SECRET";
    /// JSON object: site → Infinispan host, host:port or https URL.
    pub const INFINISPAN_SITE_ENDPOINTS: &str = "INFINISPAN_SITE_ENDPOINTS";
    pub const PREFERRED_SITE: &str = "PREFERRED_SITE";
    /// The PEM text of the CA bundle, or the path of a PEM file.
    pub const INFINISPAN_CA_BUNDLE: &str = "INFINISPAN_CA_BUNDLE";
    pub const INFINISPAN_INSECURE_SKIP_VERIFY: &str = "INFINISPAN_INSECURE_SKIP_VERIFY";
    /// JSON object: site → load balancer ARN or list of ARNs.
    pub const SITE_LOAD_BALANCERS: &str = "SITE_LOAD_BALANCERS";
    pub const ACCELERATOR_DNS_NAME: &str = "ACCELERATOR_DNS_NAME";
    /// The ARN of that accelerator, as deploy found it by its DNS name (and as the function's
    /// policy names it): init lists its listeners at once, without `ListAccelerators`.
    pub const ACCELERATOR_ARN: &str = "ACCELERATOR_ARN";
    pub const SECRETS_REGION: &str = "SECRETS_REGION";
    /// Set by Lambda, never by a deployment: the fallback of [`SECRETS_REGION`].
    pub const AWS_REGION: &str = "AWS_REGION";
    pub const ACCELERATOR_REGION: &str = "ACCELERATOR_REGION";
    pub const ALERT_NAME: &str = "ALERT_NAME";
    pub const TOPOLOGY_TTL_SECONDS: &str = "TOPOLOGY_TTL_SECONDS";
    pub const SECRET_TTL_SECONDS: &str = "SECRET_TTL_SECONDS";
    pub const RETRY_BUDGET_SECONDS: &str = "RETRY_BUDGET_SECONDS";
    /// The DynamoDB table of decision records (in the function's region). Required: without
    /// it two reports that read different facts could fence both sites.
    pub const DECISION_TABLE: &str = "DECISION_TABLE";
    /// Comma-separated caches whose backups a fence takes offline; every one of them must
    /// answer ok (default: the caches Keycloak replicates across sites).
    pub const INFINISPAN_CACHES: &str = "INFINISPAN_CACHES";
    pub const DECISION_STALE_AFTER_SECONDS: &str = "DECISION_STALE_AFTER_SECONDS";
    /// Read by `common::notify` for every function, so named there.
    pub use common::config::NOTIFY_TOPIC_ARN;
    /// `enforce` (the default) or `monitor`: read by all three functions, so named in
    /// `common::mode`.
    pub use common::mode::MODE_VAR;
}

pub const DEFAULT_ALERT_NAME: &str = "SiteOffline";
pub const DEFAULT_TOPOLOGY_TTL: Duration = Duration::from_secs(300);
pub const DEFAULT_SECRET_TTL: Duration = Duration::from_secs(300);
/// How long Global Accelerator conflicts and throttling are retried within one invocation.
pub const DEFAULT_RETRY_BUDGET: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
pub struct FenceConfig {
    pub webhook_user: String,
    /// Name or ARN of the secret holding the webhook password.
    pub webhook_secret: String,
    pub infinispan_user: String,
    /// Name or ARN of the secret holding the Infinispan password.
    pub infinispan_secret: String,
    pub sites: BTreeMap<SiteName, SiteEndpoint>,
    /// The load balancers (Global Accelerator endpoint ids) known to belong to each site,
    /// from `SITE_LOAD_BALANCERS`: their site is not read from ELBv2 tags. Endpoints not
    /// listed still are.
    pub site_load_balancers: BTreeMap<String, SiteName>,
    /// The accelerator whose topology is read during init (`ACCELERATOR_DNS_NAME`), so that a
    /// cold start's first fence does not wait for it.
    pub accelerator_dns: Option<AcceleratorDns>,
    /// `ACCELERATOR_ARN`: the ARN of `accelerator_dns` (only with it).
    pub accelerator_arn: Option<String>,
    pub preferred_site: SiteName,
    pub secrets_region: String,
    pub accelerator_region: String,
    pub alert_name: String,
    pub tls: TlsConfig,
    pub topology_ttl: Duration,
    pub secret_ttl: Duration,
    pub retry_budget: Duration,
    /// The table of decision records.
    pub decision_table: String,
    /// See [`aws_topology::decisions::DEFAULT_STALE_AFTER`].
    pub decision_stale_after: Duration,
    /// The caches whose backups must all go offline.
    pub backup_caches: BackupCaches,
    /// Monitor: decide, record and notify, change nothing.
    pub mode: Mode,
}

impl FenceConfig {
    pub fn from_env() -> Result<FenceConfig, ConfigError> {
        FenceConfig::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings from any source of variables (tests pass a map).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<FenceConfig, ConfigError> {
        let get = |names: &[&str]| first_of(names, &lookup);
        let require = |names: &[&str]| get(names).ok_or_else(|| missing(names));

        let sites_json = require(&[vars::INFINISPAN_SITE_ENDPOINTS])?;
        let sites = parse_sites(&sites_json)?;
        let preferred_site = match get(&[vars::PREFERRED_SITE]) {
            Some(name) => {
                let site = SiteName::parse(&name)
                    .map_err(|e| ConfigError::invalid(vars::PREFERRED_SITE, e.to_string()))?;
                if !sites.contains_key(&site) {
                    return Err(ConfigError::invalid(
                        vars::PREFERRED_SITE,
                        format!(
                            "`{site}` is not a site of {}",
                            vars::INFINISPAN_SITE_ENDPOINTS
                        ),
                    ));
                }
                site
            }
            // At least two sites, checked by parse_sites.
            None => sites
                .keys()
                .next()
                .cloned()
                .ok_or_else(|| missing(&[vars::PREFERRED_SITE]))?,
        };
        let ca_bundle_pem = match get(&[vars::INFINISPAN_CA_BUNDLE]) {
            None => None,
            Some(value) if value.starts_with("-----BEGIN") => Some(value.into_bytes()),
            Some(path) => Some(std::fs::read(&path).map_err(|e| {
                ConfigError::invalid(
                    vars::INFINISPAN_CA_BUNDLE,
                    format!("cannot read `{path}`: {e}"),
                )
            })?),
        };
        let insecure_skip_verify = get(&[vars::INFINISPAN_INSECURE_SKIP_VERIFY])
            .map(|v| parse_bool(vars::INFINISPAN_INSECURE_SKIP_VERIFY, &v))
            .transpose()?
            .unwrap_or(false);
        let seconds = |name: &str, default: Duration| -> Result<Duration, ConfigError> {
            get(&[name]).map_or(Ok(default), |v| parse_seconds(name, &v))
        };

        let site_load_balancers = get(&[vars::SITE_LOAD_BALANCERS])
            .map(|json| parse_load_balancers(&json, &sites))
            .transpose()?
            .unwrap_or_default();
        let accelerator_dns = get(&[vars::ACCELERATOR_DNS_NAME])
            .map(|name| {
                AcceleratorDns::parse(&name)
                    .map_err(|e| ConfigError::invalid(vars::ACCELERATOR_DNS_NAME, e.to_string()))
            })
            .transpose()?;
        let accelerator_arn = get(&[vars::ACCELERATOR_ARN])
            .map(|arn| parse_accelerator_arn(&arn, accelerator_dns.is_some()))
            .transpose()?;

        Ok(FenceConfig {
            webhook_user: require(&[vars::WEBHOOK_USER])?,
            webhook_secret: require(&[vars::WEBHOOK_USER_SECRET])?,
            infinispan_user: require(&[vars::INFINISPAN_USER])?,
            infinispan_secret: require(&[vars::INFINISPAN_USER_SECRET])?,
            sites,
            site_load_balancers,
            accelerator_dns,
            accelerator_arn,
            preferred_site,
            // Lambda always sets AWS_REGION: secrets usually live in the function's region.
            secrets_region: require(&[vars::SECRETS_REGION, vars::AWS_REGION])?,
            accelerator_region: get(&[vars::ACCELERATOR_REGION])
                .unwrap_or_else(|| aws_topology::globalaccelerator::API_REGION.to_owned()),
            alert_name: get(&[vars::ALERT_NAME]).unwrap_or_else(|| DEFAULT_ALERT_NAME.to_owned()),
            tls: TlsConfig {
                ca_bundle_pem,
                insecure_skip_verify,
                ..TlsConfig::default()
            },
            topology_ttl: seconds(vars::TOPOLOGY_TTL_SECONDS, DEFAULT_TOPOLOGY_TTL)?,
            secret_ttl: seconds(vars::SECRET_TTL_SECONDS, DEFAULT_SECRET_TTL)?,
            retry_budget: seconds(vars::RETRY_BUDGET_SECONDS, DEFAULT_RETRY_BUDGET)?,
            decision_table: require(&[vars::DECISION_TABLE])?,
            decision_stale_after: seconds(
                vars::DECISION_STALE_AFTER_SECONDS,
                aws_topology::decisions::DEFAULT_STALE_AFTER,
            )?,
            backup_caches: get(&[vars::INFINISPAN_CACHES])
                .map(|list| {
                    BackupCaches::parse(&list)
                        .map_err(|e| ConfigError::invalid(vars::INFINISPAN_CACHES, e.to_string()))
                })
                .transpose()?
                .unwrap_or_default(),
            mode: common::mode::from_lookup(&lookup)?,
        })
    }

    pub fn policy(&self) -> Policy {
        Policy {
            sites: self.sites.keys().cloned().collect::<BTreeSet<_>>(),
            preferred: self.preferred_site.clone(),
        }
    }
}

/// What a deployment sets for the fence: the writing side of [`FenceConfig::from_lookup`]. The
/// tuning knobs with defaults (TTLs, retry budget, skipping TLS verification) are not written:
/// a deployment leaves them to the function.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    pub webhook_user: String,
    /// Name or ARN of the secret holding the webhook password.
    pub webhook_secret: String,
    pub infinispan_user: String,
    /// Name or ARN of the secret holding the Infinispan password.
    pub infinispan_secret: String,
    /// Site → Infinispan host, host:port or https URL.
    pub site_endpoints: BTreeMap<String, String>,
    pub secrets_region: String,
    /// `None`: the Global Accelerator API's own region.
    pub accelerator_region: Option<String>,
    /// The accelerator whose topology is read during init.
    pub accelerator_dns_name: Option<String>,
    /// Its ARN (written only with the DNS name).
    pub accelerator_arn: Option<String>,
    /// Site → its load balancer's ARN (endpoint id). Written only when some are known: the
    /// function then reads the other endpoints' sites from their ELBv2 tags.
    pub site_load_balancers: BTreeMap<String, String>,
    /// `None`: [`DEFAULT_ALERT_NAME`].
    pub alert_name: Option<String>,
    /// `None`: the alphabetically first site.
    pub preferred_site: Option<String>,
    /// The CA bundle's PEM text, passed whole (the function also accepts a path, which a
    /// deployment has no file for).
    pub ca_bundle_pem: Option<String>,
    pub notify_topic_arn: Option<String>,
    /// The table of decision records.
    pub decision_table: String,
    /// Written only when not the default (`enforce`).
    pub mode: Mode,
}

impl Environment {
    /// The variables to set, by name.
    pub fn to_vars(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        let mut set = |name: &str, value: &str| {
            env.insert(name.to_owned(), value.to_owned());
        };
        set(vars::WEBHOOK_USER, &self.webhook_user);
        set(vars::WEBHOOK_USER_SECRET, &self.webhook_secret);
        set(vars::INFINISPAN_USER, &self.infinispan_user);
        set(vars::INFINISPAN_USER_SECRET, &self.infinispan_secret);
        set(
            vars::INFINISPAN_SITE_ENDPOINTS,
            &json_object(&self.site_endpoints),
        );
        set(vars::SECRETS_REGION, &self.secrets_region);
        set(vars::DECISION_TABLE, &self.decision_table);
        let optional = [
            (vars::ACCELERATOR_REGION, &self.accelerator_region),
            (vars::ACCELERATOR_DNS_NAME, &self.accelerator_dns_name),
            (vars::ACCELERATOR_ARN, &self.accelerator_arn),
            (vars::ALERT_NAME, &self.alert_name),
            (vars::PREFERRED_SITE, &self.preferred_site),
            (vars::INFINISPAN_CA_BUNDLE, &self.ca_bundle_pem),
            (vars::NOTIFY_TOPIC_ARN, &self.notify_topic_arn),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                set(name, value);
            }
        }
        if !self.site_load_balancers.is_empty() {
            set(
                vars::SITE_LOAD_BALANCERS,
                &json_object(&self.site_load_balancers),
            );
        }
        if let Some((name, value)) = common::mode::to_var(self.mode) {
            set(&name, &value);
        }
        env
    }
}

/// `ACCELERATOR_ARN`: a Global Accelerator accelerator's ARN, given with the DNS name it
/// belongs to (the alert names the accelerator by DNS name).
fn parse_accelerator_arn(arn: &str, with_dns_name: bool) -> Result<String, ConfigError> {
    if !with_dns_name {
        return Err(ConfigError::invalid(
            vars::ACCELERATOR_ARN,
            format!(
                "needs {} (the accelerator it names)",
                vars::ACCELERATOR_DNS_NAME
            ),
        ));
    }
    let id = arn
        .strip_prefix("arn:")
        .and_then(|rest| rest.split_once(":globalaccelerator::"))
        .and_then(|(_, rest)| rest.split_once(":accelerator/"))
        .map(|(_, id)| id);
    match id {
        Some(id) if !id.is_empty() && !id.contains('/') => Ok(arn.to_owned()),
        _ => Err(ConfigError::invalid(
            vars::ACCELERATOR_ARN,
            format!(
                "`{arn}` is not an accelerator's ARN (arn:<partition>:globalaccelerator::<account>:accelerator/<id>)"
            ),
        )),
    }
}

/// A map of strings as a JSON object (infallible, unlike serialising through serde).
fn json_object(map: &BTreeMap<String, String>) -> String {
    serde_json::Value::Object(
        map.iter()
            .map(|(key, value)| (key.clone(), serde_json::Value::String(value.clone())))
            .collect(),
    )
    .to_string()
}

/// `{"site-a": "arn:…" | ["arn:…", …], …}` → endpoint id → site, for sites of
/// `INFINISPAN_SITE_ENDPOINTS` only, each load balancer in one site only.
fn parse_load_balancers(
    json: &str,
    sites: &BTreeMap<SiteName, SiteEndpoint>,
) -> Result<BTreeMap<String, SiteName>, ConfigError> {
    const NAME: &str = vars::SITE_LOAD_BALANCERS;
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let raw: BTreeMap<String, OneOrMany> = serde_json::from_str(json).map_err(|e| {
        ConfigError::invalid(
            NAME,
            format!("expected a JSON object site → load balancer ARN or list of ARNs: {e}"),
        )
    })?;
    let mut owners = BTreeMap::new();
    for (name, arns) in raw {
        let site = SiteName::parse(&name)
            .map_err(|e| ConfigError::invalid(NAME, format!("site `{name}` {e}")))?;
        if !sites.contains_key(&site) {
            return Err(ConfigError::invalid(
                NAME,
                format!(
                    "`{site}` is not a site of {}",
                    vars::INFINISPAN_SITE_ENDPOINTS
                ),
            ));
        }
        let arns = match arns {
            OneOrMany::One(arn) => vec![arn],
            OneOrMany::Many(arns) => arns,
        };
        for arn in arns {
            if arn.trim().is_empty() {
                return Err(ConfigError::invalid(
                    NAME,
                    format!("an empty ARN for `{site}`"),
                ));
            }
            if let Some(other) = owners.insert(arn.clone(), site.clone())
                && other != site
            {
                return Err(ConfigError::invalid(
                    NAME,
                    format!("`{arn}` is listed for both `{other}` and `{site}`"),
                ));
            }
        }
    }
    Ok(owners)
}

/// `{"site-a": "host[:port]" | "https://...", ...}`, at least two sites.
fn parse_sites(json: &str) -> Result<BTreeMap<SiteName, SiteEndpoint>, ConfigError> {
    const NAME: &str = vars::INFINISPAN_SITE_ENDPOINTS;
    let raw: BTreeMap<String, String> = serde_json::from_str(json).map_err(|e| {
        ConfigError::invalid(
            NAME,
            format!("expected a JSON object site → host or URL: {e}"),
        )
    })?;
    let mut sites = BTreeMap::new();
    for (name, endpoint) in raw {
        let site = SiteName::parse(&name)
            .map_err(|e| ConfigError::invalid(NAME, format!("site `{name}` {e}")))?;
        let endpoint = SiteEndpoint::parse(&endpoint)
            .map_err(|e| ConfigError::invalid(NAME, e.to_string()))?;
        sites.insert(site, endpoint);
    }
    if sites.len() < 2 {
        return Err(ConfigError::invalid(NAME, "at least two sites are needed"));
    }
    Ok(sites)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed_env() -> Vec<(&'static str, String)> {
        vec![
            ("WEBHOOK_USER", "keycloak".into()),
            ("WEBHOOK_USER_SECRET", "webhook-password".into()),
            ("INFINISPAN_USER", "developer".into()),
            ("INFINISPAN_USER_SECRET", "ispn-password".into()),
            (
                "INFINISPAN_SITE_ENDPOINTS",
                r#"{"site-b": "infinispan.site-b.example:11222", "site-a": "https://infinispan.site-a.example"}"#.into(),
            ),
            ("SECRETS_REGION", "eu-west-1".into()),
            // Not a seed setting: the one the seeds lack, the decision record's table.
            ("DECISION_TABLE", "sitefence-decisions".into()),
        ]
    }

    fn load(vars: &[(&'static str, String)]) -> Result<FenceConfig, ConfigError> {
        FenceConfig::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn the_seed_settings_and_the_decision_table_are_enough() {
        let config = load(&seed_env()).unwrap();
        assert_eq!(config.accelerator_region, "us-west-2");
        assert_eq!(config.alert_name, "SiteOffline");
        assert_eq!(
            config.preferred_site.as_str(),
            "site-a",
            "alphabetically first by default"
        );
        assert_eq!(config.sites.len(), 2);
        assert!(!config.tls.insecure_skip_verify);
        assert_eq!(config.topology_ttl, DEFAULT_TOPOLOGY_TTL);
    }

    #[test]
    fn site_load_balancers_map_each_arn_to_its_site() {
        let mut env = seed_env();
        env.push((
            "SITE_LOAD_BALANCERS",
            r#"{"site-a": "arn:lb-a", "site-b": ["arn:lb-b1", "arn:lb-b2"]}"#.into(),
        ));
        env.push((
            "ACCELERATOR_DNS_NAME",
            "a1234567890abcdef.awsglobalaccelerator.com".into(),
        ));
        let config = load(&env).unwrap();
        assert_eq!(config.site_load_balancers.len(), 3);
        assert_eq!(config.site_load_balancers["arn:lb-b2"].as_str(), "site-b");
        assert!(config.accelerator_dns.is_some());
        let defaults = load(&seed_env()).unwrap();
        assert!(defaults.site_load_balancers.is_empty() && defaults.accelerator_dns.is_none());
    }

    #[test]
    fn bad_site_load_balancers_are_named() {
        for bad in [
            "not json",
            r#"{"site-c": "arn:lb"}"#,
            r#"{"site-a": "arn:lb", "site-b": "arn:lb"}"#,
            r#"{"site-a": ""}"#,
            r#"{"site-a": 5}"#,
        ] {
            let mut env = seed_env();
            env.push(("SITE_LOAD_BALANCERS", bad.into()));
            let err = load(&env).unwrap_err().to_string();
            assert!(err.contains("SITE_LOAD_BALANCERS"), "{bad}: {err}");
        }
        let mut env = seed_env();
        env.push(("ACCELERATOR_DNS_NAME", "not a name".into()));
        let err = load(&env).unwrap_err().to_string();
        assert!(err.contains("ACCELERATOR_DNS_NAME"), "{err}");
    }

    #[test]
    fn each_missing_seed_setting_is_named() {
        for name in [
            "WEBHOOK_USER",
            "WEBHOOK_USER_SECRET",
            "INFINISPAN_USER",
            "INFINISPAN_USER_SECRET",
            "INFINISPAN_SITE_ENDPOINTS",
            "SECRETS_REGION",
            "DECISION_TABLE",
        ] {
            let vars: Vec<_> = seed_env().into_iter().filter(|(k, _)| *k != name).collect();
            let err = load(&vars).unwrap_err().to_string();
            assert!(err.contains(name), "{name}: {err}");
        }
    }

    #[test]
    fn bad_settings_fail_with_a_clear_message() {
        let table: &[(&'static str, &str, &str)] = &[
            ("INFINISPAN_SITE_ENDPOINTS", "not json", "JSON object"),
            (
                "INFINISPAN_SITE_ENDPOINTS",
                r#"{"site-a": "a.example"}"#,
                "at least two",
            ),
            (
                "INFINISPAN_SITE_ENDPOINTS",
                r#"{"site a": "a", "b": "b"}"#,
                "site a",
            ),
            (
                "INFINISPAN_SITE_ENDPOINTS",
                r#"{"a": "http://a", "b": "b"}"#,
                "https",
            ),
            ("PREFERRED_SITE", "site-c", "site-c"),
            (
                "INFINISPAN_INSECURE_SKIP_VERIFY",
                "perhaps",
                "INFINISPAN_INSECURE_SKIP_VERIFY",
            ),
            ("TOPOLOGY_TTL_SECONDS", "soon", "TOPOLOGY_TTL_SECONDS"),
            (
                "INFINISPAN_CA_BUNDLE",
                "no-such-file.pem",
                "no-such-file.pem",
            ),
        ];
        for (name, value, expect) in table {
            let mut vars = seed_env();
            vars.retain(|(k, _)| k != name);
            vars.push((name, (*value).to_owned()));
            let err = load(&vars).unwrap_err().to_string();
            assert!(err.contains(expect), "{name}={value}: {err}");
        }
    }

    #[test]
    fn optional_settings() {
        let mut vars = seed_env();
        vars.push(("PREFERRED_SITE", "site-b".into()));
        vars.push(("ACCELERATOR_REGION", "us-east-1".into()));
        vars.push(("ALERT_NAME", "SiteDown".into()));
        vars.push(("INFINISPAN_INSECURE_SKIP_VERIFY", "true".into()));
        vars.push((
            "INFINISPAN_CA_BUNDLE",
            "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n".into(),
        ));
        let config = load(&vars).unwrap();
        assert_eq!(config.preferred_site.as_str(), "site-b");
        assert_eq!(config.accelerator_region, "us-east-1");
        assert_eq!(config.alert_name, "SiteDown");
        assert!(config.tls.insecure_skip_verify);
        assert!(config.tls.ca_bundle_pem.is_some());
    }

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n";

    fn deployed() -> Environment {
        let strings = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>()
        };
        Environment {
            webhook_user: "keycloak".into(),
            webhook_secret: "fence/webhook-password".into(),
            infinispan_user: "developer".into(),
            infinispan_secret: "fence/infinispan-password".into(),
            site_endpoints: strings(&[
                ("site-a", "https://infinispan.site-a.example"),
                ("site-b", "infinispan.site-b.example:11222"),
            ]),
            secrets_region: "eu-west-1".into(),
            accelerator_region: Some("us-west-2".into()),
            accelerator_dns_name: Some("a1234567890abcdef.awsglobalaccelerator.com".into()),
            accelerator_arn: Some(ACCELERATOR_ARN.into()),
            site_load_balancers: strings(&[("site-a", "arn:lb-a"), ("site-b", "arn:lb-b")]),
            alert_name: Some("SiteDown".into()),
            decision_table: "sitefence-decisions".into(),
            preferred_site: Some("site-b".into()),
            ca_bundle_pem: Some(PEM.into()),
            notify_topic_arn: Some("arn:aws:sns:eu-west-1:123456789012:fence".into()),
            mode: Mode::Monitor,
        }
    }

    const ACCELERATOR_ARN: &str =
        "arn:aws:globalaccelerator::123456789012:accelerator/1234abcd-abcd-1234-abcd-1234abcdefgh";

    #[test]
    fn an_accelerator_arn_needs_its_dns_name_and_the_shape_of_one() {
        assert_eq!(
            parse_accelerator_arn(ACCELERATOR_ARN, true).ok().as_deref(),
            Some(ACCELERATOR_ARN)
        );
        let without_name = parse_accelerator_arn(ACCELERATOR_ARN, false)
            .unwrap_err()
            .to_string();
        assert!(
            without_name.contains("ACCELERATOR_DNS_NAME"),
            "{without_name}"
        );
        for bad in [
            "",
            "arn:aws:globalaccelerator::123456789012:accelerator/",
            "arn:aws:globalaccelerator::123456789012:accelerator/abc/listener/def",
            "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/x/1",
            "accelerator/abc",
        ] {
            let err = parse_accelerator_arn(bad, true).unwrap_err().to_string();
            assert!(err.contains("ACCELERATOR_ARN"), "{bad}: {err}");
        }
    }

    #[test]
    fn what_the_environment_writes_the_function_reads() {
        let env = deployed().to_vars();
        let lookup = |name: &str| env.get(name).cloned();
        let config = FenceConfig::from_lookup(lookup).unwrap_or_else(|e| panic!("{e}: {env:?}"));
        assert_eq!(config.webhook_user, "keycloak");
        assert_eq!(config.webhook_secret, "fence/webhook-password");
        assert_eq!(config.infinispan_user, "developer");
        assert_eq!(config.infinispan_secret, "fence/infinispan-password");
        let sites: Vec<String> = config.sites.values().map(ToString::to_string).collect();
        assert_eq!(
            sites,
            [
                "https://infinispan.site-a.example/",
                "https://infinispan.site-b.example:11222/"
            ]
        );
        assert_eq!(config.secrets_region, "eu-west-1");
        assert_eq!(config.accelerator_region, "us-west-2");
        assert_eq!(
            config.accelerator_dns.as_ref().map(AcceleratorDns::as_str),
            Some("a1234567890abcdef.awsglobalaccelerator.com")
        );
        assert_eq!(config.accelerator_arn.as_deref(), Some(ACCELERATOR_ARN));
        assert_eq!(config.site_load_balancers["arn:lb-b"].as_str(), "site-b");
        assert_eq!(config.alert_name, "SiteDown");
        assert_eq!(config.preferred_site.as_str(), "site-b");
        // Every value is read trimmed; a PEM needs no final line break.
        assert_eq!(
            config.tls.ca_bundle_pem.as_deref(),
            Some(PEM.trim().as_bytes())
        );
        assert_eq!(
            common::config::notify_topic_arn(lookup).as_deref(),
            Some("arn:aws:sns:eu-west-1:123456789012:fence")
        );
        assert_eq!(config.mode, Mode::Monitor);
    }

    #[test]
    fn the_mode_is_enforce_unless_set_and_a_bad_one_stops_the_start() {
        assert_eq!(load(&seed_env()).unwrap().mode, Mode::Enforce);
        let mut vars = seed_env();
        vars.push(("SITEFENCE_MODE", "monitor".into()));
        assert_eq!(load(&vars).unwrap().mode, Mode::Monitor);
        let mut vars = seed_env();
        vars.push(("SITEFENCE_MODE", "dry-run".into()));
        let err = load(&vars).unwrap_err().to_string();
        assert!(
            err.contains("SITEFENCE_MODE") && err.contains("dry-run"),
            "{err}"
        );
    }

    #[test]
    fn options_left_unset_are_not_written_and_take_the_functions_defaults() {
        let env = Environment {
            accelerator_region: None,
            accelerator_dns_name: None,
            accelerator_arn: None,
            site_load_balancers: BTreeMap::new(),
            alert_name: None,
            preferred_site: None,
            ca_bundle_pem: None,
            notify_topic_arn: None,
            mode: Mode::Enforce,
            ..deployed()
        }
        .to_vars();
        assert_eq!(env.len(), 7, "{env:?}");
        let config = FenceConfig::from_lookup(|name| env.get(name).cloned())
            .unwrap_or_else(|e| panic!("{e}: {env:?}"));
        assert_eq!(config.alert_name, DEFAULT_ALERT_NAME);
        assert_eq!(config.preferred_site.as_str(), "site-a");
        assert!(config.site_load_balancers.is_empty() && config.accelerator_dns.is_none());
        assert!(config.tls.ca_bundle_pem.is_none());
    }

    #[test]
    fn secrets_region_falls_back_to_the_function_region() {
        let mut vars: Vec<_> = seed_env()
            .into_iter()
            .filter(|(k, _)| *k != "SECRETS_REGION")
            .collect();
        vars.push(("AWS_REGION", "eu-central-1".into()));
        assert_eq!(load(&vars).unwrap().secrets_region, "eu-central-1");
    }
}
