//! What a deployment should look like in AWS (`desired`), and the difference to what is there
//! (`diff`): pure functions, tested as tables. `observe` reads the actual state into the same
//! attribute maps; `apply` carries out the changes.

use super::policy::{self, Scope};
use crate::config::Deployment;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// Tag on every resource `deploy` creates: its value is the deployment's `name`. `destroy`
/// deletes only what carries it.
pub const OWNER_TAG: &str = "sitefence:deployment";
/// IAM path of the roles, so that `destroy` lists only candidates.
pub const ROLE_PATH: &str = "/sitefence/";
pub const RUNTIME: &str = "provided.al2023";
pub const HANDLER: &str = "bootstrap";
/// The Function URL's first statement: `lambda:InvokeFunctionUrl` for anyone, auth type `NONE`.
pub const FUNCTION_URL_STATEMENT: &str = "sitefence-function-url";
/// The Function URL's second statement, required since October 2025: `lambda:InvokeFunction`
/// for anyone, only when invoked through the Function URL. Without it Lambda answers every
/// request to the URL with 403 before the function starts (docs/aws-behaviours.md).
pub const FUNCTION_URL_INVOKE_STATEMENT: &str = "sitefence-function-url-invoke";
pub const SNS_STATEMENT: &str = "sitefence-sns-alarm";
pub const EVENTS_STATEMENT: &str = "sitefence-eventbridge";
pub const RULE_TARGET_ID: &str = "vpc-route-failover";
/// The fence's reserved concurrency: a cap, not a lock. The decision record (a conditional
/// create in the decision table) makes concurrent reports of one split-brain agree, so the
/// fence no longer needs to run one at a time. What it must not do is answer 429: Lambda
/// throttles an invocation beyond the reservation with 429, and Alertmanager never retries a
/// 4xx (docs/aws-behaviours.md, 7). One split-brain sends two reports at once (each site's
/// Alertmanager, each of its replicas, and their resends), so the cap leaves room for all of
/// them; and it still bounds what a flood of requests to the public Function URL can take from
/// the account's concurrency.
pub const FENCE_RESERVED_CONCURRENCY: i32 = 10;

/// The decision table's partition key, as the fence reads and writes it
/// (`aws_topology::decisions`): the table is defined here once, and `apply` and `observe`
/// mirror it.
pub const DECISION_TABLE_KEY: TableKey = TableKey {
    attribute: aws_topology::decisions::KEY_ATTRIBUTE,
    key_type: "HASH",
    attribute_type: "S",
};
/// On-demand: a handful of writes per incident, nothing to provision.
pub const DECISION_TABLE_BILLING_MODE: &str = "PAY_PER_REQUEST";
/// DescribeContinuousBackups' `PointInTimeRecoveryStatus` wanted for the table.
pub const POINT_IN_TIME_RECOVERY_ENABLED: &str = "ENABLED";

/// One key attribute of a DynamoDB table, by the names DynamoDB's API gives its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableKey {
    pub attribute: &'static str,
    /// `HASH` (partition key) or `RANGE` (sort key).
    pub key_type: &'static str,
    /// `S`, `N` or `B`.
    pub attribute_type: &'static str,
}

/// A key schema as `diff` compares it: `name TYPE ATTRIBUTE_TYPE` per element, in order.
pub fn key_schema_text<'a>(
    elements: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
) -> String {
    elements
        .into_iter()
        .map(|(name, key_type, attribute_type)| format!("{name} {key_type} {attribute_type}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The instance states that take an appliance out of service (what the VPC function acts on;
/// seed 003 also listed `pending`, which the function ignores anyway).
pub const OUT_OF_SERVICE_STATES: [&str; 4] = ["stopping", "stopped", "shutting-down", "terminated"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Function {
    Fence,
    Route53,
    Vpc,
}

impl Function {
    pub const ALL: [Function; 3] = [Function::Fence, Function::Route53, Function::Vpc];

    pub fn crate_name(self) -> &'static str {
        match self {
            Function::Fence => "fence-lambda",
            Function::Route53 => "route53-failover-lambda",
            Function::Vpc => "vpc-route-failover-lambda",
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Function::Fence => "fence",
            Function::Route53 => "route53-failover",
            Function::Vpc => "vpc-route-failover",
        }
    }

    /// The function's (and its role's) name in a deployment.
    pub fn name(self, deployment: &Deployment) -> String {
        format!("{}-{}", deployment.name, self.suffix())
    }

    fn timeout_seconds(self) -> i32 {
        match self {
            // Retries of Global Accelerator conflicts (20 s budget) plus the Infinispan calls.
            Function::Fence => 60,
            Function::Route53 | Function::Vpc => 30,
        }
    }
}

/// The ZIP deployed for a function: where it is and its SHA-256 as Lambda reports it (base64).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code {
    pub zip: PathBuf,
    pub sha256_base64: String,
}

/// Everything outside `sitefence.toml` the desired state depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs {
    pub scope: Scope,
    /// Lambda's architecture name (`arm64`, `x86_64`).
    pub architecture: String,
    pub code: BTreeMap<Function, Code>,
    /// The CA bundle's PEM text, passed to the fence in `INFINISPAN_CA_BUNDLE`.
    pub ca_bundle_pem: Option<String>,
}

/// One resource `deploy` manages. Resources refer to each other by name; ARNs are derived from
/// the scope, so the plan is complete before anything exists.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    Secret {
        name: String,
    },
    /// The fence's decision records ([`DECISION_TABLE_KEY`], on-demand, point-in-time recovery,
    /// deletion protection).
    DecisionTable {
        name: String,
    },
    Role {
        name: String,
    },
    RolePolicy {
        role: String,
        document: Value,
    },
    Function {
        function: Function,
        name: String,
        role_arn: String,
        architecture: String,
        code: Code,
        environment: BTreeMap<String, String>,
    },
    ReservedConcurrency {
        function: String,
        value: i32,
    },
    FunctionUrl {
        function: String,
    },
    Permission {
        function: String,
        statement_id: &'static str,
        action: &'static str,
        principal: &'static str,
        condition: PermissionCondition,
    },
    Topic {
        name: String,
        region: String,
    },
    /// A function's log group (`/aws/lambda/<function>`), made before the function first logs
    /// so that its logs are kept `retention_days` rather than forever, and tagged like the rest.
    LogGroup {
        name: String,
        retention_days: i32,
    },
    /// An alarm on a function, in the functions' region, notifying the deployment's alarm topic
    /// there ([`alarm_topic_name`]).
    FunctionAlarm {
        name: String,
        region: String,
        /// The deployed function it watches.
        function: String,
        watch: Watch,
        topic_arn: String,
    },
    Alarm {
        name: String,
        region: String,
        health_check_id: String,
        topic_arn: String,
    },
    /// Created only once the alarms are `OK` (DESIGN.md): a fresh alarm must not fail the
    /// primary over on its first evaluation.
    Subscription {
        topic_arn: String,
        region: String,
        function_arn: String,
        alarms: Vec<String>,
    },
    Rule {
        name: String,
        pattern: Value,
    },
    RuleTarget {
        rule: String,
        function_arn: String,
    },
    /// Where Lambda sends an asynchronous event (SNS's, EventBridge's) that still failed after
    /// its retries: the alarm topic, so that a failover that did not happen is told, with the
    /// event and the error ([`ASYNC_MAX_RETRIES`], [`ASYNC_MAX_EVENT_AGE_SECONDS`]).
    FailureDestination {
        function: String,
        destination_arn: String,
    },
}

/// Lambda's own default: an asynchronous event that fails is tried twice more.
pub const ASYNC_MAX_RETRIES: i32 = 2;
/// An event older than an hour goes to the failure destination rather than being tried: a
/// failover decided on an hour-old alarm or state change acts on a world that has moved on,
/// and the operator is told instead (Lambda's default keeps trying for six hours).
pub const ASYNC_MAX_EVENT_AGE_SECONDS: i32 = 3600;

/// The condition of a Lambda resource-policy statement that deploy writes. Each maps to one
/// AddPermission parameter, and to the statement's `Condition` in the policy Lambda keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PermissionCondition {
    /// `SourceArn`: `ArnLike` `AWS:SourceArn` (the SNS topic, the EventBridge rule).
    SourceArn(String),
    /// `FunctionUrlAuthType=NONE`: `StringEquals` `lambda:FunctionUrlAuthType` = `NONE`.
    FunctionUrlAuthNone,
    /// `InvokedViaFunctionUrl=true`: `Bool` `lambda:InvokedViaFunctionUrl` = `true`.
    InvokedViaFunctionUrl,
}

impl PermissionCondition {
    /// The attributes `diff` compares, the same `observe` reads back from the policy.
    pub fn attributes(&self) -> Vec<(&'static str, String)> {
        match self {
            PermissionCondition::SourceArn(arn) => vec![("source_arn", arn.clone())],
            PermissionCondition::FunctionUrlAuthNone => {
                vec![("function_url_auth_type", "NONE".to_string())]
            }
            PermissionCondition::InvokedViaFunctionUrl => {
                vec![("invoked_via_function_url", "true".to_string())]
            }
        }
    }
}

/// A resource's identity: kind and name, as printed in the plan.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub kind: &'static str,
    pub name: String,
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<26} {}", self.kind, self.name)
    }
}

pub type Attributes = BTreeMap<String, String>;

impl Resource {
    pub fn key(&self) -> Key {
        let (kind, name) = match self {
            Resource::Secret { name } => ("secret", name.clone()),
            Resource::DecisionTable { name } => ("dynamodb table", name.clone()),
            Resource::Role { name } => ("iam role", name.clone()),
            Resource::RolePolicy { role, .. } => ("iam inline policy", role.clone()),
            Resource::Function { name, .. } => ("lambda function", name.clone()),
            Resource::ReservedConcurrency { function, .. } => {
                ("lambda reserved concurrency", function.clone())
            }
            Resource::FunctionUrl { function } => ("lambda function url", function.clone()),
            Resource::Permission {
                function,
                statement_id,
                ..
            } => ("lambda permission", format!("{function}/{statement_id}")),
            Resource::Topic { name, region } => ("sns topic", format!("{region}/{name}")),
            Resource::LogGroup { name, .. } => ("log group", name.clone()),
            Resource::Alarm { name, region, .. } | Resource::FunctionAlarm { name, region, .. } => {
                ("cloudwatch alarm", format!("{region}/{name}"))
            }
            Resource::Subscription {
                topic_arn,
                function_arn,
                ..
            } => (
                "sns subscription",
                format!(
                    "{} -> {}",
                    last_segment(topic_arn),
                    last_segment(function_arn)
                ),
            ),
            Resource::Rule { name, .. } => ("eventbridge rule", name.clone()),
            Resource::RuleTarget { rule, .. } => {
                ("eventbridge target", format!("{rule}/{RULE_TARGET_ID}"))
            }
            Resource::FailureDestination { function, .. } => {
                ("lambda failure destination", function.clone())
            }
        };
        Key { kind, name }
    }

    /// What `diff` compares: the same keys `observe` reads back. The owner tag is one of them.
    pub fn attributes(&self, owner: &str) -> Attributes {
        let mut a = Attributes::new();
        let mut set = |k: &str, v: String| {
            a.insert(k.to_string(), v);
        };
        match self {
            // A secret is compared by existence only: its value is never read, and an existing
            // secret (the operator's own) is used as it is.
            Resource::Secret { .. } => {}
            Resource::DecisionTable { .. } => {
                for (k, v) in decision_table_settings() {
                    set(k, v);
                }
                set("owner", owner.to_string());
            }
            Resource::Role { .. } => {
                set("trust_policy", canonical(&policy::lambda_trust_policy()));
                set("owner", owner.to_string());
            }
            Resource::RolePolicy { document, .. } => set("document", canonical(document)),
            Resource::Function {
                role_arn,
                architecture,
                code,
                environment,
                function,
                ..
            } => {
                set("runtime", RUNTIME.to_string());
                set("architecture", architecture.clone());
                set("handler", HANDLER.to_string());
                set("role", role_arn.clone());
                set("code_sha256", code.sha256_base64.clone());
                set("timeout", function.timeout_seconds().to_string());
                set("memory", "128".to_string());
                set("environment", json!(environment).to_string());
                set("owner", owner.to_string());
            }
            Resource::ReservedConcurrency { value, .. } => set("reserved", value.to_string()),
            Resource::FunctionUrl { .. } => set("auth_type", "NONE".to_string()),
            Resource::Permission {
                action,
                principal,
                condition,
                ..
            } => {
                set("action", action.to_string());
                set("principal", principal.to_string());
                for (k, v) in condition.attributes() {
                    set(k, v);
                }
            }
            Resource::Topic { .. } => set("owner", owner.to_string()),
            Resource::LogGroup { retention_days, .. } => {
                set("retention_days", retention_days.to_string());
                set("owner", owner.to_string());
            }
            Resource::FunctionAlarm {
                function,
                watch,
                topic_arn,
                ..
            } => {
                for (k, v) in watch.settings(function, topic_arn) {
                    set(k, v);
                }
                set("owner", owner.to_string());
            }
            Resource::Alarm {
                health_check_id,
                topic_arn,
                ..
            } => {
                for (k, v) in alarm_settings(health_check_id, topic_arn) {
                    set(k, v);
                }
                set("owner", owner.to_string());
            }
            Resource::Subscription { .. } => {}
            Resource::Rule { pattern, .. } => {
                set("pattern", canonical(pattern));
                set("state", "ENABLED".to_string());
                set("owner", owner.to_string());
            }
            Resource::RuleTarget { function_arn, .. } => set("arn", function_arn.clone()),
            Resource::FailureDestination {
                destination_arn, ..
            } => {
                set("on_failure", destination_arn.clone());
                set("max_retries", ASYNC_MAX_RETRIES.to_string());
                set("max_event_age", ASYNC_MAX_EVENT_AGE_SECONDS.to_string());
            }
        }
        a
    }
}

/// The decision table's settings, as `diff` compares them; `observe` reads the same back.
/// The key schema cannot be changed in place ([`Plan::unappliable`]).
pub fn decision_table_settings() -> Vec<(&'static str, String)> {
    let key = DECISION_TABLE_KEY;
    vec![
        (
            "key_schema",
            key_schema_text([(key.attribute, key.key_type, key.attribute_type)]),
        ),
        ("billing_mode", DECISION_TABLE_BILLING_MODE.to_string()),
        (
            "point_in_time_recovery",
            POINT_IN_TIME_RECOVERY_ENABLED.to_string(),
        ),
        ("deletion_protection", "true".to_string()),
    ]
}

/// Attributes of a resource that no call can change in place: a difference in one of them
/// is refused before any change ([`Plan::unappliable`]).
const IMMUTABLE: &[(&str, &str)] = &[("dynamodb table", "key_schema")];

/// Seed 000's alarm, with its flaws fixed: missing data is not breaching (a fresh or paused
/// health check does not fail over), and the health check is named by its dimension.
pub fn alarm_settings(health_check_id: &str, topic_arn: &str) -> Vec<(&'static str, String)> {
    vec![
        ("namespace", "AWS/Route53".to_string()),
        ("metric", "HealthCheckStatus".to_string()),
        ("dimension", format!("HealthCheckId={health_check_id}")),
        ("statistic", "Minimum".to_string()),
        ("period", "60".to_string()),
        ("evaluation_periods", "1".to_string()),
        ("threshold", "1".to_string()),
        ("comparison", "LessThanThreshold".to_string()),
        ("treat_missing_data", "notBreaching".to_string()),
        ("alarm_actions", topic_arn.to_string()),
    ]
}

/// What a function alarm watches. Every one of them goes off on the first minute with a
/// breaching value and treats a minute without data as fine (a function that is not invoked
/// is not failing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watch {
    /// `AWS/Lambda` `Errors`: the handler failed or panicked, init failed, or the invocation
    /// timed out. A fence that answers 5xx is not one (Lambda counts it a success).
    Errors,
    /// `AWS/Lambda` `Throttles`: Lambda refused an invocation beyond the reserved concurrency,
    /// with 429 for the Function URL, which Alertmanager never retries.
    Throttles,
    /// The fence's `UnfencedSeconds` (its EMF metric, `common::metrics`): a `SiteOffline` alert
    /// has fired this many seconds and its fence is still not complete. `Errors` and `Duration`
    /// do not see that: the fence stops at its deadline and answers 5xx, a success for Lambda,
    /// and Alertmanager's resends keep failing the same way.
    NotCompleted { seconds: u64 },
}

impl Watch {
    /// The suffix of the alarm's name after the function's.
    pub fn suffix(self) -> &'static str {
        match self {
            Watch::Errors => "errors",
            Watch::Throttles => "throttles",
            Watch::NotCompleted { .. } => "not-completed",
        }
    }

    /// The alarm's settings, in the attribute form `observe::read_alarm` reads back.
    pub fn settings(self, function: &str, topic_arn: &str) -> Vec<(&'static str, String)> {
        let (namespace, metric, statistic, threshold) = match self {
            Watch::Errors => ("AWS/Lambda", "Errors", "Sum", 1),
            Watch::Throttles => ("AWS/Lambda", "Throttles", "Sum", 1),
            Watch::NotCompleted { seconds } => (
                common::metrics::NAMESPACE,
                common::metrics::names::UNFENCED_SECONDS,
                "Maximum",
                seconds,
            ),
        };
        vec![
            ("namespace", namespace.to_string()),
            ("metric", metric.to_string()),
            (
                "dimension",
                // `AWS/Lambda`'s dimension and the EMF line's have one name.
                format!("{}={function}", common::metrics::dimensions::FUNCTION),
            ),
            ("statistic", statistic.to_string()),
            ("period", "60".to_string()),
            ("evaluation_periods", "1".to_string()),
            ("threshold", threshold.to_string()),
            ("comparison", "GreaterThanOrEqualToThreshold".to_string()),
            ("treat_missing_data", "notBreaching".to_string()),
            ("alarm_actions", topic_arn.to_string()),
        ]
    }

    /// What the alarm means, for its description.
    pub fn description(self, function: &str) -> String {
        match self {
            Watch::Errors => format!("{function} failed (error, panic, timeout or failed init)"),
            Watch::Throttles => format!(
                "{function} was throttled (beyond its reserved concurrency; Alertmanager does not retry a 429)"
            ),
            Watch::NotCompleted { seconds } => format!(
                "a SiteOffline alert has fired {seconds} s or more and {function} has not completed its fence"
            ),
        }
    }
}

/// The alarms each function gets.
pub fn watches(function: Function, alarms: &crate::config::Alarms) -> Vec<Watch> {
    match function {
        Function::Fence => vec![
            Watch::Errors,
            Watch::Throttles,
            Watch::NotCompleted {
                seconds: alarms.fence_not_completed_seconds,
            },
        ],
        Function::Route53 | Function::Vpc => vec![Watch::Errors],
    }
}

/// The log group Lambda writes a function's logs to.
pub fn log_group_name(function_name: &str) -> String {
    format!("{LOG_GROUP_PREFIX}{function_name}")
}

/// Where Lambda puts every function's log group.
pub const LOG_GROUP_PREFIX: &str = "/aws/lambda/";

/// JSON with object keys sorted at every level, so that documents AWS hands back in another
/// key order compare equal.
pub fn canonical(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let ordered: BTreeMap<&String, Value> =
                    map.iter().map(|(k, v)| (k, sorted(v))).collect();
                json!(ordered)
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

/// A JSON document as AWS returns it (IAM URL-encodes them), in canonical form.
pub fn canonical_text(text: &str) -> String {
    let decoded = percent_decode(text);
    serde_json::from_str::<Value>(&decoded)
        .map(|v| canonical(&v))
        .unwrap_or(decoded)
}

fn percent_decode(text: &str) -> String {
    if !text.contains('%') {
        return text.to_string();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn last_segment(arn: &str) -> &str {
    arn.rsplit([':', '/']).next().unwrap_or(arn)
}

pub fn topic_name(deployment: &Deployment) -> String {
    format!("{}-route53-failover", deployment.name)
}

pub fn alarm_name(deployment: &Deployment, health_check_id: &str) -> String {
    format!("{}-health-check-{health_check_id}", deployment.name)
}

/// The topic the function alarms notify, in the functions' region: an alarm can only notify a
/// topic of its own region (docs/aws-behaviours.md, 71), and the Route 53 topic is in us-east-1
/// and invokes the Route 53 function. Operators subscribe to it.
pub fn alarm_topic_name(deployment: &Deployment) -> String {
    format!("{}-alarms", deployment.name)
}

/// The alarm topic's ARN: in the functions' region, where the alarms and the failure
/// destinations that notify it are.
pub fn alarm_topic_arn(deployment: &Deployment, scope: &Scope) -> String {
    scope.arn("sns", &scope.region, &alarm_topic_name(deployment))
}

pub fn function_alarm_name(deployment: &Deployment, function: Function, watch: Watch) -> String {
    format!("{}-{}", function.name(deployment), watch.suffix())
}

pub fn rule_name(deployment: &Deployment) -> String {
    format!("{}-vpc-appliance-state", deployment.name)
}

/// Seed 003's EventBridge pattern, limited to the states that take an appliance out of service.
pub fn rule_pattern(vpc: &crate::config::Vpc) -> Value {
    json!({
        "source": ["aws.ec2"],
        "detail-type": ["EC2 Instance State-change Notification"],
        "detail": {
            "state": OUT_OF_SERVICE_STATES,
            "instance-id": [vpc.primary_instance_id, vpc.standby_instance_id]
        }
    })
}

pub fn role_arn(scope: &Scope, name: &str) -> String {
    format!(
        "arn:{}:iam::{}:role{ROLE_PATH}{name}",
        scope.partition, scope.account
    )
}

pub fn function_arn(scope: &Scope, name: &str) -> String {
    scope.arn("lambda", &scope.region, &format!("function:{name}"))
}

/// The functions a deployment has: the fence always, the others when configured.
pub fn functions(deployment: &Deployment) -> Vec<Function> {
    let mut functions = vec![Function::Fence];
    if deployment.route53.is_some() {
        functions.push(Function::Route53);
    }
    if deployment.vpc.is_some() {
        functions.push(Function::Vpc);
    }
    functions
}

/// The function's environment, written by the function crate's own `config::Environment`: the
/// variable names are spelled only there, next to the parser that reads them.
pub fn environment(
    deployment: &Deployment,
    function: Function,
    inputs: &Inputs,
) -> BTreeMap<String, String> {
    let notify_topic_arn = deployment.notify_topic_arn.clone();
    match function {
        Function::Fence => {
            let fence = &deployment.fence;
            fence_lambda::config::Environment {
                webhook_user: fence.webhook_user.clone(),
                webhook_secret: fence.webhook_secret.clone(),
                infinispan_user: fence.infinispan_user.clone(),
                infinispan_secret: fence.infinispan_secret.clone(),
                site_endpoints: deployment
                    .sites
                    .iter()
                    .map(|(name, site)| (name.clone(), site.infinispan_url.clone()))
                    .collect(),
                secrets_region: deployment.region.clone(),
                accelerator_region: Some(deployment.accelerator.region.clone()),
                // Read during init, so that a cold start's first fence finds it resolved.
                accelerator_dns_name: Some(deployment.accelerator.dns_name.clone()),
                // The ARN deploy found by that name, which the fence's policy names: init
                // lists its listeners without ListAccelerators first.
                accelerator_arn: Some(inputs.scope.accelerator_arn.clone()),
                // Sites whose load balancer is configured need no ELBv2 tag read.
                site_load_balancers: deployment
                    .sites
                    .iter()
                    .filter_map(|(name, site)| {
                        Some((name.clone(), site.load_balancer_arn.clone()?))
                    })
                    .collect(),
                alert_name: Some(fence.alert_name.clone()),
                preferred_site: fence.preferred_site.clone(),
                ca_bundle_pem: inputs.ca_bundle_pem.clone(),
                notify_topic_arn,
                decision_table: deployment.decision_table(),
                mode: deployment.mode,
            }
            .to_vars()
        }
        Function::Route53 => {
            let route53 = deployment.route53.as_ref();
            route53_failover_lambda::config::Environment {
                failed_over_path: route53.map(|r| r.failed_over_path.clone()),
                health_check_ids: route53
                    .map(|r| r.health_check_ids.clone())
                    .unwrap_or_default(),
                notify_topic_arn,
                mode: deployment.mode,
            }
            .to_vars()
        }
        Function::Vpc => match &deployment.vpc {
            Some(vpc) => vpc_route_failover_lambda::config::Environment {
                primary_eni: vpc.primary_eni.clone(),
                standby_eni: vpc.standby_eni.clone(),
                vpc_id: vpc.vpc_id.clone(),
                route_table_ids: vpc.route_table_ids.clone(),
                notify_topic_arn,
                mode: deployment.mode,
            }
            .to_vars(),
            // Not deployed without `[vpc]` (see `functions`); only the topic would be known.
            None => notify_topic_arn
                .map(|topic| BTreeMap::from([(common::config::NOTIFY_TOPIC_ARN.to_owned(), topic)]))
                .unwrap_or_default(),
        },
    }
}

/// The IAM policy of a function (what `lint` checks too).
pub fn function_policy(deployment: &Deployment, function: Function, scope: &Scope) -> Value {
    let name = function.name(deployment);
    match function {
        Function::Fence => policy::fence_policy(deployment, scope, &name),
        Function::Route53 => {
            let ids = deployment
                .route53
                .as_ref()
                .map(|r| r.health_check_ids.clone())
                .unwrap_or_default();
            policy::with_failure_destination(
                policy::route53_policy(deployment, &ids, scope, &name),
                &alarm_topic_arn(deployment, scope),
            )
        }
        Function::Vpc => match &deployment.vpc {
            Some(vpc) => policy::with_failure_destination(
                policy::vpc_policy(deployment, vpc, scope, &name),
                &alarm_topic_arn(deployment, scope),
            ),
            None => json!({}),
        },
    }
}

/// The deployment's decision table (what sandbox worlds configured in code create alone).
pub fn decision_table(deployment: &Deployment) -> Resource {
    Resource::DecisionTable {
        name: deployment.decision_table(),
    }
}

/// Every resource of the deployment, in the order they can be created.
pub fn desired(deployment: &Deployment, inputs: &Inputs) -> anyhow::Result<Vec<Resource>> {
    let scope = &inputs.scope;
    let mut resources = vec![
        Resource::Secret {
            name: deployment.fence.webhook_secret.clone(),
        },
        Resource::Secret {
            name: deployment.fence.infinispan_secret.clone(),
        },
        // Before the fence: a fence that cannot record its decision changes nothing (5xx).
        decision_table(deployment),
    ];
    for function in functions(deployment) {
        let name = function.name(deployment);
        let code = inputs.code.get(&function).cloned().ok_or_else(|| {
            anyhow::anyhow!(
                "no ZIP for {} (run `cargo xtask build`)",
                function.crate_name()
            )
        })?;
        resources.push(Resource::Role { name: name.clone() });
        // Before the function: Lambda would otherwise make it at the first log line, untagged
        // and kept forever.
        resources.push(Resource::LogGroup {
            name: log_group_name(&name),
            retention_days: deployment.log_retention_days,
        });
        resources.push(Resource::RolePolicy {
            role: name.clone(),
            document: function_policy(deployment, function, scope),
        });
        resources.push(Resource::Function {
            function,
            name: name.clone(),
            role_arn: role_arn(scope, &name),
            architecture: inputs.architecture.clone(),
            code,
            environment: environment(deployment, function, inputs),
        });
        let arn = function_arn(scope, &name);
        match function {
            Function::Fence => {
                // A cap that no report of one split-brain reaches (see the constant).
                resources.push(Resource::ReservedConcurrency {
                    function: name.clone(),
                    value: FENCE_RESERVED_CONCURRENCY,
                });
                resources.push(Resource::FunctionUrl {
                    function: name.clone(),
                });
                // Alertmanager cannot sign requests: auth NONE, HTTP Basic checked in code.
                // Lambda requires both statements for a public Function URL (since October
                // 2025); either alone gets every request a 403.
                resources.push(Resource::Permission {
                    function: name.clone(),
                    statement_id: FUNCTION_URL_STATEMENT,
                    action: "lambda:InvokeFunctionUrl",
                    principal: "*",
                    condition: PermissionCondition::FunctionUrlAuthNone,
                });
                resources.push(Resource::Permission {
                    function: name.clone(),
                    statement_id: FUNCTION_URL_INVOKE_STATEMENT,
                    action: "lambda:InvokeFunction",
                    principal: "*",
                    condition: PermissionCondition::InvokedViaFunctionUrl,
                });
            }
            Function::Route53 => {
                let Some(route53) = &deployment.route53 else {
                    continue;
                };
                let topic = topic_name(deployment);
                let topic_arn = scope.arn("sns", &route53.region, &topic);
                resources.push(Resource::Topic {
                    name: topic,
                    region: route53.region.clone(),
                });
                let mut alarms = Vec::new();
                for id in &route53.health_check_ids {
                    let alarm = alarm_name(deployment, id);
                    alarms.push(alarm.clone());
                    resources.push(Resource::Alarm {
                        name: alarm,
                        region: route53.region.clone(),
                        health_check_id: id.clone(),
                        topic_arn: topic_arn.clone(),
                    });
                }
                resources.push(Resource::Permission {
                    function: name.clone(),
                    statement_id: SNS_STATEMENT,
                    action: "lambda:InvokeFunction",
                    principal: "sns.amazonaws.com",
                    condition: PermissionCondition::SourceArn(topic_arn.clone()),
                });
                resources.push(Resource::Subscription {
                    topic_arn,
                    region: route53.region.clone(),
                    function_arn: arn,
                    alarms,
                });
            }
            Function::Vpc => {
                let Some(vpc) = &deployment.vpc else { continue };
                let rule = rule_name(deployment);
                resources.push(Resource::Rule {
                    name: rule.clone(),
                    pattern: rule_pattern(vpc),
                });
                resources.push(Resource::Permission {
                    function: name.clone(),
                    statement_id: EVENTS_STATEMENT,
                    action: "lambda:InvokeFunction",
                    principal: "events.amazonaws.com",
                    condition: PermissionCondition::SourceArn(scope.arn(
                        "events",
                        &scope.region,
                        &format!("rule/{rule}"),
                    )),
                });
                resources.push(Resource::RuleTarget {
                    rule,
                    function_arn: arn,
                });
            }
        }
    }
    let topic = alarm_topic_name(deployment);
    let topic_arn = alarm_topic_arn(deployment, scope);
    resources.push(Resource::Topic {
        name: topic,
        region: scope.region.clone(),
    });
    // The functions invoked asynchronously tell the alarm topic of an event they could not
    // carry out (the fence is invoked synchronously: Alertmanager resends itself).
    for function in functions(deployment) {
        if function != Function::Fence {
            resources.push(Resource::FailureDestination {
                function: function.name(deployment),
                destination_arn: topic_arn.clone(),
            });
        }
    }
    for function in functions(deployment) {
        for watch in watches(function, &deployment.alarms) {
            resources.push(Resource::FunctionAlarm {
                name: function_alarm_name(deployment, function, watch),
                region: scope.region.clone(),
                function: function.name(deployment),
                watch,
                topic_arn: topic_arn.clone(),
            });
        }
    }
    Ok(resources)
}

/// What is there now, per resource; `None` when absent.
pub type Observed = BTreeMap<Key, Option<Attributes>>;

#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Create(Resource),
    Update {
        resource: Resource,
        /// (attribute, now, wanted)
        differences: Vec<(String, String, String)>,
    },
}

impl Change {
    pub fn resource(&self) -> &Resource {
        match self {
            Change::Create(resource) | Change::Update { resource, .. } => resource,
        }
    }
}

impl Plan {
    /// The differences no call can make in place (a DynamoDB table's key schema): deploy
    /// refuses the plan before any change, naming each and the way out.
    pub fn unappliable(&self) -> Vec<String> {
        let mut found = Vec::new();
        for change in &self.changes {
            let Change::Update {
                resource,
                differences,
            } = change
            else {
                continue;
            };
            let key = resource.key();
            for (attribute, now, wanted) in differences {
                if IMMUTABLE.contains(&(key.kind, attribute.as_str())) {
                    found.push(format!(
                        "{} {}: {attribute} is `{now}`, the fence needs `{wanted}`, and it cannot be changed in place: delete the table (its records go with it) or name another one (fence.decision_table)",
                        key.kind, key.name
                    ));
                }
            }
        }
        found
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub unchanged: usize,
    /// Resources with our names that belong to someone else: deploy refuses to take them over.
    pub conflicts: Vec<String>,
}

pub fn diff(desired: &[Resource], observed: &Observed, owner: &str) -> Plan {
    let mut plan = Plan::default();
    for resource in desired {
        let key = resource.key();
        let wanted = resource.attributes(owner);
        match observed.get(&key).cloned().flatten() {
            None => plan.changes.push(Change::Create(resource.clone())),
            Some(now) => {
                if let Some(other) = now.get("owner")
                    && other != owner
                {
                    plan.conflicts.push(format!(
                        "{key} exists and is not owned by deployment `{owner}` ({OWNER_TAG}={})",
                        if other.is_empty() { "<none>" } else { other }
                    ));
                    continue;
                }
                let differences: Vec<(String, String, String)> = wanted
                    .iter()
                    .filter(|(k, v)| now.get(*k) != Some(*v))
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            now.get(k).cloned().unwrap_or_else(|| "<none>".to_string()),
                            v.clone(),
                        )
                    })
                    .collect();
                if differences.is_empty() {
                    plan.unchanged += 1;
                } else {
                    plan.changes.push(Change::Update {
                        resource: resource.clone(),
                        differences,
                    });
                }
            }
        }
    }
    plan
}

/// Attribute values can be long (policies, environment): show them whole, but one per line.
fn shown(key: &str, value: &str) -> String {
    if key == "environment" {
        // Never show the CA bundle's bytes; the rest of the environment holds no secret.
        if let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(value) {
            if let Some(pem) = map.get_mut(fence_lambda::config::vars::INFINISPAN_CA_BUNDLE) {
                *pem = json!(format!("<PEM, {} bytes>", pem.as_str().map_or(0, str::len)));
            }
            return Value::Object(map).to_string();
        }
    }
    value.to_string()
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for conflict in &self.conflicts {
            writeln!(f, "! {conflict}")?;
        }
        for change in &self.changes {
            match change {
                Change::Create(resource) => {
                    let note = match resource {
                        Resource::Secret { .. } => "  (generated password)",
                        Resource::DecisionTable { .. } => {
                            "  (on demand, point-in-time recovery, deletion protection)"
                        }
                        Resource::Subscription { .. } => "  (once the alarm is OK)",
                        _ => "",
                    };
                    writeln!(f, "+ {}{note}", resource.key())?;
                }
                Change::Update {
                    resource,
                    differences,
                } => {
                    writeln!(f, "~ {}", resource.key())?;
                    for (attribute, now, wanted) in differences {
                        writeln!(f, "    - {attribute}: {}", shown(attribute, now))?;
                        writeln!(f, "    + {attribute}: {}", shown(attribute, wanted))?;
                    }
                }
            }
        }
        if self.changes.is_empty() && self.conflicts.is_empty() {
            writeln!(f, "no changes ({} resources up to date)", self.unchanged)
        } else {
            writeln!(
                f,
                "{} to create, {} to update, {} unchanged",
                self.changes
                    .iter()
                    .filter(|c| matches!(c, Change::Create(_)))
                    .count(),
                self.changes
                    .iter()
                    .filter(|c| matches!(c, Change::Update { .. }))
                    .count(),
                self.unchanged
            )
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn example() -> Deployment {
        Deployment::load(&crate::example_config()).unwrap_or_else(|e| panic!("{e:#}"))
    }

    pub(crate) fn inputs() -> Inputs {
        let code = Function::ALL
            .iter()
            .map(|f| {
                (
                    *f,
                    Code {
                        zip: PathBuf::from(format!("{}.zip", f.crate_name())),
                        sha256_base64: "c2hh".into(),
                    },
                )
            })
            .collect();
        Inputs {
            scope: Scope {
                partition: "aws".into(),
                account: "123456789012".into(),
                region: "eu-west-1".into(),
                accelerator_arn: "arn:aws:globalaccelerator::123456789012:accelerator/abc".into(),
            },
            architecture: "arm64".into(),
            code,
            ca_bundle_pem: None,
        }
    }

    fn observed_as_desired(resources: &[Resource], owner: &str) -> Observed {
        resources
            .iter()
            .map(|r| (r.key(), Some(r.attributes(owner))))
            .collect()
    }

    #[test]
    fn nothing_there_means_create_everything_in_order() {
        let resources = desired(&example(), &inputs()).unwrap_or_default();
        let plan = diff(&resources, &Observed::new(), "keycloak-fence");
        assert_eq!(plan.changes.len(), resources.len());
        let kinds: Vec<&str> = plan
            .changes
            .iter()
            .map(|c| c.resource().key().kind)
            .collect();
        let position = |kind| kinds.iter().position(|k| *k == kind).unwrap_or(usize::MAX);
        assert!(position("iam role") < position("lambda function"));
        assert!(position("cloudwatch alarm") < position("sns subscription"));
        assert!(position("eventbridge rule") < position("eventbridge target"));
    }

    #[test]
    fn everything_as_desired_means_no_changes() {
        let resources = desired(&example(), &inputs()).unwrap_or_default();
        let plan = diff(
            &resources,
            &observed_as_desired(&resources, "keycloak-fence"),
            "keycloak-fence",
        );
        assert!(plan.changes.is_empty() && plan.conflicts.is_empty());
        assert!(plan.to_string().starts_with("no changes"), "{plan}");
    }

    #[test]
    fn new_code_is_an_update_of_that_attribute_only() {
        let before = desired(&example(), &inputs()).unwrap_or_default();
        let mut newer = inputs();
        if let Some(code) = newer.code.get_mut(&Function::Fence) {
            code.sha256_base64 = "bmV3".into();
        }
        let after = desired(&example(), &newer).unwrap_or_default();
        let plan = diff(
            &after,
            &observed_as_desired(&before, "keycloak-fence"),
            "keycloak-fence",
        );
        assert_eq!(plan.changes.len(), 1, "{plan}");
        match &plan.changes[0] {
            Change::Update { differences, .. } => {
                assert_eq!(differences.len(), 1);
                assert_eq!(differences[0].0, "code_sha256");
            }
            other => panic!("expected an update, got {other:?}"),
        }
        assert!(plan.to_string().contains("~ lambda function"), "{plan}");
    }

    #[test]
    fn someone_elses_function_with_our_name_is_a_conflict_not_an_update() {
        let resources = desired(&example(), &inputs()).unwrap_or_default();
        let observed = observed_as_desired(&resources, "another-team");
        let plan = diff(&resources, &observed, "keycloak-fence");
        assert!(
            plan.conflicts
                .iter()
                .any(|c| c.contains("keycloak-fence-fence") && c.contains("another-team")),
            "{plan}"
        );
    }

    #[test]
    fn an_existing_foreign_secret_is_used_as_it_is() {
        let resources = desired(&example(), &inputs()).unwrap_or_default();
        let mut observed = Observed::new();
        observed.insert(
            Key {
                kind: "secret",
                name: "keycloak-fence/infinispan-password".into(),
            },
            Some(Attributes::new()),
        );
        let plan = diff(&resources, &observed, "keycloak-fence");
        assert!(plan.conflicts.is_empty());
        assert!(!plan.changes.iter().any(|c| matches!(
            c.resource(),
            Resource::Secret { name } if name == "keycloak-fence/infinispan-password"
        )));
    }

    #[test]
    fn a_public_function_url_gets_both_statements_lambda_requires() {
        let resources = desired(&example(), &inputs()).unwrap_or_default();
        let statement = |id: &str| {
            resources.iter().find_map(|r| match r {
                Resource::Permission {
                    statement_id,
                    action,
                    principal,
                    condition,
                    ..
                } if *statement_id == id => Some((*action, *principal, condition.clone())),
                _ => None,
            })
        };
        assert_eq!(
            statement(FUNCTION_URL_STATEMENT),
            Some((
                "lambda:InvokeFunctionUrl",
                "*",
                PermissionCondition::FunctionUrlAuthNone
            ))
        );
        assert_eq!(
            statement(FUNCTION_URL_INVOKE_STATEMENT),
            Some((
                "lambda:InvokeFunction",
                "*",
                PermissionCondition::InvokedViaFunctionUrl
            ))
        );
    }

    /// A deployment made before the second statement existed: a redeploy adds it and changes
    /// nothing else.
    #[test]
    fn redeploy_of_a_previous_version_adds_only_the_invoke_statement() {
        let resources = desired(&example(), &inputs()).unwrap_or_default();
        let mut observed = observed_as_desired(&resources, "keycloak-fence");
        let missing = Key {
            kind: "lambda permission",
            name: format!("keycloak-fence-fence/{FUNCTION_URL_INVOKE_STATEMENT}"),
        };
        assert!(observed.remove(&missing).is_some());
        let plan = diff(&resources, &observed, "keycloak-fence");
        assert_eq!(plan.changes.len(), 1, "{plan}");
        assert!(matches!(&plan.changes[0], Change::Create(r) if r.key() == missing));
        assert!(
            plan.to_string().contains("1 to create, 0 to update"),
            "{plan}"
        );
    }

    const NOTIFY_TOPIC: &str = "arn:aws:sns:eu-west-1:123456789012:keycloak-fence-actions";
    const CA_BUNDLE: &str = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n";

    /// The example with every optional variable set: a notify topic and the fence's CA bundle.
    fn example_with_options() -> (Deployment, Inputs) {
        let mut deployment = example();
        deployment.notify_topic_arn = Some(NOTIFY_TOPIC.into());
        let inputs = Inputs {
            ca_bundle_pem: Some(CA_BUNDLE.into()),
            ..inputs()
        };
        (deployment, inputs)
    }

    #[test]
    fn the_fence_loads_the_environment_deploy_gives_it() {
        let (deployment, inputs) = example_with_options();
        let env = environment(&deployment, Function::Fence, &inputs);
        let read = |name: &str| env.get(name).cloned();
        let config = fence_lambda::config::FenceConfig::from_lookup(read)
            .unwrap_or_else(|e| panic!("{e}: {env:?}"));
        assert_eq!(config.webhook_user, deployment.fence.webhook_user);
        assert_eq!(config.webhook_secret, deployment.fence.webhook_secret);
        assert_eq!(config.infinispan_secret, deployment.fence.infinispan_secret);
        assert_eq!(
            config
                .sites
                .values()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            [
                "https://infinispan-external-keycloak.apps.site-a.example.com/",
                "https://infinispan-external-keycloak.apps.site-b.example.com/"
            ]
        );
        assert_eq!(config.preferred_site.as_str(), "site-a");
        assert_eq!(config.secrets_region, deployment.region);
        assert_eq!(config.decision_table, "keycloak-fence-decisions");
        assert_eq!(
            config.accelerator_dns.as_ref().map(|dns| dns.as_str()),
            Some(deployment.accelerator.dns_name.as_str())
        );
        // Both sites' load balancers are configured: the fence reads no ELBv2 tag.
        let owners: Vec<&str> = config
            .site_load_balancers
            .values()
            .map(|site| site.as_str())
            .collect();
        assert_eq!(owners, ["site-a", "site-b"]);
        assert_eq!(
            config.tls.ca_bundle_pem.as_deref(),
            Some(CA_BUNDLE.trim().as_bytes()),
            "read trimmed, as every value"
        );
        assert_eq!(
            common::config::notify_topic_arn(read).as_deref(),
            Some(NOTIFY_TOPIC)
        );
    }

    fn decision_table_key() -> Key {
        Key {
            kind: "dynamodb table",
            name: "keycloak-fence-decisions".into(),
        }
    }

    #[test]
    fn the_decision_table_is_made_before_the_fence_with_the_key_it_writes() {
        let resources = desired(&example(), &inputs()).unwrap_or_default();
        let position = |kind: &str| {
            resources
                .iter()
                .position(|r| r.key().kind == kind)
                .unwrap_or(usize::MAX)
        };
        assert!(position("dynamodb table") < position("lambda function"));
        let table = resources
            .iter()
            .find(|r| r.key() == decision_table_key())
            .map(|r| r.attributes("keycloak-fence"));
        let expected: Attributes = [
            ("key_schema", "split_brain HASH S"),
            ("billing_mode", "PAY_PER_REQUEST"),
            ("point_in_time_recovery", "ENABLED"),
            ("deletion_protection", "true"),
            ("owner", "keycloak-fence"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(table, Some(expected));
    }

    /// Billing mode, recovery and protection changed by hand: one update of exactly those,
    /// which apply can make.
    #[test]
    fn a_drifted_decision_table_is_one_update_of_what_drifted() {
        let resources = desired(&example(), &inputs()).unwrap_or_default();
        let mut observed = observed_as_desired(&resources, "keycloak-fence");
        if let Some(Some(table)) = observed.get_mut(&decision_table_key()) {
            table.insert("billing_mode".into(), "PROVISIONED".into());
            table.insert("point_in_time_recovery".into(), "DISABLED".into());
            table.insert("deletion_protection".into(), "false".into());
        }
        let plan = diff(&resources, &observed, "keycloak-fence");
        assert_eq!(plan.changes.len(), 1, "{plan}");
        let Change::Update { differences, .. } = &plan.changes[0] else {
            panic!("expected an update: {plan}");
        };
        let drifted: Vec<&str> = differences.iter().map(|(a, _, _)| a.as_str()).collect();
        assert_eq!(
            drifted,
            [
                "billing_mode",
                "deletion_protection",
                "point_in_time_recovery"
            ]
        );
        assert!(plan.unappliable().is_empty(), "{:?}", plan.unappliable());
        assert!(
            plan.to_string()
                .contains("- billing_mode: PROVISIONED\n    + billing_mode: PAY_PER_REQUEST"),
            "{plan}"
        );
    }

    #[test]
    fn a_decision_table_keyed_otherwise_is_refused_not_updated() {
        let resources = desired(&example(), &inputs()).unwrap_or_default();
        let mut observed = observed_as_desired(&resources, "keycloak-fence");
        if let Some(Some(table)) = observed.get_mut(&decision_table_key()) {
            table.insert("key_schema".into(), "id HASH S".into());
        }
        let plan = diff(&resources, &observed, "keycloak-fence");
        let refused = plan.unappliable();
        assert_eq!(refused.len(), 1, "{plan}");
        assert!(
            refused[0].contains("keycloak-fence-decisions")
                && refused[0].contains("`id HASH S`")
                && refused[0].contains("fence.decision_table"),
            "{refused:?}"
        );
    }

    #[test]
    fn an_untagged_table_with_our_name_is_someone_elses() {
        let resources = desired(&example(), &inputs()).unwrap_or_default();
        let mut observed = observed_as_desired(&resources, "keycloak-fence");
        if let Some(Some(table)) = observed.get_mut(&decision_table_key()) {
            table.insert("owner".into(), String::new());
        }
        let plan = diff(&resources, &observed, "keycloak-fence");
        assert!(
            plan.conflicts
                .iter()
                .any(|c| c.contains("keycloak-fence-decisions") && c.contains("<none>")),
            "{plan}"
        );
    }

    #[test]
    fn the_fence_reserves_a_cap_that_both_reports_fit_in() {
        let resources = desired(&example(), &inputs()).unwrap_or_default();
        let reserved: Vec<i32> = resources
            .iter()
            .filter_map(|r| match r {
                Resource::ReservedConcurrency { function, value }
                    if function == "keycloak-fence-fence" =>
                {
                    Some(*value)
                }
                _ => None,
            })
            .collect();
        // Two sites, each with an Alertmanager pair whose replicas both send: four reports of
        // one split-brain can be in flight at once, and resends on top.
        assert_eq!(reserved, [10]);
    }

    #[test]
    fn the_route53_function_loads_the_environment_deploy_gives_it() {
        let (deployment, inputs) = example_with_options();
        let route53 = deployment
            .route53
            .clone()
            .unwrap_or_else(|| panic!("the example has [route53]"));
        let env = environment(&deployment, Function::Route53, &inputs);
        let read = |name: &str| env.get(name).cloned();
        let policy = route53_failover_lambda::config::Policy::from_lookup(read)
            .unwrap_or_else(|e| panic!("{e}: {env:?}"));
        assert_eq!(policy.failed_over_path, route53.failed_over_path);
        let allowed: Vec<String> = policy
            .allowed
            .iter()
            .flatten()
            .map(ToString::to_string)
            .collect();
        assert_eq!(allowed, route53.health_check_ids);
        assert_eq!(
            common::config::notify_topic_arn(read).as_deref(),
            Some(NOTIFY_TOPIC)
        );
    }

    #[test]
    fn each_function_reads_the_mode_deploy_gives_it() {
        use common::mode::Mode;
        for mode in Mode::ALL {
            let (mut deployment, inputs) = example_with_options();
            deployment.mode = mode;
            let env = |function| environment(&deployment, function, &inputs);
            let fence = env(Function::Fence);
            let fence = fence_lambda::config::FenceConfig::from_lookup(|n| fence.get(n).cloned())
                .map(|c| c.mode)
                .map_err(|e| e.to_string());
            let route53 = env(Function::Route53);
            let route53 =
                route53_failover_lambda::config::mode_from_lookup(|n| route53.get(n).cloned())
                    .map_err(|e| e.to_string());
            let vpc = env(Function::Vpc);
            let vpc =
                vpc_route_failover_lambda::config::Settings::from_lookup(|n| vpc.get(n).cloned())
                    .map(|s| s.mode)
                    .map_err(|e| e.to_string());
            assert_eq!([fence, route53, vpc], [Ok(mode), Ok(mode), Ok(mode)]);
            // The default is not written: a deployment that never used monitor mode sees no
            // change in its functions' environment.
            let written = Function::ALL
                .iter()
                .filter(|f| env(**f).contains_key(common::mode::MODE_VAR))
                .count();
            assert_eq!(written, if mode == Mode::Monitor { 3 } else { 0 });
        }
    }

    #[test]
    fn the_vpc_function_loads_the_environment_deploy_gives_it() {
        let (mut deployment, inputs) = example_with_options();
        if let Some(vpc) = &mut deployment.vpc {
            vpc.route_table_ids = vec!["rtb-0123456789abcdef0".into()];
        }
        let vpc = deployment
            .vpc
            .clone()
            .unwrap_or_else(|| panic!("the example has [vpc]"));
        let env = environment(&deployment, Function::Vpc, &inputs);
        let read = |name: &str| env.get(name).cloned();
        let settings = vpc_route_failover_lambda::config::Settings::from_lookup(read)
            .unwrap_or_else(|e| panic!("{e}: {env:?}"));
        assert_eq!(settings.primary_eni.as_str(), vpc.primary_eni);
        assert_eq!(settings.standby_eni.as_str(), vpc.standby_eni);
        assert_eq!(settings.vpc.as_str(), vpc.vpc_id);
        let tables: Vec<&str> = settings
            .allowed_tables
            .iter()
            .flatten()
            .map(|id| id.as_str())
            .collect();
        assert_eq!(tables, vpc.route_table_ids);
        assert_eq!(
            common::config::notify_topic_arn(read).as_deref(),
            Some(NOTIFY_TOPIC)
        );
    }

    #[test]
    fn the_plan_never_shows_the_ca_bundle() {
        let (deployment, inputs) = example_with_options();
        let env = environment(&deployment, Function::Fence, &inputs);
        let shown = shown("environment", &json!(env).to_string());
        assert!(!shown.contains("BEGIN CERTIFICATE"), "{shown}");
        assert!(
            shown.contains(&format!("<PEM, {} bytes>", CA_BUNDLE.len())),
            "{shown}"
        );
    }

    #[test]
    fn documents_compare_whatever_the_key_order_and_encoding() {
        let ours = canonical(&json!({"b": 1, "a": {"d": [1, 2], "c": "x y"}}));
        assert_eq!(canonical_text(r#"{"a":{"c":"x y","d":[1,2]},"b":1}"#), ours);
        assert_eq!(
            canonical_text(
                "%7B%22a%22%3A%7B%22c%22%3A%22x%20y%22%2C%22d%22%3A%5B1%2C2%5D%7D%2C%22b%22%3A1%7D"
            ),
            ours
        );
    }

    #[test]
    fn rule_pattern_names_both_appliances_and_only_out_of_service_states() {
        let vpc = example().vpc.unwrap_or_else(|| panic!("example has [vpc]"));
        let pattern = rule_pattern(&vpc);
        assert_eq!(
            pattern["detail"]["instance-id"].as_array().map(Vec::len),
            Some(2)
        );
        let states = pattern["detail"]["state"].to_string();
        assert!(!states.contains("pending") && !states.contains("running"));
    }
    #[test]
    fn each_function_gets_a_log_group_with_retention_before_it_exists() {
        let resources = desired(&example(), &inputs()).unwrap_or_default();
        for function in functions(&example()) {
            let name = function.name(&example());
            let at = |kind: &str, wanted: &str| {
                resources
                    .iter()
                    .position(|r| r.key().kind == kind && r.key().name == wanted)
                    .unwrap_or(usize::MAX)
            };
            let group = log_group_name(&name);
            assert!(
                at("log group", &group) < at("lambda function", &name),
                "{name}"
            );
            let attributes = resources
                .iter()
                .find(|r| r.key().name == group)
                .map(|r| r.attributes("keycloak-fence"));
            assert_eq!(
                attributes
                    .as_ref()
                    .and_then(|a| a.get("retention_days"))
                    .map(String::as_str),
                Some("30"),
                "{group}"
            );
        }
    }

    #[test]
    fn function_alarms_are_in_the_functions_region_and_notify_its_topic() {
        let resources = desired(&example(), &inputs()).unwrap_or_default();
        let topic_arn = "arn:aws:sns:eu-west-1:123456789012:keycloak-fence-alarms";
        assert!(resources.contains(&Resource::Topic {
            name: "keycloak-fence-alarms".into(),
            region: "eu-west-1".into()
        }));
        let alarms: Vec<(String, Attributes)> = resources
            .iter()
            .filter(|r| matches!(r, Resource::FunctionAlarm { .. }))
            .map(|r| (r.key().name, r.attributes("keycloak-fence")))
            .collect();
        let names: Vec<&str> = alarms.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "eu-west-1/keycloak-fence-fence-errors",
                "eu-west-1/keycloak-fence-fence-throttles",
                "eu-west-1/keycloak-fence-fence-not-completed",
                "eu-west-1/keycloak-fence-route53-failover-errors",
                "eu-west-1/keycloak-fence-vpc-route-failover-errors",
            ]
        );
        for (name, attributes) in &alarms {
            let get = |k: &str| attributes.get(k).map(String::as_str).unwrap_or_default();
            assert_eq!(get("alarm_actions"), topic_arn, "{name}");
            assert_eq!(get("treat_missing_data"), "notBreaching", "{name}");
            assert_eq!(get("comparison"), "GreaterThanOrEqualToThreshold");
            assert!(get("dimension").starts_with("FunctionName=keycloak-fence-"));
        }
        let not_completed = &alarms[2].1;
        let get = |k: &str| not_completed.get(k).map(String::as_str).unwrap_or_default();
        // The fence's own metric, by the names `common::metrics` writes.
        assert_eq!(
            (
                get("namespace"),
                get("metric"),
                get("statistic"),
                get("threshold")
            ),
            ("sitefence", "UnfencedSeconds", "Maximum", "300")
        );
        assert_eq!(get("dimension"), "FunctionName=keycloak-fence-fence");
        let errors = &alarms[0].1;
        assert_eq!(
            (errors.get("namespace"), errors.get("metric")),
            (Some(&"AWS/Lambda".to_string()), Some(&"Errors".to_string()))
        );
    }

    #[test]
    fn the_threshold_and_retention_come_from_the_config() {
        let mut deployment = example();
        deployment.log_retention_days = 7;
        deployment.alarms.fence_not_completed_seconds = 900;
        let resources = desired(&deployment, &inputs()).unwrap_or_default();
        let plan = diff(
            &resources,
            &observed_as_desired(&desired(&example(), &inputs()).unwrap_or_default(), "o"),
            "o",
        );
        let changed: Vec<String> = plan
            .changes
            .iter()
            .map(|c| c.resource().key().to_string())
            .collect();
        // Three groups' retention and one alarm's threshold, updated in place.
        assert_eq!(changed.len(), 4, "{plan}");
        assert!(plan.to_string().contains("+ threshold: 900"), "{plan}");
        assert!(plan.to_string().contains("+ retention_days: 7"), "{plan}");
    }
}
