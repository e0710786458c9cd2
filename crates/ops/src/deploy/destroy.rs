//! `cargo xtask destroy`: finds every resource carrying `sitefence:deployment=<name>` among the
//! kinds deploy creates (by name prefix first, then by the tag) and deletes them, dependents
//! first. A resource without the tag — the operator's own secret, someone's function with a
//! similar name — is never touched.

use super::Clients;
use super::plan::{LOG_GROUP_PREFIX, OWNER_TAG, ROLE_PATH, last_segment};
use anyhow::Context;
use std::fmt;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owned {
    /// The alarm's region (the health-check alarms' or the functions') and name.
    Alarm {
        region: String,
        name: String,
    },
    /// Its ARN, which names its region.
    Topic(String),
    Rule(String),
    Function(String),
    /// After the functions, which would write to it again.
    LogGroup(String),
    Table(String),
    Role(String),
    Secret(String),
}

impl fmt::Display for Owned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owned::Alarm { region, name } => write!(f, "cloudwatch alarm   {region}/{name}"),
            Owned::Topic(arn) => write!(f, "sns topic          {arn} (and its subscriptions)"),
            Owned::Rule(name) => write!(f, "eventbridge rule   {name} (and its targets)"),
            Owned::Function(name) => {
                write!(
                    f,
                    "lambda function    {name} (with its URL and permissions)"
                )
            }
            Owned::LogGroup(name) => write!(f, "log group          {name} (and its logs)"),
            Owned::Table(name) => write!(
                f,
                "dynamodb table     {name} (its decision records; deletion protection is turned off first)"
            ),
            Owned::Role(name) => write!(f, "iam role           {name} (and its inline policies)"),
            Owned::Secret(name) => write!(f, "secret             {name}"),
        }
    }
}

fn ours(tags: &[(String, String)], owner: &str) -> bool {
    tags.iter().any(|(k, v)| k == OWNER_TAG && v == owner)
}

fn error<
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
>(
    e: aws_sdk_lambda::error::SdkError<E, R>,
) -> anyhow::Error {
    anyhow::Error::msg(aws_sdk_lambda::error::DisplayErrorContext(e).to_string())
}

/// Everything of deployment `deployment.name`, in deletion order.
pub async fn discover(
    deployment: &crate::config::Deployment,
    c: &Clients,
) -> anyhow::Result<Vec<Owned>> {
    let owner = deployment.name.as_str();
    let prefix = format!("{owner}-");
    let mut owned = Vec::new();

    for region in c.alarm_regions() {
        discover_alarms(c, &region, &prefix, owner, &mut owned).await?;
    }
    for region in c.alarm_regions() {
        discover_topics(c, &region, &prefix, owner, &mut owned).await?;
    }
    discover_rules_and_functions(c, &prefix, owner, &mut owned).await?;
    discover_log_groups(c, &prefix, owner, &mut owned).await?;
    discover_tables_roles_secrets(deployment, c, &prefix, owner, &mut owned).await?;
    Ok(owned)
}

/// The alarms of `region` with our prefix and tag.
async fn discover_alarms(
    c: &Clients,
    region: &str,
    prefix: &str,
    owner: &str,
    owned: &mut Vec<Owned>,
) -> anyhow::Result<()> {
    let cloudwatch = c.cloudwatch_in(region);
    let mut alarms = cloudwatch
        .describe_alarms()
        .alarm_name_prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = alarms.next().await {
        for alarm in page
            .map_err(error)
            .context("DescribeAlarms")?
            .metric_alarms()
        {
            let (Some(name), Some(arn)) = (alarm.alarm_name(), alarm.alarm_arn()) else {
                continue;
            };
            let tags: Vec<(String, String)> = cloudwatch
                .list_tags_for_resource()
                .resource_arn(arn)
                .send()
                .await
                .map_err(error)
                .context("ListTagsForResource (alarm)")?
                .tags()
                .iter()
                .map(|t| {
                    (
                        t.key().unwrap_or_default().to_string(),
                        t.value().unwrap_or_default().to_string(),
                    )
                })
                .collect();
            if ours(&tags, owner) {
                owned.push(Owned::Alarm {
                    region: region.to_string(),
                    name: name.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// The topics of `region` with our prefix and tag.
async fn discover_topics(
    c: &Clients,
    region: &str,
    prefix: &str,
    owner: &str,
    owned: &mut Vec<Owned>,
) -> anyhow::Result<()> {
    let sns = c.sns_in(region);
    let mut topics = sns.list_topics().into_paginator().send();
    while let Some(page) = topics.next().await {
        for arn in page
            .map_err(error)
            .context("ListTopics")?
            .topics()
            .iter()
            .filter_map(|t| t.topic_arn())
            .filter(|arn| last_segment(arn).starts_with(prefix))
        {
            let tags: Vec<(String, String)> = sns
                .list_tags_for_resource()
                .resource_arn(arn)
                .send()
                .await
                .map_err(error)
                .context("ListTagsForResource (topic)")?
                .tags()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect();
            if ours(&tags, owner) {
                owned.push(Owned::Topic(arn.to_string()));
            }
        }
    }
    Ok(())
}

/// The EventBridge rules and the functions with our prefix and tag.
async fn discover_rules_and_functions(
    c: &Clients,
    prefix: &str,
    owner: &str,
    owned: &mut Vec<Owned>,
) -> anyhow::Result<()> {
    let rules = c
        .events
        .list_rules()
        .name_prefix(prefix)
        .send()
        .await
        .map_err(error)
        .context("ListRules")?;
    for rule in rules.rules() {
        let (Some(name), Some(arn)) = (rule.name(), rule.arn()) else {
            continue;
        };
        let tags: Vec<(String, String)> = c
            .events
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .map_err(error)
            .context("ListTagsForResource (rule)")?
            .tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect();
        if ours(&tags, owner) {
            owned.push(Owned::Rule(name.to_string()));
        }
    }

    let mut functions = c.lambda.list_functions().into_paginator().send();
    while let Some(page) = functions.next().await {
        for function in page.map_err(error).context("ListFunctions")?.functions() {
            let (Some(name), Some(arn)) = (function.function_name(), function.function_arn())
            else {
                continue;
            };
            if !name.starts_with(prefix) {
                continue;
            }
            let tags: Vec<(String, String)> = c
                .lambda
                .list_tags()
                .resource(arn)
                .send()
                .await
                .map_err(error)
                .context("ListTags (function)")?
                .tags()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if ours(&tags, owner) {
                owned.push(Owned::Function(name.to_string()));
            }
        }
    }
    Ok(())
}

/// The functions' log groups (`/aws/lambda/<prefix>…`) with our tag; an untagged one (made by
/// Lambda for a function deploy did not make) is not ours.
async fn discover_log_groups(
    c: &Clients,
    prefix: &str,
    owner: &str,
    owned: &mut Vec<Owned>,
) -> anyhow::Result<()> {
    let mut groups = c
        .logs
        .describe_log_groups()
        .log_group_name_prefix(format!("{LOG_GROUP_PREFIX}{prefix}"))
        .into_paginator()
        .send();
    while let Some(page) = groups.next().await {
        for group in page
            .map_err(error)
            .context("DescribeLogGroups")?
            .log_groups()
        {
            let (Some(name), Some(arn)) =
                (group.log_group_name(), super::observe::log_group_arn(group))
            else {
                continue;
            };
            let tags: Vec<(String, String)> = c
                .logs
                .list_tags_for_resource()
                .resource_arn(arn)
                .send()
                .await
                .map_err(error)
                .context("ListTagsForResource (log group)")?
                .tags()
                .map(|tags| tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            if ours(&tags, owner) {
                owned.push(Owned::LogGroup(name.to_string()));
            }
        }
    }
    Ok(())
}

/// The decision table, the roles and the secrets with our tag.
async fn discover_tables_roles_secrets(
    deployment: &crate::config::Deployment,
    c: &Clients,
    prefix: &str,
    owner: &str,
    owned: &mut Vec<Owned>,
) -> anyhow::Result<()> {
    // Tables after functions: the fence writes to its table until it is gone. The configured
    // table may not carry the prefix; a table named with it was made by a deploy whose
    // `fence.decision_table` has changed since.
    let table = deployment.decision_table();
    let mut tables = c.dynamodb.list_tables().into_paginator().send();
    while let Some(page) = tables.next().await {
        for name in page
            .map_err(error)
            .context("ListTables")?
            .table_names()
            .iter()
            .filter(|name| **name == table || name.starts_with(prefix))
        {
            let described = c
                .dynamodb
                .describe_table()
                .table_name(name)
                .send()
                .await
                .map_err(error)
                .context("DescribeTable")?;
            let Some(arn) = described.table().and_then(|t| t.table_arn()) else {
                continue;
            };
            let tags = super::observe::table_tags(c, arn).await?;
            if ours(&tags, owner) {
                owned.push(Owned::Table(name.clone()));
            }
        }
    }

    let mut roles = c
        .iam
        .list_roles()
        .path_prefix(ROLE_PATH)
        .into_paginator()
        .send();
    while let Some(page) = roles.next().await {
        for role in page.map_err(error).context("ListRoles")?.roles() {
            let name = role.role_name();
            if !name.starts_with(prefix) {
                continue;
            }
            let tags: Vec<(String, String)> = c
                .iam
                .list_role_tags()
                .role_name(name)
                .send()
                .await
                .map_err(error)
                .context("ListRoleTags")?
                .tags()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect();
            if ours(&tags, owner) {
                owned.push(Owned::Role(name.to_string()));
            }
        }
    }

    let mut secrets = c.secrets.list_secrets().into_paginator().send();
    while let Some(page) = secrets.next().await {
        for secret in page.map_err(error).context("ListSecrets")?.secret_list() {
            let tags: Vec<(String, String)> = secret
                .tags()
                .iter()
                .map(|t| {
                    (
                        t.key().unwrap_or_default().to_string(),
                        t.value().unwrap_or_default().to_string(),
                    )
                })
                .collect();
            if let Some(name) = secret.name()
                && secret.deleted_date().is_none()
                && ours(&tags, owner)
            {
                owned.push(Owned::Secret(name.to_string()));
            }
        }
    }
    Ok(())
}

pub async fn delete(owned: &[Owned], c: &Clients) -> anyhow::Result<()> {
    let total = owned.len();
    for (i, resource) in owned.iter().enumerate() {
        eprintln!("[{}/{total}] - {resource}", i + 1);
        match resource {
            Owned::Alarm { region, name } => {
                c.cloudwatch_in(region)
                    .delete_alarms()
                    .alarm_names(name)
                    .send()
                    .await
                    .map_err(error)
                    .context("DeleteAlarms")?;
            }
            Owned::Topic(arn) => {
                // arn:PARTITION:sns:REGION:ACCOUNT:NAME
                let region = arn.split(':').nth(3).unwrap_or_default();
                let sns = c.sns_in(region);
                let subscriptions = sns
                    .list_subscriptions_by_topic()
                    .topic_arn(arn)
                    .send()
                    .await
                    .map_err(error)
                    .context("ListSubscriptionsByTopic")?;
                for subscription in subscriptions
                    .subscriptions()
                    .iter()
                    .filter_map(|s| s.subscription_arn())
                    // Pending confirmations have no ARN yet.
                    .filter(|arn| arn.starts_with("arn:"))
                {
                    sns.unsubscribe()
                        .subscription_arn(subscription)
                        .send()
                        .await
                        .map_err(error)
                        .context("Unsubscribe")?;
                }
                sns.delete_topic()
                    .topic_arn(arn)
                    .send()
                    .await
                    .map_err(error)
                    .context("DeleteTopic")?;
            }
            Owned::Rule(name) => {
                let targets = c
                    .events
                    .list_targets_by_rule()
                    .rule(name)
                    .send()
                    .await
                    .map_err(error)
                    .context("ListTargetsByRule")?;
                let ids: Vec<String> = targets
                    .targets()
                    .iter()
                    .map(|t| t.id().to_string())
                    .collect();
                if !ids.is_empty() {
                    c.events
                        .remove_targets()
                        .rule(name)
                        .set_ids(Some(ids))
                        .send()
                        .await
                        .map_err(error)
                        .context("RemoveTargets")?;
                }
                c.events
                    .delete_rule()
                    .name(name)
                    .send()
                    .await
                    .map_err(error)
                    .context("DeleteRule")?;
            }
            Owned::Function(name) => {
                c.lambda
                    .delete_function()
                    .function_name(name)
                    .send()
                    .await
                    .map_err(error)
                    .context("DeleteFunction")?;
            }
            Owned::LogGroup(name) => {
                c.logs
                    .delete_log_group()
                    .log_group_name(name)
                    .send()
                    .await
                    .map_err(error)
                    .context("DeleteLogGroup")?;
            }
            Owned::Table(name) => delete_table(c, name).await?,
            Owned::Role(name) => {
                let policies = c
                    .iam
                    .list_role_policies()
                    .role_name(name)
                    .send()
                    .await
                    .map_err(error)
                    .context("ListRolePolicies")?;
                for policy in policies.policy_names() {
                    c.iam
                        .delete_role_policy()
                        .role_name(name)
                        .policy_name(policy)
                        .send()
                        .await
                        .map_err(error)
                        .context("DeleteRolePolicy")?;
                }
                c.iam
                    .delete_role()
                    .role_name(name)
                    .send()
                    .await
                    .map_err(error)
                    .context("DeleteRole")?;
            }
            Owned::Secret(name) => {
                // The password was generated by deploy: a recovery window would only block the
                // next deploy from creating the secret again.
                c.secrets
                    .delete_secret()
                    .secret_id(name)
                    .force_delete_without_recovery(true)
                    .send()
                    .await
                    .map_err(error)
                    .context("DeleteSecret")?;
            }
        }
    }
    eprintln!("destroy: {total} resource(s) deleted");
    Ok(())
}

/// How long destroy waits for a deleted table to be gone, so that a deploy right after it
/// creates the table again instead of finding it `DELETING`.
const TABLE_GONE_WAIT: Duration = Duration::from_secs(120);

/// Deletion protection guards the table against a delete by mistake (the console, another
/// tool, a script with the wrong name); `destroy` is the deliberate delete, listed and
/// confirmed, so it turns the protection off itself. With point-in-time recovery on, DynamoDB
/// keeps a backup of the deleted table for 35 days.
async fn delete_table(c: &Clients, name: &str) -> anyhow::Result<()> {
    let protected = c
        .dynamodb
        .describe_table()
        .table_name(name)
        .send()
        .await
        .map_err(error)
        .context("DescribeTable")?
        .table()
        .and_then(|t| t.deletion_protection_enabled())
        .unwrap_or(false);
    if protected {
        super::apply::wait_until_table_active(c, name).await?;
        c.dynamodb
            .update_table()
            .table_name(name)
            .deletion_protection_enabled(false)
            .send()
            .await
            .map_err(error)
            .context("UpdateTable (deletion protection off)")?;
        super::apply::wait_until_table_active(c, name).await?;
    }
    c.dynamodb
        .delete_table()
        .table_name(name)
        .send()
        .await
        .map_err(error)
        .context("DeleteTable")?;
    let deadline = Instant::now() + TABLE_GONE_WAIT;
    loop {
        match c.dynamodb.describe_table().table_name(name).send().await {
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                return Ok(());
            }
            Err(e) => return Err(error(e)).context("DescribeTable"),
            Ok(_) if Instant::now() >= deadline => {
                eprintln!(
                    "      table {name} is still being deleted after {} s; deploy refuses to run until it is gone",
                    TABLE_GONE_WAIT.as_secs()
                );
                return Ok(());
            }
            Ok(_) => tokio::time::sleep(Duration::from_secs(2)).await,
        }
    }
}
