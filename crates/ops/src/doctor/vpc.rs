//! VPC: the trigger and the target of the VPC route failover function. The EventBridge rule
//! deploy creates is enabled and targets the function, and the standby appliance the routes
//! would move to is running.

use aws_sdk_eventbridge::types::RuleState;
use aws_topology::ec2::{InstanceState, Vpc as _};

use super::{Check, Ctx, Link};
use crate::deploy::plan::{self, Function};

pub async fn check(ctx: &Ctx) -> Vec<Check> {
    let deployment = &ctx.deployment;
    let Some(vpc) = &deployment.vpc else {
        return vec![Check::skipped(
            Link::Vpc,
            "VPC route failover",
            "no [vpc] in sitefence.toml",
        )];
    };
    vec![
        rule(ctx).await,
        standby(ctx, &vpc.standby_instance_id).await,
    ]
}

async fn rule(ctx: &Ctx) -> Check {
    let deployment = &ctx.deployment;
    let name = plan::rule_name(deployment);
    let function = Function::Vpc.name(deployment);
    let check = format!("rule {name} is enabled and targets {function}");
    let events = &ctx.clients.events;
    let described = match events.describe_rule().name(&name).send().await {
        Ok(described) => described,
        Err(err) => {
            let text = aws_sdk_eventbridge::error::DisplayErrorContext(&err).to_string();
            let missing = err
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception());
            return Check::fail(
                Link::Vpc,
                check,
                if missing {
                    format!("no rule {name}: an appliance's state change reaches nobody")
                } else {
                    format!("DescribeRule: {text}")
                },
                "run `sitefence deploy`",
            );
        }
    };
    if described.state() != Some(&RuleState::Enabled) {
        return Check::fail(
            Link::Vpc,
            check,
            format!(
                "the rule is {}: an appliance's state change reaches nobody",
                described.state().map_or("in no state", RuleState::as_str)
            ),
            format!("`aws events enable-rule --name {name}`, or run `sitefence deploy`"),
        );
    }
    let wanted = ctx
        .scope
        .as_ref()
        .map(|scope| plan::function_arn(scope, &function));
    let targets = match events.list_targets_by_rule().rule(&name).send().await {
        Ok(targets) => targets,
        Err(err) => {
            return Check::fail(
                Link::Vpc,
                check,
                format!(
                    "ListTargetsByRule: {}",
                    aws_sdk_eventbridge::error::DisplayErrorContext(err)
                ),
                "check the credentials' events:ListTargetsByRule",
            );
        }
    };
    let arns: Vec<&str> = targets.targets().iter().map(|t| t.arn()).collect();
    let targets_function = arns.iter().any(|arn| match &wanted {
        Some(wanted) => arn == wanted,
        // Without the account, the function's name at the end of the ARN.
        None => plan::last_segment(arn) == function,
    });
    if targets_function {
        Check::pass(Link::Vpc, check, "enabled, targets the function")
    } else {
        Check::fail(
            Link::Vpc,
            check,
            format!(
                "the rule's targets are {}, not {function}",
                if arns.is_empty() {
                    "none".to_owned()
                } else {
                    arns.join(", ")
                }
            ),
            "run `sitefence deploy`",
        )
    }
}

async fn standby(ctx: &Ctx, instance_id: &str) -> Check {
    let check = format!("the standby appliance {instance_id} is running");
    let instance = match instance_id.parse() {
        Ok(instance) => instance,
        Err(err) => {
            return Check::fail(
                Link::Vpc,
                check,
                format!("vpc.standby_instance_id: {err}"),
                "fix vpc.standby_instance_id in sitefence.toml",
            );
        }
    };
    let ec2 = aws_sdk_ec2::Client::new(&ctx.clients.regional);
    match ec2.describe_instance(&instance).await {
        Err(err) => Check::fail(
            Link::Vpc,
            check,
            format!("DescribeInstances: {err}"),
            "check the credentials' ec2:DescribeInstances",
        ),
        Ok(None) => Check::fail(
            Link::Vpc,
            check,
            format!("EC2 does not know {instance_id}: the routes would move to nothing"),
            "fix vpc.standby_instance_id (and standby_eni) in sitefence.toml, then `sitefence deploy`",
        ),
        Ok(Some(described)) if described.state == InstanceState::Running => {
            Check::pass(Link::Vpc, check, "running")
        }
        Ok(Some(described)) => Check::fail(
            Link::Vpc,
            check,
            format!(
                "it is {}: a failover would move the routes to an appliance that forwards nothing",
                described.state.as_str()
            ),
            format!("start it: `aws ec2 start-instances --instance-ids {instance_id}`"),
        ),
    }
}
