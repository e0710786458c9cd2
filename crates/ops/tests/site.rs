//! The recovery after a fence, against a sandbox each test starts and stops: the real fence
//! function fences site-b, then `site status`, `site sync`, `site bring-online`,
//! `site take-offline` and `route53 failback` run as an operator runs them, through the same
//! `sitefence.toml` the sandbox writes.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use aws_sdk_globalaccelerator::types::{
    EndpointConfiguration, EndpointIdentifier, PortRange, Protocol,
};
use aws_topology::decisions::{DecisionRecord, Standing};
use aws_topology::globalaccelerator as ga;
use aws_topology::route53::{self, HealthCheckId, HealthChecks};
use common::site::SiteName;
use sandbox::world::{FunctionOptions, SandboxInfo, World, WorldOptions};
use serde_json::{Value, json};

use ops::site::apply::{CLOSED_BY, Waiting};
use ops::site::failback::{self, FailbackArgs};
use ops::site::history::{History, HistoryArgs};
use ops::site::model::{BackupState, PushState};
use ops::site::observe::Ctx;
use ops::site::verdict::{Problem, Verdict, verdict};
use ops::site::{Change, Outcome, Target};
use testbed::workspace;

const YES: Change = Change {
    yes: true,
    dry_run: false,
};
const ASK: Change = Change {
    yes: false,
    dry_run: false,
};
const DRY_RUN: Change = Change {
    yes: false,
    dry_run: true,
};

fn site(name: &str) -> SiteName {
    SiteName::parse(name).unwrap()
}

fn waiting() -> Waiting {
    Waiting {
        timeout: Duration::from_secs(60),
        poll: Duration::from_millis(100),
    }
}

/// The fence function's bootstrap, built as every other command builds it (one feature
/// resolution, so a workspace test run has built it already and this is a no-op).
fn fence_binary() -> anyhow::Result<PathBuf> {
    Ok(workspace::build_sandbox_binaries(false)?.join("fence-lambda"))
}

/// A running world with the fence function, described by `DIR/sitefence.toml`.
struct Scene {
    world: World,
    dir: PathBuf,
    config: PathBuf,
    ctx: Ctx,
    http: reqwest::Client,
}

impl Scene {
    async fn start(test: &str, push_delay: Duration) -> anyhow::Result<Scene> {
        let dir = std::env::temp_dir().join(format!(
            "sitefence-site-{test}-{}-{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        let mut options = WorldOptions::new(&dir);
        options.fence = Some(
            FunctionOptions::bootstrap(fence_binary()?).with_environment(
                testbed::sandbox_world::deploy_environment(ops::deploy::plan::Function::Fence),
            ),
        );
        options.push_delay = push_delay;
        let world = World::start(options)
            .await
            .with_context(|| format!("starting the sandbox in {}", dir.display()))?;
        let config = dir.join("sitefence.toml");
        std::fs::write(
            &config,
            testbed::sandbox_world::deployment_from_sandbox(world.info()).to_toml()?,
        )?;
        let ctx = Ctx::load(&config, &ops::aws::AwsArgs::default()).await?;
        Ok(Scene {
            world,
            dir,
            config,
            ctx,
            http: reqwest::Client::new(),
        })
    }

    fn info(&self) -> &SandboxInfo {
        self.world.info()
    }

    async fn stop(self) {
        self.world.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    async fn control(&self, site: &str, path: &str, body: Value) -> anyhow::Result<Value> {
        let url = format!("{}/{path}", self.info().sites[site].control_url);
        let response = self.http.post(&url).json(&body).send().await?;
        ensure!(
            response.status().is_success(),
            "{url}: {}",
            response.status()
        );
        Ok(response.json().await.unwrap_or(Value::Null))
    }

    async fn partition(&self, partitioned: bool) -> anyhow::Result<()> {
        self.control("site-a", "partition", json!({ "partitioned": partitioned }))
            .await
            .map(drop)
    }

    async fn ispn_state(&self, site: &str) -> anyhow::Result<Value> {
        let url = format!("{}/state", self.info().sites[site].control_url);
        Ok(self.http.get(&url).send().await?.json().await?)
    }

    async fn ispn_calls(&self, site: &str, operation: &str) -> anyhow::Result<u64> {
        let url = format!("{}/calls", self.info().sites[site].control_url);
        let calls: Value = self.http.get(&url).send().await?.json().await?;
        Ok(calls["by_operation"][operation].as_u64().unwrap_or(0))
    }

    /// What the Global Accelerator emulator counted of `operation`.
    async fn ga_calls(&self, operation: &str) -> anyhow::Result<u64> {
        let url = format!(
            "{}/_sandbox/calls",
            self.info().globalaccelerator_endpoint_url
        );
        let calls: Value = self.http.get(&url).send().await?.json().await?;
        Ok(calls["by_operation"][operation].as_u64().unwrap_or(0))
    }

    /// The sample alert, aimed at this sandbox's accelerator, posted to the fence function's
    /// Function URL with the webhook credentials, as Alertmanager posts it.
    async fn fence_site_b(&self) -> anyhow::Result<()> {
        let path = workspace::root().join("events/fence/site-b-offline-reported-by-site-a.json");
        let sample = std::fs::read_to_string(&path)?;
        let alert: Value = serde_json::from_str(&sample)?;
        let body = sample.replace(
            alert["commonLabels"]["accelerator"]
                .as_str()
                .context("the sample has an accelerator label")?,
            &self.info().accelerator_dns,
        );
        let url = self
            .info()
            .fence
            .function_url
            .clone()
            .context("the sandbox runs the fence function")?;
        let response = self
            .http
            .post(url)
            .basic_auth(&self.info().fence.user, Some(&self.info().fence.password))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        ensure!(status.is_success(), "the fence answered {status}: {text}");
        Ok(())
    }

    /// Each group's (site, weight), from the accelerator.
    async fn endpoints(&self) -> anyhow::Result<Vec<Vec<(String, i32)>>> {
        let topology = self.ctx.observe().await?.topology;
        Ok(topology
            .groups
            .iter()
            .map(|g| {
                g.endpoints
                    .iter()
                    .map(|e| {
                        (
                            e.site.as_ref().map(ToString::to_string).unwrap_or_default(),
                            e.weight.unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .collect())
    }

    /// The decision record of the split-brain between the two sites, and its standing now.
    async fn decision(&self) -> anyhow::Result<Option<(DecisionRecord, Standing)>> {
        let observed = self.ctx.observe().await?;
        ensure!(
            matches!(observed.decisions, ops::site::model::Decisions::Read { .. }),
            "the decision records were not read: {:?}",
            observed.decisions
        );
        Ok(observed
            .decision()
            .map(|r| (r.clone(), observed.standing(r))))
    }

    /// A Global Accelerator client of the sandbox's emulator, to reshape its topology.
    async fn accelerator_api(&self) -> aws_sdk_globalaccelerator::Client {
        let config = ops::aws::load(
            &ops::aws::AwsArgs::default(),
            Some(self.info().globalaccelerator_endpoint_url.clone()),
            ga::API_REGION.to_owned(),
        )
        .await;
        aws_sdk_globalaccelerator::Client::new(&config)
    }

    /// `site history` as an operator runs it (the table printed), and what it read.
    async fn history(&self) -> anyhow::Result<History> {
        println!("---- site history");
        ops::site::history::run(&HistoryArgs {
            target: Target {
                config: self.config.clone(),
                aws: ops::aws::AwsArgs::default(),
            },
            limit: None,
            since: None,
            json: false,
        })
        .await
    }

    async fn status_verdict(&self, state: &str) -> anyhow::Result<Verdict> {
        println!("---- site status: {state}");
        let observed = ops::site::status(&self.ctx).await?;
        Ok(verdict(&observed))
    }
}

fn is_fenced(v: &Verdict, out: &str, in_sync: bool) -> bool {
    matches!(v, Verdict::Fenced { out: o, problems, .. } if o.as_str() == out && problems.is_empty() == in_sync)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_recovery_after_a_fence() -> anyhow::Result<()> {
    let scene = Scene::start("recovery", Duration::from_millis(300)).await?;
    let result = recovery(&scene).await;
    scene.stop().await;
    result
}

async fn recovery(scene: &Scene) -> anyhow::Result<()> {
    let (a, b) = (site("site-a"), site("site-b"));
    let v = scene.status_verdict("seeded").await?;
    ensure!(v == Verdict::Healthy, "seeded: {v}");

    scene.partition(true).await?;
    let v = scene
        .status_verdict("partitioned, before the fence")
        .await?;
    ensure!(matches!(v, Verdict::Split { .. }), "partitioned: {v}");

    scene.fence_site_b().await?;
    let v = scene.status_verdict("fenced, still partitioned").await?;
    ensure!(is_fenced(&v, "site-b", false), "after the fence: {v}");
    ensure!(
        matches!(&v, Verdict::Fenced { problems, .. } if problems.iter().any(|p| matches!(p, Problem::LinkDown { .. }))),
        "the verdict names the link: {v}"
    );
    // The fence is in the history: who decided, what it did, how long it took, standing.
    let history = scene.history().await?;
    let [fence] = history.decisions.as_slice() else {
        bail!("one decision after one fence: {history:?}");
    };
    ensure!(
        fence.survivor == a
            && fence.loser == b
            && fence.reporters == [a.clone()]
            && fence.mode == "enforce"
            && fence.state == "stands",
        "{fence:?}"
    );
    ensure!(
        fence.steps.iter().any(|s| s == "removed 1 endpoint(s)")
            && fence
                .steps
                .iter()
                .any(|s| s.starts_with("site-a's backup to site-b offline")),
        "the steps the fence did: {:?}",
        fence.steps
    );
    ensure!(
        fence.time_to_complete_ms.is_some_and(|ms| ms < 60_000),
        "the time to complete: {fence:?}"
    );
    // Alertmanager's resend carries the decision out again: still one decision, its first
    // completion kept.
    scene.fence_site_b().await?;
    let again = scene.history().await?;
    ensure!(
        again.decisions.len() == 1
            && again.decisions[0].completed_at_ms == fence.completed_at_ms
            && again.decisions[0].steps == fence.steps,
        "{again:?}"
    );

    // Sync while the link is still cut: refused before anything changes.
    let endpoints_before = scene.endpoints().await?;
    let (adds, removes) = (
        scene.ga_calls("AddEndpoints").await?,
        scene.ga_calls("RemoveEndpoints").await?,
    );
    let err = ops::site::sync(&scene.ctx, &a, &b, YES, waiting())
        .await
        .err()
        .context("sync while partitioned must fail")?;
    let message = format!("{err:#}");
    ensure!(
        message.contains("the cross-site link is down") && message.contains("nothing was changed"),
        "{message}"
    );
    ensure!(
        scene.endpoints().await? == endpoints_before,
        "the GA changed"
    );
    ensure!(
        scene.ga_calls("AddEndpoints").await? == adds
            && scene.ga_calls("RemoveEndpoints").await? == removes,
        "sync called the Global Accelerator"
    );
    for (site, operation) in [
        ("site-b", "take-offline"),
        ("site-b", "cache-clear"),
        ("site-a", "start-push-state"),
    ] {
        ensure!(
            scene.ispn_calls(site, operation).await? == 0,
            "{site} got {operation}"
        );
    }

    scene.partition(false).await?;
    let v = scene.status_verdict("fenced, link healed").await?;
    ensure!(is_fenced(&v, "site-b", false), "healed: {v}");

    // No terminal and no --yes: refused; --dry-run: shown only.
    let err = ops::site::sync(&scene.ctx, &a, &b, ASK, waiting())
        .await
        .err()
        .context("sync without --yes and without a terminal must refuse")?;
    ensure!(
        format!("{err:#}").contains("standard input is not a terminal"),
        "{err:#}"
    );
    let dry = ops::site::sync(&scene.ctx, &a, &b, DRY_RUN, waiting()).await?;
    ensure!(matches!(dry, Outcome::DryRun(_)), "{dry:?}");
    ensure!(scene.ispn_calls("site-b", "cache-clear").await? == 0);

    let synced = ops::site::sync(&scene.ctx, &a, &b, YES, waiting()).await?;
    let Outcome::Applied(_, applied) = &synced else {
        bail!("sync applied nothing: {synced:?}");
    };
    ensure!(
        applied.pushed.len() == scene.ctx.caches.len()
            && applied.pushed.values().all(|s| *s == PushState::Ok),
        "every cache pushed OK: {:?}",
        applied.pushed
    );
    let observed = scene.ctx.observe().await?;
    for state in &observed.sites {
        let replication = state
            .replication
            .as_ref()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        ensure!(
            replication.all_backups(&BackupState::Online),
            "{}: {:?}",
            state.name,
            replication.backups
        );
        ensure!(
            replication.push.values().all(|s| *s == PushState::Idle),
            "push status cleared: {:?}",
            replication.push
        );
    }
    ensure!(
        scene.ispn_calls("site-b", "cache-clear").await? == scene.ctx.caches.len() as u64,
        "site-b's caches were cleared once each"
    );
    let b_state = scene.ispn_state("site-b").await?;
    for cache in &scene.ctx.caches {
        ensure!(
            b_state["caches"][cache]["count"] == json!(100),
            "site-b's {cache} is site-a's copy: {}",
            b_state["caches"][cache]
        );
    }

    let again = ops::site::sync(&scene.ctx, &a, &b, YES, waiting()).await?;
    ensure!(
        again == Outcome::NothingToDo,
        "sync is idempotent: {again:?}"
    );
    let v = scene.status_verdict("synced, site-b still out").await?;
    ensure!(is_fenced(&v, "site-b", true), "synced: {v}");

    let online = ops::site::bring_online(&scene.ctx, &b, false, YES).await?;
    ensure!(matches!(online, Outcome::Applied(..)), "{online:?}");
    let endpoints = scene.endpoints().await?;
    ensure!(
        endpoints == vec![vec![("site-a".to_owned(), 128), ("site-b".to_owned(), 128)]],
        "{endpoints:?}"
    );
    let v = scene.status_verdict("site-b back online").await?;
    ensure!(v == Verdict::Healthy, "after bring-online: {v}");
    let (record, standing) = scene
        .decision()
        .await?
        .context("the fence recorded its decision")?;
    ensure!(
        record.loser == b && standing == Standing::Closed,
        "bring-online closes the decision that fenced site-b: {record:?}"
    );
    let history = scene.history().await?;
    ensure!(
        history.decisions.len() == 1
            && history.decisions[0].state == "closed"
            && history.decisions[0]
                .why
                .as_deref()
                .is_some_and(|w| w.contains(CLOSED_BY)),
        "the history shows the decision closed: {history:?}"
    );
    let again = ops::site::bring_online(&scene.ctx, &b, false, YES).await?;
    ensure!(
        again == Outcome::NothingToDo,
        "bring-online is idempotent: {again:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_that_ends_in_error_is_reported_and_a_rerun_finishes() -> anyhow::Result<()> {
    let scene = Scene::start("push-error", Duration::from_secs(2)).await?;
    let result = push_error(&scene).await;
    scene.stop().await;
    result
}

async fn push_error(scene: &Scene) -> anyhow::Result<()> {
    let (a, b) = (site("site-a"), site("site-b"));
    scene.fence_site_b().await?;
    let v = scene.status_verdict("fenced").await?;
    ensure!(is_fenced(&v, "site-b", false), "{v}");

    // Cut the link while the push runs: every cache ends in ERROR.
    let cut = async {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let state = scene.ispn_state("site-a").await?;
            if state["caches"]["work"]["push_state"] == json!("SENDING") {
                return scene.partition(true).await;
            }
            if Instant::now() > deadline {
                bail!("the push never started: {state}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let (synced, cut) = tokio::join!(ops::site::sync(&scene.ctx, &a, &b, YES, waiting()), cut);
    cut?;
    let message = format!(
        "{:#}",
        synced
            .err()
            .context("a push cut by a partition must fail")?
    );
    ensure!(
        message.contains("did not end OK for 4 of 4 caches")
            && message.contains("work")
            && message.contains("ERROR")
            && message.contains("cargo xtask site sync --from site-a --to site-b"),
        "{message}"
    );
    println!("---- site sync, link cut during the push:\n{message}");
    let v = scene.status_verdict("push ended in ERROR").await?;
    ensure!(is_fenced(&v, "site-b", false), "{v}");
    ensure!(
        scene.endpoints().await? == vec![vec![("site-a".to_owned(), 128)]],
        "site-b stays out"
    );
    let refused = ops::site::bring_online(&scene.ctx, &b, false, YES)
        .await
        .err()
        .context("bring-online must refuse while not in sync")?;
    ensure!(
        format!("{refused:#}").contains("the sites are not in sync"),
        "{refused:#}"
    );

    scene.partition(false).await?;
    let rerun = ops::site::sync(&scene.ctx, &a, &b, YES, waiting()).await?;
    ensure!(
        matches!(&rerun, Outcome::Applied(_, applied) if applied.pushed.values().all(|s| *s == PushState::Ok)),
        "{rerun:?}"
    );
    ensure!(matches!(
        ops::site::bring_online(&scene.ctx, &b, false, YES).await?,
        Outcome::Applied(..)
    ));

    // Chapter 16 on the way back: ask, dry-run, apply, idempotent, never the last endpoint.
    let asked = ops::site::take_offline(&scene.ctx, &b, ASK).await;
    ensure!(asked.is_err(), "take-offline without --yes must refuse");
    let dry = ops::site::take_offline(&scene.ctx, &b, DRY_RUN).await?;
    ensure!(matches!(dry, Outcome::DryRun(_)), "{dry:?}");
    ensure!(
        scene.endpoints().await?[0].len() == 2,
        "dry-run changed the GA"
    );
    ensure!(matches!(
        ops::site::take_offline(&scene.ctx, &b, YES).await?,
        Outcome::Applied(..)
    ));
    ensure!(scene.endpoints().await? == vec![vec![("site-a".to_owned(), 128)]]);
    ensure!(ops::site::take_offline(&scene.ctx, &b, YES).await? == Outcome::NothingToDo);
    let last = ops::site::take_offline(&scene.ctx, &a, YES)
        .await
        .err()
        .context("removing the last endpoint must be refused")?;
    ensure!(format!("{last:#}").contains("would leave"), "{last:#}");
    let v = scene
        .status_verdict("site-b taken offline for maintenance")
        .await?;
    ensure!(is_fenced(&v, "site-b", true), "{v}");

    route53_failback(scene).await
}

async fn route53_failback(scene: &Scene) -> anyhow::Result<()> {
    let id: HealthCheckId = scene.info().route53.health_check_id.parse()?;
    let config = ops::aws::load(
        &ops::aws::AwsArgs::default(),
        Some(scene.info().aws_endpoint_url.clone()),
        sandbox::world::ROUTE53_REGION.to_owned(),
    )
    .await;
    let client = aws_sdk_route53::Client::new(&config);
    route53::pin(&client, &id, route53::FAILED_OVER_PATH).await?;
    let args = |change| FailbackArgs {
        health_check_id: id.to_string(),
        force: false,
        target: Target {
            config: scene.config.clone(),
            aws: ops::aws::AwsArgs::default(),
        },
        change,
    };
    ensure!(failback::failback(&args(ASK)).await.is_err(), "asks first");
    ensure!(failback::failback(&args(DRY_RUN)).await?.is_none());
    ensure!(client.read(&id).await?.resource_path.as_deref() == Some(route53::FAILED_OVER_PATH));
    ensure!(failback::failback(&args(YES)).await?.is_some());
    ensure!(client.read(&id).await?.resource_path.as_deref() == Some(route53::ORIGINAL_PATH));
    ensure!(
        failback::failback(&args(YES)).await?.is_none(),
        "idempotent"
    );
    let mut other = args(YES);
    other.health_check_id = "0000-not-ours".to_owned();
    let refused = failback::failback(&other).await.err().context("not ours")?;
    ensure!(
        format!("{refused:#}").contains("is not one of route53.health_check_ids"),
        "{refused:#}"
    );
    Ok(())
}

/// One site per region, as the HA guide deploys across regions: in each of two listeners,
/// site-a's load balancer alone in one endpoint group and site-b's alone in an eu-west-1
/// group. The fence cannot remove site-b's endpoint (its group would have nothing left that
/// takes traffic), so it closes site-b's groups' dials; `bring-online` opens each to its dial
/// before the fence (from the decision record) and closes the record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bring_online_opens_the_dials_the_fence_closed_and_closes_its_decision()
-> anyhow::Result<()> {
    let scene = Scene::start("dials", Duration::from_millis(300)).await?;
    let result = per_region_dials(&scene).await;
    scene.stop().await;
    result
}

/// Each group's listener, region, dial and (site, weight), from the accelerator.
type GroupRow = (String, String, f32, Vec<(String, i32)>);

async fn groups(scene: &Scene) -> anyhow::Result<Vec<GroupRow>> {
    let topology = scene.ctx.observe().await?.topology;
    Ok(topology
        .groups
        .iter()
        .map(|g| {
            (
                g.listener_arn.clone(),
                g.region.clone(),
                g.traffic_dial.percentage(),
                g.endpoints
                    .iter()
                    .map(|e| {
                        (
                            e.site.as_ref().map(ToString::to_string).unwrap_or_default(),
                            e.weight.unwrap_or_default(),
                        )
                    })
                    .collect(),
            )
        })
        .collect())
}

/// The seeded accelerator (one listener, one eu-west-1 group with both sites) made into one
/// group per site in each of two listeners; site-b's group in the second listener at `dial`.
/// Returns site-b's two groups.
///
/// Both of the sandbox's load balancers are in eu-west-1 and the emulator, unlike Global
/// Accelerator, does not check an endpoint's region against its group's: site-a's goes into a
/// us-east-1 group. Only the returning site's region matters to `bring-online`, and site-b's
/// groups are in its own.
async fn one_site_per_region(scene: &Scene, dial: f32) -> anyhow::Result<[String; 2]> {
    let api = scene.accelerator_api().await;
    let seeded = scene
        .info()
        .endpoint_group_arns
        .first()
        .context("the sandbox seeds an endpoint group")?
        .clone();
    let first_listener = ga::listener_of(&seeded).to_owned();
    let a_lb = scene.info().sites["site-a"].endpoint_id.clone();
    let b_lb = scene.info().sites["site-b"].endpoint_id.clone();
    let endpoint = |id: &str| {
        EndpointConfiguration::builder()
            .endpoint_id(id)
            .weight(128)
            .client_ip_preservation_enabled(false)
            .build()
    };
    let group = |listener: String, region: &'static str, id: String| {
        let api = api.clone();
        let configuration = endpoint(&id);
        async move {
            let created = api
                .create_endpoint_group()
                .listener_arn(listener)
                .endpoint_group_region(region)
                .endpoint_configurations(configuration)
                .send()
                .await
                .context("CreateEndpointGroup")?;
            created
                .endpoint_group()
                .and_then(|g| g.endpoint_group_arn())
                .map(str::to_owned)
                .context("CreateEndpointGroup returned no ARN")
        }
    };

    api.remove_endpoints()
        .endpoint_group_arn(&seeded)
        .endpoint_identifiers(EndpointIdentifier::builder().endpoint_id(&a_lb).build()?)
        .send()
        .await
        .context("RemoveEndpoints")?;
    group(first_listener, "us-east-1", a_lb.clone()).await?;
    let second_listener = api
        .create_listener()
        .accelerator_arn(&scene.info().accelerator_arn)
        .protocol(Protocol::Tcp)
        .port_ranges(PortRange::builder().from_port(8443).to_port(8443).build())
        .send()
        .await
        .context("CreateListener")?
        .listener()
        .and_then(|l| l.listener_arn())
        .map(str::to_owned)
        .context("CreateListener returned no ARN")?;
    group(second_listener.clone(), "us-east-1", a_lb).await?;
    let b_second = group(second_listener, "eu-west-1", b_lb).await?;
    api.update_endpoint_group()
        .endpoint_group_arn(&b_second)
        .traffic_dial_percentage(dial)
        .send()
        .await
        .context("UpdateEndpointGroup")?;
    Ok([seeded, b_second])
}

async fn per_region_dials(scene: &Scene) -> anyhow::Result<()> {
    let (a, b) = (site("site-a"), site("site-b"));
    let b_groups = one_site_per_region(scene, 60.0).await?;
    let dials_of_b = |rows: &[GroupRow]| -> Vec<f32> {
        rows.iter()
            .filter(|(_, _, _, endpoints)| endpoints.iter().any(|(s, _)| s == "site-b"))
            .map(|(_, _, dial, _)| *dial)
            .collect()
    };
    let reshaped = groups(scene).await?;
    ensure!(
        reshaped.len() == 4
            && reshaped
                .iter()
                .all(|(_, _, _, endpoints)| endpoints.len() == 1),
        "one site per group: {reshaped:?}"
    );
    ensure!(dials_of_b(&reshaped) == vec![100.0, 60.0], "{reshaped:?}");
    let v = scene.status_verdict("one site per region").await?;
    ensure!(v == Verdict::Healthy, "one group per site is healthy: {v}");
    ensure!(scene.decision().await?.is_none(), "no decision yet");

    scene.fence_site_b().await?;
    let fenced = groups(scene).await?;
    ensure!(
        dials_of_b(&fenced) == vec![0.0, 0.0],
        "the fence closes site-b's dials: {fenced:?}"
    );
    ensure!(
        fenced
            .iter()
            .map(|(_, _, _, endpoints)| endpoints.len())
            .sum::<usize>()
            == 4,
        "the fence removes no endpoint: {fenced:?}"
    );
    let v = scene.status_verdict("fenced by its dials").await?;
    ensure!(is_fenced(&v, "site-b", false), "after the fence: {v}");
    let (record, standing) = scene
        .decision()
        .await?
        .context("the fence records its decision")?;
    ensure!(
        record.survivor == a && record.loser == b && standing == Standing::Stands,
        "{record:?} {standing:?}"
    );

    // Not in sync yet: bring-online refuses and changes nothing, the record included.
    let dials = scene.ga_calls("UpdateEndpointGroup").await?;
    let refused = ops::site::bring_online(&scene.ctx, &b, false, YES)
        .await
        .err()
        .context("bring-online must refuse while not in sync")?;
    ensure!(
        format!("{refused:#}").contains("the sites are not in sync"),
        "{refused:#}"
    );
    ensure!(scene.ga_calls("UpdateEndpointGroup").await? == dials);

    let synced = ops::site::sync(&scene.ctx, &a, &b, YES, waiting()).await?;
    ensure!(matches!(synced, Outcome::Applied(..)), "{synced:?}");
    let dry = ops::site::bring_online(&scene.ctx, &b, false, DRY_RUN).await?;
    let Outcome::DryRun(plan) = &dry else {
        bail!("--dry-run: {dry:?}");
    };
    let text = plan.to_string();
    for group in &b_groups {
        ensure!(
            text.contains(&format!("open the traffic dial of endpoint group {group}")),
            "{text}"
        );
    }
    ensure!(
        text.contains("to 60%, its dial before the fence")
            && text.contains(&format!("close decision {}", record.decision_id)),
        "{text}"
    );
    ensure!(
        scene.ga_calls("UpdateEndpointGroup").await? == dials,
        "dry-run changed the GA"
    );

    let adds = scene.ga_calls("AddEndpoints").await?;
    let online = ops::site::bring_online(&scene.ctx, &b, false, YES).await?;
    ensure!(matches!(online, Outcome::Applied(..)), "{online:?}");
    let back = groups(scene).await?;
    ensure!(
        dials_of_b(&back) == vec![100.0, 60.0],
        "each dial as before the fence: {back:?}"
    );
    ensure!(
        scene.ga_calls("AddEndpoints").await? == adds,
        "site-b's endpoints never left: nothing to add"
    );
    let (closed, standing) = scene
        .decision()
        .await?
        .context("the record stays, closed")?;
    ensure!(standing == Standing::Closed, "{closed:?}");
    ensure!(
        closed.decision_id == record.decision_id
            && closed
                .closed
                .as_ref()
                .is_some_and(|c| c.by.starts_with(CLOSED_BY)),
        "{closed:?}"
    );
    let v = scene.status_verdict("site-b back, record closed").await?;
    ensure!(v == Verdict::Healthy, "after bring-online: {v}");

    let dials = scene.ga_calls("UpdateEndpointGroup").await?;
    let again = ops::site::bring_online(&scene.ctx, &b, false, YES).await?;
    ensure!(
        again == Outcome::NothingToDo,
        "bring-online is idempotent: {again:?}"
    );
    ensure!(scene.ga_calls("UpdateEndpointGroup").await? == dials);
    ensure!(
        scene.decision().await? == Some((closed, Standing::Closed)),
        "the closed record is left as it is"
    );
    Ok(())
}
