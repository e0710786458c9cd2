//! The VPC function's part of a sandbox test: a world running the real bootstrap binary behind
//! the Lambda Invoke API (started and stopped by `sandbox::harness`), the EventBridge samples of
//! `events/vpc/` aimed at the sandbox's appliances, and the route table as EC2 describes it.

// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;

use anyhow::Context;
use sandbox::harness::{self, Sandbox};
use sandbox::world::{FunctionOptions, REGION, SANDBOX_ACCESS_KEY, SANDBOX_SECRET_KEY};
use serde_json::Value;

pub const FUNCTION: &str = "vpc-route-failover-lambda";
pub const REPLACE_ROUTE: &str = "ec2.ReplaceRoute";

/// Starts a world running only the VPC function, runs `scenario` against it, and stops the
/// world whatever the scenario did.
pub async fn with_sandbox<F, Fut>(test: &str, scenario: F) -> anyhow::Result<()>
where
    F: FnOnce(Sandbox) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    harness::with_world(
        &format!("vpc-{test}"),
        |options| {
            options.vpc = Some(
                FunctionOptions::bootstrap(env!("CARGO_BIN_EXE_vpc-route-failover-lambda"))
                    .with_environment(|info| {
                        vpc_route_failover_lambda::config::Environment {
                            primary_eni: info.vpc.primary.eni.clone(),
                            standby_eni: info.vpc.standby.eni.clone(),
                            vpc_id: info.vpc.vpc_id.clone(),
                            route_table_ids: Vec::new(),
                            notify_topic_arn: None,
                            mode: Default::default(),
                        }
                        .to_vars()
                        .into_iter()
                        .collect()
                    }),
            );
        },
        scenario,
    )
    .await
}

/// The sample `events/vpc/NAME`, naming the sandbox's primary appliance.
pub fn sample(sandbox: &Sandbox, name: &str) -> anyhow::Result<Value> {
    let text = harness::sample_event(&format!("vpc/{name}"))?;
    let text = text.replace(
        "{{PRIMARY_INSTANCE_ID}}",
        &sandbox.info.vpc.primary.instance_id,
    );
    serde_json::from_str(&text).with_context(|| format!("{name} is not JSON"))
}

/// EC2 straight on moto, not through the counting front, so that the test's own reads and
/// writes do not count as the function's calls.
pub fn ec2(sandbox: &Sandbox) -> aws_sdk_ec2::Client {
    let credentials = aws_sdk_ec2::config::Credentials::new(
        SANDBOX_ACCESS_KEY,
        SANDBOX_SECRET_KEY,
        None,
        None,
        "sandbox",
    );
    let config = aws_sdk_ec2::Config::builder()
        .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
        .region(aws_sdk_ec2::config::Region::new(REGION))
        .endpoint_url(&sandbox.info.moto_url)
        .credentials_provider(credentials)
        .build();
    aws_sdk_ec2::Client::from_conf(config)
}

/// The sandbox route table's routes: destination (IPv4 or IPv6 CIDR) → next hop (ENI, gateway
/// or `local`).
pub async fn routes(sandbox: &Sandbox) -> anyhow::Result<BTreeMap<String, String>> {
    let described = ec2(sandbox)
        .describe_route_tables()
        .route_table_ids(&sandbox.info.vpc.route_table_id)
        .send()
        .await
        .context("DescribeRouteTables")?;
    let table = described
        .route_tables()
        .first()
        .context("the sandbox route table is gone")?;
    Ok(table
        .routes()
        .iter()
        .filter_map(|route| {
            let destination = route
                .destination_cidr_block()
                .or(route.destination_ipv6_cidr_block())?;
            let hop = route
                .network_interface_id()
                .or(route.gateway_id())
                .or(route.instance_id())
                .unwrap_or("-");
            Some((destination.to_owned(), hop.to_owned()))
        })
        .collect())
}

/// Stops an instance in moto and waits until EC2 reports it `stopped`.
pub async fn stop(sandbox: &Sandbox, instance_id: &str) -> anyhow::Result<()> {
    ec2(sandbox)
        .stop_instances()
        .instance_ids(instance_id)
        .send()
        .await
        .context("StopInstances")?;
    wait_for(
        sandbox,
        instance_id,
        aws_sdk_ec2::types::InstanceStateName::Stopped,
    )
    .await
}

/// Starts a stopped instance in moto and waits until EC2 reports it `running`.
pub async fn start(sandbox: &Sandbox, instance_id: &str) -> anyhow::Result<()> {
    ec2(sandbox)
        .start_instances()
        .instance_ids(instance_id)
        .send()
        .await
        .context("StartInstances")?;
    wait_for(
        sandbox,
        instance_id,
        aws_sdk_ec2::types::InstanceStateName::Running,
    )
    .await
}

async fn wait_for(
    sandbox: &Sandbox,
    instance_id: &str,
    wanted: aws_sdk_ec2::types::InstanceStateName,
) -> anyhow::Result<()> {
    let ec2 = ec2(sandbox);
    for _ in 0..50 {
        let described = ec2
            .describe_instances()
            .instance_ids(instance_id)
            .send()
            .await
            .context("DescribeInstances")?;
        let state = described
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find_map(|i| i.state().and_then(|s| s.name()).cloned());
        if state.as_ref() == Some(&wanted) {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    anyhow::bail!("{instance_id} is not {} after 5 s", wanted.as_str())
}
