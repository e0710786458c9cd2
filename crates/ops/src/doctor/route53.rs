//! Route 53: the trigger of the Route 53 failover function. Each alarm deploy creates on a
//! health check exists in the alarm region and is `OK` (an alarm in `ALARM` has failed over,
//! or is about to; one with `INSUFFICIENT_DATA` watches nothing), and the function's
//! subscription to the topic is confirmed (a `PendingConfirmation` subscription delivers
//! nothing).

use aws_sdk_cloudwatch::types::StateValue;

use super::{Check, Ctx, Link};
use crate::deploy::observe::find_subscription;
use crate::deploy::plan::{self, Function};

pub async fn check(ctx: &Ctx) -> Vec<Check> {
    let deployment = &ctx.deployment;
    let Some(route53) = &deployment.route53 else {
        return vec![Check::skipped(
            Link::Route53,
            "Route 53 failover",
            "no [route53] in sitefence.toml",
        )];
    };
    let mut checks = Vec::new();
    for id in &route53.health_check_ids {
        checks.push(alarm(ctx, &plan::alarm_name(deployment, id), &route53.region).await);
    }
    checks.push(subscription(ctx, &route53.region).await);
    checks
}

async fn alarm(ctx: &Ctx, name: &str, region: &str) -> Check {
    let check = format!("alarm {name} in {region} is OK");
    let described = ctx
        .clients
        .cloudwatch
        .describe_alarms()
        .alarm_names(name)
        .send()
        .await;
    let output = match described {
        Ok(output) => output,
        Err(err) => {
            return Check::fail(
                Link::Route53,
                check,
                format!(
                    "DescribeAlarms: {}",
                    aws_sdk_cloudwatch::error::DisplayErrorContext(err)
                ),
                "check the credentials' cloudwatch:DescribeAlarms in the alarm region",
            );
        }
    };
    let Some(alarm) = output.metric_alarms().first() else {
        return Check::fail(
            Link::Route53,
            check,
            format!("no alarm {name} in {region}: the health check's failure reaches nobody"),
            "run `sitefence deploy`",
        );
    };
    match alarm.state_value() {
        Some(StateValue::Ok) => Check::pass(Link::Route53, check, "OK"),
        state => Check::fail(
            Link::Route53,
            check,
            format!(
                "state {}: {}",
                state.map_or("unknown", StateValue::as_str),
                alarm.state_reason().unwrap_or("no reason given")
            ),
            "bring the primary's health check back to healthy (after a failover: `sitefence route53 failback`); INSUFFICIENT_DATA means the health check's metric is missing",
        ),
    }
}

async fn subscription(ctx: &Ctx, region: &str) -> Check {
    let deployment = &ctx.deployment;
    let topic = plan::topic_name(deployment);
    let check = format!("the Route 53 function's subscription to {topic} is confirmed");
    let Some(scope) = &ctx.scope else {
        return Check::skipped(
            Link::Route53,
            check,
            "the account could not be read (see above)",
        );
    };
    let topic_arn = scope.arn("sns", region, &topic);
    let function_arn = plan::function_arn(scope, &Function::Route53.name(deployment));
    match find_subscription(&ctx.clients, &topic_arn, &function_arn).await {
        Err(err) => Check::fail(
            Link::Route53,
            check,
            format!("{err:#}"),
            "run `sitefence deploy` (it creates the topic)",
        ),
        Ok(None) => Check::fail(
            Link::Route53,
            check,
            format!("{function_arn} is not subscribed to {topic_arn}: an alarm reaches nobody"),
            "run `sitefence deploy` once the alarms are OK (it subscribes the function then)",
        ),
        Ok(Some(arn)) if arn == "PendingConfirmation" || !arn.starts_with("arn:") => Check::fail(
            Link::Route53,
            check,
            format!("the subscription of {function_arn} is {arn}: SNS delivers nothing to it"),
            "run `sitefence deploy` to subscribe the function again",
        ),
        Ok(Some(arn)) => Check::pass(Link::Route53, check, arn),
    }
}
