//! The metrics line of the real bootstrap binary, read from its log as CloudWatch Logs would
//! read it: one Embedded Metric Format object per invocation, on a line of its own, in the
//! documented format (`common::metrics`), whose remote calls are the calls the sandbox counted.

mod support;

use sandbox::harness::Sandbox;
use serde_json::Value;
use support::{FUNCTION, health_check_id, sample, with_sandbox};

/// The function's log lines that are EMF documents, each checked against the format.
fn emf_lines(log: &str) -> anyhow::Result<Vec<Value>> {
    common::metrics::documents_in(log).map_err(anyhow::Error::msg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_invocation_writes_one_emf_line_with_its_outcome_and_calls() -> anyhow::Result<()> {
    with_sandbox("metrics", |sandbox: Sandbox| async move {
        let id = health_check_id(&sandbox).to_owned();
        let alarm = sample("sns-alarm.json", &id)?;
        let mut counted = Vec::new();
        for event in [&alarm, &alarm, &sample("sns-ok.json", &id)?] {
            sandbox.reset_aws_calls().await?;
            sandbox.invoke(FUNCTION, event).await?;
            counted.push(sandbox.aws_calls().await?.total);
        }

        let log = sandbox.function_log_with_metrics(FUNCTION, 3).await?;
        let lines = emf_lines(&log)?;
        anyhow::ensure!(lines.len() == 3, "one EMF line per invocation:\n{log}");
        let field = |i: usize, name: &str| lines[i][name].clone();
        // Pinned, then already pinned (a read, no write), then an alarm back to OK (a read, so
        // that the next pin is one versioned write).
        let outcomes: Vec<Value> = (0..3).map(|i| field(i, "Outcome")).collect();
        assert_eq!(outcomes, ["done", "done", "ignored"], "{log}");
        let cold: Vec<Value> = (0..3).map(|i| field(i, "ColdStart")).collect();
        assert_eq!(cold, [1, 0, 0], "{log}");
        let calls: Vec<u64> = (0..3)
            .map(|i| field(i, "RemoteCalls").as_u64().unwrap_or(u64::MAX))
            .collect();
        assert_eq!(
            calls, counted,
            "the line's calls are the calls the sandbox counted"
        );
        assert_eq!(
            calls,
            [2, 1, 1],
            "GetHealthCheck + UpdateHealthCheck, the read, the read"
        );
        for line in &lines {
            assert_eq!(line["FunctionName"], FUNCTION, "{line}");
            assert_eq!(line["Invocations"], 1, "{line}");
            assert!(
                line["Duration"].as_f64().is_some_and(|ms| ms >= 0.0),
                "{line}"
            );
            // Its own line: not a field of a tracing event, which CloudWatch would not read.
            assert!(line.get("target").is_none() && line.get("level").is_none());
            assert!(
                line.get("Rule").is_none(),
                "the rule is the fence's: {line}"
            );
        }
        Ok(())
    })
    .await
}
