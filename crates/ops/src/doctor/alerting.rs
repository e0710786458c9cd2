//! Alerting: per site, its Prometheus has the alert rule loaded and healthy and sees the other
//! site's metric, and its Alertmanager routes the alert to a webhook whose URL is the fence's
//! Function URL. Each is checked when `sitefence.toml` names the site's `prometheus_url` or
//! `alertmanager_url`, through their HTTP APIs (`/api/v1/rules`, `/api/v1/query`,
//! `/api/v2/status`); the names (rule, metric, receiver, labels) are `manifests`'.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::{Check, Ctx, Link};
use crate::manifests::{SEVERITY, SITE_VIEW_METRIC};

const TIMEOUT: Duration = Duration::from_secs(10);

/// What fixes a Prometheus or Alertmanager that does not have what `manifests` generates.
fn regenerate(site: &str) -> String {
    format!(
        "regenerate with `sitefence manifests` and load {site}'s files (prometheus/{site}.rules.yml and alertmanager/{site}.yml, or the Kubernetes manifests) into its Prometheus and Alertmanager"
    )
}

pub async fn check(ctx: &Ctx) -> Vec<Check> {
    let deployment = &ctx.deployment;
    let http = match reqwest::Client::builder().timeout(TIMEOUT).build() {
        Ok(http) => http,
        Err(err) => {
            return vec![Check::fail(
                Link::Alerting,
                "HTTP client",
                err.to_string(),
                "report this as a bug",
            )];
        }
    };
    let alert_name = &deployment.fence.alert_name;
    let function_url = function_url(ctx).await;
    let mut checks = Vec::new();
    for (site, config) in &deployment.sites {
        let Some(remote) = deployment.sites.keys().find(|other| *other != site) else {
            continue;
        };
        match &config.prometheus_url {
            None => checks.push(Check::skipped(
                Link::Alerting,
                format!("{site}'s Prometheus"),
                format!("no sites.{site}.prometheus_url in sitefence.toml"),
            )),
            Some(url) => {
                checks.push(prometheus_rule(&http, url, site, remote, alert_name).await);
                checks.push(prometheus_metric(&http, url, site, remote, &config.namespace).await);
            }
        }
        match &config.alertmanager_url {
            None => checks.push(Check::skipped(
                Link::Alerting,
                format!("{site}'s Alertmanager"),
                format!("no sites.{site}.alertmanager_url in sitefence.toml"),
            )),
            Some(url) => {
                let labels = alert_labels(ctx, site, remote, alert_name);
                checks.push(
                    alertmanager_route(&http, url, site, &labels, function_url.as_deref()).await,
                );
            }
        }
    }
    checks
}

/// The fence's Function URL as [`Ctx::function_url`] finds it; `None` when there is none.
async fn function_url(ctx: &Ctx) -> Option<String> {
    ctx.function_url().await.ok()
}

/// The labels of the alert `site`'s Prometheus raises about `remote` (the rule's own and the
/// expression's), as `manifests` writes the rule.
fn alert_labels(ctx: &Ctx, site: &str, remote: &str, alert_name: &str) -> BTreeMap<String, String> {
    let namespace = ctx
        .deployment
        .sites
        .get(site)
        .map(|s| s.namespace.clone())
        .unwrap_or_default();
    BTreeMap::from([
        ("alertname".to_owned(), alert_name.to_owned()),
        ("site".to_owned(), remote.to_owned()),
        ("namespace".to_owned(), namespace),
        ("reporter".to_owned(), site.to_owned()),
        (
            "accelerator".to_owned(),
            ctx.deployment.accelerator.dns_name.clone(),
        ),
        ("severity".to_owned(), SEVERITY.to_owned()),
    ])
}

async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value, String> {
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("{url} answered {status}"));
    }
    response
        .json()
        .await
        .map_err(|e| format!("{url}: not JSON: {e}"))
}

async fn prometheus_rule(
    http: &reqwest::Client,
    base: &str,
    site: &str,
    remote: &str,
    alert_name: &str,
) -> Check {
    let name = format!("{site}'s Prometheus has the {alert_name} rule");
    let url = format!("{}/api/v1/rules?type=alert", base.trim_end_matches('/'));
    match get_json(http, &url).await {
        Err(err) => Check::fail(
            Link::Alerting,
            name,
            format!("cannot read the rules: {err}"),
            format!("check sites.{site}.prometheus_url and that Prometheus answers"),
        ),
        Ok(rules) => match find_rule(&rules, alert_name, remote) {
            Ok(found) => Check::pass(Link::Alerting, name, found),
            Err(wrong) => Check::fail(Link::Alerting, name, wrong, regenerate(site)),
        },
    }
}

/// Finds the alerting rule `alert_name` in an `/api/v1/rules` answer: loaded, healthy, and
/// reading the metric of `remote`. `Ok` says what was found, `Err` what is wrong.
pub fn find_rule(rules: &Value, alert_name: &str, remote: &str) -> Result<String, String> {
    let found: Vec<&Value> = rules["data"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .filter(|r| r["name"] == alert_name && r["type"] == "alerting")
        .collect();
    if found.is_empty() {
        return Err(format!("no alerting rule named {alert_name} is loaded"));
    }
    let site_label = format!("site=\"{remote}\"");
    let reads_remote = |rule: &&&Value| {
        rule["query"]
            .as_str()
            .is_some_and(|q| q.contains(SITE_VIEW_METRIC) && q.contains(&site_label))
    };
    let Some(rule) = found.iter().find(reads_remote) else {
        let queries: Vec<&str> = found.iter().filter_map(|r| r["query"].as_str()).collect();
        return Err(format!(
            "{alert_name} does not read {SITE_VIEW_METRIC}{{{site_label}}}: {}",
            queries.join(" | ")
        ));
    };
    match rule["health"].as_str() {
        // A rule Prometheus has not evaluated yet (it just started or reloaded) is loaded and
        // has no error: the next evaluation says more.
        Some("unknown") => Ok(format!(
            "loaded, not evaluated yet: {}",
            rule["query"].as_str().unwrap_or_default()
        )),
        Some("ok") => Ok(format!(
            "loaded and healthy, state {}: {}",
            rule["state"].as_str().unwrap_or("?"),
            rule["query"].as_str().unwrap_or_default()
        )),
        health => Err(format!(
            "{alert_name} is loaded but its health is {}: {}",
            health.unwrap_or("unknown"),
            rule["lastError"].as_str().unwrap_or("no error given")
        )),
    }
}

async fn prometheus_metric(
    http: &reqwest::Client,
    base: &str,
    site: &str,
    remote: &str,
    namespace: &str,
) -> Check {
    let name = format!("{site}'s Prometheus sees {remote}'s cross-site view");
    let query = format!("{SITE_VIEW_METRIC}{{namespace=\"{namespace}\",site=\"{remote}\"}}");
    let url = match reqwest::Url::parse_with_params(
        &format!("{}/api/v1/query", base.trim_end_matches('/')),
        &[("query", query.as_str())],
    ) {
        Ok(url) => url,
        Err(err) => {
            return Check::fail(
                Link::Alerting,
                name,
                format!("sites.{site}.prometheus_url: {err}"),
                format!("fix sites.{site}.prometheus_url in sitefence.toml"),
            );
        }
    };
    match get_json(http, url.as_str()).await {
        Err(err) => Check::fail(
            Link::Alerting,
            name,
            format!("cannot query: {err}"),
            format!("check sites.{site}.prometheus_url and that Prometheus answers"),
        ),
        Ok(answer) => {
            let series = answer["data"]["result"].as_array().map_or(0, Vec::len);
            if series == 0 {
                Check::fail(
                    Link::Alerting,
                    name,
                    format!(
                        "no series of {query}: Prometheus does not scrape {site}'s Infinispan metrics, or the labels differ (the alert can never fire)"
                    ),
                    regenerate(site),
                )
            } else {
                Check::pass(Link::Alerting, name, format!("{series} series of {query}"))
            }
        }
    }
}

async fn alertmanager_route(
    http: &reqwest::Client,
    base: &str,
    site: &str,
    labels: &BTreeMap<String, String>,
    function_url: Option<&str>,
) -> Check {
    let alert_name = labels.get("alertname").map_or("?", String::as_str);
    let name = format!("{site}'s Alertmanager routes {alert_name} to the Function URL");
    let url = format!("{}/api/v2/status", base.trim_end_matches('/'));
    let status = match get_json(http, &url).await {
        Ok(status) => status,
        Err(err) => {
            return Check::fail(
                Link::Alerting,
                name,
                format!("cannot read its status: {err}"),
                format!("check sites.{site}.alertmanager_url and that Alertmanager answers"),
            );
        }
    };
    let Some(original) = status["config"]["original"].as_str() else {
        return Check::fail(
            Link::Alerting,
            name,
            format!("{url} has no config.original"),
            format!("check that sites.{site}.alertmanager_url is an Alertmanager (API v2)"),
        );
    };
    let Some(function_url) = function_url else {
        return Check::fail(
            Link::Alerting,
            name,
            "the fence's Function URL is not known: it is not deployed and sitefence.toml does not name it",
            "run `sitefence deploy`",
        );
    };
    match routed_webhooks(original, labels) {
        Err(err) => Check::fail(
            Link::Alerting,
            name,
            format!("its configuration cannot be read: {err}"),
            regenerate(site),
        ),
        Ok(webhooks) => judge_route(&webhooks, function_url, alert_name, site),
    }
}

/// The pure verdict on where the alert goes.
fn judge_route(
    webhooks: &[(String, Vec<String>)],
    function_url: &str,
    alert_name: &str,
    site: &str,
) -> Check {
    let name = format!("{site}'s Alertmanager routes {alert_name} to the Function URL");
    let wanted = function_url.trim_end_matches('/');
    let hits: Vec<&str> = webhooks
        .iter()
        .filter(|(_, urls)| urls.iter().any(|u| u.trim_end_matches('/') == wanted))
        .map(|(receiver, _)| receiver.as_str())
        .collect();
    if let Some(receiver) = hits.first() {
        return Check::pass(
            Link::Alerting,
            name,
            format!("receiver {receiver} posts to {function_url}"),
        );
    }
    let described: Vec<String> = webhooks
        .iter()
        .map(|(receiver, urls)| {
            if urls.is_empty() {
                format!("{receiver} (no webhook)")
            } else {
                format!("{receiver} → {}", urls.join(", "))
            }
        })
        .collect();
    // Alertmanager 0.26 and later show webhook URLs as `<secret>` in their status API
    // (docs/aws-behaviours.md, 51).
    let hidden = webhooks
        .iter()
        .flat_map(|(_, urls)| urls)
        .any(|u| u == "<secret>");
    if hidden {
        return Check::skipped(
            Link::Alerting,
            name,
            format!(
                "routed to {}; this Alertmanager hides webhook URLs (`<secret>`), so the URL is not checked",
                described.join("; ")
            ),
        );
    }
    Check::fail(
        Link::Alerting,
        name,
        format!(
            "{alert_name} goes to {}, not to the fence's Function URL {function_url}",
            if described.is_empty() {
                "no receiver".to_owned()
            } else {
                described.join("; ")
            }
        ),
        regenerate(site),
    )
}

/// An Alertmanager configuration, as much of it as routing needs.
#[derive(Debug, Deserialize)]
struct AlertmanagerConfig {
    route: Option<Route>,
    #[serde(default)]
    receivers: Vec<Receiver>,
}

#[derive(Debug, Deserialize)]
struct Route {
    receiver: Option<String>,
    #[serde(default)]
    matchers: Vec<String>,
    /// The older form of matchers: label → value.
    #[serde(default, rename = "match")]
    equal: BTreeMap<String, String>,
    #[serde(default)]
    match_re: BTreeMap<String, String>,
    #[serde(default)]
    routes: Vec<Route>,
    #[serde(default, rename = "continue")]
    carry_on: bool,
}

#[derive(Debug, Deserialize)]
struct Receiver {
    name: String,
    #[serde(default)]
    webhook_configs: Vec<WebhookConfig>,
}

#[derive(Debug, Deserialize)]
struct WebhookConfig {
    url: Option<String>,
    url_file: Option<String>,
}

/// The receivers an alert with `labels` reaches under the configuration `yaml` (Alertmanager's
/// routing tree: the first matching child route unless it says `continue`, the parent when no
/// child matches, a receiver inherited from the parent), each with its webhook URLs.
pub fn routed_webhooks(
    yaml: &str,
    labels: &BTreeMap<String, String>,
) -> Result<Vec<(String, Vec<String>)>, String> {
    let config: AlertmanagerConfig =
        serde_yaml_ng::from_str(yaml).map_err(|e| format!("not YAML: {e}"))?;
    let root = config.route.as_ref().ok_or("no `route`")?;
    let root_receiver = root
        .receiver
        .clone()
        .ok_or("the root route has no receiver")?;
    let mut reached = Vec::new();
    route_to(root, &root_receiver, labels, &mut reached)?;
    Ok(reached
        .into_iter()
        .map(|receiver| {
            let urls = config
                .receivers
                .iter()
                .filter(|r| r.name == receiver)
                .flat_map(|r| &r.webhook_configs)
                .filter_map(|w| {
                    w.url
                        .clone()
                        .or_else(|| w.url_file.as_ref().map(|f| format!("(url_file {f})")))
                })
                .collect();
            (receiver, urls)
        })
        .collect())
}

fn route_to(
    route: &Route,
    inherited: &str,
    labels: &BTreeMap<String, String>,
    reached: &mut Vec<String>,
) -> Result<(), String> {
    let receiver = route.receiver.as_deref().unwrap_or(inherited);
    let mut matched = false;
    for child in &route.routes {
        if child_matches(child, labels)? {
            matched = true;
            route_to(child, receiver, labels, reached)?;
            if !child.carry_on {
                break;
            }
        }
    }
    if !matched {
        reached.push(receiver.to_owned());
    }
    Ok(())
}

fn child_matches(route: &Route, labels: &BTreeMap<String, String>) -> Result<bool, String> {
    let value = |name: &str| labels.get(name).map_or("", String::as_str);
    for (name, wanted) in &route.equal {
        if value(name) != wanted {
            return Ok(false);
        }
    }
    for (name, pattern) in &route.match_re {
        if !full_match(pattern, value(name))? {
            return Ok(false);
        }
    }
    for text in &route.matchers {
        let matcher = Matcher::parse(text)?;
        if !matcher.matches(value(&matcher.name))? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Alertmanager's regular expressions are anchored at both ends.
fn full_match(pattern: &str, value: &str) -> Result<bool, String> {
    regex_lite::Regex::new(&format!("^(?:{pattern})$"))
        .map(|re| re.is_match(value))
        .map_err(|e| format!("matcher regex `{pattern}`: {e}"))
}

/// One matcher of a route's `matchers`: `name op value`, the value quoted or not.
#[derive(Debug, PartialEq, Eq)]
struct Matcher {
    name: String,
    op: &'static str,
    value: String,
}

impl Matcher {
    fn parse(text: &str) -> Result<Matcher, String> {
        let inner = text
            .trim()
            .trim_start_matches('{')
            .trim_end_matches('}')
            .trim();
        let bad = || format!("matcher `{text}` is not `name=value`");
        let at = inner.find(['=', '!']).ok_or_else(bad)?;
        let name = inner[..at].trim().to_owned();
        let rest = &inner[at..];
        let op = ["=~", "!~", "!=", "="]
            .into_iter()
            .find(|op| rest.starts_with(op))
            .ok_or_else(bad)?;
        let raw = rest[op.len()..].trim();
        let value = match raw.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(quoted) => quoted.replace("\\\"", "\"").replace("\\\\", "\\"),
            None => raw.to_owned(),
        };
        if name.is_empty() {
            return Err(bad());
        }
        Ok(Matcher { name, op, value })
    }

    fn matches(&self, value: &str) -> Result<bool, String> {
        Ok(match self.op {
            "=" => value == self.value,
            "!=" => value != self.value,
            "=~" => full_match(&self.value, value)?,
            _ => !full_match(&self.value, value)?,
        })
    }
}

/// Whether `manifests`' own output routes as the doctor expects (kept beside the parser).
#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifests;

    fn labels(alertname: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("alertname".to_owned(), alertname.to_owned()),
            ("site".to_owned(), "site-b".to_owned()),
            ("reporter".to_owned(), "site-a".to_owned()),
            ("severity".to_owned(), "critical".to_owned()),
        ])
    }

    /// What Alertmanager 0.25 gives back in `config.original` for the generated file.
    const STATUS_ORIGINAL: &str = r#"
global:
  resolve_timeout: 5m
route:
  receiver: sitefence-fence
  group_by:
  - accelerator
  continue: false
  routes:
  - receiver: sitefence-fence
    matchers:
    - alertname="SiteOffline"
    continue: false
receivers:
- name: sitefence-fence
  webhook_configs:
  - send_resolved: false
    http_config:
      basic_auth:
        username: keycloak
        password_file: webhook-password
    url: https://abc.lambda-url.eu-west-1.on.aws/
    max_alerts: 0
templates: []
"#;

    #[test]
    fn the_alert_reaches_the_webhook_of_its_route() {
        let routed = routed_webhooks(STATUS_ORIGINAL, &labels("SiteOffline"));
        assert_eq!(
            routed,
            Ok(vec![(
                "sitefence-fence".to_owned(),
                vec!["https://abc.lambda-url.eu-west-1.on.aws/".to_owned()]
            )])
        );
        let check = judge_route(
            &routed.unwrap_or_default(),
            "https://abc.lambda-url.eu-west-1.on.aws",
            "SiteOffline",
            "site-a",
        );
        assert_eq!(check.status, super::super::Status::Pass, "{check:?}");
    }

    #[test]
    fn a_receiver_sending_elsewhere_fails_and_names_both_urls() {
        let moved = STATUS_ORIGINAL.replace(
            "https://abc.lambda-url.eu-west-1.on.aws/",
            "http://127.0.0.1:9/elsewhere",
        );
        let routed = routed_webhooks(&moved, &labels("SiteOffline")).unwrap_or_default();
        let check = judge_route(
            &routed,
            "https://abc.lambda-url.eu-west-1.on.aws/",
            "SiteOffline",
            "site-a",
        );
        assert_eq!(check.status, super::super::Status::Fail);
        assert!(
            check.detail.contains("127.0.0.1:9/elsewhere"),
            "{}",
            check.detail
        );
        assert!(check.fix.is_some_and(|f| f.contains("sitefence manifests")));
    }

    #[test]
    fn routing_follows_alertmanagers_tree() {
        let yaml = r#"
route:
  receiver: default
  routes:
  - receiver: pager
    match:
      severity: critical
    continue: true
  - receiver: fence
    matchers:
    - alertname =~ "Site(Offline|Down)"
    - site != "site-a"
  - receiver: never
    matchers: [ 'alertname="SiteOffline"' ]
receivers:
- name: default
- name: pager
  webhook_configs:
  - url: http://pager/
- name: fence
  webhook_configs:
  - url: http://fence/
"#;
        let receivers = |alertname: &str| {
            routed_webhooks(yaml, &labels(alertname))
                .map(|r| r.into_iter().map(|(name, _)| name).collect::<Vec<_>>())
        };
        // `continue` on the first match goes on to the next sibling; the first non-continuing
        // match stops there.
        assert_eq!(
            receivers("SiteOffline"),
            Ok(vec!["pager".into(), "fence".into()])
        );
        let mut other = labels("Other");
        other.insert("severity".into(), "info".into());
        assert_eq!(
            routed_webhooks(yaml, &other).map(|r| r.len()),
            Ok(1),
            "an alert no child matches stays at the root"
        );
    }

    #[test]
    fn hidden_urls_are_said_not_failed() {
        let hidden =
            STATUS_ORIGINAL.replace("https://abc.lambda-url.eu-west-1.on.aws/", "<secret>");
        let routed = routed_webhooks(&hidden, &labels("SiteOffline")).unwrap_or_default();
        let check = judge_route(&routed, "https://x/", "SiteOffline", "site-a");
        assert_eq!(check.status, super::super::Status::Skipped);
    }

    #[test]
    fn matchers_parse_in_every_spelling() {
        let table = [
            (
                "alertname=\"SiteOffline\"",
                ("alertname", "=", "SiteOffline"),
            ),
            ("alertname = SiteOffline", ("alertname", "=", "SiteOffline")),
            ("{site!=\"a\"}", ("site", "!=", "a")),
            ("site=~\"a|b\"", ("site", "=~", "a|b")),
            ("site !~ b.*", ("site", "!~", "b.*")),
        ];
        for (text, (name, op, value)) in table {
            assert_eq!(
                Matcher::parse(text),
                Ok(Matcher {
                    name: name.into(),
                    op,
                    value: value.into()
                }),
                "{text}"
            );
        }
        assert!(Matcher::parse("nonsense").is_err());
    }

    fn rules(query: &str, health: &str) -> Value {
        serde_json::json!({"status": "success", "data": {"groups": [{"name": "sitefence", "rules": [
            {"type": "alerting", "name": "SiteOffline", "query": query, "health": health,
             "state": "inactive", "lastError": "bad"}
        ]}]}})
    }

    #[test]
    fn the_rule_is_found_loaded_healthy_and_reading_the_other_site() {
        let generated = manifests::alert_expression("keycloak", "site-b");
        assert!(find_rule(&rules(&generated, "ok"), "SiteOffline", "site-b").is_ok());
        let wrong_site = manifests::alert_expression("keycloak", "site-a");
        assert!(
            find_rule(&rules(&wrong_site, "ok"), "SiteOffline", "site-b")
                .is_err_and(|e| e.contains("does not read"))
        );
        assert!(
            find_rule(&rules(&generated, "err"), "SiteOffline", "site-b")
                .is_err_and(|e| e.contains("health is err"))
        );
        assert!(
            find_rule(&rules(&generated, "ok"), "Other", "site-b")
                .is_err_and(|e| e.contains("no alerting rule named Other"))
        );
    }
}
