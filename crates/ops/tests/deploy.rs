//! Deploy into the sandbox's moto, read everything back with the AWS SDK, deploy again (no
//! changes), drift fixed, destroy (nothing of ours left, the foreign resources untouched).

use anyhow::Context;
use fence_lambda::config::vars as fence_vars;
use ops::artifacts::Arch;
use ops::aws::{self, AwsArgs};
use ops::config::Deployment;
use ops::deploy::plan::{FENCE_RESERVED_CONCURRENCY, Function, OWNER_TAG};
use ops::deploy::{Options, deploy};
use sandbox::world::{ROUTE53_REGION, SandboxInfo, World, WorldOptions};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const NAME: &str = "sf-test";

fn scratch_dir() -> PathBuf {
    std::env::temp_dir().join(format!(
        "sitefence-deploy-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default()
    ))
}

/// Lambda ZIPs of the native dev binaries (moto stores code, it never runs it).
fn native_zips(dir: &Path) -> anyhow::Result<PathBuf> {
    let bin_dir = testbed::workspace::build_sandbox_binaries(false)?;
    testbed::sandbox_world::native_zips(&bin_dir, &dir.join("zips"))
}

fn deployment(info: &SandboxInfo) -> Deployment {
    let mut deployment = testbed::sandbox_world::deployment_from_sandbox(info);
    deployment.name = NAME.to_string();
    // Absent: deploy creates it with a generated password. The Infinispan secret stays the
    // sandbox's own (the operator's, untagged): deploy uses it and destroy must leave it.
    deployment.fence.webhook_secret = format!("{NAME}/webhook-password");
    deployment
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_reads_back_complete_redeploys_unchanged_and_destroy_spares_foreign() {
    let dir = scratch_dir();
    let world = World::start(WorldOptions::new(&dir))
        .await
        .unwrap_or_else(|e| panic!("starting the sandbox: {e:#}"));
    let info = world.info().clone();
    let scenario_dir = dir.clone();
    let outcome = tokio::spawn(async move { scenario(&info, &scenario_dir).await }).await;
    world.shutdown().await;
    match outcome {
        Ok(Ok(())) => {
            let _ = std::fs::remove_dir_all(&dir);
        }
        Ok(Err(e)) => panic!("{e:#} (sandbox logs in {})", dir.display()),
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
}

async fn scenario(info: &SandboxInfo, dir: &Path) -> anyhow::Result<()> {
    let deployment = deployment(info);
    let args = AwsArgs::default();
    let endpoint = Some(info.aws_endpoint_url.clone());
    let regional = aws::load(&args, endpoint.clone(), info.region.clone()).await;
    let alarms_region = aws::load(&args, endpoint, ROUTE53_REGION.to_string()).await;
    let iam = aws_sdk_iam::Client::new(&regional);
    let lambda = aws_sdk_lambda::Client::new(&regional);
    let secrets = aws_sdk_secretsmanager::Client::new(&regional);
    let events = aws_sdk_eventbridge::Client::new(&regional);
    let sns = aws_sdk_sns::Client::new(&alarms_region);
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&alarms_region);
    let dynamodb = aws_sdk_dynamodb::Client::new(&regional);

    // Foreign resources that look like ours: same name prefix and role path, no owner tag.
    let foreign = format!("{NAME}-someone-elses");
    let foreign_role = iam
        .create_role()
        .role_name(&foreign)
        .path(ops::deploy::plan::ROLE_PATH)
        .assume_role_policy_document(ops::deploy::policy::lambda_trust_policy().to_string())
        .send()
        .await?;
    let zips = native_zips(dir)?;
    lambda
        .create_function()
        .function_name(&foreign)
        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
        .handler("bootstrap")
        .role(foreign_role.role().map(|r| r.arn()).unwrap_or_default())
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(aws_sdk_lambda::primitives::Blob::new(
                    ops::deploy::zip::lambda_zip(b"#!/bin/sh\n")?,
                ))
                .build(),
        )
        .send()
        .await?;
    create_foreign_table(&dynamodb, &foreign).await?;

    let stop = Arc::new(AtomicBool::new(false));
    testbed::sandbox_world::evaluate_alarms(cloudwatch.clone(), stop.clone());
    let options = Options {
        zips,
        arch: Arch::host(),
        dry_run: false,
        alarm_wait: Duration::from_secs(60),
        show_secrets: false,
    };
    // The fence's log group as Lambda makes it at a function's first log line (a deployment
    // from before deploy made them): untagged, kept forever. Deploy adopts it.
    let logs = aws_sdk_cloudwatchlogs::Client::new(&regional);
    logs.create_log_group()
        .log_group_name(ops::deploy::plan::log_group_name(
            &Function::Fence.name(&deployment),
        ))
        .send()
        .await?;
    let first = deploy(&deployment, &options, &args).await?;
    stop.store(true, Ordering::Relaxed);
    let adopted = first.plan.to_string();
    anyhow::ensure!(
        adopted.contains("- owner: <none>\n    + owner: sf-test")
            && adopted.contains("- retention_days: never\n    + retention_days: 30"),
        "{adopted}"
    );
    anyhow::ensure!(first.deferred.is_empty(), "deferred: {:?}", first.deferred);
    anyhow::ensure!(
        first.plan.changes.len() >= 20,
        "first plan:\n{}",
        first.plan
    );
    template_describes_what_deploy_made(&deployment, &args).await?;

    // Roles: one per function, under our path, with only an inline least-privilege policy.
    for function in Function::ALL {
        let name = function.name(&deployment);
        let role = iam.get_role().role_name(&name).send().await?;
        anyhow::ensure!(role.role().map(|r| r.path()) == Some(ops::deploy::plan::ROLE_PATH));
        let attached = iam
            .list_attached_role_policies()
            .role_name(&name)
            .send()
            .await?;
        anyhow::ensure!(
            attached.attached_policies().is_empty(),
            "managed policy on {name}"
        );
        let policy = iam
            .get_role_policy()
            .role_name(&name)
            .policy_name(&name)
            .send()
            .await?;
        let document: Value =
            serde_json::from_str(&ops::deploy::plan::canonical_text(policy.policy_document()))?;
        for statement in document["Statement"].as_array().into_iter().flatten() {
            for action in statement["Action"].as_array().into_iter().flatten() {
                anyhow::ensure!(!action.as_str().unwrap_or("*").contains('*'), "{document}");
            }
        }
        if function == Function::Fence {
            let text = document.to_string();
            anyhow::ensure!(text.contains(&info.accelerator_arn), "{text}");
            anyhow::ensure!(
                text.contains("secret:sf-test/webhook-password-??????"),
                "{text}"
            );
            // Exactly the fence's two calls, on the ARN of the table deploy made.
            let table_arn = dynamodb
                .describe_table()
                .table_name(TABLE)
                .send()
                .await?
                .table()
                .and_then(|t| t.table_arn())
                .context("no table ARN")?
                .to_string();
            let dynamodb_statements: Vec<&Value> = document["Statement"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|s| s.to_string().contains("dynamodb:"))
                .collect();
            anyhow::ensure!(
                dynamodb_statements
                    == [&serde_json::json!({
                        "Sid": "RecordDecisions",
                        "Effect": "Allow",
                        "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
                        "Resource": [table_arn]
                    })],
                "{dynamodb_statements:?}"
            );
        } else {
            anyhow::ensure!(!document.to_string().contains("dynamodb"), "{document}");
        }
        let configuration = lambda.get_function().function_name(&name).send().await?;
        let configuration = configuration.configuration().context("no configuration")?;
        anyhow::ensure!(
            configuration.runtime() == Some(&aws_sdk_lambda::types::Runtime::Providedal2023)
        );
        anyhow::ensure!(
            configuration
                .role()
                .is_some_and(|r| r.ends_with(&format!("/sitefence/{name}")))
        );
    }

    // The decision table: its key, on-demand, point-in-time recovery, deletion protection, tag.
    expect_table_as_deployed(&dynamodb).await?;

    // The fence: its environment, its reserved concurrency, a Function URL with auth NONE and
    // the public-invoke permission that auth NONE needs.
    let fence = Function::Fence.name(&deployment);
    let function = lambda.get_function().function_name(&fence).send().await?;
    let env = function
        .configuration()
        .and_then(|c| c.environment())
        .and_then(|e| e.variables())
        .context("fence has no environment")?;
    let sites: Value = serde_json::from_str(
        env.get(fence_vars::INFINISPAN_SITE_ENDPOINTS)
            .context(fence_vars::INFINISPAN_SITE_ENDPOINTS)?,
    )?;
    for (site, site_info) in &info.sites {
        anyhow::ensure!(sites[site] == site_info.ispn_url.as_str(), "{sites}");
    }
    anyhow::ensure!(
        env.get(fence_vars::WEBHOOK_USER_SECRET).map(String::as_str)
            == Some("sf-test/webhook-password")
    );
    anyhow::ensure!(
        env.get(fence_vars::INFINISPAN_CA_BUNDLE)
            .is_some_and(|pem| pem.starts_with("-----BEGIN"))
    );
    anyhow::ensure!(
        env.get(fence_vars::DECISION_TABLE).map(String::as_str) == Some(TABLE),
        "{env:?}"
    );
    let concurrency = lambda
        .get_function_concurrency()
        .function_name(&fence)
        .send()
        .await?;
    anyhow::ensure!(
        concurrency.reserved_concurrent_executions() == Some(FENCE_RESERVED_CONCURRENCY),
        "{concurrency:?}"
    );
    let url = lambda
        .get_function_url_config()
        .function_name(&fence)
        .send()
        .await?;
    anyhow::ensure!(url.auth_type() == &aws_sdk_lambda::types::FunctionUrlAuthType::None);
    anyhow::ensure!(first.function_url.as_deref() == Some(url.function_url()));
    let policy = lambda.get_policy().function_name(&fence).send().await?;
    let policy: Value = serde_json::from_str(policy.policy().unwrap_or("{}"))?;
    let url_permission = ops::deploy::observe::permission_attributes(
        &policy,
        ops::deploy::plan::FUNCTION_URL_STATEMENT,
    )
    .context("no Function URL permission")?;
    anyhow::ensure!(
        url_permission.get("action").map(String::as_str) == Some("lambda:InvokeFunctionUrl")
    );
    // moto 5.2.5 does not keep the statement's FunctionUrlAuthType condition; AWS does.
    anyhow::ensure!(url_permission.get("principal").map(String::as_str) == Some("*"));

    // Secrets: the absent one created (tagged, generated), the operator's one left as it was.
    let webhook = secrets
        .get_secret_value()
        .secret_id("sf-test/webhook-password")
        .send()
        .await?;
    anyhow::ensure!(webhook.secret_string().is_some_and(|p| p.len() == 32));
    let webhook_tags = secrets
        .describe_secret()
        .secret_id("sf-test/webhook-password")
        .send()
        .await?;
    anyhow::ensure!(
        webhook_tags
            .tags()
            .iter()
            .any(|t| t.key() == Some(OWNER_TAG) && t.value() == Some(NAME))
    );
    let ispn = secrets
        .get_secret_value()
        .secret_id(&info.infinispan.secret_name)
        .send()
        .await?;
    anyhow::ensure!(ispn.secret_string() == Some(info.infinispan.password.as_str()));

    // Route 53: topic and alarm in us-east-1, the function subscribed and allowed to be invoked.
    let route53 = Function::Route53.name(&deployment);
    let route53_arn = lambda
        .get_function()
        .function_name(&route53)
        .send()
        .await?
        .configuration()
        .and_then(|c| c.function_arn())
        .context("no function ARN")?
        .to_string();
    let topics = sns.list_topics().send().await?;
    let topic = topics
        .topics()
        .iter()
        .filter_map(|t| t.topic_arn())
        .find(|arn| arn.ends_with(":sf-test-route53-failover"))
        .context("no SNS topic in us-east-1")?
        .to_string();
    anyhow::ensure!(topic.contains(":us-east-1:"), "{topic}");
    let subscriptions = sns
        .list_subscriptions_by_topic()
        .topic_arn(&topic)
        .send()
        .await?;
    anyhow::ensure!(
        subscriptions
            .subscriptions()
            .iter()
            .any(|s| s.protocol() == Some("lambda") && s.endpoint() == Some(route53_arn.as_str())),
        "{subscriptions:?}"
    );
    let alarm_name = format!("sf-test-health-check-{}", info.route53.health_check_id);
    let alarms = cloudwatch
        .describe_alarms()
        .alarm_names(&alarm_name)
        .send()
        .await?;
    let alarm = alarms
        .metric_alarms()
        .first()
        .context("no alarm in us-east-1")?;
    anyhow::ensure!(alarm.treat_missing_data() == Some("notBreaching"));
    anyhow::ensure!(
        alarm.namespace() == Some("AWS/Route53")
            && alarm.metric_name() == Some("HealthCheckStatus")
    );
    anyhow::ensure!(
        alarm
            .dimensions()
            .iter()
            .any(|d| d.name() == Some("HealthCheckId")
                && d.value() == Some(info.route53.health_check_id.as_str()))
    );
    anyhow::ensure!(alarm.alarm_actions() == std::slice::from_ref(&topic));
    let elsewhere = aws_sdk_cloudwatch::Client::new(&regional)
        .describe_alarms()
        .alarm_names(&alarm_name)
        .send()
        .await?;
    anyhow::ensure!(
        elsewhere.metric_alarms().is_empty(),
        "alarm outside us-east-1"
    );
    let route53_policy = lambda.get_policy().function_name(&route53).send().await?;
    let route53_policy: Value = serde_json::from_str(route53_policy.policy().unwrap_or("{}"))?;
    let sns_permission = ops::deploy::observe::permission_attributes(
        &route53_policy,
        ops::deploy::plan::SNS_STATEMENT,
    )
    .context("no SNS invoke permission")?;
    anyhow::ensure!(sns_permission.get("source_arn") == Some(&topic));

    // VPC: the EventBridge rule of seed 003 for both appliances, targeting the function.
    let rule = events
        .describe_rule()
        .name("sf-test-vpc-appliance-state")
        .send()
        .await?;
    let pattern: Value = serde_json::from_str(rule.event_pattern().unwrap_or("{}"))?;
    anyhow::ensure!(pattern["source"] == serde_json::json!(["aws.ec2"]));
    anyhow::ensure!(
        pattern["detail-type"] == serde_json::json!(["EC2 Instance State-change Notification"])
    );
    let instances = pattern["detail"]["instance-id"].to_string();
    anyhow::ensure!(
        instances.contains(&info.vpc.primary.instance_id)
            && instances.contains(&info.vpc.standby.instance_id)
    );
    anyhow::ensure!(pattern["detail"]["state"].to_string().contains("stopped"));
    let targets = events
        .list_targets_by_rule()
        .rule("sf-test-vpc-appliance-state")
        .send()
        .await?;
    anyhow::ensure!(
        targets
            .targets()
            .iter()
            .any(|t| t.arn().ends_with(":function:sf-test-vpc-route-failover"))
    );

    // Log groups (the fence's adopted) and the functions' alarms, in the functions' region.
    for function in Function::ALL {
        expect_log_group(&logs, &function.name(&deployment), 30).await?;
    }
    expect_function_alarms(&deployment, &regional, &cloudwatch).await?;

    // Second deploy: nothing to do.
    let second = deploy(&deployment, &options, &args).await?;
    anyhow::ensure!(
        second.plan.changes.is_empty() && second.deferred.is_empty(),
        "second deploy:\n{}",
        second.plan
    );
    anyhow::ensure!(
        second.plan.to_string().starts_with("no changes"),
        "{}",
        second.plan
    );

    // The table changed by hand: the drift is shown, fixed, and then there is nothing to do.
    drift_table(&dynamodb).await?;
    let dry = deploy(
        &deployment,
        &Options {
            dry_run: true,
            ..options.clone()
        },
        &args,
    )
    .await?;
    let text = dry.plan.to_string();
    anyhow::ensure!(
        dry.plan.changes.len() == 1
            && text.contains("~ dynamodb table")
            && text.contains("+ billing_mode: PAY_PER_REQUEST")
            && text.contains("+ deletion_protection: true")
            && text.contains("+ point_in_time_recovery: ENABLED"),
        "{text}"
    );
    let fixed = deploy(&deployment, &options, &args).await?;
    anyhow::ensure!(fixed.plan.changes.len() == 1, "{}", fixed.plan);
    expect_table_as_deployed(&dynamodb).await?;
    let settled = deploy(&deployment, &options, &args).await?;
    anyhow::ensure!(settled.plan.changes.is_empty(), "{}", settled.plan);

    // A retention changed by hand and an alarm deleted: both put back, then nothing to do.
    let fence_group = ops::deploy::plan::log_group_name(&Function::Fence.name(&deployment));
    logs.put_retention_policy()
        .log_group_name(&fence_group)
        .retention_in_days(7)
        .send()
        .await?;
    let regional_cloudwatch = aws_sdk_cloudwatch::Client::new(&regional);
    regional_cloudwatch
        .delete_alarms()
        .alarm_names("sf-test-fence-throttles")
        .send()
        .await?;
    let fixed = deploy(&deployment, &options, &args).await?;
    let text = fixed.plan.to_string();
    anyhow::ensure!(
        fixed.plan.changes.len() == 2
            && text.contains("- retention_days: 7\n    + retention_days: 30")
            && text.contains("+ cloudwatch alarm")
            && text.contains("sf-test-fence-throttles"),
        "{text}"
    );
    expect_log_group(&logs, &Function::Fence.name(&deployment), 30).await?;
    expect_function_alarms(&deployment, &regional, &cloudwatch).await?;
    let settled = deploy(&deployment, &options, &args).await?;
    anyhow::ensure!(settled.plan.changes.is_empty(), "{}", settled.plan);

    // A changed setting shows as a diff in a dry run, and the dry run changes nothing.
    let mut changed = deployment.clone();
    changed.fence.alert_name = "SiteDown".to_string();
    let dry = deploy(
        &changed,
        &Options {
            dry_run: true,
            ..options.clone()
        },
        &args,
    )
    .await?;
    let text = dry.plan.to_string();
    anyhow::ensure!(
        dry.plan.changes.len() == 1
            && text.contains("~ lambda function")
            && text.contains("SiteDown"),
        "{text}"
    );
    let still = lambda
        .get_function_configuration()
        .function_name(&fence)
        .send()
        .await?;
    anyhow::ensure!(
        still
            .environment()
            .and_then(|e| e.variables())
            .and_then(|v| v.get(fence_vars::ALERT_NAME))
            .map(String::as_str)
            == Some("SiteOffline")
    );

    // Destroy: nothing of ours left; the foreign role, function and secret still there.
    let clients = ops::deploy::Clients::load(&args, &deployment).await;
    let owned = ops::deploy::destroy::discover(&deployment, &clients).await?;
    // 11, and the three log groups, the alarm topic and the five function alarms.
    anyhow::ensure!(owned.len() == 20, "found to destroy: {owned:?}");
    anyhow::ensure!(
        owned.contains(&ops::deploy::destroy::Owned::LogGroup(fence_group.clone())),
        "{owned:?}"
    );
    anyhow::ensure!(
        owned.contains(&ops::deploy::destroy::Owned::Table(TABLE.to_string())),
        "{owned:?}"
    );
    ops::deploy::destroy::delete(&owned, &clients).await?;
    let left = ops::deploy::destroy::discover(&deployment, &clients).await?;
    anyhow::ensure!(left.is_empty(), "left behind: {left:?}");
    let groups = logs
        .describe_log_groups()
        .log_group_name_prefix(format!("{}{NAME}-", ops::deploy::plan::LOG_GROUP_PREFIX))
        .send()
        .await?;
    anyhow::ensure!(groups.log_groups().is_empty(), "{groups:?}");
    let function_alarms = regional_cloudwatch
        .describe_alarms()
        .alarm_name_prefix(format!("{NAME}-"))
        .send()
        .await?;
    anyhow::ensure!(
        function_alarms.metric_alarms().is_empty(),
        "{function_alarms:?}"
    );
    for function in Function::ALL {
        let name = function.name(&deployment);
        anyhow::ensure!(
            lambda
                .get_function()
                .function_name(&name)
                .send()
                .await
                .is_err(),
            "{name} still there"
        );
        anyhow::ensure!(
            iam.get_role().role_name(&name).send().await.is_err(),
            "role {name} still there"
        );
    }
    anyhow::ensure!(
        secrets
            .describe_secret()
            .secret_id("sf-test/webhook-password")
            .send()
            .await
            .is_err()
    );
    anyhow::ensure!(
        secrets
            .get_secret_value()
            .secret_id(&info.infinispan.secret_name)
            .send()
            .await
            .is_ok()
    );
    // moto refuses to delete a protected table, as DynamoDB does: destroy turned it off.
    let gone = dynamodb.describe_table().table_name(TABLE).send().await;
    anyhow::ensure!(
        gone.as_ref()
            .err()
            .and_then(|e| e.as_service_error())
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "table still there: {gone:?}"
    );
    anyhow::ensure!(
        dynamodb
            .describe_table()
            .table_name(&foreign)
            .send()
            .await
            .is_ok(),
        "foreign table deleted"
    );
    anyhow::ensure!(
        iam.get_role().role_name(&foreign).send().await.is_ok(),
        "foreign role deleted"
    );
    anyhow::ensure!(
        lambda
            .get_function()
            .function_name(&foreign)
            .send()
            .await
            .is_ok(),
        "foreign function deleted"
    );
    anyhow::ensure!(
        cloudwatch
            .describe_alarms()
            .alarm_names(&alarm_name)
            .send()
            .await?
            .metric_alarms()
            .is_empty()
    );
    anyhow::ensure!(
        events
            .describe_rule()
            .name("sf-test-vpc-appliance-state")
            .send()
            .await
            .is_err()
    );
    let topics = sns.list_topics().send().await?;
    anyhow::ensure!(
        !topics
            .topics()
            .iter()
            .filter_map(|t| t.topic_arn())
            .any(|a| a == topic)
    );
    Ok(())
}

/// The decision table of deployment `sf-test`.
const TABLE: &str = "sf-test-decisions";

/// A table with our prefix and no owner tag: destroy must leave it.
async fn create_foreign_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    name: &str,
) -> anyhow::Result<()> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    dynamodb
        .create_table()
        .table_name(name)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()?,
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await?;
    Ok(())
}

/// The decision table as deploy leaves it, read back with the SDK.
async fn expect_table_as_deployed(dynamodb: &aws_sdk_dynamodb::Client) -> anyhow::Result<()> {
    use aws_sdk_dynamodb::types::{
        BillingMode, KeyType, PointInTimeRecoveryStatus, ScalarAttributeType,
    };
    let described = dynamodb.describe_table().table_name(TABLE).send().await?;
    let table = described
        .table()
        .context("DescribeTable returned no table")?;
    let key: Vec<(&str, &KeyType)> = table
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type()))
        .collect();
    anyhow::ensure!(
        key == [(aws_topology::decisions::KEY_ATTRIBUTE, &KeyType::Hash)],
        "{key:?}"
    );
    anyhow::ensure!(
        table
            .attribute_definitions()
            .iter()
            .any(
                |d| d.attribute_name() == aws_topology::decisions::KEY_ATTRIBUTE
                    && d.attribute_type() == &ScalarAttributeType::S
            )
    );
    anyhow::ensure!(
        table.billing_mode_summary().and_then(|b| b.billing_mode())
            == Some(&BillingMode::PayPerRequest),
        "{table:?}"
    );
    anyhow::ensure!(
        table.deletion_protection_enabled() == Some(true),
        "{table:?}"
    );
    let backups = dynamodb
        .describe_continuous_backups()
        .table_name(TABLE)
        .send()
        .await?;
    let recovery = backups
        .continuous_backups_description()
        .and_then(|d| d.point_in_time_recovery_description())
        .and_then(|p| p.point_in_time_recovery_status());
    anyhow::ensure!(
        recovery == Some(&PointInTimeRecoveryStatus::Enabled),
        "{backups:?}"
    );
    let tags = dynamodb
        .list_tags_of_resource()
        .resource_arn(table.table_arn().context("no table ARN")?)
        .send()
        .await?;
    anyhow::ensure!(
        tags.tags()
            .iter()
            .any(|t| t.key() == OWNER_TAG && t.value() == NAME),
        "{tags:?}"
    );
    Ok(())
}

/// What an operator might do by hand: provisioned capacity, recovery and protection off.
async fn drift_table(dynamodb: &aws_sdk_dynamodb::Client) -> anyhow::Result<()> {
    use aws_sdk_dynamodb::types::{
        BillingMode, PointInTimeRecoverySpecification, ProvisionedThroughput,
    };
    dynamodb
        .update_table()
        .table_name(TABLE)
        .billing_mode(BillingMode::Provisioned)
        .provisioned_throughput(
            ProvisionedThroughput::builder()
                .read_capacity_units(1)
                .write_capacity_units(1)
                .build()?,
        )
        .deletion_protection_enabled(false)
        .send()
        .await?;
    dynamodb
        .update_continuous_backups()
        .table_name(TABLE)
        .point_in_time_recovery_specification(
            PointInTimeRecoverySpecification::builder()
                .point_in_time_recovery_enabled(false)
                .build()?,
        )
        .send()
        .await?;
    Ok(())
}

/// Lambda refuses a role for a while after `CreateRole` (IAM is eventually consistent). moto
/// answers a role that does not exist yet with the same error, which stands in for that window:
/// the role appears 4 s after the first `CreateFunction`, which must then succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_function_waits_for_a_role_lambda_cannot_assume_yet() {
    let dir = scratch_dir();
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("creating {}: {e}", dir.display());
    }
    let moto = sandbox::moto::MotoServer::start(&pytools::Venv::locate(), &dir.join("moto.log"))
        .await
        .unwrap_or_else(|e| panic!("starting moto: {e}"));
    let outcome = role_arrives_late(&moto.url()).await;
    moto.shutdown();
    match outcome {
        Ok(()) => {
            let _ = std::fs::remove_dir_all(&dir);
        }
        Err(e) => panic!("{e:#} (moto log in {})", dir.display()),
    }
}

async fn role_arrives_late(endpoint: &str) -> anyhow::Result<()> {
    let config = aws::load(
        &AwsArgs::default(),
        Some(endpoint.to_string()),
        "eu-west-1".to_string(),
    )
    .await;
    let clients = ops::deploy::Clients {
        iam: aws_sdk_iam::Client::new(&config),
        lambda: aws_sdk_lambda::Client::new(&config),
        secrets: aws_sdk_secretsmanager::Client::new(&config),
        events: aws_sdk_eventbridge::Client::new(&config),
        sns: aws_sdk_sns::Client::new(&config),
        cloudwatch: aws_sdk_cloudwatch::Client::new(&config),
        dynamodb: aws_sdk_dynamodb::Client::new(&config),
        logs: aws_sdk_cloudwatchlogs::Client::new(&config),
        regional_sns: aws_sdk_sns::Client::new(&config),
        regional_cloudwatch: aws_sdk_cloudwatch::Client::new(&config),
        alarms_region: "eu-west-1".to_string(),
        regional: config.clone(),
    };
    let account = aws_sdk_sts::Client::new(&config)
        .get_caller_identity()
        .send()
        .await?
        .account()
        .context("STS returned no account")?
        .to_string();
    let name = format!("{NAME}-late-role");
    let role_arn = format!(
        "arn:aws:iam::{account}:role{}{name}",
        ops::deploy::plan::ROLE_PATH
    );
    let iam = clients.iam.clone();
    let role = name.clone();
    let create_role_later = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(4)).await;
        iam.create_role()
            .role_name(role)
            .path(ops::deploy::plan::ROLE_PATH)
            .assume_role_policy_document(ops::deploy::policy::lambda_trust_policy().to_string())
            .send()
            .await
    });
    let started = std::time::Instant::now();
    ops::deploy::apply::create_function(
        &clients,
        &name,
        &role_arn,
        &aws_sdk_lambda::types::Architecture::X8664,
        ops::deploy::zip::lambda_zip(b"#!/bin/sh\n")?,
        aws_sdk_lambda::types::Environment::builder().build(),
        |attribute| if attribute == "memory" { 128 } else { 30 },
        NAME,
        "fence-lambda",
    )
    .await?;
    create_role_later.await??;
    anyhow::ensure!(
        started.elapsed() >= Duration::from_secs(3),
        "created before the role existed, after {:?}",
        started.elapsed()
    );
    let function = clients
        .lambda
        .get_function()
        .function_name(&name)
        .send()
        .await?;
    anyhow::ensure!(
        function.configuration().and_then(|c| c.role()) == Some(role_arn.as_str()),
        "{function:?}"
    );
    Ok(())
}

/// The function's log group: there, tagged as ours, keeping its logs `days`.
async fn expect_log_group(
    logs: &aws_sdk_cloudwatchlogs::Client,
    function: &str,
    days: i32,
) -> anyhow::Result<()> {
    let name = ops::deploy::plan::log_group_name(function);
    let described = logs
        .describe_log_groups()
        .log_group_name_prefix(&name)
        .send()
        .await?;
    let group = described
        .log_groups()
        .iter()
        .find(|g| g.log_group_name() == Some(name.as_str()))
        .with_context(|| format!("no log group {name}"))?;
    anyhow::ensure!(group.retention_in_days() == Some(days), "{group:?}");
    let arn = ops::deploy::observe::log_group_arn(group).context("no log group ARN")?;
    let tags = logs
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await?;
    anyhow::ensure!(
        tags.tags()
            .and_then(|t| t.get(OWNER_TAG))
            .map(String::as_str)
            == Some(NAME),
        "{tags:?}"
    );
    Ok(())
}

/// Each function's alarms in the functions' region (none in the health checks' region), each
/// on its metric and function, notifying the alarm topic of that region.
async fn expect_function_alarms(
    deployment: &Deployment,
    regional: &aws_config::SdkConfig,
    health_check_region: &aws_sdk_cloudwatch::Client,
) -> anyhow::Result<()> {
    let region = regional.region().map(|r| r.to_string()).unwrap_or_default();
    let topics = aws_sdk_sns::Client::new(regional)
        .list_topics()
        .send()
        .await?;
    let topic = topics
        .topics()
        .iter()
        .filter_map(|t| t.topic_arn())
        .find(|arn| arn.ends_with(":sf-test-alarms"))
        .context("no alarm topic in the functions' region")?
        .to_string();
    anyhow::ensure!(topic.contains(&format!(":{region}:")), "{topic}");
    let cloudwatch = aws_sdk_cloudwatch::Client::new(regional);
    let expected = [
        (Function::Fence, "errors", "AWS/Lambda", "Errors", 1.0),
        (Function::Fence, "throttles", "AWS/Lambda", "Throttles", 1.0),
        (
            Function::Fence,
            "not-completed",
            "sitefence",
            "UnfencedSeconds",
            300.0,
        ),
        (Function::Route53, "errors", "AWS/Lambda", "Errors", 1.0),
        (Function::Vpc, "errors", "AWS/Lambda", "Errors", 1.0),
    ];
    for (function, suffix, namespace, metric, threshold) in expected {
        let target = function.name(deployment);
        let name = format!("{target}-{suffix}");
        let described = cloudwatch
            .describe_alarms()
            .alarm_names(&name)
            .send()
            .await?;
        let alarm = described
            .metric_alarms()
            .first()
            .with_context(|| format!("no alarm {name} in {region}"))?;
        anyhow::ensure!(
            alarm.namespace() == Some(namespace)
                && alarm.metric_name() == Some(metric)
                && alarm.threshold() == Some(threshold)
                && alarm.treat_missing_data() == Some("notBreaching")
                && alarm.alarm_actions() == std::slice::from_ref(&topic),
            "{alarm:?}"
        );
        anyhow::ensure!(
            alarm
                .dimensions()
                .iter()
                .any(|d| d.name() == Some("FunctionName") && d.value() == Some(target.as_str())),
            "{alarm:?}"
        );
        let elsewhere = health_check_region
            .describe_alarms()
            .alarm_names(&name)
            .send()
            .await?;
        anyhow::ensure!(elsewhere.metric_alarms().is_empty(), "{name} in us-east-1");
    }
    Ok(())
}

/// `deploy --emit cloudformation`'s template of the same deployment describes what the SDK
/// deploy made, resource by resource and attribute by attribute, read back from AWS (moto): the
/// policy documents, the environment, both Function URL statements and the other permissions,
/// the reserved concurrency, the alarms, the failure destinations. Only the code differs: a
/// template names it by its S3 key.
async fn template_describes_what_deploy_made(
    deployment: &Deployment,
    args: &AwsArgs,
) -> anyhow::Result<()> {
    let (templates, deployed) =
        ops::deploy::template_and_deployed(deployment, Arch::host(), args).await?;
    let from_template = ops::deploy::cloudformation::attributes(&templates)?;
    let mut differences = Vec::new();
    for (key, now) in &deployed {
        let Some(now) = now else {
            differences.push(format!("{key}: not deployed"));
            continue;
        };
        let mut now = now.clone();
        now.remove("code_sha256");
        match from_template.get(key) {
            None => differences.push(format!("{key}: not in the template")),
            Some(template) if *template != now => differences.push(format!(
                "{key}:\n    deployed {now:?}\n    template {template:?}"
            )),
            Some(_) => {}
        }
    }
    for key in from_template.keys() {
        if !deployed.contains_key(key) {
            differences.push(format!("{key}: only in the template"));
        }
    }
    anyhow::ensure!(
        differences.is_empty(),
        "the template and the deployment differ:\n{}",
        differences.join("\n")
    );
    for kind in [
        "iam inline policy",
        "lambda function",
        "lambda permission",
        "lambda reserved concurrency",
        "cloudwatch alarm",
        "lambda failure destination",
    ] {
        anyhow::ensure!(
            deployed.keys().any(|k| k.kind == kind),
            "nothing of kind {kind} compared"
        );
    }
    let statements = deployed
        .keys()
        .filter(|k| k.kind == "lambda permission" && k.name.contains("function-url"))
        .count();
    anyhow::ensure!(
        statements == 2,
        "{statements} Function URL statements compared"
    );
    Ok(())
}
