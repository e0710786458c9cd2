//! The Global Accelerator emulator driven by the AWS SDK for Rust (and by raw HTTP where the
//! wire format itself is the point), the way the fence function drives the real service.

use aws_sdk_globalaccelerator as ga;
use ga::config::retry::RetryConfig;
use ga::config::{BehaviorVersion, Credentials, Region};
use ga::error::ProvideErrorMetadata;
use ga::types::{
    EndpointConfiguration, EndpointDescription, EndpointIdentifier, HealthState, IpAddressType,
    PortRange, Protocol, Tag,
};
use sandbox::ga::{GaEmulator, GaSeed, SeededAccelerator};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const SITE_A: &str =
    "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/net/site-a/0a1b2c3d4e5f6a7b";
const SITE_B: &str =
    "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/net/site-b/1a2b3c4d5e6f7a8b";
const SITE_C: &str =
    "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/net/site-c/2a3b4c5d6e7f8a9b";

/// Retries off, so that every injected failure is visible to the test.
fn client(url: &str) -> ga::Client {
    client_with_retries(url, RetryConfig::disabled())
}

fn client_with_retries(url: &str, retry: RetryConfig) -> ga::Client {
    let config = ga::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-west-2"))
        .endpoint_url(url)
        .credentials_provider(Credentials::new(
            "AKIDSANDBOX",
            "sandbox",
            None,
            None,
            "test",
        ))
        .retry_config(retry)
        .build();
    ga::Client::from_conf(config)
}

async fn seeded(endpoint_ids: &[&str]) -> (GaEmulator, SeededAccelerator) {
    let emulator = GaEmulator::start().await.expect("the emulator starts");
    let seeded = emulator.seed(&GaSeed {
        name: "sitefence".to_owned(),
        endpoint_group_region: "eu-west-1".to_owned(),
        endpoint_ids: endpoint_ids.iter().map(|id| (*id).to_owned()).collect(),
    });
    (emulator, seeded)
}

async fn endpoints(client: &ga::Client, group_arn: &str) -> Vec<EndpointDescription> {
    let output = client
        .describe_endpoint_group()
        .endpoint_group_arn(group_arn)
        .send()
        .await
        .expect("describe endpoint group");
    let group = output.endpoint_group().expect("an endpoint group");
    group.endpoint_descriptions().to_vec()
}

fn ids(descriptions: &[EndpointDescription]) -> Vec<&str> {
    descriptions
        .iter()
        .filter_map(EndpointDescription::endpoint_id)
        .collect()
}

fn endpoint<'a>(descriptions: &'a [EndpointDescription], id: &str) -> &'a EndpointDescription {
    descriptions
        .iter()
        .find(|d| d.endpoint_id() == Some(id))
        .unwrap_or_else(|| panic!("endpoint {id} in {descriptions:?}"))
}

fn identifier(id: &str) -> EndpointIdentifier {
    EndpointIdentifier::builder()
        .endpoint_id(id)
        .build()
        .expect("an endpoint identifier")
}

fn configuration(id: &str, weight: Option<i32>) -> EndpointConfiguration {
    EndpointConfiguration::builder()
        .endpoint_id(id)
        .set_weight(weight)
        .build()
}

async fn control(emulator: &GaEmulator, path: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", emulator.url()))
        .json(&body)
        .send()
        .await
        .expect("control request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A raw awsJson1.1 call: status, `x-amzn-ErrorType`, body.
async fn raw_call(emulator: &GaEmulator, target: &str, body: &str) -> (u16, Option<String>, Value) {
    let response = reqwest::Client::new()
        .post(emulator.url())
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", target)
        .body(body.to_owned())
        .send()
        .await
        .expect("raw call");
    let status = response.status().as_u16();
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/x-amz-json-1.1")
    );
    let error_type = response
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (
        status,
        error_type,
        response.json().await.expect("a JSON body"),
    )
}

fn is_generated_name(name: &str, suffix: &str) -> bool {
    name.strip_suffix(suffix)
        .is_some_and(|label| label.len() == 16 && label.chars().all(|c| c.is_ascii_hexdigit()))
}

#[tokio::test]
async fn accelerators_paginate_across_pages() {
    let emulator = GaEmulator::start().await.expect("the emulator starts");
    let client = client(&emulator.url());
    let mut created = BTreeSet::new();
    for i in 0..25 {
        let output = client
            .create_accelerator()
            .name(format!("accelerator-{i}"))
            .send()
            .await
            .expect("create accelerator");
        let accelerator = output.accelerator().expect("an accelerator");
        created.insert(accelerator.accelerator_arn().expect("an ARN").to_owned());
    }

    let mut page_sizes = Vec::new();
    let mut listed = BTreeSet::new();
    let mut next_token = None;
    loop {
        let output = client
            .list_accelerators()
            .max_results(10)
            .set_next_token(next_token)
            .send()
            .await
            .expect("list accelerators");
        page_sizes.push(output.accelerators().len());
        listed.extend(
            output
                .accelerators()
                .iter()
                .filter_map(|a| a.accelerator_arn().map(str::to_owned)),
        );
        next_token = output.next_token().map(str::to_owned);
        if next_token.is_none() {
            break;
        }
    }
    assert_eq!(page_sizes, [10, 10, 5]);
    assert_eq!(listed, created);

    let default_page = client
        .list_accelerators()
        .send()
        .await
        .expect("list accelerators");
    assert_eq!(
        default_page.accelerators().len(),
        10,
        "AWS's default page size is 10"
    );
    assert!(default_page.next_token().is_some());

    let all = client
        .list_accelerators()
        .max_results(7)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .expect("paginate accelerators");
    let paginated: BTreeSet<String> = all
        .iter()
        .filter_map(|a| a.accelerator_arn().map(str::to_owned))
        .collect();
    assert_eq!(paginated, created);
}

#[tokio::test]
async fn accelerators_are_found_by_dns_name_or_dual_stack_dns_name() {
    let (emulator, seeded) = seeded(&[SITE_A, SITE_B]).await;
    let client = client(&emulator.url());
    assert!(
        is_generated_name(&seeded.dns_name, ".awsglobalaccelerator.com"),
        "{}",
        seeded.dns_name
    );
    assert!(
        is_generated_name(
            &seeded.dual_stack_dns_name,
            ".dualstack.awsglobalaccelerator.com"
        ),
        "{}",
        seeded.dual_stack_dns_name
    );

    let ipv4 = client
        .create_accelerator()
        .name("ipv4-only")
        .ip_address_type(IpAddressType::Ipv4)
        .send()
        .await
        .expect("create accelerator");
    let ipv4 = ipv4.accelerator().expect("an accelerator");
    assert!(is_generated_name(
        ipv4.dns_name().unwrap_or_default(),
        ".awsglobalaccelerator.com"
    ));
    assert_eq!(
        ipv4.dual_stack_dns_name(),
        None,
        "AWS names only dual-stack accelerators so"
    );
    assert_eq!(ipv4.status().map(|s| s.as_str()), Some("DEPLOYED"));
    assert_eq!(
        ipv4.ip_sets().first().map(|set| set.ip_addresses().len()),
        Some(2)
    );
    assert!(ipv4.created_time().is_some());

    let listed = client
        .list_accelerators()
        .send()
        .await
        .expect("list accelerators");
    let by_dual_stack = listed
        .accelerators()
        .iter()
        .find(|a| a.dual_stack_dns_name() == Some(seeded.dual_stack_dns_name.as_str()))
        .expect("the seeded accelerator by its dual-stack name");
    assert_eq!(
        by_dual_stack.accelerator_arn(),
        Some(seeded.accelerator_arn.as_str())
    );
    assert_eq!(by_dual_stack.dns_name(), Some(seeded.dns_name.as_str()));
    assert_eq!(
        by_dual_stack.ip_sets().len(),
        2,
        "IPv4 and IPv6 address sets"
    );
}

#[tokio::test]
async fn listeners_and_endpoint_groups_paginate() {
    let emulator = GaEmulator::start().await.expect("the emulator starts");
    let client = client(&emulator.url());
    let accelerator = client
        .create_accelerator()
        .name("paged")
        .send()
        .await
        .expect("create accelerator");
    let accelerator_arn = accelerator
        .accelerator()
        .and_then(|a| a.accelerator_arn())
        .expect("an ARN");
    let mut listener_arns = Vec::new();
    for port in [80, 443, 8443] {
        let listener = client
            .create_listener()
            .accelerator_arn(accelerator_arn)
            .protocol(Protocol::Tcp)
            .port_ranges(PortRange::builder().from_port(port).to_port(port).build())
            .send()
            .await
            .expect("create listener");
        listener_arns.push(
            listener
                .listener()
                .and_then(|l| l.listener_arn())
                .expect("an ARN")
                .to_owned(),
        );
    }
    let first = client
        .list_listeners()
        .accelerator_arn(accelerator_arn)
        .max_results(2)
        .send()
        .await
        .expect("list listeners");
    assert_eq!(first.listeners().len(), 2);
    let second = client
        .list_listeners()
        .accelerator_arn(accelerator_arn)
        .max_results(2)
        .set_next_token(first.next_token().map(str::to_owned))
        .send()
        .await
        .expect("list listeners");
    assert_eq!(second.listeners().len(), 1);
    assert_eq!(second.next_token(), None);
    let all = client
        .list_listeners()
        .accelerator_arn(accelerator_arn)
        .max_results(1)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .expect("paginate listeners");
    let paginated: Vec<&str> = all.iter().filter_map(|l| l.listener_arn()).collect();
    assert_eq!(paginated, listener_arns);

    let listener_arn = &listener_arns[1];
    let mut group_arns = BTreeSet::new();
    for region in ["eu-west-1", "us-east-1", "ap-southeast-2"] {
        let group = client
            .create_endpoint_group()
            .listener_arn(listener_arn)
            .endpoint_group_region(region)
            .send()
            .await
            .expect("create endpoint group");
        let group = group.endpoint_group().expect("an endpoint group");
        assert_eq!(
            group.health_check_port(),
            Some(443),
            "defaults to the listener's port"
        );
        assert_eq!(group.traffic_dial_percentage(), Some(100.0));
        group_arns.insert(group.endpoint_group_arn().expect("an ARN").to_owned());
    }
    let mut pages = 0;
    let mut listed = BTreeSet::new();
    let mut paginator = client
        .list_endpoint_groups()
        .listener_arn(listener_arn)
        .max_results(1)
        .into_paginator()
        .send();
    while let Some(page) = paginator.next().await {
        let page = page.expect("list endpoint groups");
        pages += 1;
        listed.extend(
            page.endpoint_groups()
                .iter()
                .filter_map(|g| g.endpoint_group_arn().map(str::to_owned)),
        );
    }
    assert_eq!(pages, 3);
    assert_eq!(listed, group_arns);
}

#[tokio::test]
async fn add_remove_and_update_endpoints_round_trip() {
    let (emulator, seeded) = seeded(&[SITE_A, SITE_B]).await;
    let client = client(&emulator.url());
    let group_arn = &seeded.endpoint_group_arns[0];

    let seeded_endpoints = endpoints(&client, group_arn).await;
    assert_eq!(ids(&seeded_endpoints), [SITE_A, SITE_B]);
    for description in &seeded_endpoints {
        assert_eq!(description.weight(), Some(128));
        assert_eq!(description.health_state(), Some(&HealthState::Healthy));
        assert_eq!(description.health_reason(), None);
        assert_eq!(
            description.client_ip_preservation_enabled(),
            Some(false),
            "NLBs do not preserve client IPs by default"
        );
    }

    let added = client
        .add_endpoints()
        .endpoint_group_arn(group_arn)
        .endpoint_configurations(configuration(SITE_C, None))
        .send()
        .await
        .expect("add endpoints");
    assert_eq!(added.endpoint_group_arn(), Some(group_arn.as_str()));
    assert_eq!(ids(added.endpoint_descriptions()), [SITE_C]);
    let new = endpoint(added.endpoint_descriptions(), SITE_C);
    assert_eq!(new.weight(), Some(128));
    assert_eq!(new.health_state(), Some(&HealthState::Initial));

    client
        .add_endpoints()
        .endpoint_group_arn(group_arn)
        .endpoint_configurations(configuration(SITE_A, Some(50)))
        .send()
        .await
        .expect("re-add an endpoint");
    let after_add = endpoints(&client, group_arn).await;
    assert_eq!(
        ids(&after_add),
        [SITE_A, SITE_B, SITE_C],
        "re-adding does not duplicate"
    );
    assert_eq!(endpoint(&after_add, SITE_A).weight(), Some(50));
    assert_eq!(
        endpoint(&after_add, SITE_A).health_state(),
        Some(&HealthState::Healthy)
    );

    client
        .remove_endpoints()
        .endpoint_group_arn(group_arn)
        .endpoint_identifiers(identifier(SITE_C))
        .send()
        .await
        .expect("remove endpoints");
    assert_eq!(ids(&endpoints(&client, group_arn).await), [SITE_A, SITE_B]);

    let updated = client
        .update_endpoint_group()
        .endpoint_group_arn(group_arn)
        .endpoint_configurations(configuration(SITE_B, Some(200)))
        .send()
        .await
        .expect("update endpoint group");
    let updated = updated
        .endpoint_group()
        .expect("an endpoint group")
        .endpoint_descriptions();
    assert_eq!(ids(updated), [SITE_B], "the whole list is replaced");
    assert_eq!(endpoint(updated, SITE_B).weight(), Some(200));
    assert_eq!(
        endpoint(updated, SITE_B).health_state(),
        Some(&HealthState::Healthy),
        "a kept endpoint keeps its health"
    );
}

#[tokio::test]
async fn removing_an_endpoint_not_in_the_group_changes_nothing() {
    let (emulator, seeded) = seeded(&[SITE_A, SITE_B]).await;
    let client = client(&emulator.url());
    let group_arn = &seeded.endpoint_group_arns[0];

    let error = client
        .remove_endpoints()
        .endpoint_group_arn(group_arn)
        .endpoint_identifiers(identifier(SITE_A))
        .endpoint_identifiers(identifier(SITE_C))
        .send()
        .await
        .expect_err("SITE_C is not in the group");
    // The service model does not list EndpointNotFoundException for RemoveEndpoints, so the
    // SDK reports it as an unmodeled error carrying the code.
    assert_eq!(error.code(), Some("EndpointNotFoundException"));
    assert_eq!(
        ids(&endpoints(&client, group_arn).await),
        [SITE_A, SITE_B],
        "all or nothing"
    );

    let error = client
        .remove_endpoints()
        .endpoint_group_arn(format!("{group_arn}0"))
        .endpoint_identifiers(identifier(SITE_A))
        .send()
        .await
        .expect_err("no such group");
    assert!(
        error
            .into_service_error()
            .is_endpoint_group_not_found_exception()
    );
}

#[tokio::test]
async fn transaction_in_progress_fault_fails_the_next_calls_then_clears() {
    let (emulator, seeded) = seeded(&[SITE_A, SITE_B]).await;
    let client = client(&emulator.url());
    let group_arn = &seeded.endpoint_group_arns[0];
    let (status, _) = control(
        &emulator,
        "/_sandbox/fault",
        json!({"operation": "RemoveEndpoints", "error": "TransactionInProgressException", "count": 2}),
    )
    .await;
    assert_eq!(status, 200);

    let remove = || {
        client
            .remove_endpoints()
            .endpoint_group_arn(group_arn)
            .endpoint_identifiers(identifier(SITE_B))
            .send()
    };
    for attempt in 1..=2 {
        let error = remove().await.expect_err("an injected failure");
        assert!(
            error
                .into_service_error()
                .is_transaction_in_progress_exception(),
            "attempt {attempt}"
        );
    }
    assert_eq!(
        ids(&endpoints(&client, group_arn).await),
        [SITE_A, SITE_B],
        "failed calls change nothing"
    );
    remove().await.expect("the third call succeeds");
    assert_eq!(ids(&endpoints(&client, group_arn).await), [SITE_A]);
    assert_eq!(emulator.calls().operation("RemoveEndpoints"), 3);
}

#[tokio::test]
async fn throttling_fault_is_seen_as_throttling_by_the_sdk() {
    let (emulator, _) = seeded(&[SITE_A, SITE_B]).await;
    let fault =
        json!({"operation": "ListAccelerators", "error": "ThrottlingException", "count": 2});

    control(&emulator, "/_sandbox/fault", fault.clone()).await;
    let error = client(&emulator.url())
        .list_accelerators()
        .send()
        .await
        .expect_err("throttled");
    assert_eq!(error.code(), Some("ThrottlingException"));
    assert_eq!(error.raw_response().map(|r| r.status().as_u16()), Some(400));

    // The SDK's standard retry strategy retries only what it classifies as retryable, so
    // success after two throttled attempts proves the error reads as throttling.
    control(&emulator, "/_sandbox/fault", fault).await;
    let before = emulator.calls().operation("ListAccelerators");
    let retrying = client_with_retries(
        &emulator.url(),
        RetryConfig::standard()
            .with_max_attempts(3)
            .with_initial_backoff(Duration::from_millis(1)),
    );
    retrying
        .list_accelerators()
        .send()
        .await
        .expect("succeeds on the third attempt");
    assert_eq!(emulator.calls().operation("ListAccelerators") - before, 3);

    // A client error is not retried: the classification is by code, not by status.
    control(
        &emulator,
        "/_sandbox/fault",
        json!({"operation": "ListAccelerators", "error": "InvalidArgumentException"}),
    )
    .await;
    let before = emulator.calls().operation("ListAccelerators");
    let error = retrying
        .list_accelerators()
        .send()
        .await
        .expect_err("not retried");
    assert_eq!(error.code(), Some("InvalidArgumentException"));
    assert_eq!(emulator.calls().operation("ListAccelerators") - before, 1);
}

#[tokio::test]
async fn server_fault_answers_500() {
    let (emulator, _) = seeded(&[SITE_A, SITE_B]).await;
    control(
        &emulator,
        "/_sandbox/fault",
        json!({"operation": "ListAccelerators", "error": "InternalServiceErrorException"}),
    )
    .await;
    let (status, error_type, body) = raw_call(
        &emulator,
        "GlobalAccelerator_V20180706.ListAccelerators",
        "{}",
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(error_type.as_deref(), Some("InternalServiceErrorException"));
    assert_eq!(body["__type"], "InternalServiceErrorException");
    let (status, _, _) = raw_call(
        &emulator,
        "GlobalAccelerator_V20180706.ListAccelerators",
        "{}",
    )
    .await;
    assert_eq!(status, 200, "count defaults to one call");
}

#[tokio::test]
async fn latency_delays_every_call_until_reset() {
    let (emulator, _) = seeded(&[SITE_A, SITE_B]).await;
    let client = client(&emulator.url());
    control(&emulator, "/_sandbox/fault", json!({"latency_ms": 400})).await;
    let started = Instant::now();
    client
        .list_accelerators()
        .send()
        .await
        .expect("list accelerators");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );

    control(&emulator, "/_sandbox/fault", json!({"reset": true})).await;
    let started = Instant::now();
    client
        .list_accelerators()
        .send()
        .await
        .expect("list accelerators");
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn health_control_shows_in_endpoint_descriptions() {
    let (emulator, seeded) = seeded(&[SITE_A, SITE_B]).await;
    let client = client(&emulator.url());
    let group_arn = &seeded.endpoint_group_arns[0];

    let (status, _) = control(
        &emulator,
        "/_sandbox/health",
        json!({"endpoint_id": SITE_B, "state": "UNHEALTHY"}),
    )
    .await;
    assert_eq!(status, 200);
    let described = endpoints(&client, group_arn).await;
    assert_eq!(
        endpoint(&described, SITE_B).health_state(),
        Some(&HealthState::Unhealthy)
    );
    assert!(endpoint(&described, SITE_B).health_reason().is_some());
    assert_eq!(
        endpoint(&described, SITE_A).health_state(),
        Some(&HealthState::Healthy)
    );

    // The imposed state follows the endpoint out of the group and back in.
    client
        .remove_endpoints()
        .endpoint_group_arn(group_arn)
        .endpoint_identifiers(identifier(SITE_B))
        .send()
        .await
        .expect("remove endpoints");
    let added = client
        .add_endpoints()
        .endpoint_group_arn(group_arn)
        .endpoint_configurations(configuration(SITE_B, None))
        .endpoint_configurations(configuration(SITE_C, None))
        .send()
        .await
        .expect("add endpoints");
    assert_eq!(
        endpoint(added.endpoint_descriptions(), SITE_B).health_state(),
        Some(&HealthState::Unhealthy)
    );
    assert_eq!(
        endpoint(added.endpoint_descriptions(), SITE_C).health_state(),
        Some(&HealthState::Initial)
    );

    // Endpoints added through the API pass their first health checks after a while.
    control(
        &emulator,
        "/_sandbox/health",
        json!({"initial_health_check_ms": 0}),
    )
    .await;
    assert_eq!(
        endpoint(&endpoints(&client, group_arn).await, SITE_C).health_state(),
        Some(&HealthState::Healthy)
    );
}

#[tokio::test]
async fn reset_restores_the_seeded_topology() {
    let (emulator, seeded) = seeded(&[SITE_A, SITE_B]).await;
    let client = client(&emulator.url());
    let group_arn = &seeded.endpoint_group_arns[0];
    client
        .remove_endpoints()
        .endpoint_group_arn(group_arn)
        .endpoint_identifiers(identifier(SITE_A))
        .send()
        .await
        .expect("remove endpoints");
    client
        .add_endpoints()
        .endpoint_group_arn(group_arn)
        .endpoint_configurations(configuration(SITE_B, Some(0)))
        .send()
        .await
        .expect("add endpoints");
    client
        .create_accelerator()
        .name("extra")
        .send()
        .await
        .expect("create accelerator");
    control(
        &emulator,
        "/_sandbox/health",
        json!({"endpoint_id": SITE_B, "state": "UNHEALTHY"}),
    )
    .await;
    control(
        &emulator,
        "/_sandbox/fault",
        json!({"operation": "ListAccelerators", "error": "ThrottlingException", "count": 5}),
    )
    .await;
    control(&emulator, "/_sandbox/fault", json!({"latency_ms": 400})).await;

    let (status, _) = control(&emulator, "/_sandbox/reset", json!({})).await;
    assert_eq!(status, 200);

    let started = Instant::now();
    let listed = client
        .list_accelerators()
        .send()
        .await
        .expect("no fault left");
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "no latency left"
    );
    let arns: Vec<&str> = listed
        .accelerators()
        .iter()
        .filter_map(|a| a.accelerator_arn())
        .collect();
    assert_eq!(arns, [seeded.accelerator_arn.as_str()]);
    let listeners = client
        .list_listeners()
        .accelerator_arn(&seeded.accelerator_arn)
        .send()
        .await
        .expect("list listeners");
    assert_eq!(
        listeners.listeners()[0].listener_arn(),
        Some(seeded.listener_arn.as_str())
    );
    let restored = endpoints(&client, group_arn).await;
    assert_eq!(ids(&restored), [SITE_A, SITE_B]);
    for description in &restored {
        assert_eq!(description.weight(), Some(128));
        assert_eq!(description.health_state(), Some(&HealthState::Healthy));
    }
}

#[tokio::test]
async fn concurrent_changes_never_corrupt_a_group() {
    let sites: Vec<String> = (0..10)
        .map(|i| format!("arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/net/site-{i}/{i:016x}"))
        .collect();
    let site_refs: Vec<&str> = sites.iter().map(String::as_str).collect();
    let (emulator, seeded) = seeded(&site_refs).await;
    let client = client(&emulator.url());
    let group_arn = seeded.endpoint_group_arns[0].clone();

    // Four reporters race to remove each endpoint: exactly one removal of each succeeds.
    let removals: Vec<_> = (0..40)
        .map(|k| {
            let (client, group_arn, id) =
                (client.clone(), group_arn.clone(), sites[k % 10].clone());
            tokio::spawn(async move {
                client
                    .remove_endpoints()
                    .endpoint_group_arn(group_arn)
                    .endpoint_identifiers(identifier(&id))
                    .send()
                    .await
            })
        })
        .collect();
    let mut removed = 0;
    for removal in removals {
        match removal.await.expect("task") {
            Ok(_) => removed += 1,
            Err(error) => assert_eq!(error.code(), Some("EndpointNotFoundException")),
        }
    }
    assert_eq!(removed, 10);
    assert!(endpoints(&client, &group_arn).await.is_empty());

    let additions: Vec<_> = (0..40)
        .map(|k| {
            let (client, group_arn, id) =
                (client.clone(), group_arn.clone(), sites[k % 10].clone());
            tokio::spawn(async move {
                client
                    .add_endpoints()
                    .endpoint_group_arn(group_arn)
                    .endpoint_configurations(configuration(&id, None))
                    .send()
                    .await
            })
        })
        .collect();
    for addition in additions {
        addition.await.expect("task").expect("add endpoints");
    }
    let after = endpoints(&client, &group_arn).await;
    let distinct: BTreeSet<&str> = ids(&after).into_iter().collect();
    assert_eq!(after.len(), 10, "no duplicates");
    assert_eq!(distinct, sites.iter().map(String::as_str).collect());
}

#[tokio::test]
async fn deletion_follows_the_services_rules() {
    let emulator = GaEmulator::start().await.expect("the emulator starts");
    let client = client(&emulator.url());
    let accelerator = client
        .create_accelerator()
        .name("short-lived")
        .send()
        .await
        .expect("create accelerator");
    let accelerator_arn = accelerator
        .accelerator()
        .and_then(|a| a.accelerator_arn())
        .expect("an ARN");
    let listener = client
        .create_listener()
        .accelerator_arn(accelerator_arn)
        .protocol(Protocol::Tcp)
        .port_ranges(PortRange::builder().from_port(443).to_port(443).build())
        .send()
        .await
        .expect("create listener");
    let listener_arn = listener
        .listener()
        .and_then(|l| l.listener_arn())
        .expect("an ARN");
    let overlapping = client
        .create_listener()
        .accelerator_arn(accelerator_arn)
        .protocol(Protocol::Tcp)
        .port_ranges(PortRange::builder().from_port(400).to_port(500).build())
        .send()
        .await
        .expect_err("ports overlap");
    assert!(
        overlapping
            .into_service_error()
            .is_invalid_port_range_exception()
    );
    let group = client
        .create_endpoint_group()
        .listener_arn(listener_arn)
        .endpoint_group_region("eu-west-1")
        .send()
        .await
        .expect("create endpoint group");
    let group_arn = group
        .endpoint_group()
        .and_then(|g| g.endpoint_group_arn())
        .expect("an ARN");
    let twin = client
        .create_endpoint_group()
        .listener_arn(listener_arn)
        .endpoint_group_region("eu-west-1")
        .send()
        .await
        .expect_err("one group per region");
    assert!(
        twin.into_service_error()
            .is_endpoint_group_already_exists_exception()
    );

    let enabled = client
        .delete_accelerator()
        .accelerator_arn(accelerator_arn)
        .send()
        .await
        .expect_err("enabled");
    assert!(
        enabled
            .into_service_error()
            .is_accelerator_not_disabled_exception()
    );
    client
        .update_accelerator()
        .accelerator_arn(accelerator_arn)
        .enabled(false)
        .send()
        .await
        .expect("disable accelerator");
    let with_listener = client
        .delete_accelerator()
        .accelerator_arn(accelerator_arn)
        .send()
        .await
        .expect_err("listener");
    assert!(
        with_listener
            .into_service_error()
            .is_associated_listener_found_exception()
    );
    let with_group = client
        .delete_listener()
        .listener_arn(listener_arn)
        .send()
        .await
        .expect_err("endpoint group");
    assert!(
        with_group
            .into_service_error()
            .is_associated_endpoint_group_found_exception()
    );

    client
        .delete_endpoint_group()
        .endpoint_group_arn(group_arn)
        .send()
        .await
        .expect("delete endpoint group");
    client
        .delete_listener()
        .listener_arn(listener_arn)
        .send()
        .await
        .expect("delete listener");
    client
        .delete_accelerator()
        .accelerator_arn(accelerator_arn)
        .send()
        .await
        .expect("delete accelerator");
    let gone = client
        .describe_accelerator()
        .accelerator_arn(accelerator_arn)
        .send()
        .await
        .expect_err("deleted");
    assert!(
        gone.into_service_error()
            .is_accelerator_not_found_exception()
    );
}

#[tokio::test]
async fn tags_round_trip() {
    let (emulator, seeded) = seeded(&[SITE_A, SITE_B]).await;
    let client = client(&emulator.url());
    let tag = |key: &str, value: &str| Tag::builder().key(key).value(value).build().expect("a tag");
    client
        .tag_resource()
        .resource_arn(&seeded.accelerator_arn)
        .tags(tag("namespace", "keycloak"))
        .send()
        .await
        .expect("tag resource");
    client
        .untag_resource()
        .resource_arn(&seeded.accelerator_arn)
        .tag_keys("Name")
        .send()
        .await
        .expect("untag resource");
    let tags = client
        .list_tags_for_resource()
        .resource_arn(&seeded.accelerator_arn)
        .send()
        .await
        .expect("list tags");
    assert_eq!(tags.tags(), [tag("namespace", "keycloak")]);
}

#[tokio::test]
async fn errors_and_descriptions_have_the_aws_json_shape() {
    let (emulator, seeded) = seeded(&[SITE_A, SITE_B]).await;

    let missing = format!(r#"{{"AcceleratorArn": "{}0"}}"#, seeded.accelerator_arn);
    let (status, error_type, body) = raw_call(
        &emulator,
        "GlobalAccelerator_V20180706.DescribeAccelerator",
        &missing,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(error_type.as_deref(), Some("AcceleratorNotFoundException"));
    assert_eq!(body["__type"], "AcceleratorNotFoundException");
    assert!(body["message"].is_string());

    let cases = [
        (
            "GlobalAccelerator_V20180706.Frobnicate",
            "{}",
            "UnknownOperationException",
        ),
        (
            "GlobalAccelerator_V20180706.ListAccelerators",
            "{not json",
            "SerializationException",
        ),
        (
            "GlobalAccelerator_V20180706.ListAccelerators",
            r#"{"MaxResults": "ten"}"#,
            "SerializationException",
        ),
        (
            "GlobalAccelerator_V20180706.ListAccelerators",
            r#"{"NextToken": "garbage"}"#,
            "InvalidNextTokenException",
        ),
        (
            "GlobalAccelerator_V20180706.ListAccelerators",
            r#"{"MaxResults": 101}"#,
            "InvalidArgumentException",
        ),
        (
            "GlobalAccelerator_V20180706.DescribeListener",
            "{}",
            "InvalidArgumentException",
        ),
        (
            "GlobalAccelerator_V20180706.DescribeListener",
            r#"{"ListenerArn": "nonsense"}"#,
            "InvalidArgumentException",
        ),
    ];
    for (target, body, code) in cases {
        let (status, error_type, answer) = raw_call(&emulator, target, body).await;
        assert_eq!(
            (status, answer["__type"].as_str()),
            (400, Some(code)),
            "{target} {body}"
        );
        assert_eq!(error_type.as_deref(), Some(code));
    }

    // The seed's Python sends descriptions back as configurations: a healthy one must carry
    // no member that a configuration lacks (boto3 validates them).
    let describe = format!(
        r#"{{"EndpointGroupArn": "{}"}}"#,
        seeded.endpoint_group_arns[0]
    );
    let (status, _, body) = raw_call(
        &emulator,
        "GlobalAccelerator_V20180706.DescribeEndpointGroup",
        &describe,
    )
    .await;
    assert_eq!(status, 200);
    let description = &body["EndpointGroup"]["EndpointDescriptions"][0];
    assert_eq!(
        description,
        &json!({"EndpointId": SITE_A, "Weight": 128, "HealthState": "HEALTHY", "ClientIPPreservationEnabled": false})
    );
}

#[tokio::test]
async fn controls_count_calls_and_reject_bad_requests() {
    let (emulator, seeded) = seeded(&[SITE_A, SITE_B]).await;
    let client = client(&emulator.url());
    client
        .list_accelerators()
        .send()
        .await
        .expect("list accelerators");
    client
        .list_accelerators()
        .send()
        .await
        .expect("list accelerators");
    client
        .list_listeners()
        .accelerator_arn(&seeded.accelerator_arn)
        .send()
        .await
        .expect("list listeners");
    let counts: Value = reqwest::get(format!("{}/_sandbox/calls", emulator.url()))
        .await
        .expect("calls")
        .json()
        .await
        .expect("JSON");
    assert_eq!(counts["total"], 3, "{counts}");
    assert_eq!(
        counts["by_operation"],
        json!({"ListAccelerators": 2, "ListListeners": 1})
    );
    // Each call's span, in the order they were made (the bench's timeline).
    let operations: Vec<&str> = counts["timeline"]
        .as_array()
        .map(|calls| {
            calls
                .iter()
                .filter_map(|c| c["operation"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        operations,
        ["ListAccelerators", "ListAccelerators", "ListListeners"]
    );
    control(&emulator, "/_sandbox/calls/reset", json!({})).await;
    assert_eq!(emulator.calls().total, 0);

    let state: Value = reqwest::get(format!("{}/_sandbox/state", emulator.url()))
        .await
        .expect("state")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        state["accelerators"][0]["Accelerator"]["AcceleratorArn"],
        seeded.accelerator_arn.as_str()
    );

    let bad_requests = [
        (
            "/_sandbox/fault",
            json!({"operation": "RemoveEndpoint", "error": "ThrottlingException"}),
            400,
        ),
        (
            "/_sandbox/fault",
            json!({"operation": "RemoveEndpoints"}),
            400,
        ),
        ("/_sandbox/fault", json!({"latency": 50}), 400),
        (
            "/_sandbox/health",
            json!({"endpoint_id": SITE_A, "state": "SICK"}),
            400,
        ),
        ("/_sandbox/health", json!({"endpoint_id": SITE_A}), 400),
        ("/_sandbox/nothing", json!({}), 404),
    ];
    for (path, body, expected) in bad_requests {
        let (status, answer) = control(&emulator, path, body.clone()).await;
        assert_eq!(status, expected, "{path} {body}");
        assert!(
            answer["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{answer}"
        );
    }
    let not_json = reqwest::Client::new()
        .post(format!("{}/_sandbox/fault", emulator.url()))
        .body("{oops")
        .send()
        .await
        .expect("control request");
    assert_eq!(not_json.status().as_u16(), 400);
    assert_eq!(emulator.calls().total, 0, "control calls are not AWS calls");
}

#[tokio::test]
async fn dropping_the_emulator_stops_it() {
    let emulator = GaEmulator::start().await.expect("the emulator starts");
    let url = emulator.url();
    reqwest::get(format!("{url}/_sandbox/calls"))
        .await
        .expect("serving");
    emulator.shutdown();
    let mut stopped = false;
    for _ in 0..50 {
        let fresh = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("client");
        if fresh
            .get(format!("{url}/_sandbox/calls"))
            .send()
            .await
            .is_err()
        {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(stopped, "still answering on {url}");
}
