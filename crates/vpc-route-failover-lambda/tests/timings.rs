//! Cold-start and warm-invocation times of the real bootstrap binary in the sandbox, printed for
//! the record: `cargo test -p vpc-route-failover-lambda --test timings -- --nocapture`. Printed,
//! never asserted: times depend on the machine and its load. A test binary of its own, so that
//! no other world of this crate competes for the CPU while it measures.
//!
//! The world starts the function ahead of the first invocation (the host's `init_ms` is the
//! init phase); the cold start a caller sees is that plus the first invocation, which also
//! looks up which instance owns each ENI.

mod support;

use anyhow::Context;
use sandbox::harness::{Sandbox, millis, profile, spread};
use support::{FUNCTION, REPLACE_ROUTE, sample, stop, with_sandbox};

const WARM_INVOCATIONS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_start_and_warm_invocation_times() -> anyhow::Result<()> {
    with_sandbox("timings", |sandbox: Sandbox| async move {
        stop(&sandbox, &sandbox.info.vpc.primary.instance_id).await?;
        let stopped = sample(&sandbox, "primary-stopped.json")?;
        let running = sample(&sandbox, "primary-running.json")?;

        sandbox.reset_aws_calls().await?;
        let (first, first_wait) = sandbox.timed_invoke(FUNCTION, &stopped).await?;
        assert_eq!(first["outcome"], "routes_moved", "{first}");
        let first_calls = sandbox.aws_calls().await?;

        let mut repeated = Vec::with_capacity(WARM_INVOCATIONS);
        for _ in 0..WARM_INVOCATIONS {
            let (response, waited) = sandbox.timed_invoke(FUNCTION, &stopped).await?;
            assert_eq!(response["outcome"], "nothing_to_move", "{response}");
            repeated.push(waited);
        }
        let mut ignored = Vec::with_capacity(WARM_INVOCATIONS);
        for _ in 0..WARM_INVOCATIONS {
            let (response, waited) = sandbox.timed_invoke(FUNCTION, &running).await?;
            assert_eq!(response["outcome"], "ignored", "{response}");
            ignored.push(waited);
        }

        let stats = sandbox.host_stats(FUNCTION).await?;
        assert_eq!(stats["cold_starts"], 1, "every invocation after the first is warm: {stats}");
        let init_ms = stats["instances"][0]["init_ms"]
            .as_f64()
            .with_context(|| format!("the host measured no init phase: {stats}"))?;
        let first_ms = millis(first_wait);
        let calls: Vec<String> = first_calls
            .by_operation
            .iter()
            .map(|(op, n)| format!("{op} {n}"))
            .collect();
        println!("vpc-route-failover-lambda ({} build) in the sandbox:", profile());
        println!(
            "  cold start: init {init_ms:.1} ms + first invocation (stopped, moves {} routes) {first_ms:.1} ms = {:.1} ms",
            first_calls.operation(REPLACE_ROUTE),
            init_ms + first_ms
        );
        println!("  AWS calls of that invocation: {} [{}]", first_calls.total, calls.join(", "));
        println!("  warm, repeated stopped event (nothing to move): {}", spread(&repeated));
        println!("  warm, running event (ignored): {}", spread(&ignored));
        println!("  peak RSS {} KiB", stats["peak_rss_kb"]);
        Ok(())
    })
    .await
}
