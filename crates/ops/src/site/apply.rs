//! Carrying out a plan, step by step, through `aws-topology` and `ispn-client`. Each step is
//! safe to repeat, so a run stopped at any point is finished by running the command again (it
//! plans from what it then observes).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_topology::decisions::Closure;
use aws_topology::globalaccelerator::EndpointToAdd;
use common::site::SiteName;
use ispn_client::{IspnError, XSiteAction};

use super::model::PushState;
use super::observe::{Ctx, now_ms};
use super::plan::{Plan, Step};

/// How long one Global Accelerator change may keep being retried (TransactionInProgress).
const GA_DEADLINE: Duration = Duration::from_secs(120);

/// Who closes a decision record (followed by the operator's AWS identity when it is known).
pub const CLOSED_BY: &str = "site bring-online";

/// How a push is waited for.
#[derive(Debug, Clone, Copy)]
pub struct Waiting {
    pub timeout: Duration,
    pub poll: Duration,
}

/// What the run did, for the report and the tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub steps: usize,
    /// Each pushed cache's push-state status when the push ended (before it was cleared).
    pub pushed: BTreeMap<String, PushState>,
}

pub async fn apply(ctx: &Ctx, plan: &Plan, waiting: Waiting) -> anyhow::Result<Applied> {
    let mut applied = Applied::default();
    // Caches whose push could not even start, with the server's answer.
    let mut not_started: BTreeMap<String, String> = BTreeMap::new();
    let total = plan.steps.len();
    for (i, step) in plan.steps.iter().enumerate() {
        println!("[{}/{total}] {step}", i + 1);
        match step {
            Step::RemoveEndpoint {
                group, endpoint, ..
            } => {
                let removal = ctx
                    .accelerator
                    .remove_endpoints(
                        group,
                        std::slice::from_ref(endpoint),
                        Instant::now() + GA_DEADLINE,
                    )
                    .await?;
                if !removal.already_gone.is_empty() {
                    println!("      already gone");
                }
            }
            Step::AddEndpoint {
                group,
                endpoint,
                weight,
                ..
            } => {
                let add = EndpointToAdd {
                    id: endpoint.clone(),
                    weight: *weight,
                    client_ip_preservation: false,
                };
                ctx.accelerator
                    .add_endpoints(
                        group,
                        std::slice::from_ref(&add),
                        Instant::now() + GA_DEADLINE,
                    )
                    .await?;
            }
            Step::OpenTrafficDial { group, dial, .. } => {
                ctx.accelerator
                    .set_traffic_dial(group, *dial, Instant::now() + GA_DEADLINE)
                    .await?;
            }
            Step::CloseDecision {
                split_brain,
                decision_id,
                ..
            } => {
                let by = match ctx.operator().await {
                    Some(operator) => format!("{CLOSED_BY} ({operator})"),
                    None => CLOSED_BY.to_owned(),
                };
                let closure = Closure {
                    at_ms: now_ms(),
                    by,
                };
                let closed = ctx
                    .decisions
                    .close(split_brain, decision_id, &closure)
                    .await
                    .with_context(|| {
                        format!(
                            "closing decision {decision_id} in table {}",
                            ctx.decisions.table()
                        )
                    })?;
                if !closed {
                    println!("      no longer open (closed or replaced meanwhile)");
                }
            }
            Step::TakeBackupOffline { site, remote } => {
                ctx.site(site)?.client.take_offline(remote).await?;
            }
            Step::ClearCache { site, cache } => {
                ctx.site(site)?.client.clear_cache(cache).await?;
            }
            Step::BringBackupOnline { site, remote } => {
                ctx.site(site)?.client.bring_online(remote).await?;
            }
            Step::PushState {
                from,
                to,
                caches: None,
            } => match ctx.site(from)?.client.start_push_state(to).await {
                Ok(_) => {}
                // 200 with some caches failed: those are reported with the push's outcome.
                Err(IspnError::CacheFailures { result, .. }) => {
                    for (cache, outcome) in result.failures() {
                        println!("      {cache}: push not started: {outcome}");
                        not_started.insert(cache.to_owned(), outcome.to_owned());
                    }
                }
                Err(err) => return Err(err.into()),
            },
            Step::PushState {
                from,
                to,
                caches: Some(caches),
            } => {
                let client = &ctx.site(from)?.client;
                for cache in caches {
                    if let Err(err) = client
                        .cache_action(cache, to, XSiteAction::StartPushState)
                        .await
                    {
                        if !err.is_retryable() {
                            return Err(err.into());
                        }
                        println!("      {cache}: push not started: {err}");
                        not_started.insert(cache.clone(), err.to_string());
                    }
                }
            }
            Step::WaitForPush { from, to, caches } => {
                let waited: Vec<String> = caches
                    .iter()
                    .filter(|c| !not_started.contains_key(*c))
                    .cloned()
                    .collect();
                let ended = wait_for_push(ctx, from, to, &waited, waiting).await?;
                let mut failed: Vec<(String, String)> = not_started
                    .iter()
                    .map(|(c, why)| (c.clone(), format!("not started: {why}")))
                    .collect();
                failed.extend(
                    ended
                        .iter()
                        .filter(|(_, s)| **s != PushState::Ok)
                        .map(|(c, s)| (c.clone(), s.to_string())),
                );
                applied.pushed.extend(ended);
                if !failed.is_empty() {
                    failed.sort();
                    let mut report = format!(
                        "the push from {from} to {to} did not end OK for {} of {} caches:\n",
                        failed.len(),
                        caches.len()
                    );
                    for (cache, state) in &failed {
                        report.push_str(&format!("  {cache:<24} {state}\n"));
                    }
                    report.push_str(&format!(
                        "the sites are NOT in sync and {to} must stay offline. Fix the cause (is the link between the sites up? are both Infinispan clusters healthy?), then run `cargo xtask site sync --from {from} --to {to}` again: it pushes again only the caches that did not end OK"
                    ));
                    bail!(report);
                }
            }
            Step::ClearPushStatus { site, cache } => {
                ctx.site(site)?
                    .client
                    .clear_push_state_status(cache)
                    .await?;
            }
        }
        applied.steps += 1;
    }
    Ok(applied)
}

/// Polls the push-state status of `caches` until none is `SENDING` (or `IDLE`: not begun yet),
/// drawing a progress bar; a timeout stops the wait, not the push.
async fn wait_for_push(
    ctx: &Ctx,
    from: &SiteName,
    to: &SiteName,
    caches: &[String],
    waiting: Waiting,
) -> anyhow::Result<BTreeMap<String, PushState>> {
    let client = &ctx.site(from)?.client;
    let started = Instant::now();
    let mut bar = Bar::new(caches.len());
    loop {
        let mut states = BTreeMap::new();
        for cache in caches {
            let status = client
                .push_state_status(cache)
                .await
                .with_context(|| format!("reading the push-state status of {cache}"))?;
            let state = status
                .get(to.as_str())
                .map(|s| PushState::parse(s))
                .unwrap_or(PushState::Idle);
            states.insert(cache.clone(), state);
        }
        let finished = states
            .values()
            .filter(|s| !matches!(s, PushState::Sending | PushState::Idle))
            .count();
        bar.draw(finished, started.elapsed());
        if finished == caches.len() {
            bar.finish();
            return Ok(states);
        }
        if started.elapsed() >= waiting.timeout {
            bar.finish();
            let running: Vec<String> = states
                .iter()
                .filter(|(_, s)| matches!(s, PushState::Sending | PushState::Idle))
                .map(|(c, s)| format!("{c}={s}"))
                .collect();
            bail!(
                "the push from {from} to {to} was not done after {} s ({}). It keeps running on {from}: run `cargo xtask site sync --from {from} --to {to}` again to keep waiting (or give a longer --timeout-seconds)",
                waiting.timeout.as_secs(),
                running.join(", ")
            );
        }
        tokio::time::sleep(waiting.poll).await;
    }
}

/// A one-line progress bar on a terminal; a line per change otherwise (logs, CI).
struct Bar {
    total: usize,
    last: Option<usize>,
    tty: bool,
}

impl Bar {
    fn new(total: usize) -> Bar {
        Bar {
            total,
            last: None,
            tty: std::io::stdout().is_terminal(),
        }
    }

    fn draw(&mut self, done: usize, elapsed: Duration) {
        if !self.tty && self.last == Some(done) {
            return;
        }
        self.last = Some(done);
        let width = 30;
        let filled = (done * width).checked_div(self.total).unwrap_or(width);
        let line = format!(
            "      [{}{}] {done}/{} caches pushed, {:.0} s",
            "#".repeat(filled),
            ".".repeat(width - filled),
            self.total,
            elapsed.as_secs_f64()
        );
        let mut out = std::io::stdout();
        if self.tty {
            let _ = write!(out, "\r{line}");
        } else {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
    }

    fn finish(&self) {
        if self.tty {
            println!();
        }
    }
}
