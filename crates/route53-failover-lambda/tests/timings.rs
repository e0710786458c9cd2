//! Cold-start and warm-invocation times of the real bootstrap binary in the sandbox, printed for
//! the record: `cargo test -p route53-failover-lambda --test timings -- --nocapture`. Times are
//! printed, never asserted: they depend on the machine and its load.
//!
//! A test binary of its own, so that no other world competes for the CPU while it measures.
//! The world starts the function ahead of the first invocation, so the host's `cold_start_ms`
//! also counts the idle wait for it; the cold start a caller sees is the init phase plus the
//! first invocation.

mod support;

use anyhow::Context;
use sandbox::harness::{Sandbox, millis, profile, spread};
use support::{FUNCTION, health_check_id, sample, with_sandbox};

const WARM_INVOCATIONS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_start_and_warm_invocation_times() -> anyhow::Result<()> {
    with_sandbox("timings", |sandbox: Sandbox| async move {
        let alarm = sample("sns-alarm.json", health_check_id(&sandbox))?;
        let ok = sample("sns-ok.json", health_check_id(&sandbox))?;

        let (first, first_wait) = sandbox.timed_invoke(FUNCTION, &alarm).await?;
        assert_eq!(first["records"][0]["action"], "pinned", "{first}");

        let mut repeated_alarm = Vec::with_capacity(WARM_INVOCATIONS);
        for _ in 0..WARM_INVOCATIONS {
            let (response, waited) = sandbox.timed_invoke(FUNCTION, &alarm).await?;
            assert_eq!(
                response["records"][0]["action"], "already_failed_over",
                "{response}"
            );
            repeated_alarm.push(waited);
        }
        let mut recovered = Vec::with_capacity(WARM_INVOCATIONS);
        for _ in 0..WARM_INVOCATIONS {
            let (response, waited) = sandbox.timed_invoke(FUNCTION, &ok).await?;
            assert_eq!(response["records"][0]["reason"], "not_in_alarm", "{response}");
            recovered.push(waited);
        }

        let stats = sandbox.host_stats(FUNCTION).await?;
        assert_eq!(
            stats["cold_starts"], 1,
            "every invocation after the first is warm: {stats}"
        );
        assert_eq!(stats["errors"], 0, "{stats}");
        let instance = &stats["instances"][0];
        let init_ms = instance["init_ms"]
            .as_f64()
            .with_context(|| format!("the host measured no init phase: {stats}"))?;

        let profile = profile();
        let first_ms = millis(first_wait);
        println!("route53-failover-lambda ({profile} build) in the sandbox:");
        println!(
            "  cold start: init {init_ms:.1} ms + first invocation (ALARM, pins) {first_ms:.1} ms = {:.1} ms",
            init_ms + first_ms
        );
        println!(
            "  warm, repeated ALARM (reads the health check): {}",
            spread(&repeated_alarm)
        );
        println!("  warm, OK (reads the health check, for the next pin): {}", spread(&recovered));
        println!("  peak RSS {} KiB", stats["peak_rss_kb"]);
        Ok(())
    })
    .await
}
