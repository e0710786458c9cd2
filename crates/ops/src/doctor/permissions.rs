//! Write permissions: each function's role, as it is in IAM, against the writes the function
//! makes ([`policy::writes`], the list the deployed policies are generated from) on the
//! deployment's real resources (the accelerator's endpoint groups, the decision table, the
//! topic, the health checks, the route tables).
//!
//! On AWS, IAM's policy simulator (`SimulatePrincipalPolicy`) answers for the role, with
//! everything IAM knows (permissions boundaries, conditions given as context). Where it is not
//! available (moto does not implement it; an operator without `iam:SimulatePrincipalPolicy`),
//! the role's own policies are read (inline and attached) and evaluated here: Allow and Deny,
//! `Action`/`NotAction`, `Resource`/`NotResource` with `*` and `?`, an explicit deny wins.
//! Conditions are not evaluated (an Allow with a condition counts as allowing, a Deny with one
//! as not denying), nor are permissions boundaries, SCPs or resource policies: the check's
//! detail says so.

use aws_sdk_iam::config::http::HttpResponse;
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iam::types::{ContextEntry, ContextKeyTypeEnum, PolicyEvaluationDecisionType};
use aws_topology::ec2::{Vpc as _, VpcId};
use aws_topology::globalaccelerator::GlobalAccelerator;
use common::site::AcceleratorDns;
use serde_json::Value;

use super::{Check, Ctx, Link};
use crate::deploy::plan::{self, Function};
use crate::deploy::policy::{self, Scope, writes};

/// What the detail says when the role's policies were evaluated here.
const READ_POLICIES: &str =
    "checked by reading the role's policies: SimulatePrincipalPolicy not available here";

/// One write a function makes, on the resources it makes it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub action: &'static str,
    pub resources: Vec<String>,
    /// Condition keys the simulator needs to judge the grant (e.g. `ec2:Vpc`).
    pub context: Vec<(&'static str, String)>,
}

impl Need {
    fn on(action: &'static str, resources: Vec<String>) -> Need {
        Need {
            action,
            resources,
            context: Vec::new(),
        }
    }
}

pub async fn check(ctx: &Ctx) -> Vec<Check> {
    let Some(scope) = &ctx.scope else {
        return vec![Check::skipped(
            Link::Permissions,
            "write permissions",
            "the account and accelerator could not be read (see above)",
        )];
    };
    let mut checks = Vec::new();
    // The simulator, without retries: a service that does not implement it (moto answers
    // 500) is asked once, not three times per function. Once it gave no answer, the other
    // roles are read directly.
    let simulator = aws_sdk_iam::Client::from_conf(
        aws_sdk_iam::config::Builder::from(&ctx.clients.regional)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build(),
    );
    let mut unavailable: Option<String> = None;
    for function in plan::functions(&ctx.deployment) {
        let name = function.name(&ctx.deployment);
        let check_name = format!("{name}: the writes it needs");
        let needs = match needs(ctx, scope, function).await {
            Ok(needs) => needs,
            Err(err) => {
                checks.push(Check::fail(
                    Link::Permissions,
                    check_name,
                    format!("could not list the resources it writes: {err:#}"),
                    "check the resources named in sitefence.toml exist (`sitefence deploy --dry-run`)",
                ));
                continue;
            }
        };
        let role_arn = plan::role_arn(scope, &name);
        checks.push(
            match judge(ctx, &simulator, &mut unavailable, &role_arn, &needs).await {
                Ok(judged) => judged.into_check(check_name, &name, &needs),
                Err(err) => Check::fail(
                    Link::Permissions,
                    check_name,
                    format!("could not read the role {role_arn}: {err:#}"),
                    "run `sitefence deploy` (it creates the role and its policy)",
                ),
            },
        );
    }
    checks
}

/// The writes `function` makes, on the deployment's resources as they are.
async fn needs(ctx: &Ctx, scope: &Scope, function: Function) -> anyhow::Result<Vec<Need>> {
    let deployment = &ctx.deployment;
    let mut needs = Vec::new();
    match function {
        Function::Fence => {
            let groups = endpoint_groups(ctx).await?;
            anyhow::ensure!(
                !groups.is_empty(),
                "the accelerator {} has no endpoint group",
                deployment.accelerator.dns_name
            );
            for action in writes::FENCE_TRAFFIC {
                needs.push(Need::on(action, groups.clone()));
            }
            let table = policy::table_arn(scope, &deployment.decision_table());
            for action in writes::FENCE_RECORD {
                needs.push(Need::on(action, vec![table.clone()]));
            }
        }
        Function::Route53 => {
            let ids = deployment
                .route53
                .as_ref()
                .map(|r| r.health_check_ids.clone())
                .unwrap_or_default();
            needs.push(Need::on(
                writes::PIN_HEALTH_CHECK,
                ids.iter()
                    .map(|id| policy::health_check_arn(scope, id))
                    .collect(),
            ));
        }
        Function::Vpc => {
            if let Some(vpc) = &deployment.vpc {
                let ids = if vpc.route_table_ids.is_empty() {
                    route_tables_of(ctx, &vpc.vpc_id).await?
                } else {
                    vpc.route_table_ids.clone()
                };
                needs.push(Need {
                    action: writes::MOVE_ROUTES,
                    resources: ids
                        .iter()
                        .map(|id| policy::route_table_arn(scope, id))
                        .collect(),
                    context: vec![("ec2:Vpc", policy::vpc_arn(scope, &vpc.vpc_id))],
                });
            }
        }
    }
    if let Some(topic) = &deployment.notify_topic_arn {
        needs.push(Need::on(writes::NOTIFY, vec![topic.clone()]));
    }
    needs.retain(|n| !n.resources.is_empty());
    Ok(needs)
}

/// The ARNs of the accelerator's endpoint groups, listed now.
async fn endpoint_groups(ctx: &Ctx) -> anyhow::Result<Vec<String>> {
    let deployment = &ctx.deployment;
    let dns = AcceleratorDns::parse(&deployment.accelerator.dns_name)
        .map_err(|e| anyhow::anyhow!("accelerator.dns_name: {e}"))?;
    let config = crate::aws::load(
        &ctx.aws,
        deployment.accelerator.endpoint_url.clone(),
        deployment.accelerator.region.clone(),
    )
    .await;
    let topology = GlobalAccelerator::new(&config)
        .with_elbv2_config(&ctx.clients.regional)
        .topology(&dns)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no accelerator is named {}", dns.as_str()))?;
    Ok(topology.groups.into_iter().map(|g| g.arn).collect())
}

/// Every route table of the VPC (the function may change any of them when none is named).
async fn route_tables_of(ctx: &Ctx, vpc_id: &str) -> anyhow::Result<Vec<String>> {
    let vpc: VpcId = vpc_id
        .parse()
        .map_err(|e| anyhow::anyhow!("vpc.vpc_id: {e}"))?;
    let ec2 = aws_sdk_ec2::Client::new(&ctx.clients.regional);
    let tables = ec2.route_tables(&vpc).await?;
    Ok(tables
        .into_iter()
        .map(|t| t.id.as_str().to_owned())
        .collect())
}

/// Per (action, resource): allowed or not, and how that was found.
struct Judged {
    denied: Vec<(String, String, Decision)>,
    /// `None`: by IAM's simulator; `Some(why)`: by reading the role's policies here.
    read_here: Option<String>,
}

impl Judged {
    fn into_check(self, name: String, function: &str, needs: &[Need]) -> Check {
        let how = match &self.read_here {
            None => "IAM's policy simulator".to_owned(),
            Some(why) => format!("{READ_POLICIES} ({why}); conditions not evaluated"),
        };
        if self.denied.is_empty() {
            let granted: Vec<String> = needs
                .iter()
                .map(|n| format!("{} on {} resource(s)", n.action, n.resources.len()))
                .collect();
            return Check::pass(
                Link::Permissions,
                name,
                format!("allowed: {} ({how})", granted.join(", ")),
            );
        }
        let denied: Vec<String> = self
            .denied
            .iter()
            .map(|(action, resource, decision)| format!("{action} on {resource} ({decision:?})"))
            .collect();
        Check::fail(
            Link::Permissions,
            name,
            format!(
                "the role of {function} is not allowed: {} ({how})",
                denied.join("; ")
            ),
            "run `sitefence deploy` to put the role's policy back (`sitefence deploy --dry-run` shows the difference)",
        )
    }
}

async fn judge(
    ctx: &Ctx,
    simulator: &aws_sdk_iam::Client,
    unavailable: &mut Option<String>,
    role_arn: &str,
    needs: &[Need],
) -> anyhow::Result<Judged> {
    let simulated = match unavailable.as_ref() {
        Some(why) => Err(why.clone()),
        None => simulate(simulator, role_arn, needs)
            .await
            .map_err(|e| first_line(&format!("{e:#}"))),
    };
    match simulated {
        Ok(denied) => Ok(Judged {
            denied,
            read_here: None,
        }),
        Err(why) => {
            *unavailable = Some(why.clone());
            let documents = role_documents(ctx, role_arn).await?;
            let mut denied = Vec::new();
            for need in needs {
                for resource in &need.resources {
                    let decision = evaluate(&documents, need.action, resource);
                    if decision != Decision::Allowed {
                        denied.push((need.action.to_owned(), resource.clone(), decision));
                    }
                }
            }
            Ok(Judged {
                denied,
                read_here: Some(why),
            })
        }
    }
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    line.chars().take(160).collect()
}

/// IAM's simulator: the (action, resource) pairs it does not allow.
async fn simulate(
    iam: &aws_sdk_iam::Client,
    role_arn: &str,
    needs: &[Need],
) -> anyhow::Result<Vec<(String, String, Decision)>> {
    let mut denied = Vec::new();
    for need in needs {
        let mut request = iam
            .simulate_principal_policy()
            .policy_source_arn(role_arn)
            .action_names(need.action)
            .set_resource_arns(Some(need.resources.clone()));
        for (key, value) in &need.context {
            request = request.context_entries(
                ContextEntry::builder()
                    .context_key_name(*key)
                    .context_key_type(ContextKeyTypeEnum::String)
                    .context_key_values(value)
                    .build(),
            );
        }
        let mut pages = request.into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| unavailable(&e))?;
            for result in page.evaluation_results() {
                let per_resource = result.resource_specific_results();
                if per_resource.is_empty() {
                    let decision = decision_of(result.eval_decision());
                    if decision != Decision::Allowed {
                        let resource = result.eval_resource_name().unwrap_or("*").to_owned();
                        denied.push((need.action.to_owned(), resource, decision));
                    }
                }
                for specific in per_resource {
                    let decision = decision_of(specific.eval_resource_decision());
                    if decision != Decision::Allowed {
                        denied.push((
                            need.action.to_owned(),
                            specific.eval_resource_name().to_owned(),
                            decision,
                        ));
                    }
                }
            }
        }
    }
    Ok(denied)
}

/// Why the simulator gave no answer, short: its error code, else the HTTP status (moto answers
/// 500 with an HTML page to an action it does not implement).
fn unavailable<E: ProvideErrorMetadata + std::error::Error + 'static>(
    err: &SdkError<E, HttpResponse>,
) -> anyhow::Error {
    let status = err.raw_response().map(|r| r.status().as_u16());
    match (err.code(), status) {
        (Some(code), _) => anyhow::anyhow!("{code}"),
        (None, Some(status)) => anyhow::anyhow!("HTTP {status}"),
        (None, None) => anyhow::anyhow!("{}", aws_sdk_iam::error::DisplayErrorContext(err)),
    }
}

fn decision_of(decision: &PolicyEvaluationDecisionType) -> Decision {
    match decision {
        PolicyEvaluationDecisionType::Allowed => Decision::Allowed,
        PolicyEvaluationDecisionType::ExplicitDeny => Decision::ExplicitDeny,
        _ => Decision::ImplicitDeny,
    }
}

/// The role's policy documents: inline, then attached (their default version).
async fn role_documents(ctx: &Ctx, role_arn: &str) -> anyhow::Result<Vec<Value>> {
    let iam = &ctx.clients.iam;
    let role = plan::last_segment(role_arn);
    let mut documents = Vec::new();
    let inline = iam
        .list_role_policies()
        .role_name(role)
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "ListRolePolicies: {}",
                aws_sdk_iam::error::DisplayErrorContext(e)
            )
        })?;
    for policy_name in inline.policy_names() {
        let got = iam
            .get_role_policy()
            .role_name(role)
            .policy_name(policy_name)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "GetRolePolicy {policy_name}: {}",
                    aws_sdk_iam::error::DisplayErrorContext(e)
                )
            })?;
        documents.push(document(got.policy_document())?);
    }
    let attached = iam
        .list_attached_role_policies()
        .role_name(role)
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "ListAttachedRolePolicies: {}",
                aws_sdk_iam::error::DisplayErrorContext(e)
            )
        })?;
    for attached in attached.attached_policies() {
        let Some(arn) = attached.policy_arn() else {
            continue;
        };
        let policy = iam.get_policy().policy_arn(arn).send().await.map_err(|e| {
            anyhow::anyhow!(
                "GetPolicy {arn}: {}",
                aws_sdk_iam::error::DisplayErrorContext(e)
            )
        })?;
        let Some(version) = policy.policy().and_then(|p| p.default_version_id()) else {
            continue;
        };
        let version = iam
            .get_policy_version()
            .policy_arn(arn)
            .version_id(version)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "GetPolicyVersion {arn}: {}",
                    aws_sdk_iam::error::DisplayErrorContext(e)
                )
            })?;
        if let Some(text) = version.policy_version().and_then(|v| v.document()) {
            documents.push(document(text)?);
        }
    }
    Ok(documents)
}

/// A policy document as IAM returns it (URL-encoded JSON).
fn document(text: &str) -> anyhow::Result<Value> {
    serde_json::from_str(&plan::canonical_text(text))
        .map_err(|e| anyhow::anyhow!("a policy document is not JSON: {e}"))
}

/// What the role's policies say about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// A statement denies it: no Allow can undo that.
    ExplicitDeny,
    /// No statement allows it.
    ImplicitDeny,
}

/// Evaluates identity policies for `action` on `resource`: an explicit deny wins, else an
/// allow, else the implicit deny. Conditions are not evaluated: an Allow with a condition
/// allows, a Deny with one does not deny (the optimistic reading for a check that must not
/// cry wolf; the simulator on AWS evaluates them).
pub fn evaluate(documents: &[Value], action: &str, resource: &str) -> Decision {
    let mut allowed = false;
    for statement in documents.iter().flat_map(statements) {
        if !applies(statement, action, resource) {
            continue;
        }
        let conditional = statement.get("Condition").is_some();
        match statement.get("Effect").and_then(Value::as_str) {
            Some("Deny") if !conditional => return Decision::ExplicitDeny,
            Some("Allow") => allowed = true,
            _ => {}
        }
    }
    if allowed {
        Decision::Allowed
    } else {
        Decision::ImplicitDeny
    }
}

/// A document's statements (`Statement` is an object or a list of them).
fn statements(document: &Value) -> Vec<&Value> {
    match document.get("Statement") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(object @ Value::Object(_)) => vec![object],
        _ => Vec::new(),
    }
}

/// The strings of a field that is a string or a list of strings.
fn strings(value: Option<&Value>) -> Option<Vec<&str>> {
    match value? {
        Value::String(one) => Some(vec![one.as_str()]),
        Value::Array(list) => Some(list.iter().filter_map(Value::as_str).collect()),
        _ => Some(Vec::new()),
    }
}

fn applies(statement: &Value, action: &str, resource: &str) -> bool {
    // Action names are case-insensitive in IAM; resource ARNs are not.
    let action_matches = |patterns: Vec<&str>| {
        patterns
            .iter()
            .any(|p| wildcard(&p.to_ascii_lowercase(), &action.to_ascii_lowercase()))
    };
    let resource_matches = |patterns: Vec<&str>| patterns.iter().any(|p| wildcard(p, resource));
    let action_ok = match (
        strings(statement.get("Action")),
        strings(statement.get("NotAction")),
    ) {
        (Some(actions), _) => action_matches(actions),
        (None, Some(not)) => !action_matches(not),
        (None, None) => false,
    };
    let resource_ok = match (
        strings(statement.get("Resource")),
        strings(statement.get("NotResource")),
    ) {
        (Some(resources), _) => resource_matches(resources),
        (None, Some(not)) => !resource_matches(not),
        (None, None) => false,
    };
    action_ok && resource_ok
}

/// IAM's wildcards: `*` any run of characters (`/` and `:` included), `?` any one character.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((star_p, star_t)) = star {
            pi = star_p + 1;
            ti = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const GROUP: &str =
        "arn:aws:globalaccelerator::123456789012:accelerator/abc/listener/l1/endpoint-group/g1";

    fn fence_policy(actions: &[&str]) -> Value {
        json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": actions,
             "Resource": ["arn:aws:globalaccelerator::123456789012:accelerator/abc/listener/*/endpoint-group/*"]}
        ]})
    }

    #[test]
    fn wildcards_match_as_iam_does() {
        let table = [
            ("*", "anything/at:all", true),
            (
                "arn:aws:dynamodb:eu-west-1:1:table/t",
                "arn:aws:dynamodb:eu-west-1:1:table/t",
                true,
            ),
            (
                "arn:aws:dynamodb:eu-west-1:1:table/t",
                "arn:aws:dynamodb:eu-west-1:1:table/t2",
                false,
            ),
            (
                "arn:aws:secretsmanager:r:1:secret:name-??????",
                "arn:aws:secretsmanager:r:1:secret:name-AbC123",
                true,
            ),
            (
                "arn:aws:secretsmanager:r:1:secret:name-??????",
                "arn:aws:secretsmanager:r:1:secret:name-AbC12",
                false,
            ),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("", "", true),
        ];
        for (pattern, text, expected) in table {
            assert_eq!(wildcard(pattern, text), expected, "{pattern} vs {text}");
        }
    }

    #[test]
    fn deployed_fence_policy_allows_both_traffic_writes_on_every_group() {
        let documents = [fence_policy(&writes::FENCE_TRAFFIC)];
        for action in writes::FENCE_TRAFFIC {
            assert_eq!(evaluate(&documents, action, GROUP), Decision::Allowed);
        }
        // Action names are case-insensitive.
        assert_eq!(
            evaluate(&documents, "GlobalAccelerator:removeendpoints", GROUP),
            Decision::Allowed
        );
    }

    #[test]
    fn a_policy_without_remove_endpoints_is_an_implicit_deny() {
        let documents = [fence_policy(&["globalaccelerator:UpdateEndpointGroup"])];
        assert_eq!(
            evaluate(&documents, "globalaccelerator:RemoveEndpoints", GROUP),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn an_explicit_deny_wins_over_any_allow() {
        let documents = [
            json!({"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}),
            json!({"Statement": [{"Effect": "Deny", "Action": "globalaccelerator:Remove*", "Resource": "*"}]}),
        ];
        assert_eq!(
            evaluate(&documents, "globalaccelerator:RemoveEndpoints", GROUP),
            Decision::ExplicitDeny
        );
        assert_eq!(
            evaluate(&documents, "globalaccelerator:UpdateEndpointGroup", GROUP),
            Decision::Allowed
        );
    }

    #[test]
    fn not_action_and_not_resource_match_everything_else() {
        let documents = [json!({"Statement": [
            {"Effect": "Allow", "NotAction": "iam:*", "NotResource": "arn:aws:dynamodb:*:*:table/secret"}
        ]})];
        assert_eq!(
            evaluate(
                &documents,
                "dynamodb:PutItem",
                "arn:aws:dynamodb:r:1:table/decisions"
            ),
            Decision::Allowed
        );
        assert_eq!(
            evaluate(
                &documents,
                "dynamodb:PutItem",
                "arn:aws:dynamodb:r:1:table/secret"
            ),
            Decision::ImplicitDeny
        );
        assert_eq!(
            evaluate(
                &documents,
                "iam:PassRole",
                "arn:aws:dynamodb:r:1:table/decisions"
            ),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn conditions_are_not_evaluated_an_allow_allows_a_deny_does_not() {
        let documents = [json!({"Statement": [
            {"Effect": "Allow", "Action": "ec2:ReplaceRoute", "Resource": "arn:aws:ec2:r:1:route-table/*",
             "Condition": {"ArnEquals": {"ec2:Vpc": "arn:aws:ec2:r:1:vpc/vpc-1"}}},
            {"Effect": "Deny", "Action": "ec2:ReplaceRoute", "Resource": "*",
             "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
        ]})];
        assert_eq!(
            evaluate(
                &documents,
                "ec2:ReplaceRoute",
                "arn:aws:ec2:r:1:route-table/rtb-1"
            ),
            Decision::Allowed
        );
    }

    /// The policy deploy generates allows every write the doctor asks for: one list, read by
    /// both.
    #[test]
    fn the_generated_policies_grant_every_write() {
        let deployment = crate::config::Deployment::load(&crate::example_config())
            .unwrap_or_else(|e| panic!("{e:#}"));
        let scope = Scope {
            partition: "aws".into(),
            account: "123456789012".into(),
            region: "eu-west-1".into(),
            accelerator_arn: "arn:aws:globalaccelerator::123456789012:accelerator/abc".into(),
        };
        let fence = [policy::fence_policy(&deployment, &scope, "f")];
        let table = policy::table_arn(&scope, &deployment.decision_table());
        for action in writes::FENCE_TRAFFIC {
            assert_eq!(
                evaluate(&fence, action, GROUP),
                Decision::Allowed,
                "{action}"
            );
        }
        for action in writes::FENCE_RECORD {
            assert_eq!(
                evaluate(&fence, action, &table),
                Decision::Allowed,
                "{action}"
            );
        }
        let route53 = [policy::route53_policy(
            &deployment,
            &["hc1".into()],
            &scope,
            "r",
        )];
        assert_eq!(
            evaluate(
                &route53,
                writes::PIN_HEALTH_CHECK,
                &policy::health_check_arn(&scope, "hc1")
            ),
            Decision::Allowed
        );
        let vpc = deployment
            .vpc
            .clone()
            .unwrap_or_else(|| panic!("the example has [vpc]"));
        let vpc_policy = [policy::vpc_policy(&deployment, &vpc, &scope, "v")];
        let table_id = vpc.route_table_ids.first().map_or("rtb-1", String::as_str);
        assert_eq!(
            evaluate(
                &vpc_policy,
                writes::MOVE_ROUTES,
                &policy::route_table_arn(&scope, table_id)
            ),
            Decision::Allowed
        );
    }
}
