//! The fence function's part of a sandbox test: a world running the real bootstrap binary
//! behind the Function URL front (started and stopped by `sandbox::harness`), the Alertmanager
//! notifications of `events/fence/`, and the two things a fence changes, read back from the
//! emulators: the endpoint group, and each site's Infinispan backups.

// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;

use anyhow::{Context, ensure};
use base64::Engine;
use sandbox::harness::{self, Answer, Sandbox};
use sandbox::world::{FunctionOptions, SandboxInfo};
use serde_json::Value;

pub const FUNCTION: &str = "fence-lambda";
/// The decision table the tests' fence records in (created in moto by [`with_fence_env`]).
pub const DECISION_TABLE: &str = "sitefence-test-decisions";
/// The accelerator the sample notifications name; replaced by the sandbox's.
const SAMPLE_ACCELERATOR: &str = "a1234567890abcdef.awsglobalaccelerator.com";

/// Starts a world running the fence function with `instances` execution environments (no
/// reserved concurrency: several reports really run at once), runs `scenario` against it, then
/// checks that neither the webhook password nor the Infinispan password reached a log.
pub async fn with_fence<F, Fut>(test: &str, instances: usize, scenario: F) -> anyhow::Result<()>
where
    F: FnOnce(Sandbox) -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    with_fence_env(test, instances, &[], scenario).await
}

/// [`with_fence`], with variables added to (or overriding) the sandbox's fence environment.
pub async fn with_fence_env<F, Fut>(
    test: &str,
    instances: usize,
    env: &[(&str, &str)],
    scenario: F,
) -> anyhow::Result<()>
where
    F: FnOnce(Sandbox) -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let extra_env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    harness::with_world(
        &format!("fence-{test}"),
        |options| {
            options.fence = Some(FunctionOptions {
                instances,
                reserved_concurrency: None,
                extra_env,
                ..FunctionOptions::bootstrap(env!("CARGO_BIN_EXE_fence-lambda"))
                    .with_environment(fence_environment)
            });
        },
        |sandbox: Sandbox| async move {
            decision_store(&sandbox)
                .await
                .ensure_table()
                .await
                .context("creating the decision table")?;
            scenario(sandbox.clone()).await?;
            assert_no_password_in_logs(&sandbox)
        },
    )
    .await
}

/// The fence's variables for the world, as a deployment of it sets them (the names are the
/// fence's own, from its `config` module).
pub fn fence_environment(info: &SandboxInfo) -> Vec<(String, String)> {
    let environment = fence_lambda::config::Environment {
        webhook_user: info.fence.user.clone(),
        webhook_secret: info.fence.secret_name.clone(),
        infinispan_user: info.infinispan.user.clone(),
        infinispan_secret: info.infinispan.secret_name.clone(),
        site_endpoints: info
            .sites
            .iter()
            .map(|(site, s)| (site.clone(), s.ispn_url.clone()))
            .collect(),
        secrets_region: info.region.clone(),
        accelerator_region: Some(sandbox::world::ACCELERATOR_REGION.to_owned()),
        accelerator_dns_name: Some(info.accelerator_dns.clone()),
        accelerator_arn: Some(info.accelerator_arn.clone()),
        site_load_balancers: info
            .sites
            .iter()
            .map(|(site, s)| (site.clone(), s.endpoint_id.clone()))
            .collect(),
        alert_name: None,
        preferred_site: info.sites.keys().next().cloned(),
        ca_bundle_pem: std::fs::read_to_string(&info.ca_bundle).ok(),
        notify_topic_arn: None,
        decision_table: DECISION_TABLE.to_owned(),
        mode: Default::default(),
    };
    environment.to_vars().into_iter().collect()
}

/// The decision records of the tests' fence, in the sandbox's moto.
pub async fn decision_store(sandbox: &Sandbox) -> aws_topology::decisions::DecisionStore {
    let config = sandbox::world::sdk_config(&sandbox.info.moto_url, &sandbox.info.region).await;
    aws_topology::decisions::DecisionStore::new(&config, DECISION_TABLE)
}

/// Neither password, nor the Authorization header carrying the webhook's, in any file under
/// `DIR/logs/`.
pub fn assert_no_password_in_logs(sandbox: &Sandbox) -> anyhow::Result<()> {
    let fence = &sandbox.info.fence;
    let header = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", fence.user, fence.password));
    for (what, secret) in [
        ("the webhook password", fence.password.as_str()),
        (
            "the Infinispan password",
            sandbox.info.infinispan.password.as_str(),
        ),
        ("the webhook Authorization header", header.as_str()),
    ] {
        let found = sandbox.logs_containing(secret)?;
        ensure!(found.is_empty(), "{what} is in {found:?}");
    }
    Ok(())
}

/// The Alertmanager notification of `events/fence/NAME.function-url.json` (its body, decoded
/// when base64), aimed at the sandbox's accelerator.
pub fn notification(sandbox: &Sandbox, name: &str) -> anyhow::Result<String> {
    let text = harness::sample_event(&format!("fence/{name}.function-url.json"))?;
    let request: Value = serde_json::from_str(&text)?;
    let body = request["body"]
        .as_str()
        .with_context(|| format!("{name} has no body"))?;
    let body = if request["isBase64Encoded"] == true {
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(body)?)?
    } else {
        body.to_owned()
    };
    Ok(body.replace(SAMPLE_ACCELERATOR, &sandbox.info.accelerator_dns))
}

/// Sends a notification as Alertmanager does: `POST` `application/json` to the Function URL
/// with the webhook's Basic credentials.
pub async fn send(sandbox: &Sandbox, body: &str) -> anyhow::Result<Answer> {
    let fence = &sandbox.info.fence;
    sandbox
        .post_function_url(FUNCTION, body, Some((&fence.user, &fence.password)))
        .await
}

/// Sends the sample notification `name`.
pub async fn send_sample(sandbox: &Sandbox, name: &str) -> anyhow::Result<Answer> {
    send(sandbox, &notification(sandbox, name)?).await
}

/// The endpoint id of a site's NLB.
pub fn endpoint(sandbox: &Sandbox, site: &str) -> String {
    sandbox.info.sites[site].endpoint_id.clone()
}

/// What a fence changes, as the emulators hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FenceState {
    /// Each endpoint group's endpoint ids.
    pub groups: Vec<Vec<String>>,
    /// site → (cache → status of its backup to the other site).
    pub backups: BTreeMap<String, BTreeMap<String, String>>,
}

impl FenceState {
    pub async fn read(sandbox: &Sandbox) -> anyhow::Result<FenceState> {
        let mut backups = BTreeMap::new();
        for (site, remote) in [("site-a", "site-b"), ("site-b", "site-a")] {
            backups.insert(
                site.to_owned(),
                sandbox.ispn_backup_status(site, remote).await?,
            );
        }
        Ok(FenceState {
            groups: sandbox.ga_group_endpoints().await?,
            backups,
        })
    }

    /// Whether every cache of `site` backs up to the other site with `status`.
    pub fn all_backups(&self, site: &str, status: &str) -> bool {
        self.backups
            .get(site)
            .is_some_and(|caches| !caches.is_empty() && caches.values().all(|s| s == status))
    }
}

/// Asserts the outcome of fencing site-b: the group holds only site-a's endpoint, site-a's
/// backups to site-b are offline for every cache, site-b's to site-a untouched.
pub async fn assert_site_b_fenced(sandbox: &Sandbox) -> anyhow::Result<FenceState> {
    let state = FenceState::read(sandbox).await?;
    ensure!(
        state.groups == vec![vec![endpoint(sandbox, "site-a")]],
        "the group must hold only site-a's endpoint: {state:?}"
    );
    ensure!(
        state.all_backups("site-a", "offline"),
        "site-a's backups to site-b must be offline for every cache: {state:?}"
    );
    ensure!(
        state.all_backups("site-b", "online"),
        "site-b's backups to site-a are not the fence's business: {state:?}"
    );
    Ok(state)
}
