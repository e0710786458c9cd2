//! The real bootstrap binary, invoked through the Lambda Invoke API with the sample triggers of
//! `events/route53/`, against moto's Route 53: the primary site's health check is pointed at the
//! failed-over path once, and only when its alarm goes to ALARM.

mod support;

use sandbox::harness::Sandbox;
use support::{
    FAILED_OVER_PATH, FUNCTION, ORIGINAL_PATH, UPDATE_HEALTH_CHECK, health_check_id,
    health_check_path, sample, with_sandbox,
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
