//! The function's settings, read once at cold start. Errors name the variable and fail the
//! start (the seed's variable names are the primary names, so a deployment of the seed can
//! switch binaries without new settings).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::config::{ConfigError, first_of, missing, parse_bool, parse_seconds};
use common::site::{AcceleratorDns, SiteName};
use ispn_client::{SiteEndpoint, TlsConfig};

use crate::decision::Policy;

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
    pub preferred_site: SiteName,
    pub secrets_region: String,
    pub accelerator_region: String,
    pub alert_name: String,
    pub tls: TlsConfig,
    pub topology_ttl: Duration,
    pub secret_ttl: Duration,
    pub retry_budget: Duration,
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

        let sites_json = require(&["INFINISPAN_SITE_ENDPOINTS"])?;
        let sites = parse_sites(&sites_json)?;
        let preferred_site = match get(&["PREFERRED_SITE"]) {
            Some(name) => {
                let site = SiteName::parse(&name)
                    .map_err(|e| ConfigError::invalid("PREFERRED_SITE", e.to_string()))?;
                if !sites.contains_key(&site) {
                    return Err(ConfigError::invalid(
                        "PREFERRED_SITE",
                        format!("`{site}` is not a site of INFINISPAN_SITE_ENDPOINTS"),
                    ));
                }
                site
            }
            // At least two sites, checked by parse_sites.
            None => sites
                .keys()
                .next()
                .cloned()
                .ok_or_else(|| missing(&["PREFERRED_SITE"]))?,
        };
        let ca_bundle_pem = match get(&["INFINISPAN_CA_BUNDLE"]) {
            None => None,
            Some(value) if value.starts_with("-----BEGIN") => Some(value.into_bytes()),
            Some(path) => Some(std::fs::read(&path).map_err(|e| {
                ConfigError::invalid("INFINISPAN_CA_BUNDLE", format!("cannot read `{path}`: {e}"))
            })?),
        };
        let insecure_skip_verify = get(&["INFINISPAN_INSECURE_SKIP_VERIFY"])
            .map(|v| parse_bool("INFINISPAN_INSECURE_SKIP_VERIFY", &v))
            .transpose()?
            .unwrap_or(false);
        let seconds = |name: &str, default: Duration| -> Result<Duration, ConfigError> {
            get(&[name]).map_or(Ok(default), |v| parse_seconds(name, &v))
        };

        let site_load_balancers = get(&["SITE_LOAD_BALANCERS"])
            .map(|json| parse_load_balancers(&json, &sites))
            .transpose()?
            .unwrap_or_default();
        let accelerator_dns = get(&["ACCELERATOR_DNS_NAME"])
            .map(|name| {
                AcceleratorDns::parse(&name)
                    .map_err(|e| ConfigError::invalid("ACCELERATOR_DNS_NAME", e.to_string()))
            })
            .transpose()?;

        Ok(FenceConfig {
            webhook_user: require(&["WEBHOOK_USER"])?,
            webhook_secret: require(&["WEBHOOK_USER_SECRET"])?,
            infinispan_user: require(&["INFINISPAN_USER"])?,
            infinispan_secret: require(&["INFINISPAN_USER_SECRET"])?,
            sites,
            site_load_balancers,
            accelerator_dns,
            preferred_site,
            // Lambda always sets AWS_REGION: secrets usually live in the function's region.
            secrets_region: require(&["SECRETS_REGION", "AWS_REGION"])?,
            accelerator_region: get(&["ACCELERATOR_REGION"])
                .unwrap_or_else(|| aws_topology::globalaccelerator::API_REGION.to_owned()),
            alert_name: get(&["ALERT_NAME"]).unwrap_or_else(|| DEFAULT_ALERT_NAME.to_owned()),
            tls: TlsConfig {
                ca_bundle_pem,
                insecure_skip_verify,
                ..TlsConfig::default()
            },
            topology_ttl: seconds("TOPOLOGY_TTL_SECONDS", DEFAULT_TOPOLOGY_TTL)?,
            secret_ttl: seconds("SECRET_TTL_SECONDS", DEFAULT_SECRET_TTL)?,
            retry_budget: seconds("RETRY_BUDGET_SECONDS", DEFAULT_RETRY_BUDGET)?,
        })
    }

    pub fn policy(&self) -> Policy {
        Policy {
            sites: self.sites.keys().cloned().collect::<BTreeSet<_>>(),
            preferred: self.preferred_site.clone(),
        }
    }
}

/// `{"site-a": "arn:…" | ["arn:…", …], …}` → endpoint id → site, for sites of
/// `INFINISPAN_SITE_ENDPOINTS` only, each load balancer in one site only.
fn parse_load_balancers(
    json: &str,
    sites: &BTreeMap<SiteName, SiteEndpoint>,
) -> Result<BTreeMap<String, SiteName>, ConfigError> {
    const NAME: &str = "SITE_LOAD_BALANCERS";
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
                format!("`{site}` is not a site of INFINISPAN_SITE_ENDPOINTS"),
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
    const NAME: &str = "INFINISPAN_SITE_ENDPOINTS";
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
    fn the_seed_settings_are_enough() {
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
