//! Reads what is in AWS into the attribute maps `plan::diff` compares with the desired state.
//! Each reader answers `None` when the resource does not exist; any other error stops the plan.

use super::Clients;
use super::plan::{
    Attributes, Key, OWNER_TAG, Observed, Resource, canonical_text, key_schema_text, last_segment,
};
use anyhow::Context;
use aws_sdk_lambda::error::SdkError;
use serde_json::Value;

/// Not found → `Ok(None)`; anything else is an error.
fn absent<T, E, R>(
    result: Result<T, SdkError<E, R>>,
    not_found: impl Fn(&E) -> bool,
    what: &str,
) -> anyhow::Result<Option<T>>
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match result {
        Ok(value) => Ok(Some(value)),
        Err(SdkError::ServiceError(e)) if not_found(e.err()) => Ok(None),
        Err(e) => Err(anyhow::Error::msg(
            aws_sdk_lambda::error::DisplayErrorContext(e).to_string(),
        ))
        .with_context(|| what.to_string()),
    }
}

pub async fn observe(resources: &[Resource], clients: &Clients) -> anyhow::Result<Observed> {
    let mut observed = Observed::new();
    for resource in resources {
        let key: Key = resource.key();
        let found = read(resource, clients)
            .await
            .with_context(|| format!("reading {}", key.name))?;
        observed.insert(key, found);
    }
    Ok(observed)
}

fn owner_of<'a>(tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    tags.into_iter()
        .find(|(k, _)| *k == OWNER_TAG)
        .map(|(_, v)| v.to_string())
        .unwrap_or_default()
}

async fn read(resource: &Resource, c: &Clients) -> anyhow::Result<Option<Attributes>> {
    match resource {
        Resource::Secret { name } => read_secret(c, name).await,
        Resource::DecisionTable { name } => read_table(c, name).await,
        Resource::Role { name } => read_role(c, name).await,
        Resource::RolePolicy { role, .. } => read_role_policy(c, role).await,
        Resource::Function { name, .. } => read_function(c, name).await,
        Resource::ReservedConcurrency { function, .. } => {
            read_reserved_concurrency(c, function).await
        }
        Resource::FunctionUrl { function } => read_function_url(c, function).await,
        Resource::Permission {
            function,
            statement_id,
            ..
        } => read_permission(c, function, statement_id).await,
        Resource::Topic { name, region } => read_topic(c, name, region).await,
        Resource::LogGroup { name, .. } => read_log_group(c, name).await,
        Resource::FailureDestination { function, .. } => {
            read_failure_destination(c, function).await
        }
        Resource::Alarm { name, region, .. } | Resource::FunctionAlarm { name, region, .. } => {
            read_alarm(c, name, region).await
        }
        Resource::Subscription {
            topic_arn,
            function_arn,
            ..
        } => read_subscription(c, topic_arn, function_arn).await,
        Resource::Rule { name, .. } => read_rule(c, name).await,
        Resource::RuleTarget { rule, .. } => read_rule_target(c, rule).await,
    }
}

/// Reads `Resource::Secret`.
async fn read_secret(c: &Clients, name: &str) -> anyhow::Result<Option<Attributes>> {
    let a = Attributes::new();
    let found = absent(
        c.secrets.describe_secret().secret_id(name).send().await,
        |e| e.is_resource_not_found_exception(),
        "DescribeSecret",
    )?;
    // A secret scheduled for deletion cannot be used: treat it as absent.
    Ok(found.filter(|s| s.deleted_date().is_none()).map(|_| a))
}

/// Reads `Resource::Role`.
async fn read_role(c: &Clients, name: &str) -> anyhow::Result<Option<Attributes>> {
    let mut a = Attributes::new();
    let Some(role) = absent(
        c.iam.get_role().role_name(name).send().await,
        |e| e.is_no_such_entity_exception(),
        "GetRole",
    )?
    else {
        return Ok(None);
    };
    let trust = role
        .role()
        .and_then(|r| r.assume_role_policy_document())
        .unwrap_or_default();
    a.insert("trust_policy".into(), canonical_text(trust));
    let tags = c.iam.list_role_tags().role_name(name).send().await?;
    a.insert(
        "owner".into(),
        owner_of(tags.tags().iter().map(|t| (t.key(), t.value()))),
    );
    Ok(Some(a))
}

/// Reads `Resource::RolePolicy`.
async fn read_role_policy(c: &Clients, role: &str) -> anyhow::Result<Option<Attributes>> {
    let mut a = Attributes::new();
    let found = absent(
        c.iam
            .get_role_policy()
            .role_name(role)
            .policy_name(role)
            .send()
            .await,
        |e| e.is_no_such_entity_exception(),
        "GetRolePolicy",
    )?;
    Ok(found.map(|p| {
        a.insert("document".into(), canonical_text(p.policy_document()));
        a
    }))
}

/// Reads `Resource::Function`.
async fn read_function(c: &Clients, name: &str) -> anyhow::Result<Option<Attributes>> {
    let mut a = Attributes::new();
    let Some(function) = absent(
        c.lambda.get_function().function_name(name).send().await,
        |e| e.is_resource_not_found_exception(),
        "GetFunction",
    )?
    else {
        return Ok(None);
    };
    let Some(config) = function.configuration() else {
        return Ok(Some(a));
    };
    let mut set = |k: &str, v: Option<String>| {
        a.insert(k.into(), v.unwrap_or_default());
    };
    set("runtime", config.runtime().map(|r| r.as_str().to_string()));
    set(
        "architecture",
        config
            .architectures()
            .first()
            .map(|r| r.as_str().to_string()),
    );
    set("handler", config.handler().map(str::to_string));
    set("role", config.role().map(str::to_string));
    set("code_sha256", config.code_sha256().map(str::to_string));
    set("timeout", config.timeout().map(|t| t.to_string()));
    set("memory", config.memory_size().map(|m| m.to_string()));
    let env: std::collections::BTreeMap<String, String> = config
        .environment()
        .and_then(|e| e.variables())
        .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    set("environment", Some(serde_json::json!(env).to_string()));
    let tags = function.tags();
    set(
        "owner",
        Some(owner_of(
            tags.into_iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )),
    );
    Ok(Some(a))
}

/// Reads `Resource::ReservedConcurrency`.
async fn read_reserved_concurrency(
    c: &Clients,
    function: &str,
) -> anyhow::Result<Option<Attributes>> {
    let mut a = Attributes::new();
    let found = absent(
        c.lambda
            .get_function_concurrency()
            .function_name(function)
            .send()
            .await,
        |e| e.is_resource_not_found_exception(),
        "GetFunctionConcurrency",
    )?;
    Ok(found
        .and_then(|r| r.reserved_concurrent_executions())
        .map(|n| {
            a.insert("reserved".into(), n.to_string());
            a
        }))
}

/// Reads `Resource::FailureDestination`: the function's asynchronous invocation settings.
async fn read_failure_destination(
    c: &Clients,
    function: &str,
) -> anyhow::Result<Option<Attributes>> {
    let found = absent(
        c.lambda
            .get_function_event_invoke_config()
            .function_name(function)
            .send()
            .await,
        |e| e.is_resource_not_found_exception(),
        "GetFunctionEventInvokeConfig",
    )?;
    Ok(found.map(|config| {
        let mut a = Attributes::new();
        if let Some(destination) = config
            .destination_config()
            .and_then(|d| d.on_failure())
            .and_then(|f| f.destination())
        {
            a.insert("on_failure".into(), destination.to_string());
        }
        if let Some(n) = config.maximum_retry_attempts() {
            a.insert("max_retries".into(), n.to_string());
        }
        if let Some(n) = config.maximum_event_age_in_seconds() {
            a.insert("max_event_age".into(), n.to_string());
        }
        a
    }))
}

/// Reads `Resource::FunctionUrl`.
async fn read_function_url(c: &Clients, function: &str) -> anyhow::Result<Option<Attributes>> {
    let mut a = Attributes::new();
    let found = absent(
        c.lambda
            .get_function_url_config()
            .function_name(function)
            .send()
            .await,
        |e| e.is_resource_not_found_exception(),
        "GetFunctionUrlConfig",
    )?;
    Ok(found.map(|url| {
        a.insert("auth_type".into(), url.auth_type().as_str().to_string());
        a
    }))
}

/// Reads `Resource::Permission`.
async fn read_permission(
    c: &Clients,
    function: &str,
    statement_id: &str,
) -> anyhow::Result<Option<Attributes>> {
    let Some(policy) = absent(
        c.lambda.get_policy().function_name(function).send().await,
        |e| e.is_resource_not_found_exception(),
        "GetPolicy",
    )?
    else {
        return Ok(None);
    };
    let document: Value = serde_json::from_str(policy.policy().unwrap_or("{}")).unwrap_or_default();
    Ok(permission_attributes(&document, statement_id))
}

/// Reads `Resource::Topic`.
async fn read_topic(c: &Clients, name: &str, region: &str) -> anyhow::Result<Option<Attributes>> {
    let mut a = Attributes::new();
    let sns = c.sns_in(region);
    let Some(arn) = find_topic_with(sns, name).await? else {
        return Ok(None);
    };
    let tags = sns
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await?;
    a.insert(
        "owner".into(),
        owner_of(tags.tags().iter().map(|t| (t.key(), t.value()))),
    );
    Ok(Some(a))
}

/// Reads `Resource::Alarm` and `Resource::FunctionAlarm` (one dimension each).
async fn read_alarm(c: &Clients, name: &str, region: &str) -> anyhow::Result<Option<Attributes>> {
    let mut a = Attributes::new();
    let cloudwatch = c.cloudwatch_in(region);
    let alarms = cloudwatch
        .describe_alarms()
        .alarm_names(name)
        .send()
        .await
        .context("DescribeAlarms")?;
    let Some(alarm) = alarms.metric_alarms().first() else {
        return Ok(None);
    };
    let dimension = alarm
        .dimensions()
        .first()
        .map(|d| {
            format!(
                "{}={}",
                d.name().unwrap_or_default(),
                d.value().unwrap_or_default()
            )
        })
        .unwrap_or_default();
    let topic = alarm.alarm_actions().join(",");
    // Read back the same settings the desired alarm states, from the alarm's own fields.
    let now: Vec<(&str, String)> = vec![
        (
            "namespace",
            alarm.namespace().unwrap_or_default().to_string(),
        ),
        (
            "metric",
            alarm.metric_name().unwrap_or_default().to_string(),
        ),
        ("dimension", dimension.clone()),
        (
            "statistic",
            alarm
                .statistic()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
        ),
        ("period", alarm.period().unwrap_or_default().to_string()),
        (
            "evaluation_periods",
            alarm.evaluation_periods().unwrap_or_default().to_string(),
        ),
        (
            "threshold",
            alarm.threshold().unwrap_or_default().to_string(),
        ),
        (
            "comparison",
            alarm
                .comparison_operator()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
        ),
        (
            "treat_missing_data",
            alarm.treat_missing_data().unwrap_or_default().to_string(),
        ),
        ("alarm_actions", topic.clone()),
    ];
    for (k, v) in now {
        a.insert(k.into(), v);
    }
    let tags = match alarm.alarm_arn() {
        Some(arn) => cloudwatch
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .context("ListTagsForResource (alarm)")?
            .tags()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or_default().to_string(),
                    t.value().unwrap_or_default().to_string(),
                )
            })
            .collect(),
        None => Vec::new(),
    };
    a.insert(
        "owner".into(),
        owner_of(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
    );
    Ok(Some(a))
}

/// Reads `Resource::LogGroup`: its retention (`never` when it keeps its logs forever, as a
/// group Lambda made itself does) and its owner tag.
async fn read_log_group(c: &Clients, name: &str) -> anyhow::Result<Option<Attributes>> {
    let Some(group) = find_log_group(c, name).await? else {
        return Ok(None);
    };
    let mut a = Attributes::new();
    a.insert(
        "retention_days".into(),
        group
            .retention_in_days()
            .map_or_else(|| "never".to_string(), |days| days.to_string()),
    );
    let tags = match log_group_arn(&group) {
        Some(arn) => c
            .logs
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .map_err(|e| {
                anyhow::Error::msg(
                    aws_sdk_cloudwatchlogs::error::DisplayErrorContext(e).to_string(),
                )
            })
            .context("ListTagsForResource (log group)")?
            .tags()
            .map(|tags| {
                tags.iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default(),
        None => Vec::new(),
    };
    // A group without the tag is the one Lambda made at the function's first log line (a
    // deployment from before deploy made them): it has our function's name, so it is ours to
    // tag. Another deployment's tag is a conflict.
    let owner = owner_of(tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    if !owner.is_empty() {
        a.insert("owner".into(), owner);
    }
    Ok(Some(a))
}

/// The log group named exactly `name` (DescribeLogGroups matches a prefix).
pub async fn find_log_group(
    c: &Clients,
    name: &str,
) -> anyhow::Result<Option<aws_sdk_cloudwatchlogs::types::LogGroup>> {
    let mut pages = c
        .logs
        .describe_log_groups()
        .log_group_name_prefix(name)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page
            .map_err(|e| {
                anyhow::Error::msg(
                    aws_sdk_cloudwatchlogs::error::DisplayErrorContext(e).to_string(),
                )
            })
            .context("DescribeLogGroups")?;
        if let Some(group) = page
            .log_groups()
            .iter()
            .find(|g| g.log_group_name() == Some(name))
        {
            return Ok(Some(group.clone()));
        }
    }
    Ok(None)
}

/// A log group's ARN as the tagging API wants it: without the `:*` that `arn` ends with.
pub fn log_group_arn(group: &aws_sdk_cloudwatchlogs::types::LogGroup) -> Option<String> {
    group.log_group_arn().map(str::to_string).or_else(|| {
        group
            .arn()
            .map(|arn| arn.trim_end_matches(":*").to_string())
    })
}

/// Reads `Resource::Subscription`.
async fn read_subscription(
    c: &Clients,
    topic_arn: &str,
    function_arn: &str,
) -> anyhow::Result<Option<Attributes>> {
    let a = Attributes::new();
    if find_topic(c, last_segment(topic_arn)).await?.is_none() {
        return Ok(None);
    }
    Ok(find_subscription(c, topic_arn, function_arn)
        .await?
        .map(|_| a))
}

/// Reads `Resource::Rule`.
async fn read_rule(c: &Clients, name: &str) -> anyhow::Result<Option<Attributes>> {
    let mut a = Attributes::new();
    let Some(rule) = absent(
        c.events.describe_rule().name(name).send().await,
        |e| e.is_resource_not_found_exception(),
        "DescribeRule",
    )?
    else {
        return Ok(None);
    };
    a.insert(
        "pattern".into(),
        canonical_text(rule.event_pattern().unwrap_or_default()),
    );
    a.insert(
        "state".into(),
        rule.state()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
    );
    let tags = match rule.arn() {
        Some(arn) => c
            .events
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .context("ListTagsForResource (rule)")?
            .tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect(),
        None => Vec::new(),
    };
    a.insert(
        "owner".into(),
        owner_of(
            tags.iter()
                .map(|(k, v): &(String, String)| (k.as_str(), v.as_str())),
        ),
    );
    Ok(Some(a))
}

/// Reads `Resource::RuleTarget`.
async fn read_rule_target(c: &Clients, rule: &str) -> anyhow::Result<Option<Attributes>> {
    let mut a = Attributes::new();
    let Some(targets) = absent(
        c.events.list_targets_by_rule().rule(rule).send().await,
        |e| e.is_resource_not_found_exception(),
        "ListTargetsByRule",
    )?
    else {
        return Ok(None);
    };
    Ok(targets
        .targets()
        .iter()
        .find(|t| t.id() == super::plan::RULE_TARGET_ID)
        .map(|t| {
            a.insert("arn".into(), t.arn().to_string());
            a
        }))
}

/// A DynamoDB table in the attribute form of `Resource::DecisionTable`.
async fn read_table(c: &Clients, name: &str) -> anyhow::Result<Option<Attributes>> {
    use aws_sdk_dynamodb::types::{BillingMode, PointInTimeRecoveryStatus, TableStatus};
    let Some(described) = absent(
        c.dynamodb.describe_table().table_name(name).send().await,
        |e| e.is_resource_not_found_exception(),
        "DescribeTable",
    )?
    else {
        return Ok(None);
    };
    let Some(table) = described.table() else {
        return Ok(None);
    };
    if table.table_status() == Some(&TableStatus::Deleting) {
        // Neither there (it is going) nor absent (CreateTable fails until it is gone).
        anyhow::bail!(
            "table {name} is being deleted (a destroy just ran?): run deploy again once it is gone"
        );
    }
    let mut a = Attributes::new();
    let types = table.attribute_definitions();
    let key_schema = key_schema_text(table.key_schema().iter().map(|element| {
        let attribute = element.attribute_name();
        let attribute_type = types
            .iter()
            .find(|d| d.attribute_name() == attribute)
            .map_or("?", |d| d.attribute_type().as_str());
        (attribute, element.key_type().as_str(), attribute_type)
    }));
    a.insert("key_schema".into(), key_schema);
    // A table created before on-demand existed has no summary: it is provisioned.
    let billing = table
        .billing_mode_summary()
        .and_then(|b| b.billing_mode())
        .unwrap_or(&BillingMode::Provisioned);
    a.insert("billing_mode".into(), billing.as_str().to_string());
    a.insert(
        "deletion_protection".into(),
        table
            .deletion_protection_enabled()
            .unwrap_or(false)
            .to_string(),
    );
    let backups = c
        .dynamodb
        .describe_continuous_backups()
        .table_name(name)
        .send()
        .await
        .map_err(|e| {
            anyhow::Error::msg(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
        })
        .context("DescribeContinuousBackups")?;
    let recovery = backups
        .continuous_backups_description()
        .and_then(|d| d.point_in_time_recovery_description())
        .and_then(|p| p.point_in_time_recovery_status())
        .unwrap_or(&PointInTimeRecoveryStatus::Disabled);
    a.insert(
        "point_in_time_recovery".into(),
        recovery.as_str().to_string(),
    );
    let arn = table
        .table_arn()
        .with_context(|| format!("DescribeTable returned no ARN for {name}"))?;
    let tags = table_tags(c, arn).await?;
    a.insert(
        "owner".into(),
        owner_of(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
    );
    Ok(Some(a))
}

/// Every tag of a DynamoDB table (ListTagsOfResource pages by `NextToken`).
pub async fn table_tags(c: &Clients, arn: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut tags = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = c
            .dynamodb
            .list_tags_of_resource()
            .resource_arn(arn)
            .set_next_token(next.take())
            .send()
            .await
            .map_err(|e| {
                anyhow::Error::msg(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
            })
            .context("ListTagsOfResource")?;
        tags.extend(
            page.tags()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string())),
        );
        match page.next_token() {
            Some(token) if !token.is_empty() => next = Some(token.to_string()),
            _ => return Ok(tags),
        }
    }
}

/// A Lambda resource policy's statement in the attribute form of `Resource::Permission`.
pub fn permission_attributes(policy: &Value, statement_id: &str) -> Option<Attributes> {
    let statement = policy["Statement"]
        .as_array()?
        .iter()
        .find(|s| s["Sid"] == statement_id)?;
    let mut a = Attributes::new();
    let text = |v: &Value| v.as_str().map(str::to_string);
    a.insert(
        "action".into(),
        text(&statement["Action"]).unwrap_or_default(),
    );
    let principal = match &statement["Principal"] {
        Value::String(p) => p.clone(),
        Value::Object(map) => map
            .get("Service")
            .or_else(|| map.get("AWS"))
            .and_then(text)
            .unwrap_or_default(),
        _ => String::new(),
    };
    a.insert("principal".into(), principal);
    // Lambda keeps each AddPermission condition under `Condition`; moto 5.2.5 keeps the two
    // Function URL ones as top-level keys of the statement under their request names instead
    // (crates/sandbox/README.md). Either form reads the same.
    let condition = &statement["Condition"];
    if let Some(arn) = text(&condition["ArnLike"]["AWS:SourceArn"]) {
        a.insert("source_arn".into(), arn);
    }
    if let Some(auth) = text(&condition["StringEquals"]["lambda:FunctionUrlAuthType"])
        .or_else(|| text(&statement["FunctionUrlAuthType"]))
    {
        a.insert("function_url_auth_type".into(), auth);
    }
    let via_url = match (
        &condition["Bool"]["lambda:InvokedViaFunctionUrl"],
        &statement["InvokedViaFunctionUrl"],
    ) {
        (Value::String(v), _) => Some(v.eq_ignore_ascii_case("true")),
        (_, Value::Bool(v)) => Some(*v),
        _ => None,
    };
    if let Some(via_url) = via_url {
        a.insert("invoked_via_function_url".into(), via_url.to_string());
    }
    Some(a)
}

pub async fn find_topic(c: &Clients, name: &str) -> anyhow::Result<Option<String>> {
    find_topic_with(&c.sns, name).await
}

/// The ARN of the topic `name` that `sns` (a client of the topic's region) lists.
pub async fn find_topic_with(
    sns: &aws_sdk_sns::Client,
    name: &str,
) -> anyhow::Result<Option<String>> {
    let mut pages = sns.list_topics().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.context("ListTopics")?;
        if let Some(arn) = page
            .topics()
            .iter()
            .filter_map(|t| t.topic_arn())
            .find(|arn| last_segment(arn) == name)
        {
            return Ok(Some(arn.to_string()));
        }
    }
    Ok(None)
}

/// The ARN of the Lambda subscription of `function_arn` to the topic, if any.
pub async fn find_subscription(
    c: &Clients,
    topic_arn: &str,
    function_arn: &str,
) -> anyhow::Result<Option<String>> {
    let mut pages = c
        .sns
        .list_subscriptions_by_topic()
        .topic_arn(topic_arn)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.context("ListSubscriptionsByTopic")?;
        if let Some(arn) = page
            .subscriptions()
            .iter()
            .find(|s| s.protocol() == Some("lambda") && s.endpoint() == Some(function_arn))
            .and_then(|s| s.subscription_arn())
        {
            return Ok(Some(arn.to_string()));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_function_url_and_service_statements() {
        let policy = serde_json::json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "url", "Effect": "Allow", "Principal": "*", "Action": "lambda:InvokeFunctionUrl",
             "Resource": "arn:aws:lambda:eu-west-1:1:function:f",
             "Condition": {"StringEquals": {"lambda:FunctionUrlAuthType": "NONE"}}},
            {"Sid": "sns", "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
             "Action": "lambda:InvokeFunction", "Resource": "arn:aws:lambda:eu-west-1:1:function:f",
             "Condition": {"ArnLike": {"AWS:SourceArn": "arn:aws:sns:us-east-1:1:t"}}}
        ]});
        let url = permission_attributes(&policy, "url").unwrap_or_default();
        assert_eq!(
            url.get("function_url_auth_type").map(String::as_str),
            Some("NONE")
        );
        assert_eq!(url.get("principal").map(String::as_str), Some("*"));
        let sns = permission_attributes(&policy, "sns").unwrap_or_default();
        assert_eq!(
            sns.get("principal").map(String::as_str),
            Some("sns.amazonaws.com")
        );
        assert_eq!(
            sns.get("source_arn").map(String::as_str),
            Some("arn:aws:sns:us-east-1:1:t")
        );
        assert!(permission_attributes(&policy, "other").is_none());
    }

    #[test]
    fn reads_the_invoke_statement_as_lambda_and_as_moto_keep_it() {
        let policy = serde_json::json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "lambda", "Effect": "Allow", "Principal": "*", "Action": "lambda:InvokeFunction",
             "Resource": "arn:aws:lambda:eu-west-1:1:function:f",
             "Condition": {"Bool": {"lambda:InvokedViaFunctionUrl": "true"}}},
            {"Sid": "moto", "Effect": "Allow", "Principal": "*", "Action": "lambda:InvokeFunction",
             "Resource": "arn:aws:lambda:eu-west-1:1:function:f", "InvokedViaFunctionUrl": true},
            {"Sid": "moto-url", "Effect": "Allow", "Principal": "*",
             "Action": "lambda:InvokeFunctionUrl", "FunctionUrlAuthType": "NONE",
             "Resource": "arn:aws:lambda:eu-west-1:1:function:f"},
            {"Sid": "unconditional", "Effect": "Allow", "Principal": "*",
             "Action": "lambda:InvokeFunction", "Resource": "arn:aws:lambda:eu-west-1:1:function:f"}
        ]});
        for sid in ["lambda", "moto"] {
            let attributes = permission_attributes(&policy, sid).unwrap_or_default();
            assert_eq!(
                attributes
                    .get("invoked_via_function_url")
                    .map(String::as_str),
                Some("true"),
                "{sid}"
            );
        }
        let url = permission_attributes(&policy, "moto-url").unwrap_or_default();
        assert_eq!(
            url.get("function_url_auth_type").map(String::as_str),
            Some("NONE")
        );
        let bare = permission_attributes(&policy, "unconditional").unwrap_or_default();
        assert!(!bare.contains_key("invoked_via_function_url"), "{bare:?}");
    }
}
