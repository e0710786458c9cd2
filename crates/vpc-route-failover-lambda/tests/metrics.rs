//! The metrics line of the real bootstrap binary, read from its log as CloudWatch Logs would
//! read it: one Embedded Metric Format object per invocation, on a line of its own, in the
//! documented format (`common::metrics`), whose remote calls are the calls the sandbox counted.

mod support;

use sandbox::harness::Sandbox;
use serde_json::Value;
use support::{FUNCTION, sample, stop, with_sandbox};

/// The function's log lines that are EMF documents, each checked against the format.
fn emf_lines(log: &str) -> anyhow::Result<Vec<Value>> {
    common::metrics::documents_in(log).map_err(anyhow::Error::msg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_invocation_writes_one_emf_line_with_its_outcome_and_calls() -> anyhow::Result<()> {
    with_sandbox("metrics", |sandbox: Sandbox| async move {
        stop(&sandbox, &sandbox.info.vpc.primary.instance_id).await?;
        let stopped = sample(&sandbox, "primary-stopped.json")?;
        let running = sample(&sandbox, "primary-running.json")?;
        let mut counted = Vec::new();
        let mut outcomes = Vec::new();
        // Routes moved; then nothing left to move; then a state that takes nothing out of service.
        for event in [&stopped, &stopped, &running] {
            sandbox.reset_aws_calls().await?;
            let response = sandbox.invoke(FUNCTION, event).await?;
            outcomes.push(response["outcome"].clone());
            counted.push(sandbox.aws_calls().await?.total);
        }
        assert_eq!(
            outcomes,
            ["routes_moved", "nothing_to_move", "ignored"],
            "the function's own answers"
        );

        let log = sandbox.function_log_with_metrics(FUNCTION, 3).await?;
        let lines = emf_lines(&log)?;
        anyhow::ensure!(lines.len() == 3, "one EMF line per invocation:\n{log}");
        let field = |i: usize, name: &str| lines[i][name].clone();
        let metric_outcomes: Vec<Value> = (0..3).map(|i| field(i, "Outcome")).collect();
        assert_eq!(metric_outcomes, ["done", "done", "ignored"], "{log}");
        let cold: Vec<Value> = (0..3).map(|i| field(i, "ColdStart")).collect();
        assert_eq!(cold, [1, 0, 0], "{log}");
        let calls: Vec<u64> = (0..3)
            .map(|i| field(i, "RemoteCalls").as_u64().unwrap_or(u64::MAX))
            .collect();
        assert_eq!(
            calls, counted,
            "the line's calls are the calls the sandbox counted"
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
            let text = line.to_string();
            assert!(
                !text.contains("password") && !text.contains("secret"),
                "{line}"
            );
        }
        Ok(())
    })
    .await
}
