//! The fence's metrics line, read from the real bootstrap binary's log behind the sandbox's
//! Function URL: one Embedded Metric Format object per request, in the documented format
//! (`common::metrics`), with the survivor rule of a fence, how long the alert of an incomplete
//! fence has fired, and never a credential.

mod support;

use sandbox::harness::Sandbox;
use serde_json::{Value, json};
use support::{FUNCTION, send_sample, with_fence};

const SITE_B_OFFLINE: &str = "site-b-offline-reported-by-site-a";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_writes_one_emf_line_with_outcome_rule_and_unfenced_time() -> anyhow::Result<()>
{
    with_fence("metrics", 1, |sandbox: Sandbox| async move {
        let fence = sandbox.info.fence.clone();
        // Unauthenticated, then a fence whose take-offline fails (incomplete), then its resend.
        let body = support::notification(&sandbox, SITE_B_OFFLINE)?;
        let refused = sandbox
            .post_function_url(FUNCTION, &body, Some((&fence.user, "not-the-password")))
            .await?;
        assert_eq!(refused.status, 401, "{}", refused.body);
        sandbox
            .ispn_control(
                "site-a",
                "fault",
                &json!({"operation": "take-offline", "status": 503, "count": 1}),
            )
            .await?;
        let incomplete = send_sample(&sandbox, SITE_B_OFFLINE).await?;
        assert_eq!(incomplete.status, 503, "{}", incomplete.body);
        let done = send_sample(&sandbox, SITE_B_OFFLINE).await?;
        assert_eq!(done.status, 200, "{}", done.body);

        let log = sandbox.function_log_with_metrics(FUNCTION, 3).await?;
        let lines = common::metrics::documents_in(&log).map_err(anyhow::Error::msg)?;
        anyhow::ensure!(lines.len() == 3, "one EMF line per request:\n{log}");
        let outcomes: Vec<&Value> = lines.iter().map(|l| &l["Outcome"]).collect();
        assert_eq!(outcomes, ["unauthorized", "transient", "done"], "{log}");
        assert_eq!(lines[0]["ColdStart"], 1);
        assert!(lines[0].get("Rule").is_none(), "{}", lines[0]);
        // The sample alert started firing in 2026-11: long before now, so the incomplete fence
        // reports a large age; the completed one reports none.
        let unfenced = lines[1]["UnfencedSeconds"].as_u64().unwrap_or_default();
        assert!(unfenced > 3600, "{}", lines[1]);
        assert!(lines[2].get("UnfencedSeconds").is_none(), "{}", lines[2]);
        // The rule is the decision's, recorded by the first report and adopted by the resend.
        let rule = lines[2]["Rule"].as_str().unwrap_or_default();
        assert!(!rule.is_empty() && rule != "other", "{}", lines[2]);
        assert_eq!(lines[1]["Rule"], rule, "{}", lines[1]);
        assert_eq!(lines[2]["Decisions"], 1);
        // A warm fence: the accelerator read and probe, the record, the removal, take-offline.
        let calls = lines[2]["RemoteCalls"].as_u64().unwrap_or_default();
        assert!((4..=8).contains(&calls), "{}", lines[2]);
        for line in &lines {
            assert_eq!(line["FunctionName"], FUNCTION);
            let text = line.to_string();
            assert!(!text.contains(&fence.password), "a password in {text}");
            assert!(!text.contains("not-the-password"), "{text}");
        }
        Ok(())
    })
    .await
}
