//! The fence's preflight through its real Function URL (see `fence_lambda::preflight`): the
//! request goes where Alertmanager's go, with the webhook credentials from Secrets Manager, so
//! a passing preflight proves the URL's resource policy, the fence's authentication, its IAM
//! read access, its network paths and its TLS trust, from where the fence runs.

use std::time::Duration;

use anyhow::Context;
use base64::Engine as _;
use common::secret::Secret;
use fence_lambda::preflight::{HEADER, ProblemKind};
use serde_json::Value;

use super::{Check, Ctx, Link};

/// Lambda's own limit is the function's timeout; the preflight's reads are all bounded well
/// within it, so a longer wait would only hide a hang.
const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn check(ctx: &Ctx) -> Vec<Check> {
    let name = "the fence answers an authenticated preflight through its Function URL";
    let (url, password) = match target(ctx).await {
        Ok(target) => target,
        Err(err) => {
            return vec![Check::fail(
                Link::Preflight,
                name,
                format!("{err:#}"),
                "run `sitefence deploy` (it creates the Function URL and the webhook secret)",
            )];
        }
    };
    let answer = match send(ctx, &url, &password).await {
        Ok(answer) => answer,
        Err(err) => {
            return vec![Check::fail(
                Link::Preflight,
                name,
                format!("{url}: {err:#}"),
                "check the Function URL from this machine (`curl -i <url>`); a timeout points at the function (see its log)",
            )];
        }
    };
    judge(name, &url, answer.0, &answer.1)
}

/// The fence's Function URL and the webhook password.
async fn target(ctx: &Ctx) -> anyhow::Result<(String, Secret)> {
    let deployment = &ctx.deployment;
    let url = ctx.function_url().await?;
    let secret = ctx
        .clients
        .secrets
        .get_secret_value()
        .secret_id(&deployment.fence.webhook_secret)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", aws_sdk_secretsmanager::error::DisplayErrorContext(e)))
        .with_context(|| format!("reading secret `{}`", deployment.fence.webhook_secret))?;
    let raw = secret.secret_string().with_context(|| {
        format!(
            "secret `{}` has no string value",
            deployment.fence.webhook_secret
        )
    })?;
    let password = Secret::from_secret_string(raw)
        .with_context(|| format!("secret `{}`", deployment.fence.webhook_secret))?;
    Ok((url, password))
}

async fn send(ctx: &Ctx, url: &str, password: &Secret) -> anyhow::Result<(u16, String)> {
    let credentials = format!(
        "{}:{}",
        ctx.deployment.fence.webhook_user,
        password.expose()
    );
    let authorization = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    );
    let client = reqwest::Client::builder()
        .timeout(PREFLIGHT_TIMEOUT)
        .build()
        .context("building the HTTP client")?;
    let response = client
        .post(url)
        .header(reqwest::header::AUTHORIZATION, authorization)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(HEADER, "1")
        .body(serde_json::json!({"accelerator": ctx.deployment.accelerator.dns_name}).to_string())
        .send()
        .await?;
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    Ok((status, body))
}

/// The checks one answer makes: the URL and the authentication first, then each problem the
/// fence named, each with its fix.
fn judge(name: &str, url: &str, status: u16, body: &str) -> Vec<Check> {
    let json: Option<Value> = serde_json::from_str(body).ok();
    let preflight = json.as_ref().and_then(|j| j.get("preflight"));
    match (status, preflight) {
        (403, _) => {
            return vec![Check::fail(
                Link::Preflight,
                name,
                format!(
                    "{url} answered 403 before the function ran: its resource policy lacks a statement (since October 2025 a Function URL with auth NONE needs both lambda:InvokeFunctionUrl and lambda:InvokeFunction for the principal `*`)"
                ),
                "run `sitefence deploy` (it adds both statements)",
            )];
        }
        (401, _) => {
            return vec![Check::fail(
                Link::Preflight,
                name,
                "the fence refused the webhook credentials from Secrets Manager (another webhook_user, or the secret the fence reads is another one)",
                "run `sitefence deploy` to bring the fence's environment in line with sitefence.toml",
            )];
        }
        (_, None) => {
            return vec![Check::fail(
                Link::Preflight,
                name,
                format!(
                    "{url} answered {status} without a preflight: {}",
                    body.chars().take(300).collect::<String>()
                ),
                "deploy a fence that knows the preflight (`sitefence deploy` with this version's ZIPs)",
            )];
        }
        _ => {}
    }
    let Some(preflight) = preflight else {
        return Vec::new();
    };
    let problems = preflight
        .get("problems")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut checks = vec![Check::pass(
        Link::Preflight,
        name,
        format!("{url} answered {status}"),
    )];
    for problem in &problems {
        let kind = problem
            .get("kind")
            .and_then(|k| serde_json::from_value::<ProblemKind>(k.clone()).ok());
        let detail = problem
            .get("detail")
            .and_then(Value::as_str)
            .unwrap_or("(no detail)")
            .to_owned();
        let (what, fix) = explain(kind);
        checks.push(Check::fail(Link::Preflight, what, detail, fix));
    }
    if problems.is_empty() {
        checks.push(Check::pass(
            Link::Preflight,
            "a fence would go through",
            summary(preflight),
        ));
    }
    checks
}

/// What a problem breaks, and its fix.
fn explain(kind: Option<ProblemKind>) -> (&'static str, &'static str) {
    match kind {
        Some(ProblemKind::Secrets) => (
            "the fence reads its secrets",
            "grant the fence role secretsmanager:GetSecretValue on both secrets (`sitefence deploy`), and check their values are plain passwords",
        ),
        Some(ProblemKind::Accelerator) => (
            "the fence reads the accelerator",
            "check accelerator.dns_name and the fence role's globalaccelerator:List*/Describe* (`sitefence deploy`)",
        ),
        Some(ProblemKind::EndpointWithoutSite) => (
            "every accelerator endpoint belongs to a site",
            "tag the endpoint's load balancer `site=<name>`, or name it in `[sites.<name>] load_balancer_arn`, then `sitefence deploy`",
        ),
        Some(ProblemKind::SiteWithoutEndpoints) => (
            "every site has endpoints in the accelerator",
            "add the site's load balancer to the accelerator, or `sitefence site bring-online <site>` after a fence",
        ),
        Some(ProblemKind::Infinispan) => (
            "the fence reaches each site's Infinispan with its credentials and CA",
            "start the site's Infinispan, or fix the password in the Infinispan secret, the CA in fence.ca_bundle, or the network path from the fence",
        ),
        Some(ProblemKind::DecisionStore) => (
            "the fence reads the decision table",
            "run `sitefence deploy` (it creates the table and the fence role's access to it)",
        ),
        Some(ProblemKind::Unfenceable) => (
            "a fence leaves every listener to a site",
            "give each listener an endpoint of both sites",
        ),
        Some(ProblemKind::OutOfTime) | None => (
            "the preflight finishes",
            "read the fence's log for the call that hung",
        ),
    }
}

/// One line on what the fence would do, per direction.
fn summary(preflight: &Value) -> String {
    let plans = preflight
        .get("plans")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let lines: Vec<String> = plans
        .iter()
        .map(|plan| {
            let text = |key: &str| plan.get(key).and_then(Value::as_str).unwrap_or("?");
            let steps = plan
                .get("steps")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            match text("choice") {
                "fence" => format!(
                    "{} reporting {}: fence {} ({}, {steps} accelerator step(s))",
                    text("reporter"),
                    text("site"),
                    text("loser"),
                    text("rule")
                ),
                choice => format!(
                    "{} reporting {}: {choice} ({})",
                    text("reporter"),
                    text("site"),
                    text("reason")
                ),
            }
        })
        .collect();
    lines.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    #[test]
    fn a_403_names_the_missing_statement_and_deploy() {
        let checks = judge("p", "https://u", 403, "{\"Message\":\"Forbidden\"}");
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].status, Status::Fail);
        assert!(checks[0].detail.contains("lambda:InvokeFunction"));
        assert!(checks[0].fix.as_deref().unwrap_or("").contains("deploy"));
    }

    #[test]
    fn each_problem_is_a_failed_check_with_its_fix() {
        let body = serde_json::json!({"status": 500, "preflight": {"plans": [], "problems": [
            {"kind": "infinispan", "site": "site-b", "detail": "site-b's Infinispan: 401"},
            {"kind": "endpoint_without_site", "detail": "endpoint lb-x belongs to no site"},
        ]}})
        .to_string();
        let checks = judge("p", "https://u", 500, &body);
        let failed: Vec<&Check> = checks.iter().filter(|c| c.status == Status::Fail).collect();
        assert_eq!(failed.len(), 2, "{checks:?}");
        assert!(failed[0].detail.contains("401"));
        assert!(
            failed[1]
                .fix
                .as_deref()
                .unwrap_or("")
                .contains("site=<name>")
        );
    }

    #[test]
    fn a_clean_preflight_passes_and_says_what_a_fence_would_do() {
        let body = serde_json::json!({"status": 200, "preflight": {"problems": [], "plans": [
            {"reporter": "site-a", "site": "site-b", "choice": "fence", "loser": "site-b",
             "rule": "reporter_preferred", "steps": [{"step": "remove_endpoints"}]}
        ]}})
        .to_string();
        let checks = judge("p", "https://u", 200, &body);
        assert!(
            checks.iter().all(|c| c.status == Status::Pass),
            "{checks:?}"
        );
        assert!(
            checks[1]
                .detail
                .contains("fence site-b (reporter_preferred, 1 accelerator step(s))")
        );
    }
}
