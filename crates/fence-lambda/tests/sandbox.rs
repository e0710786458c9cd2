//! The real bootstrap binary behind the sandbox's Function URL front, sent the Alertmanager
//! notifications of `events/fence/`, against the Global Accelerator and Infinispan emulators:
//! the outcomes an operator relies on, read back from the emulators. Every scenario ends by
//! checking that no password reached `DIR/logs/`.

mod support;

use std::time::Duration;

use fence_lambda::config::vars;
use sandbox::harness::Sandbox;
use serde_json::json;
use support::{
    FUNCTION, FenceState, assert_site_b_fenced, endpoint, send, send_sample, with_fence,
    with_fence_env,
};

const SITE_B_OFFLINE: &str = "site-b-offline-reported-by-site-a";
const SITE_A_OFFLINE: &str = "site-a-offline-reported-by-site-b";
const REMOVE_ENDPOINTS: &str = "RemoveEndpoints";
const DESCRIBE_TAGS: &str = "elasticloadbalancing.DescribeTags";
const LIST_ACCELERATORS: &str = "ListAccelerators";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_b_is_fenced_and_the_same_alert_again_changes_nothing() -> anyhow::Result<()> {
    with_fence("fenced", 1, |sandbox: Sandbox| async move {
        let answer = send_sample(&sandbox, SITE_B_OFFLINE).await?;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let body = answer.json()?;
        assert_eq!(body["alerts"][0]["survivor"], "site-a", "{body}");
        assert_eq!(body["alerts"][0]["fenced"], "site-b", "{body}");
        let fenced = assert_site_b_fenced(&sandbox).await?;
        assert_eq!(sandbox.ga_calls().await?.operation(REMOVE_ENDPOINTS), 1);
        // Both load balancers are configured (SITE_LOAD_BALANCERS): no tag was read. The
        // accelerator's ARN is configured (ACCELERATOR_ARN): it was never looked up.
        assert_eq!(sandbox.aws_calls().await?.operation(DESCRIBE_TAGS), 0);
        assert_eq!(sandbox.ga_calls().await?.operation(LIST_ACCELERATORS), 0);
        // The completion is written after the answer, by the same invocation: there once the
        // function has asked for its next event.
        sandbox.wait_idle(FUNCTION).await?;
        let split_brain = body["alerts"][0]["decision"]["split_brain"]
            .as_str()
            .expect("the answer names its decision");
        let entries = support::decision_store(&sandbox).await.entries().await?;
        let entry = entries
            .into_iter()
            .flatten()
            .find(|entry| entry.record.split_brain == split_brain)
            .expect("the decision is recorded");
        let completion = entry.completion.expect("the completion is recorded");
        assert!(
            completion.steps.iter().any(|step| step.contains("removed")),
            "{completion:?}"
        );

        // Alertmanager repeats a firing alert (repeat_interval) and retries: nothing moves.
        let again = send_sample(&sandbox, SITE_B_OFFLINE).await?;
        assert!((200..300).contains(&again.status), "{}", again.body);
        assert_eq!(FenceState::read(&sandbox).await?, fenced);
        assert_eq!(
            sandbox.ga_calls().await?.operation(REMOVE_ENDPOINTS),
            1,
            "the repeated alert removed something: {}",
            again.body
        );

        // Resolved never re-adds; another alert name is not ours.
        for name in ["resolved", "other-alertname"] {
            let answer = send_sample(&sandbox, name).await?;
            assert_eq!(answer.status, 200, "{name}: {}", answer.body);
            assert_eq!(answer.json()?["alerts"][0]["outcome"], "ignored", "{name}");
            assert_eq!(FenceState::read(&sandbox).await?, fenced, "{name}");
        }
        Ok(())
    })
    .await
}

/// A configured ARN of an accelerator since deleted (the DNS name now belongs to another): the
/// fence finds the accelerator by its DNS name and fences it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_accelerator_arn_that_is_gone_falls_back_to_the_dns_name() -> anyhow::Result<()>
{
    let env = [(
        vars::ACCELERATOR_ARN,
        "arn:aws:globalaccelerator::123456789012:accelerator/00000000-0000-0000-0000-000000000000",
    )];
    with_fence_env("stale-arn", 1, &env, |sandbox: Sandbox| async move {
        let answer = send_sample(&sandbox, SITE_B_OFFLINE).await?;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_site_b_fenced(&sandbox).await?;
        assert!(sandbox.ga_calls().await?.operation(LIST_ACCELERATORS) >= 1);
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_configured_load_balancers_sites_come_from_their_tags() -> anyhow::Result<()> {
    let env = [
        (vars::SITE_LOAD_BALANCERS, "{}"),
        (vars::ACCELERATOR_DNS_NAME, ""),
        (vars::ACCELERATOR_ARN, ""),
    ];
    with_fence_env("tags", 1, &env, |sandbox: Sandbox| async move {
        let answer = send_sample(&sandbox, SITE_B_OFFLINE).await?;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_site_b_fenced(&sandbox).await?;
        assert_eq!(sandbox.aws_calls().await?.operation(DESCRIBE_TAGS), 1);
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_the_front_base64_encodes_is_decoded_and_fenced() -> anyhow::Result<()> {
    with_fence("base64", 1, |sandbox: Sandbox| async move {
        // Without a Content-Type the Function URL hands the body over base64-encoded.
        let body = support::notification(&sandbox, "site-b-offline-reported-by-site-a.base64")?;
        let fence = &sandbox.info.fence;
        let url = sandbox
            .function(FUNCTION)?
            .function_url
            .clone()
            .unwrap_or_default();
        let response = sandbox
            .http()
            .post(url)
            .basic_auth(&fence.user, Some(&fence.password))
            .body(body)
            .send()
            .await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        assert_eq!(status, 200, "{text}");
        assert_site_b_fenced(&sandbox).await?;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_missing_credentials_are_401_and_change_nothing() -> anyhow::Result<()> {
    with_fence("auth", 1, |sandbox: Sandbox| async move {
        let before = FenceState::read(&sandbox).await?;
        let body = support::notification(&sandbox, SITE_B_OFFLINE)?;
        let user = sandbox.info.fence.user.clone();
        let password = sandbox.info.fence.password.clone();
        let rows = [
            ("right user, wrong password", Some((user.as_str(), "nope"))),
            ("username only", Some((user.as_str(), ""))),
            (
                "wrong user, right password",
                Some(("admin", password.as_str())),
            ),
            ("no credentials", None),
        ];
        for (name, credentials) in rows {
            let answer = sandbox
                .post_function_url(FUNCTION, &body, credentials)
                .await?;
            assert_eq!(answer.status, 401, "{name}: {}", answer.body);
        }
        let not_json = send(&sandbox, "this is not json").await?;
        assert_eq!(not_json.status, 400, "{}", not_json.body);
        assert_eq!(FenceState::read(&sandbox).await?, before);
        assert_eq!(sandbox.ga_calls().await?.operation(REMOVE_ENDPOINTS), 0);
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinispan_down_is_5xx_with_the_accelerator_fenced_and_the_retry_completes()
-> anyhow::Result<()> {
    with_fence("ispn-down", 1, |sandbox: Sandbox| async move {
        // site-b's load balancer is unhealthy, so site-a survives on health alone: no probe of
        // site-a's Infinispan decides the survivor, and its being down only fails the second step.
        sandbox
            .ga_control(
                "health",
                &json!({"endpoint_id": endpoint(&sandbox, "site-b"), "state": "UNHEALTHY"}),
            )
            .await?;
        sandbox
            .ispn_control("site-a", "down", &json!({"down": true}))
            .await?;
        let answer = send_sample(&sandbox, SITE_B_OFFLINE).await?;
        assert!(
            (500..600).contains(&answer.status),
            "Alertmanager must retry: {} {}",
            answer.status,
            answer.body
        );
        let state = sandbox.ga_group_endpoints().await?;
        assert_eq!(
            state,
            vec![vec![endpoint(&sandbox, "site-a")]],
            "Global Accelerator first"
        );

        sandbox
            .ispn_control("site-a", "down", &json!({"down": false}))
            .await?;
        // The backups are still online: the failed call changed nothing in Infinispan.
        assert!(
            FenceState::read(&sandbox)
                .await?
                .all_backups("site-a", "online")
        );
        // Alertmanager's retry finishes the fence, carrying out the decision the first
        // attempt recorded.
        let retry = send_sample(&sandbox, SITE_B_OFFLINE).await?;
        assert_eq!(retry.status, 200, "{}", retry.body);
        let answer = retry.json()?;
        assert_eq!(
            answer["alerts"][0]["decision"]["how"], "adopted",
            "{answer}"
        );
        assert_eq!(answer["alerts"][0]["survivor"], "site-a", "{answer}");
        let records = support::decision_store(&sandbox).await.list().await?;
        assert_eq!(records.len(), 1, "{records:?}");
        assert_eq!(records[0].loser.as_str(), "site-b");
        assert_site_b_fenced(&sandbox).await?;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_in_progress_twice_is_retried_and_fences() -> anyhow::Result<()> {
    with_fence("transaction", 1, |sandbox: Sandbox| async move {
        sandbox
            .ga_control(
                "fault",
                &json!({"operation": REMOVE_ENDPOINTS, "error": "TransactionInProgressException", "count": 2}),
            )
            .await?;
        let answer = send_sample(&sandbox, SITE_B_OFFLINE).await?;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_site_b_fenced(&sandbox).await?;
        assert_eq!(
            sandbox.ga_calls().await?.operation(REMOVE_ENDPOINTS),
            3,
            "two conflicts, then the removal"
        );
        Ok(())
    })
    .await
}

/// Rounds of the split-brain race; each starts from the seeded world.
const SPLIT_BRAIN_ROUNDS: usize = 30;
/// Each report waits up to this long before it is sent, so the two land in every order and
/// overlap by every amount.
const MAX_REPORT_DELAY_MS: u64 = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn split_brain_reports_at_the_same_moment_keep_one_site_always_the_same() -> anyhow::Result<()>
{
    with_fence("split-brain", 2, |sandbox: Sandbox| async move {
        let site_a = endpoint(&sandbox, "site-a");
        let by_a = support::notification(&sandbox, SITE_B_OFFLINE)?;
        let by_b = support::notification(&sandbox, SITE_A_OFFLINE)?;
        let mut survivors = std::collections::BTreeMap::<String, usize>::new();
        for round in 0..SPLIT_BRAIN_ROUNDS {
            sandbox.reset().await?;

            // Watch the group while the two reports race: it must never be empty.
            let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
            let watcher = {
                let sandbox = sandbox.clone();
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    loop {
                        seen.push(sandbox.ga_group_endpoints().await?);
                        if stopped.try_recv().is_ok() {
                            return anyhow::Ok(seen);
                        }
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                })
            };
            let report = |body: String| {
                let sandbox = sandbox.clone();
                let delay = Duration::from_millis(fastrand::u64(0..=MAX_REPORT_DELAY_MS));
                async move {
                    tokio::time::sleep(delay).await;
                    send(&sandbox, &body).await
                }
            };
            let (a, b) = tokio::join!(report(by_a.clone()), report(by_b.clone()));
            let _ = stop.send(());
            let seen = watcher.await??;
            let (a, b) = (a?, b?);

            for (reporter, answer) in [("site-a", &a), ("site-b", &b)] {
                assert!(
                    (200..300).contains(&answer.status),
                    "round {round}, report by {reporter}: {} {}",
                    answer.status,
                    answer.body
                );
                if let Some(survivor) = answer.json()?["alerts"][0]["survivor"].as_str() {
                    *survivors.entry(survivor.to_owned()).or_default() += 1;
                }
            }
            assert!(
                seen.iter().all(|groups| groups.iter().all(|g| !g.is_empty())),
                "round {round}: a group was emptied: {seen:?}"
            );
            let state = FenceState::read(&sandbox).await?;
            assert_eq!(
                state.groups,
                vec![vec![site_a.clone()]],
                "round {round}: site-a survives, site-b is fenced"
            );
            assert!(
                state.all_backups("site-a", "offline") && state.all_backups("site-b", "online"),
                "round {round}: only the survivor's backup to the fenced site goes offline: {state:?}"
            );
        }
        assert_eq!(
            survivors.keys().collect::<Vec<_>>(),
            vec!["site-a"],
            "{survivors:?}"
        );
        let stats = sandbox.host_stats(FUNCTION).await?;
        let per_instance: Vec<&serde_json::Value> = stats["instances"]
            .as_array()
            .map(|instances| instances.iter().map(|i| &i["invocations"]).collect())
            .unwrap_or_default();
        println!(
            "split brain: {SPLIT_BRAIN_ROUNDS} rounds, survivors {survivors:?}, invocations per instance {per_instance:?}"
        );
        assert_eq!(stats["throttles"], 0, "{stats}");
        Ok(())
    })
    .await
}

/// Defect (b): Infinispan answering take-offline with `{}` counted as "every cache ok", a 2xx
/// with every backup still online. Now each configured cache must answer ok.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_take_offline_answer_is_a_5xx_and_the_resend_finishes() -> anyhow::Result<()> {
    with_fence("empty-take-offline", 1, |sandbox: Sandbox| async move {
        for answer in ["empty_object", "no_content"] {
            sandbox
                .ispn_control(
                    "site-a",
                    "fault",
                    &json!({"operation": "take-offline", "answer": answer, "count": 1}),
                )
                .await?;
            let first = send_sample(&sandbox, SITE_B_OFFLINE).await?;
            assert!(
                (500..600).contains(&first.status),
                "{answer}: {} {}",
                first.status,
                first.body
            );
            assert!(
                FenceState::read(&sandbox)
                    .await?
                    .all_backups("site-a", "online"),
                "{answer}: the backups are still online"
            );
        }
        let resend = send_sample(&sandbox, SITE_B_OFFLINE).await?;
        assert_eq!(resend.status, 200, "{}", resend.body);
        assert_site_b_fenced(&sandbox).await?;
        Ok(())
    })
    .await
}

/// Defect (c): a probe refused as misconfigured (here: no health path on either API
/// generation) read as "the preferred site is down" and handed the split-brain to the other
/// site. Now it is a 5xx naming the cause, and nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misconfigured_probe_is_a_loud_5xx_not_a_verdict() -> anyhow::Result<()> {
    with_fence("probe-misconfigured", 1, |sandbox: Sandbox| async move {
        let before = FenceState::read(&sandbox).await?;
        sandbox
            .ispn_control(
                "site-a",
                "fault",
                &json!({"operation": "health", "status": 404, "count": 10}),
            )
            .await?;
        // Both sites healthy: a split-brain, decided by probing the preferred site-a.
        let answer = send_sample(&sandbox, SITE_A_OFFLINE).await?;
        assert!(
            (500..600).contains(&answer.status),
            "{} {}",
            answer.status,
            answer.body
        );
        let reason = answer.json()?["alerts"][0]["reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(reason.contains("misconfigured"), "{reason}");
        assert_eq!(FenceState::read(&sandbox).await?, before);
        assert!(
            support::decision_store(&sandbox)
                .await
                .list()
                .await?
                .is_empty()
        );
        Ok(())
    })
    .await
}

/// Defect (a): a reporter UNHEALTHY in the accelerator was skipped with a 2xx even when the
/// other site was already out, so under the FAIL backup policy (the survivor UNHEALTHY because
/// its writes fail while its backup is online) the backup never went offline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_reporter_still_gets_its_backup_offline() -> anyhow::Result<()> {
    with_fence("unhealthy-reporter", 1, |sandbox: Sandbox| async move {
        // site-b is out of the accelerator already (an earlier fence whose Infinispan step
        // never ran), and site-a is UNHEALTHY.
        sandbox
            .ga_control(
                "health",
                &json!({"endpoint_id": endpoint(&sandbox, "site-b"), "state": "UNHEALTHY"}),
            )
            .await?;
        sandbox
            .ispn_control("site-a", "down", &json!({"down": true}))
            .await?;
        let first = send_sample(&sandbox, SITE_B_OFFLINE).await?;
        assert!((500..600).contains(&first.status), "{}", first.body);
        sandbox
            .ispn_control("site-a", "down", &json!({"down": false}))
            .await?;
        sandbox
            .ga_control(
                "health",
                &json!({"endpoint_id": endpoint(&sandbox, "site-a"), "state": "UNHEALTHY"}),
            )
            .await?;
        let resend = send_sample(&sandbox, SITE_B_OFFLINE).await?;
        assert_eq!(resend.status, 200, "{}", resend.body);
        assert_site_b_fenced(&sandbox).await?;
        Ok(())
    })
    .await
}

/// A rotation of the webhook password takes effect at the first request that carries the new
/// one (the secret is re-read when a password is rejected, not after its 300 s time to live),
/// and the old password is refused from then on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_webhook_password_works_at_once_and_the_old_one_stops() -> anyhow::Result<()> {
    with_fence("rotation", 1, |sandbox: Sandbox| async move {
        let resolved = support::notification(&sandbox, "resolved")?;
        let fence = sandbox.info.fence.clone();
        let old = sandbox
            .post_function_url(FUNCTION, &resolved, Some((&fence.user, &fence.password)))
            .await?;
        assert_eq!(old.status, 200, "{}", old.body);

        let rotated = format!("{}-rotated", fence.password);
        let config = sandbox::world::sdk_config(&sandbox.info.moto_url, &sandbox.info.region).await;
        aws_sdk_secretsmanager::Client::new(&config)
            .put_secret_value()
            .secret_id(&fence.secret_name)
            .secret_string(&rotated)
            .send()
            .await?;

        let new = sandbox
            .post_function_url(FUNCTION, &resolved, Some((&fence.user, &rotated)))
            .await?;
        assert_eq!(new.status, 200, "the new password at once: {}", new.body);
        let stale = sandbox
            .post_function_url(FUNCTION, &resolved, Some((&fence.user, &fence.password)))
            .await?;
        assert_eq!(stale.status, 401, "the old password: {}", stale.body);
        Ok(())
    })
    .await
}

/// A listener added after the function started (its init read the accelerator with one
/// listener) is fenced by the next report: the warm read lists the listeners every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_added_while_the_function_runs_is_fenced_too() -> anyhow::Result<()> {
    with_fence("new-listener", 1, |sandbox: Sandbox| async move {
        // The function is up and warm, its topology read during init.
        let warm = send_sample(&sandbox, "resolved").await?;
        assert_eq!(warm.status, 200, "{}", warm.body);
        add_listener(&sandbox, "new").await?;
        let answer = send_sample(&sandbox, SITE_B_OFFLINE).await?;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_every_listener_fenced(&sandbox, 2).await
    })
    .await
}

/// The world starts the function ahead of its first request, as Lambda's proactive
/// initialisation does (docs/aws-behaviours.md #92): init's read of the accelerator is then
/// too old to stand in for the first fence's own, which sees a listener added since.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_added_after_init_is_fenced_by_the_first_report() -> anyhow::Result<()> {
    with_fence("listener-after-init", 1, |sandbox: Sandbox| async move {
        let stats = sandbox.host_stats(FUNCTION).await?;
        assert!(
            stats["instances"][0]["init_ms"].is_f64(),
            "init is over: {stats}"
        );
        add_listener(&sandbox, "after-init").await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let answer = send_sample(&sandbox, SITE_B_OFFLINE).await?;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(
            sandbox.host_stats(FUNCTION).await?["cold_starts"],
            1,
            "the fence ran in the environment initialised ahead"
        );
        assert_every_listener_fenced(&sandbox, 2).await
    })
    .await
}

/// Adds a TCP listener on port 80 with one group holding both sites' endpoints.
async fn add_listener(sandbox: &Sandbox, token: &str) -> anyhow::Result<()> {
    use aws_sdk_globalaccelerator::types::{EndpointConfiguration, PortRange, Protocol};

    let info = &sandbox.info;
    let config = sandbox::world::sdk_config(
        &info.globalaccelerator_endpoint_url,
        sandbox::world::ACCELERATOR_REGION,
    )
    .await;
    let ga = aws_sdk_globalaccelerator::Client::new(&config);
    let listener = ga
        .create_listener()
        .accelerator_arn(&info.accelerator_arn)
        .protocol(Protocol::Tcp)
        .port_ranges(PortRange::builder().from_port(80).to_port(80).build())
        .idempotency_token(format!("{token}-listener"))
        .send()
        .await?;
    let listener_arn = listener
        .listener()
        .and_then(|l| l.listener_arn())
        .unwrap_or_default()
        .to_owned();
    let mut group = ga
        .create_endpoint_group()
        .listener_arn(&listener_arn)
        .endpoint_group_region(sandbox::world::REGION)
        .idempotency_token(format!("{token}-group"));
    for site in ["site-a", "site-b"] {
        group = group.endpoint_configurations(
            EndpointConfiguration::builder()
                .endpoint_id(endpoint(sandbox, site))
                .weight(128)
                .build(),
        );
    }
    group.send().await?;
    Ok(())
}

/// The accelerator, read afresh, has `listeners` listeners and site-b fenced out of each.
async fn assert_every_listener_fenced(sandbox: &Sandbox, listeners: usize) -> anyhow::Result<()> {
    let info = &sandbox.info;
    let config = sandbox::world::sdk_config(
        &info.globalaccelerator_endpoint_url,
        sandbox::world::ACCELERATOR_REGION,
    )
    .await;
    let sites = ["site-a", "site-b"]
        .into_iter()
        .map(|s| {
            (
                endpoint(sandbox, s),
                common::site::SiteName::parse(s).expect("a site name"),
            )
        })
        .collect();
    let topology = aws_topology::globalaccelerator::GlobalAccelerator::new(&config)
        .with_known_sites(sites)
        .topology(&common::site::AcceleratorDns::parse(&info.accelerator_dns)?)
        .await?
        .expect("the sandbox's accelerator");
    assert_eq!(topology.listeners.len(), listeners, "{topology:?}");
    let violations = topology.check_fenced(
        &common::site::SiteName::parse("site-a")?,
        &common::site::SiteName::parse("site-b")?,
    );
    assert!(violations.is_empty(), "{violations:?}");
    Ok(())
}
