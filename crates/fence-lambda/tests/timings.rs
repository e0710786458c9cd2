//! The fence's cold start, the latency of one warm fence, and the calls a warm fence makes as
//! the emulators count them, printed for the record:
//! `cargo test -p fence-lambda --test timings -- --nocapture`. Printed, never asserted: times
//! depend on the machine and its load. A test binary of its own, so that no other world of this
//! crate competes for the CPU while it measures.
//!
//! The world starts the function ahead of the first request (the host's `init_ms` is the init
//! phase); the cold start a caller sees is that plus the first request, which also reads both
//! secrets and resolves the accelerator's topology. Warm fences run one per reset world, so
//! each one really removes site-b and takes site-a's backup offline.

mod support;

use std::time::Instant;

use anyhow::Context;
use sandbox::harness::{Calls, Sandbox, millis, profile, spread};
use support::{FUNCTION, assert_site_b_fenced, notification, send, with_fence};

const WARM_FENCES: usize = 15;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_start_warm_fence_latency_and_calls() -> anyhow::Result<()> {
    with_fence("timings", 1, |sandbox: Sandbox| async move {
        let alert = notification(&sandbox, "site-b-offline-reported-by-site-a")?;

        let started = Instant::now();
        let first = send(&sandbox, &alert).await?;
        let first_wait = started.elapsed();
        assert_eq!(first.status, 200, "{}", first.body);
        assert_site_b_fenced(&sandbox).await?;

        let mut warm = Vec::with_capacity(WARM_FENCES);
        let mut counts = None;
        for _ in 0..WARM_FENCES {
            sandbox.reset().await?;
            // The last fence's completion and notification run after its answer, in its
            // invocation: a request sent before they end would wait for them (or be throttled).
            sandbox.wait_idle(FUNCTION).await?;
            let started = Instant::now();
            let answer = send(&sandbox, &alert).await?;
            warm.push(started.elapsed());
            assert_eq!(answer.status, 200, "{}", answer.body);
            counts = Some(calls(&sandbox).await?);
            assert_site_b_fenced(&sandbox).await?;
        }
        let counts = counts.context("no warm fence ran")?;

        let mut repeated = Vec::with_capacity(WARM_FENCES);
        for _ in 0..WARM_FENCES {
            sandbox.wait_idle(FUNCTION).await?;
            let started = Instant::now();
            let answer = send(&sandbox, &alert).await?;
            repeated.push(started.elapsed());
            assert_eq!(answer.status, 200, "{}", answer.body);
        }

        let stats = sandbox.host_stats(FUNCTION).await?;
        assert_eq!(stats["cold_starts"], 1, "every request after the first is warm: {stats}");
        let init_ms = stats["instances"][0]["init_ms"]
            .as_f64()
            .with_context(|| format!("the host measured no init phase: {stats}"))?;
        let first_ms = millis(first_wait);
        println!("fence-lambda ({} build) in the sandbox:", profile());
        println!(
            "  cold start: init {init_ms:.1} ms + first fence (secrets and topology read in init) {first_ms:.1} ms = {:.1} ms",
            init_ms + first_ms
        );
        println!("  warm fence (remove site-b, take site-a's backup offline): {}", spread(&warm));
        println!("  warm repeated alert (already fenced): {}", spread(&repeated));
        println!("  calls of one warm fence: {}", counts.describe());
        println!("  peak RSS {} KiB", stats["peak_rss_kb"]);
        Ok(())
    })
    .await
}

/// What one warm fence cost, counted by the emulators since the last reset.
struct FenceCalls {
    aws: Calls,
    ga: Calls,
    ispn: Vec<(String, Calls)>,
}

impl FenceCalls {
    fn describe(&self) -> String {
        let list = |calls: &Calls| {
            calls
                .by_operation
                .iter()
                .map(|(op, n)| format!("{op} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let ispn: Vec<String> = self
            .ispn
            .iter()
            .map(|(site, calls)| format!("{site} {} [{}]", calls.total, list(calls)))
            .collect();
        format!(
            "moto (Secrets Manager, ELBv2, DynamoDB) {} [{}]; Global Accelerator {} [{}]; Infinispan {}",
            self.aws.total,
            list(&self.aws),
            self.ga.total,
            list(&self.ga),
            ispn.join("; ")
        )
    }
}

async fn calls(sandbox: &Sandbox) -> anyhow::Result<FenceCalls> {
    // Read right after the answer, before the test reads Infinispan itself.
    let mut ispn = Vec::new();
    for site in sandbox.info.sites.keys() {
        ispn.push((site.clone(), sandbox.ispn_calls(site).await?));
    }
    Ok(FenceCalls {
        aws: sandbox.aws_calls().await?,
        ga: sandbox.ga_calls().await?,
        ispn,
    })
}
