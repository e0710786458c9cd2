//! `cargo xtask manifests`: the alerting that triggers the fence, per site — the Kubernetes
//! Secret, AlertmanagerConfig and PrometheusRule of seed 002, and the same alerting as plain
//! Prometheus rule files and an `alertmanager.yml` for clusters without the Prometheus operator.
//!
//! Rendering is pure (`render`); fetching the webhook password and the Function URL sits in
//! `run`. YAML is written by hand with every string JSON-quoted (valid YAML), so no YAML library
//! is needed and no value can break the document.

use crate::config::Deployment;
use anyhow::Context;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Alerting timings. `seed` is what seeds 001/002 and Keycloak's upstream use; `fast` trades
/// scrape and notification load for a fence within seconds (the drill's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    Seed,
    Fast,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timings {
    pub scrape_interval: &'static str,
    pub evaluation_interval: &'static str,
    /// The rule's `for:`; none in the seed (JGroups already waits for the site to leave the view).
    pub alert_for: Option<&'static str>,
    pub group_wait: &'static str,
    pub group_interval: &'static str,
    pub repeat_interval: &'static str,
}

impl Profile {
    pub fn timings(self) -> Timings {
        match self {
            Profile::Seed => Timings {
                scrape_interval: "30s",
                evaluation_interval: "30s",
                alert_for: None,
                group_wait: "60s",
                group_interval: "90s",
                repeat_interval: "4h",
            },
            Profile::Fast => Timings {
                scrape_interval: "1s",
                evaluation_interval: "1s",
                alert_for: None,
                group_wait: "1s",
                group_interval: "5s",
                repeat_interval: "1m",
            },
        }
    }
}

/// Everything the manifests say that does not come from `sitefence.toml` itself.
pub struct Inputs<'a> {
    pub deployment: &'a Deployment,
    pub function_url: &'a str,
    pub webhook_password: &'a str,
    pub profile: Profile,
}

/// One generated file, relative to the output directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub path: PathBuf,
    pub contents: String,
    /// Holds a credential: written with mode 0600.
    pub secret: bool,
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
fn q(value: &str) -> String {
    serde_json::Value::String(value.to_string()).to_string()
}

/// Infinispan's metric of each remote site's place in the cross-site view (1 in it, 0 not),
/// labelled `site` = the remote site: what the alert rule reads.
pub const SITE_VIEW_METRIC: &str = "vendor_jgroups_site_view_status";

/// The Alertmanager receiver the generated configuration routes the alert to.
pub const RECEIVER: &str = "sitefence-fence";

/// The labels the rule gives the alert beside the expression's (`namespace`, `site`).
pub const SEVERITY: &str = "critical";

/// The seed's alert expression: the minimum over the local cluster's nodes of the other site's
/// view status; 0 means the other site left the cross-site view.
pub fn alert_expression(namespace: &str, remote_site: &str) -> String {
    format!(
        "min by (namespace, site) ({SITE_VIEW_METRIC}{{namespace={},site={}}}) == 0",
        q(namespace),
        q(remote_site)
    )
}

/// The names of the two sites, `local` first.
fn remote_of<'a>(deployment: &'a Deployment, local: &str) -> anyhow::Result<&'a str> {
    deployment
        .sites
        .keys()
        .find(|site| site.as_str() != local)
        .map(String::as_str)
        .context("a deployment needs two sites")
}

pub fn render(inputs: &Inputs) -> anyhow::Result<Vec<File>> {
    let deployment = inputs.deployment;
    let timings = inputs.profile.timings();
    let alert_name = &deployment.fence.alert_name;
    let mut files = Vec::new();
    for (site, config) in &deployment.sites {
        let remote = remote_of(deployment, site)?;
        let expr = alert_expression(&config.namespace, remote);
        let accelerator = &deployment.accelerator.dns_name;

        let mut kubernetes = String::new();
        writeln!(
            kubernetes,
            "# Fencing alerting for {site}: apply in namespace {} of {site}'s cluster.",
            config.namespace
        )?;
        writeln!(
            kubernetes,
            "apiVersion: v1\nkind: Secret\ntype: kubernetes.io/basic-auth\nmetadata:\n  name: sitefence-webhook-credentials\n  namespace: {}",
            q(&config.namespace)
        )?;
        writeln!(
            kubernetes,
            "stringData:\n  username: {}\n  password: {}",
            q(&deployment.fence.webhook_user),
            q(inputs.webhook_password)
        )?;
        writeln!(
            kubernetes,
            "---\napiVersion: monitoring.coreos.com/v1beta1\nkind: AlertmanagerConfig\nmetadata:\n  name: sitefence-fencing\n  namespace: {}",
            q(&config.namespace)
        )?;
        writeln!(
            kubernetes,
            "spec:\n  route:\n    receiver: {RECEIVER}\n    groupBy:\n      - accelerator"
        )?;
        writeln!(
            kubernetes,
            "    groupWait: {}\n    groupInterval: {}\n    repeatInterval: {}",
            timings.group_wait, timings.group_interval, timings.repeat_interval
        )?;
        writeln!(
            kubernetes,
            "    matchers:\n      - matchType: \"=\"\n        name: alertname\n        value: {}",
            q(alert_name)
        )?;
        writeln!(
            kubernetes,
            "  receivers:\n    - name: {RECEIVER}\n      webhookConfigs:\n        - url: {}\n          sendResolved: false",
            q(inputs.function_url)
        )?;
        writeln!(
            kubernetes,
            "          httpConfig:\n            basicAuth:\n              username:\n                name: sitefence-webhook-credentials\n                key: username\n              password:\n                name: sitefence-webhook-credentials\n                key: password"
        )?;
        writeln!(
            kubernetes,
            "---\napiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata:\n  name: sitefence-xsite-status\n  namespace: {}",
            q(&config.namespace)
        )?;
        writeln!(
            kubernetes,
            "spec:\n  groups:\n    - name: sitefence-xsite-status\n      interval: {}\n      rules:",
            timings.evaluation_interval
        )?;
        write_rule(
            &mut kubernetes,
            "        ",
            alert_name,
            &expr,
            timings.alert_for,
            site,
            accelerator,
        )?;
        files.push(File {
            path: PathBuf::from(format!("kubernetes/{site}.yaml")),
            contents: kubernetes,
            secret: true,
        });

        let mut rules = String::new();
        writeln!(
            rules,
            "# Prometheus rules for {site}'s Prometheus (clusters without the Prometheus operator)."
        )?;
        writeln!(
            rules,
            "groups:\n  - name: sitefence-xsite-status\n    interval: {}\n    rules:",
            timings.evaluation_interval
        )?;
        write_rule(
            &mut rules,
            "      ",
            alert_name,
            &expr,
            timings.alert_for,
            site,
            accelerator,
        )?;
        files.push(File {
            path: PathBuf::from(format!("prometheus/{site}.rules.yml")),
            contents: rules,
            secret: false,
        });

        let mut alertmanager = String::new();
        writeln!(
            alertmanager,
            "# Alertmanager configuration for {site} (clusters without the Prometheus operator)."
        )?;
        writeln!(
            alertmanager,
            "route:\n  receiver: {RECEIVER}\n  group_by: [accelerator]"
        )?;
        writeln!(
            alertmanager,
            "  group_wait: {}\n  group_interval: {}\n  repeat_interval: {}",
            timings.group_wait, timings.group_interval, timings.repeat_interval
        )?;
        writeln!(
            alertmanager,
            "  routes:\n    - receiver: {RECEIVER}\n      matchers:\n        - alertname = {}",
            q(alert_name)
        )?;
        writeln!(
            alertmanager,
            "receivers:\n  - name: {RECEIVER}\n    webhook_configs:\n      - url: {}\n        send_resolved: false",
            q(inputs.function_url)
        )?;
        writeln!(
            alertmanager,
            "        http_config:\n          basic_auth:\n            username: {}\n            password_file: webhook-password",
            q(&deployment.fence.webhook_user)
        )?;
        files.push(File {
            path: PathBuf::from(format!("alertmanager/{site}.yml")),
            contents: alertmanager,
            secret: false,
        });
    }
    files.push(File {
        path: PathBuf::from("alertmanager/webhook-password"),
        contents: inputs.webhook_password.to_string(),
        secret: true,
    });
    Ok(files)
}

/// Where one site's Prometheus sends its alerts and finds its rules.
pub struct PrometheusSetup<'a> {
    /// `host:port` of the site's own Alertmanager.
    pub alertmanager: &'a str,
    /// The site's rules file (as `render` writes it), relative to the configuration file.
    pub rules_file: &'a str,
}

/// A plain `prometheus.yml` for `site`'s Prometheus (clusters without the Prometheus operator,
/// and the drill): the profile's timings, the site's rules, its own Alertmanager, and a scrape of
/// the site's own Infinispan `/metrics` over HTTPS, trusting the deployment's CA bundle and
/// labelled with the site's namespace as a ServiceMonitor would label it (the rule matches on it).
pub fn prometheus_config(
    deployment: &Deployment,
    site: &str,
    profile: Profile,
    setup: &PrometheusSetup,
) -> anyhow::Result<String> {
    let config = deployment
        .sites
        .get(site)
        .with_context(|| format!("`{site}` is not a site of the deployment"))?;
    let metrics = config
        .metrics_url
        .clone()
        .unwrap_or_else(|| format!("{}/metrics", config.infinispan_url.trim_end_matches('/')));
    let metrics = if metrics.contains("://") {
        metrics
    } else {
        format!("https://{metrics}")
    };
    let url = reqwest::Url::parse(&metrics)
        .with_context(|| format!("`{metrics}` is not a metrics URL"))?;
    let host = url
        .host_str()
        .with_context(|| format!("`{metrics}` has no host"))?;
    let port = url
        .port_or_known_default()
        .with_context(|| format!("`{metrics}` has no port"))?;
    let timings = profile.timings();

    let mut out = String::new();
    writeln!(
        out,
        "# Prometheus configuration for {site} (clusters without the Prometheus operator)."
    )?;
    writeln!(
        out,
        "global:\n  scrape_interval: {}\n  evaluation_interval: {}",
        timings.scrape_interval, timings.evaluation_interval
    )?;
    writeln!(out, "rule_files:\n  - {}", q(setup.rules_file))?;
    writeln!(
        out,
        "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [{}]",
        q(setup.alertmanager)
    )?;
    writeln!(
        out,
        "scrape_configs:\n  - job_name: \"infinispan\"\n    scheme: {}\n    metrics_path: {}",
        q(url.scheme()),
        q(url.path())
    )?;
    if let Some(ca) = &deployment.fence.ca_bundle {
        writeln!(
            out,
            "    tls_config:\n      ca_file: {}",
            q(&ca.display().to_string())
        )?;
    }
    writeln!(
        out,
        "    static_configs:\n      - targets: [{}]\n        labels:\n          namespace: {}",
        q(&format!("{host}:{port}")),
        q(&config.namespace)
    )?;
    Ok(out)
}

fn write_rule(
    out: &mut String,
    indent: &str,
    alert_name: &str,
    expr: &str,
    alert_for: Option<&str>,
    reporter: &str,
    accelerator: &str,
) -> std::fmt::Result {
    writeln!(out, "{indent}- alert: {}", q(alert_name))?;
    writeln!(out, "{indent}  expr: {}", q(expr))?;
    if let Some(duration) = alert_for {
        writeln!(out, "{indent}  for: {duration}")?;
    }
    writeln!(
        out,
        "{indent}  labels:\n{indent}    severity: {SEVERITY}\n{indent}    reporter: {}\n{indent}    accelerator: {}",
        q(reporter),
        q(accelerator)
    )?;
    writeln!(
        out,
        "{indent}  annotations:\n{indent}    summary: {}",
        q(&format!(
            "{reporter} lost the cross-site view of the other site"
        ))
    )
}

#[derive(clap::Args, Debug, Clone)]
pub struct ManifestArgs {
    /// The deployment description.
    #[arg(long, default_value = "sitefence.toml")]
    pub config: PathBuf,
    /// Output directory (kubernetes/, prometheus/, alertmanager/).
    #[arg(long, default_value = "manifests")]
    pub out: PathBuf,
    // Not `--profile`: that is the AWS profile, here as in every command (the AWS CLI's name).
    /// Alerting timings: the seed's, or short ones for a fence within seconds.
    #[arg(long, value_enum, default_value_t = Profile::Seed)]
    pub timings: Profile,
    /// Shorthand for `--timings fast`.
    #[arg(long, conflicts_with = "timings")]
    pub fast: bool,
    /// The fence's Function URL (default: from sitefence.toml).
    #[arg(long)]
    pub function_url: Option<String>,
    #[command(flatten)]
    pub aws: crate::aws::AwsArgs,
}

pub fn run(args: &ManifestArgs) -> anyhow::Result<Vec<PathBuf>> {
    let deployment = Deployment::load(&args.config)?;
    let function_url = args
        .function_url
        .clone()
        .or_else(|| deployment.fence.function_url.clone())
        .context("no Function URL: pass --function-url, or run `cargo xtask deploy` first (it records it in sitefence.toml)")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let webhook_password = runtime.block_on(async {
        let aws = crate::aws::Aws::load(&args.aws, &deployment).await;
        let secrets = aws_sdk_secretsmanager::Client::new(&aws.regional);
        let secret = secrets
            .get_secret_value()
            .secret_id(&deployment.fence.webhook_secret)
            .send()
            .await
            .with_context(|| {
                format!(
                    "reading the webhook password from secret `{}`",
                    deployment.fence.webhook_secret
                )
            })?;
        secret.secret_string().map(str::to_string).with_context(|| {
            format!(
                "secret `{}` has no string value",
                deployment.fence.webhook_secret
            )
        })
    })?;
    let profile = if args.fast {
        Profile::Fast
    } else {
        args.timings
    };
    let files = render(&Inputs {
        deployment: &deployment,
        function_url: &function_url,
        webhook_password: &webhook_password,
        profile,
    })?;
    write(&args.out, &files)?;
    Ok(files.iter().map(|f| args.out.join(&f.path)).collect())
}

/// Writes the files under `out`, credentials with mode 0600.
pub fn write(out: &Path, files: &[File]) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for file in files {
        let path = out.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, &file.contents)
            .with_context(|| format!("writing {}", path.display()))?;
        if file.secret {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Deployment {
        Deployment::load(&crate::example_config()).unwrap_or_else(|e| panic!("{e:#}"))
    }

    #[test]
    fn each_site_reports_the_other_with_its_own_labels() {
        let deployment = example();
        let files = render(&Inputs {
            deployment: &deployment,
            function_url: "https://abc.lambda-url.eu-west-1.on.aws/",
            webhook_password: "pa\"ss: word",
            profile: Profile::Seed,
        })
        .unwrap_or_else(|e| panic!("{e:#}"));
        let rules = files
            .iter()
            .find(|f| f.path.ends_with("site-a.rules.yml"))
            .map(|f| f.contents.clone())
            .unwrap_or_default();
        assert!(rules.contains(r#"site=\"site-b\""#), "{rules}");
        assert!(rules.contains("reporter: \"site-a\""), "{rules}");
        assert!(rules.contains("accelerator: \"a3da6a6cbd4e27b02.awsglobalaccelerator.com\""));
        assert!(!rules.contains("for:"), "the seed's rule has no `for:`");
        let kubernetes = files
            .iter()
            .find(|f| f.path.ends_with("kubernetes/site-b.yaml"))
            .map(|f| f.contents.clone())
            .unwrap_or_default();
        assert!(
            kubernetes.contains(r#"password: "pa\"ss: word""#),
            "passwords are quoted: {kubernetes}"
        );
        assert!(kubernetes.contains("groupWait: 60s") && kubernetes.contains("groupInterval: 90s"));
        assert!(
            files
                .iter()
                .filter(|f| f.secret)
                .all(|f| f.path.ends_with("webhook-password") || f.path.starts_with("kubernetes"))
        );
    }

    #[test]
    fn prometheus_scrapes_its_own_site_over_https_with_the_ca() {
        let mut deployment = example();
        let site = deployment.sites.keys().next().cloned().unwrap_or_default();
        if let Some(config) = deployment.sites.get_mut(&site) {
            config.metrics_url = Some("https://127.0.0.1:8443/metrics".to_string());
        }
        deployment.fence.ca_bundle = Some(PathBuf::from("ca dir/ca.pem"));
        let config = prometheus_config(
            &deployment,
            &site,
            Profile::Fast,
            &PrometheusSetup {
                alertmanager: "127.0.0.1:9093",
                rules_file: "site-a.rules.yml",
            },
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
        assert!(config.contains("scrape_interval: 1s"), "{config}");
        assert!(
            config.contains(r#"targets: ["127.0.0.1:8443"]"#),
            "{config}"
        );
        assert!(config.contains(r#"scheme: "https""#), "{config}");
        assert!(config.contains(r#"ca_file: "ca dir/ca.pem""#), "{config}");
        assert!(config.contains(r#"namespace: "keycloak""#), "{config}");
        assert!(
            config.contains(r#"targets: ["127.0.0.1:9093"]"#),
            "{config}"
        );
        assert!(
            prometheus_config(
                &deployment,
                "site-x",
                Profile::Fast,
                &PrometheusSetup {
                    alertmanager: "127.0.0.1:9093",
                    rules_file: "x",
                }
            )
            .is_err()
        );
    }

    #[test]
    fn prometheus_defaults_to_the_infinispan_url_metrics_path() {
        let deployment = example();
        let site = deployment.sites.keys().next().cloned().unwrap_or_default();
        let config = prometheus_config(
            &deployment,
            &site,
            Profile::Seed,
            &PrometheusSetup {
                alertmanager: "127.0.0.1:9093",
                rules_file: "r.yml",
            },
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
        assert!(config.contains(r#"metrics_path: "/metrics""#), "{config}");
        assert!(
            config.contains(":443\"]"),
            "a bare host is scraped on 443: {config}"
        );
        assert!(config.contains("scrape_interval: 30s"), "{config}");
    }

    #[test]
    fn fast_profile_shortens_every_wait() {
        let fast = Profile::Fast.timings();
        let seed = Profile::Seed.timings();
        assert_ne!(fast.group_wait, seed.group_wait);
        assert_eq!(fast.scrape_interval, "1s");
    }
}
