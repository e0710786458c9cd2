//! The bench's I/O: one sandbox world running the Rust functions and the seeds' Python side by
//! side, each invocation prepared (fresh state, latency, zeroed call counts), timed from the
//! caller, checked for its effect, and its remote calls read from the emulators' own counts.

use super::report::{Samples, TimedCall};
use anyhow::{Context, bail};
use sandbox::harness::Sandbox;
use sandbox::lambda_host::FunctionHost;
use sandbox::world::World;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The health check's path before a failover, as the sandbox seeds it.
const SEEDED_HEALTH_CHECK_PATH: &str = "/lb-check";
/// Where the Route 53 function pins it (its default and the seed's constant).
const FAILED_OVER_PATH: &str = "/lb-check-failed-over";
/// How long a killed instance may take to be reaped by the host.
const REAP_WAIT: Duration = Duration::from_secs(10);
/// One invocation, cold or warm; the seed's cold start on a busy machine takes seconds.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a function may stay busy after its answer before the bench gives up on it (the
/// fence bounds its after-answer work to 1 s).
const IDLE_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Side {
    Rust,
    Python,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Function {
    Fence,
    Route53,
    Vpc,
}

/// One implementation of one function, running behind its own Runtime API host.
#[derive(Debug, Clone)]
pub struct Subject {
    pub side: Side,
    pub function: Function,
    /// Index into [`World::functions`].
    pub host: usize,
    /// The fence's Function URL, or the other functions' Invoke API URL.
    pub url: String,
}

/// What one invocation took and what it cost, as the emulators counted it.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub elapsed: Duration,
    pub calls: BTreeMap<String, u64>,
    /// Its calls from the moment the bench sent it (`origin_us`, on the emulators' clock), as
    /// the emulators timed them; a cold start's from its process start instead.
    pub timeline: Vec<TimedCall>,
    pub origin_us: u64,
}

/// The events the bench sends, with their placeholders (see [`FENCE_EVENT_ACCELERATOR`]).
#[derive(Debug, Clone, Copy)]
pub struct Events<'a> {
    pub fence: &'a str,
    pub route53: &'a str,
    /// The Route 53 alarm back to `OK`.
    pub route53_ok: &'a str,
    /// The primary appliance's instance stopped (EventBridge).
    pub vpc: &'a str,
}

/// How the world is prepared before an invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// A new process; the world as a first report finds it.
    Cold,
    /// A process that has served before; the world as a first report finds it, and for
    /// Route 53 the health check failed back by the operator and its alarm's `OK` delivered.
    Warm,
    /// The same report again: the fence's decision stays recorded (its traffic put back so
    /// there is work to do), the Route 53 health check stays pinned.
    Resend,
}

/// The running world plus what the bench needs to drive it.
pub struct Bench<'w> {
    world: &'w World,
    /// The world's controls, counts and state, as the integration tests drive it.
    sandbox: Sandbox,
    /// Route 53 through the AWS front, as an operator fails back: the health check's version
    /// moves on, as in Route 53 (the front keeps it; aws-behaviours #14).
    route53: aws_sdk_route53::Client,
    /// The Route 53 event with the alarm back to `OK`, sent (untimed) after the fail-back.
    route53_ok_event: String,
    fence_event: String,
    route53_event: String,
    vpc_event: String,
    /// EC2 straight on moto (not through the counting front): the bench's own route resets
    /// and checks are not the function's calls.
    ec2: aws_sdk_ec2::Client,
    latency_ms: u64,
}

impl<'w> Bench<'w> {
    pub async fn new(
        world: &'w World,
        dir: &std::path::Path,
        events: &Events<'_>,
    ) -> anyhow::Result<Bench<'w>> {
        let Events {
            fence: fence_event,
            route53: route53_event,
            route53_ok: route53_ok_event,
            vpc: vpc_event,
        } = *events;
        let sandbox = Sandbox::attach(world, dir)?;
        let info = &sandbox.info;
        let route53 = aws_sdk_route53::Client::new(
            &sandbox::world::sdk_config(&info.aws_endpoint_url, sandbox::world::ROUTE53_REGION)
                .await,
        );
        let ec2 = aws_sdk_ec2::Client::new(
            &sandbox::world::sdk_config(&info.moto_url, sandbox::world::REGION).await,
        );
        Ok(Bench {
            world,
            vpc_event: vpc_event.replace(VPC_EVENT_PRIMARY_INSTANCE, &info.vpc.primary.instance_id),
            ec2,
            fence_event: fence_event.replace(FENCE_EVENT_ACCELERATOR, &info.accelerator_dns),
            route53_event: route53_event
                .replace(ROUTE53_EVENT_HEALTH_CHECK, &info.route53.health_check_id),
            route53_ok_event: route53_ok_event
                .replace(ROUTE53_EVENT_HEALTH_CHECK, &info.route53.health_check_id),
            route53,
            sandbox,
            latency_ms: 0,
        })
    }

    /// The functions the world runs, by side, in the order [`World::start`] starts them.
    pub fn subjects(&self, with_seed: bool) -> anyhow::Result<Vec<Subject>> {
        let functions = &self.world.functions;
        let host = |index: usize| -> anyhow::Result<&FunctionHost> {
            functions
                .get(index)
                .with_context(|| format!("the world runs no function #{index}"))
        };
        let function_url = |index: usize| -> anyhow::Result<String> {
            host(index)?
                .function_url()
                .with_context(|| format!("function #{index} has no Function URL"))
        };
        let mut subjects = vec![
            Subject {
                side: Side::Rust,
                function: Function::Fence,
                host: 0,
                url: function_url(0)?,
            },
            Subject {
                side: Side::Rust,
                function: Function::Route53,
                host: 1,
                url: host(1)?.invoke_url(),
            },
            Subject {
                side: Side::Rust,
                function: Function::Vpc,
                host: 2,
                url: host(2)?.invoke_url(),
            },
        ];
        // No seed replaces the VPC function in `../shared/peers`: it is measured alone.
        if with_seed {
            subjects.push(Subject {
                side: Side::Python,
                function: Function::Fence,
                host: 3,
                url: function_url(3)?,
            });
            subjects.push(Subject {
                side: Side::Python,
                function: Function::Route53,
                host: 4,
                url: host(4)?.invoke_url(),
            });
        }
        Ok(subjects)
    }

    /// Every emulator adds `latency_ms` to each remote call from now on.
    pub async fn set_latency(&mut self, latency_ms: u64) -> anyhow::Result<()> {
        self.latency_ms = latency_ms;
        self.apply_latency().await
    }

    async fn apply_latency(&self) -> anyhow::Result<()> {
        let body = serde_json::json!({ "latency_ms": self.latency_ms });
        self.sandbox.ga_control("fault", &body).await?;
        self.sandbox.aws_fault(&body).await?;
        for site in self.sandbox.info.sites.keys() {
            self.sandbox.ispn_control(site, "fault", &body).await?;
        }
        Ok(())
    }

    /// Puts the world back where a fresh failure finds it, keeps the latency, zeroes the
    /// call counts. For the fence: the Global Accelerator's seeded topology (same ARNs, so a
    /// warm function's cached topology stays valid), every backup online and no decision
    /// recorded; for Route 53: the
    /// health check on its primary path.
    async fn prepare(&self, subject: &Subject, scenario: Scenario) -> anyhow::Result<()> {
        let empty = serde_json::json!({});
        match subject.function {
            Function::Fence => {
                self.sandbox.ga_control("reset", &empty).await?;
                for site in self.sandbox.info.sites.keys() {
                    self.sandbox.ispn_control(site, "reset", &empty).await?;
                }
                // Each first report decides afresh and records its decision; a resend finds
                // the decision of the report before it.
                if scenario != Scenario::Resend {
                    crate::sandbox_world::reset_decisions(&self.sandbox.info).await?;
                }
                // Both resets clear the latency too.
                self.apply_latency().await?;
            }
            Function::Vpc if scenario == Scenario::Resend => {}
            Function::Vpc => {
                self.primary_stopped().await?;
                self.routes_back_to_the_primary().await?;
            }
            Function::Route53 if scenario == Scenario::Resend => {}
            Function::Route53 => {
                // The operator's fail-back: an update like any other, a new version.
                self.route53
                    .update_health_check()
                    .health_check_id(&self.sandbox.info.route53.health_check_id)
                    .resource_path(SEEDED_HEALTH_CHECK_PATH)
                    .send()
                    .await
                    .context("putting the health check back on its primary path")?;
                // The health check is healthy again and its alarm notifies `OK`; a new
                // process must not be started by it (the cold start is the alarm's).
                if scenario == Scenario::Warm {
                    self.post(subject, &self.route53_ok_event)
                        .timeout(INVOKE_TIMEOUT)
                        .send()
                        .await
                        .and_then(reqwest::Response::error_for_status)
                        .with_context(|| format!("{subject:?}: the alarm's OK"))?;
                }
            }
        }
        self.sandbox.ga_control("calls/reset", &empty).await?;
        self.sandbox.reset_aws_calls().await?;
        for site in self.sandbox.info.sites.keys() {
            self.sandbox
                .ispn_control(site, "calls/reset", &empty)
                .await?;
        }
        Ok(())
    }

    /// Every remote call since the last [`Bench::prepare`], by `service.Operation`, as the
    /// emulators counted them: Global Accelerator, the AWS front (moto) and both Infinispans.
    async fn calls(&self) -> anyhow::Result<(BTreeMap<String, u64>, Vec<(String, u64, u64)>)> {
        let mut calls = BTreeMap::new();
        let mut spans = Vec::new();
        add_counts(
            &mut calls,
            &mut spans,
            "globalaccelerator.",
            self.sandbox.ga_calls().await?,
        );
        add_counts(&mut calls, &mut spans, "", self.sandbox.aws_calls().await?);
        for site in self.sandbox.info.sites.keys() {
            add_counts(
                &mut calls,
                &mut spans,
                &format!("infinispan.{site}."),
                self.sandbox.ispn_calls(site).await?,
            );
        }
        Ok((calls, spans))
    }

    fn post(&self, subject: &Subject, body: &str) -> reqwest::RequestBuilder {
        match subject.function {
            Function::Fence => self
                .sandbox
                .http()
                .post(&subject.url)
                .basic_auth(
                    &self.sandbox.info.fence.user,
                    Some(&self.sandbox.info.fence.password),
                )
                .header("content-type", "application/json")
                .body(body.to_owned()),
            Function::Route53 | Function::Vpc => {
                self.sandbox.http().post(&subject.url).body(body.to_owned())
            }
        }
    }

    /// The routes through the appliance pair, by destination: their next hop's ENI.
    async fn appliance_routes(&self) -> anyhow::Result<BTreeMap<String, Option<String>>> {
        let vpc = &self.sandbox.info.vpc;
        let tables = self
            .ec2
            .describe_route_tables()
            .route_table_ids(&vpc.route_table_id)
            .send()
            .await
            .context("reading the route table")?;
        let mut routes = BTreeMap::new();
        for route in tables.route_tables().iter().flat_map(|t| t.routes()) {
            let eni = route.network_interface_id().map(str::to_owned);
            let through_pair = eni
                .as_deref()
                .is_some_and(|eni| eni == vpc.primary.eni || eni == vpc.standby.eni);
            let destination = route
                .destination_cidr_block()
                .or(route.destination_ipv6_cidr_block());
            if let (true, Some(destination)) = (through_pair, destination) {
                routes.insert(destination.to_owned(), eni);
            }
        }
        if routes.is_empty() {
            bail!("the sandbox's route table has no route through the appliances");
        }
        Ok(routes)
    }

    /// The primary appliance stopped, as the event says: the function acts only on an
    /// instance EC2 reports down (once stopped, it stays so for the whole bench).
    async fn primary_stopped(&self) -> anyhow::Result<()> {
        use aws_topology::ec2::{InstanceId, InstanceState, Vpc as _};
        let primary = &self.sandbox.info.vpc.primary.instance_id;
        let instance: InstanceId = primary
            .parse()
            .map_err(|err| anyhow::anyhow!("the sandbox's primary appliance: {err}"))?;
        let state = || async {
            let described = self
                .ec2
                .describe_instance(&instance)
                .await
                .map_err(|err| anyhow::anyhow!("DescribeInstances: {err}"))?;
            anyhow::Ok(described.map(|described| described.state))
        };
        if state().await? == Some(InstanceState::Stopped) {
            return Ok(());
        }
        self.ec2
            .stop_instances()
            .instance_ids(primary)
            .send()
            .await
            .context("StopInstances")?;
        let deadline = Instant::now() + REAP_WAIT;
        while state().await? != Some(InstanceState::Stopped) {
            if Instant::now() > deadline {
                bail!("the primary appliance {primary} did not stop within {REAP_WAIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Every route through the pair back on the primary's ENI, as before a failure.
    async fn routes_back_to_the_primary(&self) -> anyhow::Result<()> {
        let vpc = &self.sandbox.info.vpc;
        for (destination, eni) in self.appliance_routes().await? {
            if eni.as_deref() == Some(vpc.primary.eni.as_str()) {
                continue;
            }
            let replace = self
                .ec2
                .replace_route()
                .route_table_id(&vpc.route_table_id)
                .network_interface_id(&vpc.primary.eni);
            let replace = if destination.contains(':') {
                replace.destination_ipv6_cidr_block(&destination)
            } else {
                replace.destination_cidr_block(&destination)
            };
            replace
                .send()
                .await
                .with_context(|| format!("putting {destination} back on the primary"))?;
        }
        Ok(())
    }

    /// One invocation of a prepared world: timed request → whole response, then the remote
    /// calls it made and a check that it did the job (a benchmark of a function that answered
    /// without fencing would be worthless).
    pub async fn invoke(
        &self,
        subject: &Subject,
        scenario: Scenario,
    ) -> anyhow::Result<Invocation> {
        self.prepare(subject, scenario).await?;
        let event = match subject.function {
            Function::Fence => &self.fence_event,
            Function::Route53 => &self.route53_event,
            Function::Vpc => &self.vpc_event,
        };
        let request = self.post(subject, event);
        let started_us = sandbox::timeline::now_us();
        let started = Instant::now();
        let response = request
            .timeout(INVOKE_TIMEOUT)
            .send()
            .await
            .with_context(|| format!("invoking {subject:?}"))?;
        let status = response.status();
        let function_error = response.headers().contains_key("x-amz-function-error");
        let body = response.text().await?;
        let elapsed = started.elapsed();
        let received_us = sandbox::timeline::now_us();
        if !status.is_success() || function_error {
            bail!("{subject:?} answered {status}: {body}");
        }
        // What the function does after its answer (its runtime has not asked for the next
        // event yet) is on the timeline too, marked, and the next invocation finds it idle, as
        // the sender's next report would on Lambda, where a busy environment is not reused.
        let host = &self.world.functions[subject.host];
        if !host.wait_idle(IDLE_WAIT).await {
            bail!("{subject:?} still busy {IDLE_WAIT:?} after its answer");
        }
        // The host's own instant of the answer: a call the function starts right after
        // posting it may leave before this side has read the response.
        let answered_us = host
            .stats()
            .last_answered_us
            .filter(|at| *at >= started_us)
            .unwrap_or(received_us);
        let (calls, spans) = self.calls().await?;
        self.check_effect(subject).await?;
        Ok(Invocation {
            elapsed,
            calls,
            timeline: super::report::timeline(&spans, started_us, answered_us),
            origin_us: started_us,
        })
    }

    async fn check_effect(&self, subject: &Subject) -> anyhow::Result<()> {
        match subject.function {
            Function::Fence => {
                let groups = self.sandbox.ga_group_endpoints().await?;
                let survivor = self
                    .sandbox
                    .info
                    .sites
                    .get(SURVIVOR)
                    .with_context(|| format!("the sandbox has no {SURVIVOR}"))?;
                if groups
                    .iter()
                    .any(|group| *group != [survivor.endpoint_id.as_str()])
                {
                    bail!("{subject:?} did not fence the other site: the groups hold {groups:?}");
                }
                let statuses = self.sandbox.ispn_backup_status(SURVIVOR, LOSER).await?;
                let online: Vec<&String> = statuses
                    .iter()
                    .filter(|(_, status)| status.as_str() != "offline")
                    .map(|(cache, _)| cache)
                    .collect();
                if !online.is_empty() {
                    bail!("{subject:?} left {SURVIVOR}'s backup online for {online:?}");
                }
            }
            Function::Route53 => {
                let check = self
                    .route53
                    .get_health_check()
                    .health_check_id(&self.sandbox.info.route53.health_check_id)
                    .send()
                    .await
                    .context("GetHealthCheck")?;
                let path = check
                    .health_check()
                    .and_then(|h| h.health_check_config())
                    .and_then(|c| c.resource_path());
                if path != Some(FAILED_OVER_PATH) {
                    bail!("{subject:?} did not pin the health check: path is {path:?}");
                }
            }
            Function::Vpc => {
                let standby = &self.sandbox.info.vpc.standby.eni;
                let routes = self.appliance_routes().await?;
                if routes
                    .values()
                    .any(|eni| eni.as_deref() != Some(standby.as_str()))
                {
                    bail!("{subject:?} did not move every route to the standby: {routes:?}");
                }
            }
        }
        Ok(())
    }

    /// Kills the subject's instances and waits until the host has reaped them, so that the
    /// next invocation starts a new process: a real cold start.
    async fn kill_instances(&self, subject: &Subject) -> anyhow::Result<()> {
        let host = &self.world.functions[subject.host];
        for pid in host.pids() {
            if let Ok(pid) = libc::pid_t::try_from(pid) {
                // SAFETY: SIGKILL to a process this bench's host started; no memory is touched.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
        let deadline = Instant::now() + REAP_WAIT;
        while host.stats().instances.iter().any(|i| i.alive) {
            if Instant::now() > deadline {
                bail!("{subject:?}: killed instances were not reaped within {REAP_WAIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    /// A cold start: a new process takes the invocation. Returns the host's process start →
    /// first response, and the remote calls of that first invocation, on a timeline from the
    /// process start: where the cold start figure begins (the host spawns the process after
    /// the request reached it).
    pub async fn cold_start(&self, subject: &Subject) -> anyhow::Result<(f64, Invocation)> {
        self.kill_instances(subject).await?;
        let mut invocation = self.invoke(subject, Scenario::Cold).await?;
        let stats = self.world.functions[subject.host].stats();
        let newest = stats
            .instances
            .iter()
            .max_by_key(|i| i.spawned_at_ms)
            .context("the host started no instance")?;
        let cold_start_ms = newest
            .cold_start_ms
            .with_context(|| format!("{subject:?}: the host measured no cold start"))?;
        let spawned_after_ms =
            newest.spawned_at_us.saturating_sub(invocation.origin_us) as f64 / 1000.0;
        super::report::shift(&mut invocation.timeline, spawned_after_ms);
        Ok((cold_start_ms, invocation))
    }

    /// The largest peak RSS of any of the subject's processes so far, in KiB.
    pub fn peak_rss_kb(&self, subject: &Subject) -> u64 {
        self.world.functions[subject.host].stats().peak_rss_kb
    }
}

/// The sample fence event reports site-b offline from site-a: site-a survives.
const SURVIVOR: &str = "site-a";
const LOSER: &str = "site-b";

/// The placeholders of the sample events in `events/` (see their READMEs).
pub const FENCE_EVENT_ACCELERATOR: &str = "a1234567890abcdef.awsglobalaccelerator.com";
pub const ROUTE53_EVENT_HEALTH_CHECK: &str = "{{HEALTH_CHECK_ID}}";
pub const VPC_EVENT_PRIMARY_INSTANCE: &str = "{{PRIMARY_INSTANCE_ID}}";

fn add_counts(
    into: &mut BTreeMap<String, u64>,
    spans: &mut Vec<(String, u64, u64)>,
    prefix: &str,
    counts: sandbox::harness::Calls,
) {
    // The count is by service; the site is on the timeline only.
    let counted = prefix
        .strip_prefix("infinispan.")
        .map_or(prefix, |_| "infinispan.");
    for (operation, count) in counts.by_operation {
        if count > 0 {
            *into.entry(format!("{counted}{operation}")).or_default() += count;
        }
    }
    spans.extend(counts.timeline.into_iter().map(|span| {
        (
            format!("{prefix}{}", span.operation),
            span.start_us,
            span.end_us,
        )
    }));
}

/// Measures one pair (Rust and, when present, Python) of one function at the bench's current
/// latency: cold starts, then warm invocations, A/B alternating and the order swapped every
/// round so that neither side always runs right after the other.
pub async fn measure_pair(
    bench: &Bench<'_>,
    pair: &[Subject],
    cold_starts: usize,
    invocations: usize,
    resends: usize,
) -> anyhow::Result<Vec<Samples>> {
    let mut samples = vec![Samples::default(); pair.len()];
    let ordered = |round: usize| -> Vec<usize> {
        let mut order: Vec<usize> = (0..pair.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        order
    };
    for round in 0..cold_starts {
        for index in ordered(round) {
            let (cold_ms, invocation) = bench.cold_start(&pair[index]).await?;
            samples[index].cold_start_ms.push(cold_ms);
            samples[index]
                .cold_calls
                .push(invocation.calls.values().sum());
            samples[index].cold_timelines.push(invocation.timeline);
        }
    }
    for round in 0..invocations {
        for index in ordered(round) {
            let invocation = bench.invoke(&pair[index], Scenario::Warm).await?;
            samples[index]
                .warm_ms
                .push(invocation.elapsed.as_secs_f64() * 1000.0);
            samples[index].warm_calls.push(invocation.calls);
            samples[index].warm_timelines.push(invocation.timeline);
        }
    }
    // A resend follows the first report it repeats.
    for round in 0..resends {
        for index in ordered(round) {
            bench.invoke(&pair[index], Scenario::Warm).await?;
            let invocation = bench.invoke(&pair[index], Scenario::Resend).await?;
            samples[index]
                .resend_ms
                .push(invocation.elapsed.as_secs_f64() * 1000.0);
            samples[index].resend_timelines.push(invocation.timeline);
        }
    }
    for (index, subject) in pair.iter().enumerate() {
        samples[index].peak_rss_kb = bench.peak_rss_kb(subject);
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_prefixed_and_summed_and_zeroes_dropped() {
        let counts = |pairs: &[(&str, u64)]| sandbox::harness::Calls {
            total: pairs.iter().map(|(_, n)| n).sum(),
            by_operation: pairs.iter().map(|(op, n)| ((*op).to_owned(), *n)).collect(),
            timeline: Vec::new(),
        };
        let mut calls = BTreeMap::new();
        let mut spans = Vec::new();
        add_counts(
            &mut calls,
            &mut spans,
            "infinispan.site-a.",
            counts(&[("take-offline", 1), ("status", 0)]),
        );
        add_counts(
            &mut calls,
            &mut spans,
            "infinispan.site-b.",
            counts(&[("take-offline", 2)]),
        );
        add_counts(&mut calls, &mut spans, "", counts(&[]));
        assert_eq!(
            calls,
            BTreeMap::from([("infinispan.take-offline".to_owned(), 3)])
        );
    }
}
