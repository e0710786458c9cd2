//! The real bootstrap binary, invoked through the Lambda Invoke API with the EventBridge samples
//! of `events/vpc/`, against moto's EC2: once the primary appliance is stopped, every route that
//! pointed at its ENI (IPv4 and IPv6) points at the standby's, once; events that do not take it
//! out of service move nothing, and neither does a stop event for a primary running again.

mod support;

use std::collections::BTreeMap;

use sandbox::harness::Sandbox;
use support::{FUNCTION, REPLACE_ROUTE, routes, sample, start, stop, with_sandbox};

/// The sandbox's routes through the appliances (see `sandbox::world`).
const APPLIANCE_ROUTES: [&str; 3] = ["10.100.0.0/16", "192.168.50.0/24", "2001:db8:100::/56"];
const INTERNET_ROUTE: &str = "0.0.0.0/0";

async fn replace_route_calls(sandbox: &Sandbox) -> anyhow::Result<u64> {
    Ok(sandbox.aws_calls().await?.operation(REPLACE_ROUTE))
}

/// `routes` with the appliance routes pointed at `eni` and everything else as it was.
fn with_appliance_routes_at(
    routes: &BTreeMap<String, String>,
    eni: &str,
) -> BTreeMap<String, String> {
    let mut expected = routes.clone();
    for destination in APPLIANCE_ROUTES {
        expected.insert(destination.to_owned(), eni.to_owned());
    }
    expected
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_primary_moves_every_route_to_the_standby_once() -> anyhow::Result<()> {
    with_sandbox("failover", |sandbox: Sandbox| async move {
        let primary = sandbox.info.vpc.primary.clone();
        let standby = sandbox.info.vpc.standby.clone();
        let seeded = routes(&sandbox).await?;
        assert_eq!(
            seeded,
            with_appliance_routes_at(&seeded, &primary.eni),
            "the sandbox seeds the appliance routes at the primary: {seeded:?}"
        );
        let internet = seeded.get(INTERNET_ROUTE).cloned();
        assert!(
            internet
                .as_deref()
                .is_some_and(|hop| hop.starts_with("igw-")),
            "{seeded:?}"
        );

        // Coming into service is never a reason to move routes (no automatic fail-back).
        for name in ["primary-pending.json", "primary-running.json"] {
            let response = sandbox.invoke(FUNCTION, &sample(&sandbox, name)?).await?;
            assert_eq!(response["outcome"], "ignored", "{name}: {response}");
            assert_eq!(routes(&sandbox).await?, seeded, "{name}");
        }
        let response = sandbox
            .invoke(FUNCTION, &sample(&sandbox, "other-instance-stopped.json")?)
            .await?;
        assert_eq!(response["outcome"], "ignored", "{response}");
        assert_eq!(replace_route_calls(&sandbox).await?, 0);

        stop(&sandbox, &primary.instance_id).await?;
        let stopped = sample(&sandbox, "primary-stopped.json")?;
        let response = sandbox.invoke(FUNCTION, &stopped).await?;
        assert_eq!(response["outcome"], "routes_moved", "{response}");
        let failed_over = with_appliance_routes_at(&seeded, &standby.eni);
        assert_eq!(routes(&sandbox).await?, failed_over);
        assert_eq!(
            routes(&sandbox).await?.get(INTERNET_ROUTE),
            internet.as_ref(),
            "the internet route is not the appliance's"
        );
        assert_eq!(
            replace_route_calls(&sandbox).await?,
            APPLIANCE_ROUTES.len() as u64,
            "one ReplaceRoute per route, in place"
        );

        // EventBridge delivers at least once, and stopping → stopped are two events.
        for name in ["primary-stopped.json", "primary-stopping.json"] {
            let response = sandbox.invoke(FUNCTION, &sample(&sandbox, name)?).await?;
            assert_eq!(response["outcome"], "nothing_to_move", "{name}: {response}");
        }
        assert_eq!(routes(&sandbox).await?, failed_over);
        assert_eq!(
            replace_route_calls(&sandbox).await?,
            APPLIANCE_ROUTES.len() as u64
        );

        // The primary coming back does not take the routes back.
        let response = sandbox
            .invoke(FUNCTION, &sample(&sandbox, "primary-running.json")?)
            .await?;
        assert_eq!(response["outcome"], "ignored", "{response}");
        assert_eq!(routes(&sandbox).await?, failed_over);
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_stay_when_the_standby_is_not_running_either() -> anyhow::Result<()> {
    with_sandbox("standby-stopped", |sandbox: Sandbox| async move {
        let seeded = routes(&sandbox).await?;
        stop(&sandbox, &sandbox.info.vpc.standby.instance_id).await?;
        stop(&sandbox, &sandbox.info.vpc.primary.instance_id).await?;
        let answer = sandbox
            .invoke_raw(FUNCTION, &sample(&sandbox, "primary-stopped.json")?)
            .await?;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let response = answer.json()?;
        assert_eq!(response["outcome"], "replacement_not_running", "{response}");
        assert_eq!(
            response["not_moved"].as_array().map(Vec::len),
            Some(APPLIANCE_ROUTES.len()),
            "the record lists what an operator must move: {response}"
        );
        assert_eq!(routes(&sandbox).await?, seeded);
        assert_eq!(replace_route_calls(&sandbox).await?, 0);
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_event_for_a_primary_running_again_moves_no_route() -> anyhow::Result<()> {
    with_sandbox("running-again", |sandbox: Sandbox| async move {
        let primary = sandbox.info.vpc.primary.instance_id.clone();
        let seeded = routes(&sandbox).await?;
        stop(&sandbox, &primary).await?;
        start(&sandbox, &primary).await?;

        // The stop's event, delivered late or again. The sample's time is before this world
        // was created, so the primary's launch time is after the event whether or not EC2
        // updates it on start (EC2 does, moto does not: docs/aws-behaviours.md).
        for name in ["primary-stopping.json", "primary-stopped.json"] {
            let response = sandbox.invoke(FUNCTION, &sample(&sandbox, name)?).await?;
            assert_eq!(response["disposition"], "ignored", "{name}: {response}");
            assert_eq!(response["reason"], "instance_running_now", "{name}");
            assert_eq!(response["failed"]["state"], "running", "{name}");
            assert_eq!(routes(&sandbox).await?, seeded, "{name}");
        }

        // The same event dated after the primary's launch: EC2 shows it running since before
        // the stop, as when DescribeInstances lags the event. Nothing moves, and the invocation
        // fails so that Lambda asks again later.
        let mut unconfirmed = sample(&sandbox, "primary-stopping.json")?;
        unconfirmed["time"] = serde_json::json!("2099-01-01T00:00:00Z");
        let answer = sandbox.invoke_raw(FUNCTION, &unconfirmed).await?;
        assert!(answer.function_error.is_some(), "{}", answer.body);
        assert!(answer.body.contains("running"), "{}", answer.body);
        assert_eq!(routes(&sandbox).await?, seeded);
        assert_eq!(replace_route_calls(&sandbox).await?, 0);
        Ok(())
    })
    .await
}
