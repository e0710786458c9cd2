//! Carries out a plan's changes, one AWS call (or a few) per change, in the plan's order.

use super::Clients;
use super::observe::{find_subscription, find_topic};
use super::plan::{
    Change, Code, DECISION_TABLE_BILLING_MODE, DECISION_TABLE_KEY, Function, HANDLER, OWNER_TAG,
    PermissionCondition, ROLE_PATH, RUNTIME, Resource, alarm_settings, canonical, last_segment,
};
use super::policy;
use anyhow::{Context, bail};
use aws_sdk_lambda::primitives::Blob;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What became of one change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Left for a later deploy, with the reason (the subscription waits for the alarm).
    Deferred(String),
}

pub struct Settings {
    pub owner: String,
    /// How long to wait for the health-check alarms to be `OK` before subscribing the function.
    pub alarm_wait: Duration,
    /// Print generated passwords (otherwise only that one was generated, and where it is).
    pub show_secrets: bool,
}

fn sdk_error<
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
>(
    e: aws_sdk_lambda::error::SdkError<E, R>,
) -> anyhow::Error {
    anyhow::Error::msg(aws_sdk_lambda::error::DisplayErrorContext(e).to_string())
}

pub async fn apply(change: &Change, c: &Clients, s: &Settings) -> anyhow::Result<Outcome> {
    let step = Step {
        change,
        create: matches!(change, Change::Create(_)),
    };
    match change.resource() {
        Resource::Secret { name } => apply_secret(c, s, name).await,
        Resource::DecisionTable { name } => apply_decision_table(&step, c, s, name).await,
        Resource::Role { name } => apply_role(&step, c, s, name).await,
        Resource::RolePolicy { role, document } => apply_role_policy(c, role, document).await,
        Resource::Function {
            function,
            name,
            role_arn,
            architecture,
            code,
            environment,
        } => {
            apply_function(
                &step,
                c,
                s,
                function,
                name,
                role_arn,
                architecture,
                code,
                environment,
            )
            .await
        }
        Resource::ReservedConcurrency { function, value } => {
            apply_reserved_concurrency(c, function, value).await
        }
        Resource::FunctionUrl { function } => apply_function_url(&step, c, function).await,
        Resource::Permission {
            function,
            statement_id,
            action,
            principal,
            condition,
        } => {
            apply_permission(
                &step,
                c,
                function,
                statement_id,
                action,
                principal,
                condition,
            )
            .await
        }
        Resource::Topic { name, region } => apply_topic(c, s, name, region).await,
        Resource::LogGroup {
            name,
            retention_days,
        } => apply_log_group(&step, c, s, name, *retention_days).await,
        Resource::Alarm {
            name,
            region,
            health_check_id,
            topic_arn,
        } => apply_alarm(c, s, name, region, health_check_id, topic_arn).await,
        Resource::FunctionAlarm {
            name,
            region,
            function,
            watch,
            topic_arn,
        } => {
            put_alarm(
                c.cloudwatch_in(region),
                s,
                name,
                &watch.description(function),
                &watch.settings(function, topic_arn),
            )
            .await
        }
        Resource::Subscription {
            topic_arn,
            function_arn,
            alarms,
            ..
        } => apply_subscription(c, s, topic_arn, function_arn, alarms).await,
        Resource::Rule { name, pattern } => apply_rule(&step, c, s, name, pattern).await,
        Resource::RuleTarget { rule, function_arn } => {
            apply_rule_target(c, rule, function_arn).await
        }
        Resource::FailureDestination {
            function,
            destination_arn,
        } => apply_failure_destination(c, function, destination_arn).await,
    }
}

/// The change being applied: whether it creates, and which attributes differ when it updates.
struct Step<'a> {
    change: &'a Change,
    create: bool,
}

impl Step<'_> {
    fn differs(&self, attribute: &str) -> bool {
        match self.change {
            Change::Create(_) => true,
            Change::Update { differences, .. } => {
                differences.iter().any(|(a, _, _)| a == attribute)
            }
        }
    }
}

/// Creates or updates `Resource::Secret`.
async fn apply_secret(c: &Clients, s: &Settings, name: &str) -> anyhow::Result<Outcome> {
    let password = c
        .secrets
        .get_random_password()
        .password_length(32)
        .exclude_punctuation(true)
        .send()
        .await
        .map_err(sdk_error)
        .context("GetRandomPassword")?
        .random_password()
        .map(str::to_string)
        .context("GetRandomPassword returned no password")?;
    c.secrets
        .create_secret()
        .name(name)
        .secret_string(&password)
        .description("Generated by `cargo xtask deploy`")
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key(OWNER_TAG)
                .value(&s.owner)
                .build(),
        )
        .send()
        .await
        .map_err(sdk_error)
        .context("CreateSecret")?;
    if s.show_secrets {
        println!("generated password of secret {name}: {password}");
    } else {
        eprintln!(
            "      generated a password into secret {name} (not shown; --show-secrets prints it)"
        );
    }

    Ok(Outcome::Done)
}

/// Creates or updates `Resource::DecisionTable`.
async fn apply_decision_table(
    step: &Step<'_>,
    c: &Clients,
    s: &Settings,
    name: &str,
) -> anyhow::Result<Outcome> {
    if step.create {
        create_table(c, name, &s.owner).await?;
    } else if step.differs("key_schema") {
        // deploy refuses such a plan before any change (Plan::unappliable).
        bail!("the key schema of table {name} cannot be changed in place");
    } else if step.differs("billing_mode") || step.differs("deletion_protection") {
        use aws_sdk_dynamodb::types::BillingMode;
        wait_until_table_active(c, name).await?;
        // Only what drifted: UpdateTable refuses a request that changes nothing.
        c.dynamodb
            .update_table()
            .table_name(name)
            .set_billing_mode(
                step.differs("billing_mode")
                    .then(|| BillingMode::from(DECISION_TABLE_BILLING_MODE)),
            )
            .set_deletion_protection_enabled(step.differs("deletion_protection").then_some(true))
            .send()
            .await
            .map_err(sdk_error)
            .context("UpdateTable")?;
        wait_until_table_active(c, name).await?;
    }
    if step.differs("point_in_time_recovery") {
        enable_point_in_time_recovery(c, name).await?;
    }

    Ok(Outcome::Done)
}

/// Creates or updates `Resource::Role`.
async fn apply_role(
    step: &Step<'_>,
    c: &Clients,
    s: &Settings,
    name: &str,
) -> anyhow::Result<Outcome> {
    let trust = canonical(&policy::lambda_trust_policy());
    if step.create {
        c.iam
            .create_role()
            .role_name(name)
            .path(ROLE_PATH)
            .assume_role_policy_document(trust)
            .description("sitefence function role (cargo xtask deploy)")
            .tags(
                aws_sdk_iam::types::Tag::builder()
                    .key(OWNER_TAG)
                    .value(&s.owner)
                    .build()?,
            )
            .send()
            .await
            .map_err(sdk_error)
            .context("CreateRole")?;
    } else {
        c.iam
            .update_assume_role_policy()
            .role_name(name)
            .policy_document(trust)
            .send()
            .await
            .map_err(sdk_error)
            .context("UpdateAssumeRolePolicy")?;
    }

    Ok(Outcome::Done)
}

/// Creates or updates `Resource::RolePolicy`.
async fn apply_role_policy(c: &Clients, role: &str, document: &Value) -> anyhow::Result<Outcome> {
    c.iam
        .put_role_policy()
        .role_name(role)
        .policy_name(role)
        .policy_document(canonical(document))
        .send()
        .await
        .map_err(sdk_error)
        .context("PutRolePolicy")?;

    Ok(Outcome::Done)
}

/// Creates or updates `Resource::Function`.
// The variant's fields, one argument each, as for every other kind of resource.
#[allow(clippy::too_many_arguments)]
async fn apply_function(
    step: &Step<'_>,
    c: &Clients,
    s: &Settings,
    function: &Function,
    name: &str,
    role_arn: &str,
    architecture: &str,
    code: &Code,
    environment: &BTreeMap<String, String>,
) -> anyhow::Result<Outcome> {
    let zip =
        std::fs::read(&code.zip).with_context(|| format!("reading {}", code.zip.display()))?;
    let attributes = step.change.resource().attributes(&s.owner);
    let number = |k: &str| {
        attributes
            .get(k)
            .and_then(|v| v.parse::<i32>().ok())
            .unwrap_or_default()
    };
    let env = aws_sdk_lambda::types::Environment::builder()
        .set_variables(Some(environment.clone().into_iter().collect()))
        .build();
    let arch = aws_sdk_lambda::types::Architecture::from(architecture);
    if step.create {
        create_function(
            c,
            name,
            role_arn,
            &arch,
            zip,
            env,
            number,
            &s.owner,
            function.crate_name(),
        )
        .await?;
    } else {
        if step.differs("code_sha256") || step.differs("architecture") {
            wait_until_ready(c, name).await?;
            c.lambda
                .update_function_code()
                .function_name(name)
                .zip_file(Blob::new(zip))
                .architectures(arch)
                .send()
                .await
                .map_err(sdk_error)
                .context("UpdateFunctionCode")?;
        }
        let configuration = [
            "runtime",
            "handler",
            "role",
            "timeout",
            "memory",
            "environment",
        ];
        if configuration.iter().any(|a| step.differs(a)) {
            wait_until_ready(c, name).await?;
            c.lambda
                .update_function_configuration()
                .function_name(name)
                .runtime(aws_sdk_lambda::types::Runtime::from(RUNTIME))
                .handler(HANDLER)
                .role(role_arn)
                .timeout(number("timeout"))
                .memory_size(number("memory"))
                .environment(env)
                .send()
                .await
                .map_err(sdk_error)
                .context("UpdateFunctionConfiguration")?;
        }
    }
    wait_until_ready(c, name).await?;

    Ok(Outcome::Done)
}

/// Creates or updates `Resource::ReservedConcurrency`.
async fn apply_reserved_concurrency(
    c: &Clients,
    function: &str,
    value: &i32,
) -> anyhow::Result<Outcome> {
    c.lambda
        .put_function_concurrency()
        .function_name(function)
        .reserved_concurrent_executions(*value)
        .send()
        .await
        .map_err(sdk_error)
        .context("PutFunctionConcurrency")?;

    Ok(Outcome::Done)
}

/// Creates or updates `Resource::FunctionUrl`.
async fn apply_function_url(
    step: &Step<'_>,
    c: &Clients,
    function: &str,
) -> anyhow::Result<Outcome> {
    let none = aws_sdk_lambda::types::FunctionUrlAuthType::None;
    let url = if step.create {
        c.lambda
            .create_function_url_config()
            .function_name(function)
            .auth_type(none)
            .send()
            .await
            .map_err(sdk_error)
            .context("CreateFunctionUrlConfig")?
            .function_url
    } else {
        c.lambda
            .update_function_url_config()
            .function_name(function)
            .auth_type(none)
            .send()
            .await
            .map_err(sdk_error)
            .context("UpdateFunctionUrlConfig")?
            .function_url
    };
    eprintln!("      Function URL {url}");

    Ok(Outcome::Done)
}

/// Creates or updates `Resource::Permission`.
async fn apply_permission(
    step: &Step<'_>,
    c: &Clients,
    function: &str,
    statement_id: &str,
    action: &str,
    principal: &str,
    condition: &PermissionCondition,
) -> anyhow::Result<Outcome> {
    if !step.create {
        c.lambda
            .remove_permission()
            .function_name(function)
            .statement_id(statement_id)
            .send()
            .await
            .map_err(sdk_error)
            .context("RemovePermission")?;
    }
    add_permission_request(
        &c.lambda,
        function,
        statement_id,
        action,
        principal,
        condition,
    )
    .send()
    .await
    .map_err(sdk_error)
    .context("AddPermission")?;

    Ok(Outcome::Done)
}

/// Creates or updates `Resource::Topic` (CreateTopic of an existing topic is a no-op).
async fn apply_topic(
    c: &Clients,
    s: &Settings,
    name: &str,
    region: &str,
) -> anyhow::Result<Outcome> {
    c.sns_in(region)
        .create_topic()
        .name(name)
        .tags(
            aws_sdk_sns::types::Tag::builder()
                .key(OWNER_TAG)
                .value(&s.owner)
                .build()?,
        )
        .send()
        .await
        .map_err(sdk_error)
        .context("CreateTopic")?;

    Ok(Outcome::Done)
}

/// Creates or updates `Resource::Alarm`.
async fn apply_alarm(
    c: &Clients,
    s: &Settings,
    name: &str,
    region: &str,
    health_check_id: &str,
    topic_arn: &str,
) -> anyhow::Result<Outcome> {
    put_alarm(
        c.cloudwatch_in(region),
        s,
        name,
        &format!(
            "Route 53 health check {health_check_id} failing: sitefence pins it to the failed-over path"
        ),
        &alarm_settings(health_check_id, topic_arn),
    )
    .await
}

/// PutMetricAlarm of an alarm on one metric with one dimension, from its settings in the
/// attribute form `plan` states and `observe` reads back (one place states them; the call
/// mirrors it).
async fn put_alarm(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    s: &Settings,
    name: &str,
    description: &str,
    settings: &[(&'static str, String)],
) -> anyhow::Result<Outcome> {
    use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, Statistic, Tag};
    let get = |k: &str| {
        settings
            .iter()
            .find(|(key, _)| *key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let dimension = get("dimension");
    let (dimension_name, dimension_value) = dimension
        .split_once('=')
        .with_context(|| format!("alarm {name}: dimension `{dimension}` is not NAME=VALUE"))?;
    cloudwatch
        .put_metric_alarm()
        .alarm_name(name)
        .alarm_description(description)
        .namespace(get("namespace"))
        .metric_name(get("metric"))
        .dimensions(
            Dimension::builder()
                .name(dimension_name)
                .value(dimension_value)
                .build(),
        )
        .statistic(Statistic::from(get("statistic").as_str()))
        .period(get("period").parse()?)
        .evaluation_periods(get("evaluation_periods").parse()?)
        .threshold(get("threshold").parse()?)
        .comparison_operator(ComparisonOperator::from(get("comparison").as_str()))
        .treat_missing_data(get("treat_missing_data"))
        .actions_enabled(true)
        .alarm_actions(get("alarm_actions"))
        .tags(Tag::builder().key(OWNER_TAG).value(&s.owner).build())
        .send()
        .await
        .map_err(sdk_error)
        .context("PutMetricAlarm")?;

    Ok(Outcome::Done)
}

/// Creates `Resource::LogGroup` with its tag and retention, or puts its retention back.
/// `PutFunctionEventInvokeConfig` replaces every setting at once: creating and updating are
/// the same call.
async fn apply_failure_destination(
    c: &Clients,
    function: &str,
    destination_arn: &str,
) -> anyhow::Result<Outcome> {
    use aws_sdk_lambda::types::{DestinationConfig, OnFailure};
    c.lambda
        .put_function_event_invoke_config()
        .function_name(function)
        .maximum_retry_attempts(super::plan::ASYNC_MAX_RETRIES)
        .maximum_event_age_in_seconds(super::plan::ASYNC_MAX_EVENT_AGE_SECONDS)
        .destination_config(
            DestinationConfig::builder()
                .on_failure(OnFailure::builder().destination(destination_arn).build())
                .build(),
        )
        .send()
        .await
        .map_err(sdk_error)
        .context("PutFunctionEventInvokeConfig")?;
    Ok(Outcome::Done)
}

async fn apply_log_group(
    step: &Step<'_>,
    c: &Clients,
    s: &Settings,
    name: &str,
    retention_days: i32,
) -> anyhow::Result<Outcome> {
    if step.create {
        c.logs
            .create_log_group()
            .log_group_name(name)
            .tags(OWNER_TAG, &s.owner)
            .send()
            .await
            .map_err(sdk_error)
            .context("CreateLogGroup")?;
    }
    if !step.create && step.differs("owner") {
        let arn = super::observe::find_log_group(c, name)
            .await?
            .as_ref()
            .and_then(super::observe::log_group_arn)
            .with_context(|| format!("log group {name} has gone or has no ARN"))?;
        c.logs
            .tag_resource()
            .resource_arn(arn)
            .tags(OWNER_TAG, &s.owner)
            .send()
            .await
            .map_err(sdk_error)
            .context("TagResource (log group)")?;
    }
    if step.differs("retention_days") {
        c.logs
            .put_retention_policy()
            .log_group_name(name)
            .retention_in_days(retention_days)
            .send()
            .await
            .map_err(sdk_error)
            .context("PutRetentionPolicy")?;
    }
    Ok(Outcome::Done)
}

/// Creates or updates `Resource::Subscription`.
async fn apply_subscription(
    c: &Clients,
    s: &Settings,
    topic_arn: &str,
    function_arn: &str,
    alarms: &[String],
) -> anyhow::Result<Outcome> {
    if let Some(not_ok) = wait_for_alarms_ok(c, alarms, s.alarm_wait).await? {
        return Ok(Outcome::Deferred(format!(
            "alarm {not_ok} is not OK yet: the function is subscribed once it is (run deploy again)"
        )));
    }
    // The topic's ARN carries the account moto or AWS gave it; look it up by name.
    let topic = find_topic(c, last_segment(topic_arn))
        .await?
        .unwrap_or_else(|| topic_arn.to_owned());
    if find_subscription(c, &topic, function_arn).await?.is_none() {
        c.sns
            .subscribe()
            .topic_arn(topic)
            .protocol("lambda")
            .endpoint(function_arn)
            .send()
            .await
            .map_err(sdk_error)
            .context("Subscribe")?;
    }

    Ok(Outcome::Done)
}

/// Creates or updates `Resource::Rule`.
async fn apply_rule(
    step: &Step<'_>,
    c: &Clients,
    s: &Settings,
    name: &str,
    pattern: &Value,
) -> anyhow::Result<Outcome> {
    c.events
        .put_rule()
        .name(name)
        .event_pattern(canonical(pattern))
        .state(aws_sdk_eventbridge::types::RuleState::Enabled)
        .description("A network appliance left service: move its routes (sitefence)")
        .set_tags(step.create.then(|| {
            vec![
                aws_sdk_eventbridge::types::Tag::builder()
                    .key(OWNER_TAG)
                    .value(&s.owner)
                    .build(),
            ]
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .unwrap_or_default()
        }))
        .send()
        .await
        .map_err(sdk_error)
        .context("PutRule")?;

    Ok(Outcome::Done)
}

/// Creates or updates `Resource::RuleTarget`.
async fn apply_rule_target(c: &Clients, rule: &str, function_arn: &str) -> anyhow::Result<Outcome> {
    let failed = c
        .events
        .put_targets()
        .rule(rule)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id(super::plan::RULE_TARGET_ID)
                .arn(function_arn)
                .build()?,
        )
        .send()
        .await
        .map_err(sdk_error)
        .context("PutTargets")?
        .failed_entry_count();
    if failed > 0 {
        bail!("PutTargets: {failed} target(s) failed");
    }

    Ok(Outcome::Done)
}

#[allow(clippy::too_many_arguments)]
pub async fn create_function(
    c: &Clients,
    name: &str,
    role_arn: &str,
    arch: &aws_sdk_lambda::types::Architecture,
    zip: Vec<u8>,
    env: aws_sdk_lambda::types::Environment,
    number: impl Fn(&str) -> i32,
    owner: &str,
    crate_name: &str,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + ROLE_PROPAGATION_WAIT;
    let mut told = false;
    loop {
        let result = c
            .lambda
            .create_function()
            .function_name(name)
            .runtime(aws_sdk_lambda::types::Runtime::from(RUNTIME))
            .handler(HANDLER)
            .role(role_arn)
            .architectures(arch.clone())
            .code(
                aws_sdk_lambda::types::FunctionCode::builder()
                    .zip_file(Blob::new(zip.clone()))
                    .build(),
            )
            .timeout(number("timeout"))
            .memory_size(number("memory"))
            .environment(env.clone())
            .description(format!("sitefence {crate_name}"))
            .tags(OWNER_TAG, owner)
            .send()
            .await;
        let propagating = result
            .as_ref()
            .err()
            .and_then(|e| e.as_service_error())
            .is_some_and(role_not_yet_assumable);
        match result {
            Ok(_) => return Ok(()),
            Err(_) if propagating && Instant::now() < deadline => {
                if !told {
                    eprintln!(
                        "      role {role_arn} is not yet assumable by Lambda (IAM propagation): retrying for up to {} s",
                        ROLE_PROPAGATION_WAIT.as_secs()
                    );
                    told = true;
                }
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            Err(e) if propagating => {
                return Err(sdk_error(e)).with_context(|| {
                    format!(
                        "CreateFunction: role {role_arn} still not assumable by Lambda after {} s",
                        ROLE_PROPAGATION_WAIT.as_secs()
                    )
                });
            }
            Err(e) => return Err(sdk_error(e)).context("CreateFunction"),
        }
    }
}

/// How long `CreateFunction` is retried while a new role propagates. IAM gives no bound; a few
/// seconds is usual, and the deploy is otherwise stuck half-way.
const ROLE_PROPAGATION_WAIT: Duration = Duration::from_secs(60);

/// Lambda's refusal of a role that IAM has not yet propagated to it ("The role defined for the
/// function cannot be assumed by Lambda."), the one `CreateFunction` error a retry can fix.
fn role_not_yet_assumable(
    error: &aws_sdk_lambda::operation::create_function::CreateFunctionError,
) -> bool {
    use aws_sdk_lambda::operation::create_function::CreateFunctionError;
    matches!(
        error,
        CreateFunctionError::InvalidParameterValueException(e)
            if e.message().is_some_and(|m| m.contains("cannot be assumed by Lambda"))
    )
}

/// CreateTable with what the fence relies on from the first write: its key, on-demand
/// capacity, deletion protection and the owner tag; point-in-time recovery follows, once
/// DynamoDB accepts it.
async fn create_table(c: &Clients, name: &str, owner: &str) -> anyhow::Result<()> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, Tag,
    };
    let key = DECISION_TABLE_KEY;
    c.dynamodb
        .create_table()
        .table_name(name)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(key.attribute)
                .attribute_type(ScalarAttributeType::from(key.attribute_type))
                .build()?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(key.attribute)
                .key_type(KeyType::from(key.key_type))
                .build()?,
        )
        .billing_mode(BillingMode::from(DECISION_TABLE_BILLING_MODE))
        .deletion_protection_enabled(true)
        .tags(Tag::builder().key(OWNER_TAG).value(owner).build()?)
        .send()
        .await
        .map_err(sdk_error)
        .context("CreateTable")?;
    wait_until_table_active(c, name).await?;
    enable_point_in_time_recovery(c, name).await
}

/// How long a table may stay `CREATING`/`UPDATING`, and how long DynamoDB may take to enable
/// a new table's continuous backups: seconds usually, no documented bound.
const TABLE_WAIT: Duration = Duration::from_secs(300);

/// CreateTable and UpdateTable return at once and the table is `CREATING`/`UPDATING` for a
/// while; another UpdateTable before it is `ACTIVE` fails (docs/aws-behaviours.md).
pub(super) async fn wait_until_table_active(c: &Clients, name: &str) -> anyhow::Result<()> {
    use aws_sdk_dynamodb::types::TableStatus;
    let deadline = Instant::now() + TABLE_WAIT;
    loop {
        let described = c
            .dynamodb
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(sdk_error)
            .context("DescribeTable")?;
        let status = described.table().and_then(|t| t.table_status());
        match status {
            Some(TableStatus::Active) => return Ok(()),
            Some(TableStatus::Creating | TableStatus::Updating) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Some(TableStatus::Creating | TableStatus::Updating) => bail!(
                "table {name} still not ACTIVE after {} s",
                TABLE_WAIT.as_secs()
            ),
            other => bail!(
                "table {name} is {}, not ACTIVE",
                other.map_or("without a status", |s| s.as_str())
            ),
        }
    }
}

/// UpdateContinuousBackups, retried while DynamoDB is still enabling a new table's
/// continuous backups (`ContinuousBackupsUnavailableException`), which it does some time
/// after the table is `ACTIVE`.
async fn enable_point_in_time_recovery(c: &Clients, name: &str) -> anyhow::Result<()> {
    use aws_sdk_dynamodb::types::PointInTimeRecoverySpecification;
    let deadline = Instant::now() + TABLE_WAIT;
    let mut told = false;
    loop {
        let result = c
            .dynamodb
            .update_continuous_backups()
            .table_name(name)
            .point_in_time_recovery_specification(
                PointInTimeRecoverySpecification::builder()
                    .point_in_time_recovery_enabled(true)
                    .build()?,
            )
            .send()
            .await;
        let not_yet = result
            .as_ref()
            .err()
            .and_then(|e| e.as_service_error())
            .is_some_and(backups_not_yet_enabled);
        match result {
            Ok(_) => return Ok(()),
            Err(_) if not_yet && Instant::now() < deadline => {
                if !told {
                    eprintln!(
                        "      DynamoDB is still enabling the backups of table {name}: retrying point-in-time recovery for up to {} s",
                        TABLE_WAIT.as_secs()
                    );
                    told = true;
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            Err(e) => return Err(sdk_error(e)).context("UpdateContinuousBackups"),
        }
    }
}

/// The one `UpdateContinuousBackups` error that waiting fixes.
fn backups_not_yet_enabled(
    error: &aws_sdk_dynamodb::operation::update_continuous_backups::UpdateContinuousBackupsError,
) -> bool {
    error.is_continuous_backups_unavailable_exception()
}

/// Lambda refuses a second update while one is in progress; wait for `Active`/`Successful`.
async fn wait_until_ready(c: &Clients, name: &str) -> anyhow::Result<()> {
    use aws_sdk_lambda::types::{LastUpdateStatus, State};
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let config = c
            .lambda
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
            .map_err(sdk_error)
            .context("GetFunctionConfiguration")?;
        let busy = config.state() == Some(&State::Pending)
            || config.last_update_status() == Some(&LastUpdateStatus::InProgress);
        if !busy {
            if config.state() == Some(&State::Failed) {
                bail!(
                    "function {name} failed: {}",
                    config.state_reason().unwrap_or("no reason given")
                );
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("function {name} still updating after 120 s");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `None` when every alarm is `OK` (within `wait`), else the first one that is not.
async fn wait_for_alarms_ok(
    c: &Clients,
    alarms: &[String],
    wait: Duration,
) -> anyhow::Result<Option<String>> {
    use aws_sdk_cloudwatch::types::StateValue;
    let deadline = Instant::now() + wait;
    loop {
        let described = c
            .cloudwatch
            .describe_alarms()
            .set_alarm_names(Some(alarms.to_vec()))
            .send()
            .await
            .map_err(sdk_error)
            .context("DescribeAlarms")?;
        let not_ok = alarms
            .iter()
            .find(|name| {
                !described.metric_alarms().iter().any(|a| {
                    a.alarm_name() == Some(name.as_str())
                        && a.state_value() == Some(&StateValue::Ok)
                })
            })
            .cloned();
        match not_ok {
            None => return Ok(None),
            Some(name) if Instant::now() >= deadline => return Ok(Some(name)),
            Some(_) => tokio::time::sleep(Duration::from_secs(2)).await,
        }
    }
}

/// The AddPermission request of one statement: each condition is its own request parameter
/// (a unit test pins them, since moto stores them outside the policy's `Condition`).
pub fn add_permission_request(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    statement_id: &str,
    action: &str,
    principal: &str,
    condition: &PermissionCondition,
) -> aws_sdk_lambda::operation::add_permission::builders::AddPermissionFluentBuilder {
    let request = lambda
        .add_permission()
        .function_name(function)
        .statement_id(statement_id)
        .action(action)
        .principal(principal);
    match condition {
        PermissionCondition::SourceArn(arn) => request.source_arn(arn),
        PermissionCondition::FunctionUrlAuthNone => {
            request.function_url_auth_type(aws_sdk_lambda::types::FunctionUrlAuthType::None)
        }
        PermissionCondition::InvokedViaFunctionUrl => request.invoked_via_function_url(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_lambda::types::FunctionUrlAuthType;

    fn lambda() -> aws_sdk_lambda::Client {
        aws_sdk_lambda::Client::from_conf(
            aws_sdk_lambda::Config::builder()
                .behavior_version(aws_sdk_lambda::config::BehaviorVersion::latest())
                .region(aws_sdk_lambda::config::Region::new("eu-west-1"))
                .build(),
        )
    }

    /// moto keeps these two parameters outside the policy's `Condition`, so the sandbox alone
    /// could not tell a request without them: pin what deploy sends.
    #[test]
    fn function_url_statements_send_their_conditions_as_lambda_requires() {
        let client = lambda();
        let url = add_permission_request(
            &client,
            "f",
            "sitefence-function-url",
            "lambda:InvokeFunctionUrl",
            "*",
            &PermissionCondition::FunctionUrlAuthNone,
        );
        let url = url.as_input();
        assert_eq!(
            url.get_action().as_deref(),
            Some("lambda:InvokeFunctionUrl")
        );
        assert_eq!(url.get_principal().as_deref(), Some("*"));
        assert_eq!(
            url.get_function_url_auth_type(),
            &Some(FunctionUrlAuthType::None)
        );
        assert_eq!(url.get_invoked_via_function_url(), &None);

        let invoke = add_permission_request(
            &client,
            "f",
            "sitefence-function-url-invoke",
            "lambda:InvokeFunction",
            "*",
            &PermissionCondition::InvokedViaFunctionUrl,
        );
        let invoke = invoke.as_input();
        assert_eq!(
            invoke.get_action().as_deref(),
            Some("lambda:InvokeFunction")
        );
        assert_eq!(invoke.get_invoked_via_function_url(), &Some(true));
        assert_eq!(invoke.get_function_url_auth_type(), &None);
        assert_eq!(invoke.get_source_arn(), &None);
    }

    #[test]
    fn service_statements_are_limited_to_their_source() {
        let client = lambda();
        let request = add_permission_request(
            &client,
            "f",
            "sitefence-sns-alarm",
            "lambda:InvokeFunction",
            "sns.amazonaws.com",
            &PermissionCondition::SourceArn("arn:aws:sns:us-east-1:1:t".into()),
        );
        let input = request.as_input();
        assert_eq!(
            input.get_source_arn().as_deref(),
            Some("arn:aws:sns:us-east-1:1:t")
        );
        assert_eq!(input.get_invoked_via_function_url(), &None);
    }

    #[test]
    fn only_backups_still_being_enabled_are_worth_waiting_for() {
        use aws_sdk_dynamodb::operation::update_continuous_backups::UpdateContinuousBackupsError;
        use aws_sdk_dynamodb::types::error::{
            ContinuousBackupsUnavailableException, TableNotFoundException,
        };
        assert!(backups_not_yet_enabled(
            &UpdateContinuousBackupsError::ContinuousBackupsUnavailableException(
                ContinuousBackupsUnavailableException::builder()
                    .message("Backups are being enabled for the table: t")
                    .build()
            )
        ));
        assert!(!backups_not_yet_enabled(
            &UpdateContinuousBackupsError::TableNotFoundException(
                TableNotFoundException::builder()
                    .message("Table not found: t")
                    .build()
            )
        ));
    }

    #[test]
    fn only_an_unpropagated_role_is_worth_retrying() {
        use aws_sdk_lambda::operation::create_function::CreateFunctionError;
        use aws_sdk_lambda::types::error::{
            InvalidParameterValueException, ResourceConflictException,
        };
        let invalid = |message: &str| {
            CreateFunctionError::InvalidParameterValueException(
                InvalidParameterValueException::builder()
                    .message(message)
                    .build(),
            )
        };
        assert!(role_not_yet_assumable(&invalid(
            "The role defined for the function cannot be assumed by Lambda."
        )));
        assert!(!role_not_yet_assumable(&invalid(
            "Unzipped size must be smaller than 262144000 bytes"
        )));
        assert!(!role_not_yet_assumable(
            &CreateFunctionError::ResourceConflictException(
                ResourceConflictException::builder()
                    .message("Function already exist: f")
                    .build()
            )
        ));
    }
}
