//! The real bootstrap binary, invoked through the Lambda Invoke API with the sample triggers of
//! `events/route53/`, against moto's Route 53: the primary site's health check is pointed at the
//! failed-over path once, and only when its alarm goes to ALARM.

mod support;

use sandbox::harness::Sandbox;
use support::{
    FAILED_OVER_PATH, FUNCTION, ORIGINAL_PATH, UPDATE_HEALTH_CHECK, health_check_id,
    health_check_path, route53, sample, with_sandbox,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_is_pinned_once_and_only_on_alarm() -> anyhow::Result<()> {
    with_sandbox("alarm", |sandbox: Sandbox| async move {
        let id = health_check_id(&sandbox).to_owned();
        assert_eq!(
            health_check_path(&sandbox).await?.as_deref(),
            Some(ORIGINAL_PATH)
        );

        for name in ["sns-ok.json", "sns-insufficient-data.json"] {
            let response = sandbox.invoke(FUNCTION, &sample(name, &id)?).await?;
            assert_eq!(
                response["records"][0]["reason"], "not_in_alarm",
                "{name}: {response}"
            );
            assert_eq!(
                health_check_path(&sandbox).await?.as_deref(),
                Some(ORIGINAL_PATH),
                "{name} must never move the health check"
            );
        }
        assert_eq!(sandbox.aws_calls().await?.operation(UPDATE_HEALTH_CHECK), 0);

        let alarm = sample("sns-alarm.json", &id)?;
        let response = sandbox.invoke(FUNCTION, &alarm).await?;
        assert_eq!(response["trigger"], "sns", "{response}");
        assert_eq!(response["records"][0]["action"], "pinned", "{response}");
        assert_eq!(response["records"][0]["health_check_id"], id.as_str());
        assert_eq!(response["records"][0]["from_path"], ORIGINAL_PATH);
        assert_eq!(
            health_check_path(&sandbox).await?.as_deref(),
            Some(FAILED_OVER_PATH)
        );

        // SNS delivers at least once, and the alarm may fire again: the health check stays put.
        let again = sandbox.invoke(FUNCTION, &alarm).await?;
        assert_eq!(
            again["records"][0]["action"], "already_failed_over",
            "{again}"
        );
        assert_eq!(
            health_check_path(&sandbox).await?.as_deref(),
            Some(FAILED_OVER_PATH)
        );

        // Recovery of the primary (OK) must not fail back on its own either.
        sandbox
            .invoke(FUNCTION, &sample("sns-ok.json", &id)?)
            .await?;
        assert_eq!(
            health_check_path(&sandbox).await?.as_deref(),
            Some(FAILED_OVER_PATH)
        );
        assert_eq!(sandbox.aws_calls().await?.operation(UPDATE_HEALTH_CHECK), 1);
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarm_invoking_the_function_directly_pins_the_health_check() -> anyhow::Result<()> {
    with_sandbox("direct", |sandbox: Sandbox| async move {
        let event = sample("cloudwatch-alarm-direct.json", health_check_id(&sandbox))?;
        let response = sandbox.invoke(FUNCTION, &event).await?;
        assert_eq!(response["trigger"], "cloudwatch_alarm", "{response}");
        assert_eq!(response["records"][0]["action"], "pinned", "{response}");
        assert_eq!(
            health_check_path(&sandbox).await?.as_deref(),
            Some(FAILED_OVER_PATH)
        );
        assert_eq!(sandbox.aws_calls().await?.operation(UPDATE_HEALTH_CHECK), 1);
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_record_is_reported_and_the_alarm_beside_it_still_pins() -> anyhow::Result<()> {
    with_sandbox("batch", |sandbox: Sandbox| async move {
        let event = sample(
            "sns-batch-alarm-and-test-message.json",
            health_check_id(&sandbox),
        )?;
        let response = sandbox.invoke(FUNCTION, &event).await?;
        let records = response["records"].as_array().cloned().unwrap_or_default();
        assert_eq!(records.len(), 2, "{response}");
        assert_eq!(records[0]["action"], "pinned", "{response}");
        assert_eq!(records[1]["disposition"], "bad_input", "{response}");
        assert_eq!(records[1]["reason"], "unreadable_record", "{response}");
        assert!(
            records[1]["error"].as_str().is_some_and(|e| !e.is_empty()),
            "the bad record says what is wrong with it: {response}"
        );
        assert_eq!(
            health_check_path(&sandbox).await?.as_deref(),
            Some(FAILED_OVER_PATH)
        );
        Ok(())
    })
    .await
}

/// The health check with its version, as Route 53 reports it.
async fn health_check(sandbox: &Sandbox) -> anyhow::Result<(i64, Option<String>)> {
    let described = route53(sandbox)
        .get_health_check()
        .health_check_id(health_check_id(sandbox))
        .send()
        .await?;
    let check = described
        .health_check()
        .ok_or_else(|| anyhow::anyhow!("GetHealthCheck answered no health check"))?;
    let path = check
        .health_check_config()
        .and_then(|config| config.resource_path())
        .map(str::to_owned);
    Ok((check.health_check_version(), path))
}

/// An operator's update of the path, conditional on `version` as `sitefence route53 failback`
/// makes it.
async fn operator_sets_path(sandbox: &Sandbox, version: i64, path: &str) -> anyhow::Result<()> {
    route53(sandbox)
        .update_health_check()
        .health_check_id(health_check_id(sandbox))
        .health_check_version(version)
        .resource_path(path)
        .send()
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_pin_writes_with_the_version_it_knows_and_never_over_a_change_it_has_not_read()
-> anyhow::Result<()> {
    with_sandbox("version", |sandbox: Sandbox| async move {
        let id = health_check_id(&sandbox).to_owned();
        let (first, _) = health_check(&sandbox).await?;

        // Route 53 refuses a stale version, and the sandbox does too.
        operator_sets_path(&sandbox, first, "/lb-check-2").await?;
        let stale = route53(&sandbox)
            .update_health_check()
            .health_check_id(&id)
            .health_check_version(first)
            .resource_path(ORIGINAL_PATH)
            .send()
            .await;
        let refused = stale
            .as_ref()
            .err()
            .and_then(|err| err.as_service_error())
            .is_some_and(|err| err.is_health_check_version_mismatch());
        assert!(refused, "a stale version must be refused: {stale:?}");
        assert_eq!(
            health_check(&sandbox).await?,
            (first + 1, Some("/lb-check-2".to_owned()))
        );
        operator_sets_path(&sandbox, first + 1, ORIGINAL_PATH).await?;

        // Cold: read, then write.
        sandbox.reset_aws_calls().await?;
        let alarm = sample("sns-alarm.json", &id)?;
        sandbox.invoke(FUNCTION, &alarm).await?;
        assert_eq!(sandbox.aws_calls().await?.total, 2);

        // The operator fails back; the alarm's OK makes the function read the health check.
        let (pinned_version, _) = health_check(&sandbox).await?;
        operator_sets_path(&sandbox, pinned_version, ORIGINAL_PATH).await?;
        sandbox
            .invoke(FUNCTION, &sample("sns-ok.json", &id)?)
            .await?;

        // Nothing changed since: the pin is one write.
        sandbox.reset_aws_calls().await?;
        let response = sandbox.invoke(FUNCTION, &alarm).await?;
        assert_eq!(response["records"][0]["action"], "pinned", "{response}");
        assert_eq!(response["records"][0]["conflicts"], 0, "{response}");
        let calls = sandbox.aws_calls().await?;
        assert_eq!((calls.total, calls.operation(UPDATE_HEALTH_CHECK)), (1, 1));

        // Again fail-back and OK, then a concurrent change between two invocations: the write
        // with the known version is refused, the function reads the change and writes over it
        // knowingly.
        let (version, _) = health_check(&sandbox).await?;
        operator_sets_path(&sandbox, version, ORIGINAL_PATH).await?;
        sandbox
            .invoke(FUNCTION, &sample("sns-ok.json", &id)?)
            .await?;
        operator_sets_path(&sandbox, version + 1, "/maintenance").await?;
        sandbox.reset_aws_calls().await?;
        let response = sandbox.invoke(FUNCTION, &alarm).await?;
        let record = &response["records"][0];
        assert_eq!(record["action"], "pinned", "{response}");
        assert_eq!(record["conflicts"], 1, "{response}");
        assert_eq!(record["from_path"], "/maintenance", "{response}");
        assert_eq!(record["version"], version + 2, "{response}");
        let calls = sandbox.aws_calls().await?;
        assert_eq!((calls.total, calls.operation(UPDATE_HEALTH_CHECK)), (3, 2));
        assert_eq!(
            health_check(&sandbox).await?,
            (version + 3, Some(FAILED_OVER_PATH.to_owned()))
        );
        Ok(())
    })
    .await
}
