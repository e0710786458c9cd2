//! The scenarios: each resets the world, injects its fault, and watches the chain until the
//! expected outcome holds (or the profile's deadline passes), printing the timeline as it goes.

use super::alerting::AlertingStack;
use super::judge::{
    self, Expected, ExpectedFence, Fact, FenceObservation, Observed, Row, Timeline,
};
use super::observe::Sandbox;
use crate::manifests::Profile;
use anyhow::Context;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// The cross-site link is cut: both sites report each other, exactly one survives.
    Partition,
    /// The partition with the fence in monitor mode: the decision is recorded (mode monitor)
    /// and nothing changes.
    PartitionMonitor,
    /// One site goes away (Infinispan down, its endpoint unhealthy): the other fences it.
    SiteDown,
    /// A site goes away and the survivor's take-offline fails at first: Alertmanager's retry
    /// completes the fence.
    FlakyInfinispan,
    /// The primary's Route 53 health check alarms: the health check is pinned.
    Route53,
    /// The primary appliance stops: its routes move to the standby.
    Vpc,
    /// `doctor` passes on the fresh deployment and names each of six broken links.
    Doctor,
}

impl Scenario {
    pub const ALL: [Scenario; 7] = [
        Scenario::Partition,
        Scenario::PartitionMonitor,
        Scenario::SiteDown,
        Scenario::FlakyInfinispan,
        Scenario::Route53,
        Scenario::Vpc,
        Scenario::Doctor,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Partition => "partition",
            Scenario::PartitionMonitor => "partition-monitor",
            Scenario::SiteDown => "site-down",
            Scenario::FlakyInfinispan => "flaky-infinispan",
            Scenario::Route53 => "route53",
            Scenario::Vpc => "vpc",
            Scenario::Doctor => "doctor",
        }
    }
}

/// How long the drill waits, per profile.
struct Waits {
    /// For both Prometheus servers to have scraped a healthy view before the fault.
    steady: Duration,
    /// For the expected outcome after the fault.
    outcome: Duration,
    /// How long the outcome must hold before it is judged (nothing else may change).
    settle: Duration,
}

fn waits(profile: Profile) -> Waits {
    match profile {
        Profile::Fast => Waits {
            steady: Duration::from_secs(30),
            outcome: Duration::from_secs(90),
            settle: Duration::from_secs(2),
        },
        // Scrape and evaluation every 30 s, group wait 60 s, group interval 90 s.
        Profile::Seed => Waits {
            steady: Duration::from_secs(120),
            outcome: Duration::from_secs(420),
            settle: Duration::from_secs(5),
        },
    }
}

const TICK: Duration = Duration::from_millis(200);

pub async fn run(
    sandbox: &Sandbox,
    scenario: Scenario,
    profile: Profile,
    dir: &Path,
) -> anyhow::Result<Row> {
    println!("\n== {} (profile {profile:?})", scenario.name());
    sandbox
        .reset()
        .await
        .context("resetting the sandbox before the scenario")?;
    // A fence's decision outlives the world's reset: without this, a scenario would carry out
    // the decision an earlier one recorded.
    crate::sandbox_world::reset_decisions(&sandbox.info)
        .await
        .context("emptying the decision table before the scenario")?;
    match scenario {
        Scenario::Partition | Scenario::SiteDown | Scenario::FlakyInfinispan => {
            fence(sandbox, scenario, profile, dir).await
        }
        Scenario::PartitionMonitor => {
            // The deployed fence is switched as an operator would (its configuration in
            // Lambda), and back whatever the scenario's end: the next scenarios enforce.
            sandbox
                .set_fence_mode(common::mode::Mode::Monitor)
                .await
                .context("switching the fence to monitor mode")?;
            println!("  the fence's configuration in Lambda: SITEFENCE_MODE=monitor");
            let row = fence(sandbox, scenario, profile, dir).await;
            let restored = sandbox
                .set_fence_mode(common::mode::Mode::Enforce)
                .await
                .context("switching the fence back to enforce mode");
            println!("  the fence's configuration in Lambda: back to enforce");
            let row = row?;
            restored?;
            Ok(row)
        }
        Scenario::Route53 => route53(sandbox).await,
        Scenario::Vpc => vpc(sandbox).await,
        Scenario::Doctor => super::doctor::run(sandbox, dir).await,
    }
}

fn show(event: Option<&judge::Event>) {
    if let Some(event) = event {
        println!("{}", event.line());
    }
}

async fn fence(
    sandbox: &Sandbox,
    scenario: Scenario,
    profile: Profile,
    dir: &Path,
) -> anyhow::Result<Row> {
    let sites: Vec<String> = sandbox.info.sites.keys().cloned().collect();
    // The sandbox prefers the first site: it survives a true split-brain.
    let (survivor, fenced) = match sites.as_slice() {
        [a, b] => (a.clone(), b.clone()),
        _ => anyhow::bail!("the drill needs exactly two sites"),
    };
    let monitor = scenario == Scenario::PartitionMonitor;
    let reporters = match scenario {
        Scenario::Partition | Scenario::PartitionMonitor => {
            BTreeSet::from([survivor.clone(), fenced.clone()])
        }
        _ => BTreeSet::from([survivor.clone()]),
    };
    let fence_expected = ExpectedFence {
        survivor: survivor.clone(),
        fenced: fenced.clone(),
        reporters,
        retried: scenario == Scenario::FlakyInfinispan,
    };
    let expected = if monitor {
        Expected::Monitor(fence_expected)
    } else {
        Expected::Fence(fence_expected)
    };
    println!("  expected: {}", expected.describe());

    let stack = AlertingStack::start(
        &sandbox.info,
        &dir.join("alerting").join(scenario.name()),
        profile,
    )
    .await
    .context("starting Prometheus and Alertmanager")?;
    let timings = profile.timings();
    let waits = waits(profile);
    let alert_name = crate::sandbox_world::deployment_from_sandbox(&sandbox.info)
        .fence
        .alert_name;

    // Steady state first: each Prometheus has scraped its own site and sees the other site.
    let steady_since = Instant::now();
    loop {
        let mut healthy = 0;
        for pair in &stack.pairs {
            let query = format!(
                "vendor_jgroups_site_view_status{{site=\"{}\"}}",
                pair.remote
            );
            let series = sandbox
                .prometheus_query(&pair.prometheus_url, &query)
                .await
                .unwrap_or_default();
            if series.iter().any(|(_, value)| *value == 1.0) {
                healthy += 1;
            }
        }
        if healthy == stack.pairs.len() {
            break;
        }
        if steady_since.elapsed() > waits.steady {
            anyhow::bail!(
                "Prometheus did not scrape a healthy cross-site view within {} s",
                waits.steady.as_secs()
            );
        }
        tokio::time::sleep(TICK).await;
    }
    println!(
        "  steady after {:.1} s: both Prometheus servers (scrape/evaluation {}/{}) see the other site; group_wait {}",
        steady_since.elapsed().as_secs_f64(),
        timings.scrape_interval,
        timings.evaluation_interval,
        timings.group_wait
    );

    let mut log = sandbox.fence_log();
    let dials_before = sandbox.dials().await?;
    let mut last_accelerator = sandbox.sites_in_accelerator().await?;
    let mut last_backups = sandbox.backups().await;
    let mut observation = FenceObservation {
        in_accelerator: last_accelerator.clone(),
        ..FenceObservation::default()
    };
    merge_backups(&mut observation.backups, &last_backups);
    let mut timeline = Timeline::default();

    // The fault.
    let survivor_control = sandbox.control_url(&survivor)?;
    let fenced_control = sandbox.control_url(&fenced)?;
    let ga = &sandbox.info.globalaccelerator_endpoint_url;
    let fault = match scenario {
        Scenario::FlakyInfinispan => {
            sandbox
                .control(
                    &format!("{survivor_control}/fault"),
                    json!({"operation": "take-offline", "status": 503, "count": 2}),
                )
                .await?;
            format!(
                "{fenced} down (Infinispan REST and /metrics answer 503, its accelerator endpoint UNHEALTHY); \
                 {survivor}'s next 2 take-offline calls answer 503"
            )
        }
        Scenario::SiteDown => format!(
            "{fenced} down (Infinispan REST and /metrics answer 503, its accelerator endpoint UNHEALTHY)"
        ),
        _ => format!("cross-site link between {survivor} and {fenced} cut (Infinispan /partition)"),
    };
    let started = Instant::now();
    match scenario {
        Scenario::Partition | Scenario::PartitionMonitor => {
            sandbox
                .control(
                    &format!("{survivor_control}/partition"),
                    json!({"partitioned": true}),
                )
                .await?;
        }
        _ => {
            sandbox
                .control(&format!("{fenced_control}/down"), json!({"down": true}))
                .await?;
            sandbox
                .control(
                    &format!("{ga}/_sandbox/health"),
                    json!({"endpoint_id": sandbox.endpoint_id(&fenced)?, "state": "UNHEALTHY"}),
                )
                .await?;
        }
    }
    show(Some(timeline.push(started.elapsed(), fault, None)));

    let mut holding_since: Option<Instant> = None;
    loop {
        tokio::time::sleep(TICK).await;
        for pair in &stack.pairs {
            let (site, remote) = (&pair.site, &pair.remote);
            let view = format!("vendor_jgroups_site_view_status{{site=\"{remote}\"}}");
            if let Ok(series) = sandbox.prometheus_query(&pair.prometheus_url, &view).await
                && series.iter().any(|(_, value)| *value == 0.0)
            {
                let text = format!("{site}'s Prometheus: {remote}'s view status is 0");
                show(timeline.once(&format!("zero:{site}"), started.elapsed(), text, None));
            }
            if let Ok(series) = sandbox.prometheus_query(&pair.prometheus_url, "up").await
                && series.iter().any(|(_, value)| *value == 0.0)
            {
                let text =
                    format!("{site}'s Prometheus: scrape of {site}'s Infinispan fails (up 0)");
                show(timeline.once(&format!("up:{site}"), started.elapsed(), text, None));
            }
            if let Ok(states) = sandbox
                .prometheus_alerts(&pair.prometheus_url, &alert_name)
                .await
            {
                for state in states {
                    let text = format!("{site}'s Prometheus: {alert_name} {state}");
                    let key = format!("{state}:{site}");
                    show(timeline.once(&key, started.elapsed(), text, None));
                }
            }
            if let Ok(active) = sandbox
                .alertmanager_alerts(&pair.alertmanager_url, &alert_name)
                .await
                && active > 0
            {
                let text = format!(
                    "{site}'s Alertmanager: {alert_name} active (webhook after group_wait {})",
                    timings.group_wait
                );
                show(timeline.once(&format!("am:{site}"), started.elapsed(), text, None));
            }
        }

        for answer in log.new_answers() {
            let reports: Vec<String> = answer
                .reports
                .iter()
                .map(|(reporter, site)| format!("{reporter} reports {site}"))
                .collect();
            let text = format!(
                "fence webhook ({}) answered {}: {}",
                reports.join(", "),
                answer.status,
                answer.summary
            );
            show(Some(timeline.push(started.elapsed(), text, None)));
            observation.answers.push(answer);
        }

        if let Ok(accelerator) = sandbox.sites_in_accelerator().await {
            if accelerator != last_accelerator {
                let text = format!(
                    "Global Accelerator updated: endpoints left for {}",
                    accelerator.iter().cloned().collect::<Vec<_>>().join(", ")
                );
                let fact = Some(Fact::Accelerator(accelerator.clone()));
                show(Some(timeline.push(started.elapsed(), text, fact)));
                last_accelerator = accelerator;
            }
            observation.in_accelerator = last_accelerator.clone();
        }

        let backups = sandbox.backups().await;
        for (site, status) in &backups {
            if last_backups.get(site) != Some(status) {
                let remote = sites
                    .iter()
                    .find(|s| *s != site)
                    .cloned()
                    .unwrap_or_default();
                let text = format!("{site}'s backup to {remote}: {status}");
                let fact = (status == "offline").then(|| Fact::BackupOffline(site.clone()));
                show(Some(timeline.push(started.elapsed(), text, fact)));
            }
        }
        merge_backups(&mut observation.backups, &backups);
        last_backups = backups;

        if let Ok(dials) = sandbox.dials().await {
            for (group, dial) in &dials {
                let before = dials_before.get(group);
                if before != Some(dial) && observation.dials_changed.insert(group.clone()) {
                    let text = format!(
                        "traffic dial of {group}: {} → {dial}",
                        before.map_or("?", String::as_str)
                    );
                    show(Some(timeline.push(started.elapsed(), text, None)));
                }
            }
        }
        // The record only matters to monitor mode's verdict (enforce mode's is what it did).
        if monitor && let Ok(Some(record)) = sandbox.recorded().await {
            if observation.recorded.as_ref() != Some(&record) {
                let text = format!(
                    "decision recorded (mode {}): {} survives, {} would be fenced",
                    record.mode, record.survivor, record.loser
                );
                let fact = Some(Fact::DecisionRecorded(record.mode.clone()));
                show(Some(timeline.push(started.elapsed(), text, fact)));
            }
            observation.recorded = Some(record);
        }

        let observed = Observed::Fence(observation.clone());
        if judge::problems(&expected, &observed).is_empty() {
            let since = *holding_since.get_or_insert_with(Instant::now);
            // Monitor mode holds longer: "nothing changed" must still hold after the reports,
            // when an enforcing fence would long have acted.
            let settle = if monitor {
                waits.settle * 3
            } else {
                waits.settle
            };
            if since.elapsed() >= settle {
                break;
            }
        } else {
            holding_since = None;
        }
        if started.elapsed() > waits.outcome {
            println!("  no expected outcome within {} s", waits.outcome.as_secs());
            break;
        }
    }
    drop(stack);
    let mut row = finish(
        scenario,
        &expected,
        &Observed::Fence(observation),
        &timeline,
    )?;
    // The operator's look back: `site history` over the drill's table lists this fence.
    let history = match listed_in_history(sandbox).await {
        Ok(listed) => judge::history_problems(&expected, &listed),
        Err(err) => vec![format!("`site history` failed: {err:#}")],
    };
    for problem in &history {
        println!("  PROBLEM: {problem}");
    }
    if !history.is_empty() {
        row.passed = false;
        row.observed.push_str(&format!("; {}", history.join("; ")));
    }
    Ok(row)
}

/// What `site history` lists for the drill's deployment, as an operator would see it.
async fn listed_in_history(sandbox: &Sandbox) -> anyhow::Result<Vec<judge::Listed>> {
    let deployment = crate::sandbox_world::deployment_from_sandbox(&sandbox.info);
    let history =
        ops::site::history::read_deployment(&deployment, &ops::aws::AwsArgs::default(), None, None)
            .await?;
    println!("  site history:");
    for line in ops::site::history::render(&history).lines() {
        println!("    {line}");
    }
    Ok(history
        .decisions
        .iter()
        .map(|row| judge::Listed {
            survivor: row.survivor.to_string(),
            loser: row.loser.to_string(),
            mode: row.mode.to_owned(),
            completed: row.completed_at_ms.is_some() && !row.steps.is_empty(),
        })
        .collect())
}

/// A site that cannot be read right now keeps its last known state (a down site's REST API
/// answers 503, but its backups did not change).
fn merge_backups(known: &mut BTreeMap<String, String>, now: &BTreeMap<String, String>) {
    for (site, status) in now {
        let readable = matches!(status.as_str(), "online" | "offline" | "mixed");
        if readable || !known.contains_key(site) {
            known.insert(site.clone(), status.clone());
        }
    }
}

fn finish(
    scenario: Scenario,
    expected: &Expected,
    observed: &Observed,
    timeline: &Timeline,
) -> anyhow::Result<Row> {
    let row = Row::new(scenario.name(), expected, observed, timeline);
    for problem in judge::problems(expected, observed) {
        println!("  PROBLEM: {problem}");
    }
    println!(
        "  {}: {}{}",
        if row.passed { "PASS" } else { "FAIL" },
        row.observed,
        row.time_to_fence_s
            .map(|s| format!(" (time to fence {s:.1} s)"))
            .unwrap_or_default()
    );
    Ok(row)
}

fn sample_event(path: &str, placeholder: &str, value: &str) -> anyhow::Result<serde_json::Value> {
    let file = crate::workspace::root().join(path);
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    serde_json::from_str(&text.replace(placeholder, value))
        .with_context(|| format!("parsing {}", file.display()))
}

fn summary(body: &str) -> String {
    let line: String = body.chars().take(160).collect();
    if body.chars().count() > 160 {
        format!("{line}…")
    } else {
        line
    }
}

async fn route53(sandbox: &Sandbox) -> anyhow::Result<Row> {
    let health_check = &sandbox.info.route53.health_check_id;
    let expected = Expected::HealthCheckPinned {
        path: aws_topology::route53::FAILED_OVER_PATH.to_string(),
    };
    println!("  expected: {}", expected.describe());
    let invoke_url = sandbox
        .info
        .route53
        .invoke_url
        .clone()
        .context("the sandbox has no Route 53 function")?;
    let event = sample_event(
        "events/route53/sns-alarm.json",
        "{{HEALTH_CHECK_ID}}",
        health_check,
    )?;
    let mut timeline = Timeline::default();
    let started = Instant::now();
    let text = format!(
        "health check {health_check}'s alarm → ALARM: its SNS notification sent to route53-failover-lambda \
         (moto never evaluates alarms, so the drill sends it)"
    );
    show(Some(timeline.push(started.elapsed(), text, None)));
    let (status, body) = sandbox.invoke(&invoke_url, &event).await?;
    let text = format!(
        "route53-failover-lambda answered {status}: {}",
        summary(&body)
    );
    show(Some(timeline.push(started.elapsed(), text, None)));
    let mut path = None;
    while started.elapsed() < Duration::from_secs(10) {
        path = sandbox.health_check_path().await;
        if path.as_deref() == Some(aws_topology::route53::FAILED_OVER_PATH) {
            break;
        }
        tokio::time::sleep(TICK).await;
    }
    if let Some(seen) = &path {
        let text = format!("Route 53 health check {health_check} probes {seen}");
        let fact = Some(Fact::HealthCheckPath(seen.clone()));
        show(Some(timeline.push(started.elapsed(), text, fact)));
    }
    finish(
        Scenario::Route53,
        &expected,
        &Observed::HealthCheck { path },
        &timeline,
    )
}

async fn vpc(sandbox: &Sandbox) -> anyhow::Result<Row> {
    let vpc = &sandbox.info.vpc;
    let invoke_url = vpc
        .invoke_url
        .clone()
        .context("the sandbox has no VPC route function")?;
    let (_, via_primary) = sandbox.routes().await?;
    anyhow::ensure!(
        via_primary > 0,
        "no route goes via the primary appliance after the reset"
    );
    let expected = Expected::RoutesMoved {
        routes: via_primary,
    };
    println!("  expected: {}", expected.describe());
    let event = sample_event(
        "events/vpc/primary-stopped.json",
        "{{PRIMARY_INSTANCE_ID}}",
        &vpc.primary.instance_id,
    )?;
    let mut timeline = Timeline::default();
    let started = Instant::now();
    sandbox.stop_primary().await?;
    let text = format!(
        "primary appliance {} stopped (EC2 StopInstances)",
        vpc.primary.instance_id
    );
    show(Some(timeline.push(started.elapsed(), text, None)));
    let text = "EventBridge EC2 state-change event (stopped) sent to vpc-route-failover-lambda \
                (moto does not deliver it, so the drill sends it)";
    show(Some(timeline.push(started.elapsed(), text, None)));
    let (status, body) = sandbox.invoke(&invoke_url, &event).await?;
    let text = format!(
        "vpc-route-failover-lambda answered {status}: {}",
        summary(&body)
    );
    show(Some(timeline.push(started.elapsed(), text, None)));
    let mut routes = (0, via_primary);
    while started.elapsed() < Duration::from_secs(10) {
        routes = sandbox.routes().await?;
        if routes.1 == 0 {
            break;
        }
        tokio::time::sleep(TICK).await;
    }
    let (via_standby, via_primary) = routes;
    let text = format!(
        "route table {}: {via_standby} route(s) via the standby's ENI, {via_primary} via the primary's",
        vpc.route_table_id
    );
    let fact = Some(Fact::RoutesViaStandby(via_standby));
    show(Some(timeline.push(started.elapsed(), text, fact)));
    finish(
        Scenario::Vpc,
        &expected,
        &Observed::Routes {
            via_standby,
            via_primary,
        },
        &timeline,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_site_keeps_its_last_known_backup_state() {
        let mut known = BTreeMap::new();
        let read = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        merge_backups(
            &mut known,
            &read(&[("site-a", "online"), ("site-b", "online")]),
        );
        merge_backups(
            &mut known,
            &read(&[("site-a", "offline"), ("site-b", "unreachable")]),
        );
        assert_eq!(known, read(&[("site-a", "offline"), ("site-b", "online")]));
        let mut fresh = BTreeMap::new();
        merge_backups(&mut fresh, &read(&[("site-b", "unreachable")]));
        assert_eq!(fresh, read(&[("site-b", "unreachable")]));
    }
}
