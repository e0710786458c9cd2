//! moto behind the counting AWS front, driven by the AWS SDK clients the functions use.
//!
//! Each test starts its own moto on a free port (the first one on a fresh machine installs moto
//! into the project virtualenv) and stops it when done.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_secretsmanager::config::Credentials;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use pytools::Venv;
use sandbox::aws_front::{AwsFront, CallCounts};
use sandbox::moto::MotoServer;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn log_path(test: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "moto-{test}-{}-{}.log",
        std::process::id(),
        fastrand::u32(..)
    ))
}

async fn moto_and_front(test: &str) -> Result<(MotoServer, AwsFront), Box<dyn std::error::Error>> {
    let moto = MotoServer::start(&Venv::locate(), &log_path(test)).await?;
    let front = AwsFront::start(moto.url()).await?;
    Ok((moto, front))
}

/// What a function gets: the front as its endpoint, dummy credentials, and (here) no SDK
/// retries, so that every injected failure is seen.
async fn sdk_config(front: &AwsFront, region: &'static str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(front.url())
        .region(Region::new(region))
        .credentials_provider(Credentials::new(
            "AKIDSANDBOX",
            "sandbox-not-a-secret",
            None,
            None,
            "sandbox",
        ))
        .retry_config(RetryConfig::disabled())
        .load()
        .await
}

async fn post_control(front: &AwsFront, body: &str) -> Result<reqwest::StatusCode, reqwest::Error> {
    let response = reqwest::Client::new()
        .post(format!("{}/_sandbox/fault", front.url()))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await?;
    Ok(response.status())
}

async fn create_secret(
    client: &aws_sdk_secretsmanager::Client,
    name: &str,
    value: &str,
) -> TestResult {
    client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await?;
    Ok(())
}

/// The launcher's two cached lookups exist in the pinned moto: were one renamed, moto would
/// still answer, only slower, and its log would say which (`moto_launcher.py`).
#[tokio::test]
async fn the_launcher_finds_both_lookups_it_caches() -> TestResult {
    let log = log_path("launcher");
    let moto = MotoServer::start(&Venv::locate(), &log).await?;
    let text = std::fs::read_to_string(&log)?;
    moto.shutdown();
    assert!(
        !text.contains("sitefence:"),
        "the launcher could not cache a lookup:\n{text}"
    );
    Ok(())
}

#[tokio::test]
async fn secret_round_trip_through_the_front_is_counted_by_service_and_operation() -> TestResult {
    let (_moto, front) = moto_and_front("count").await?;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk_config(&front, "eu-west-1").await);

    create_secret(&secrets, "keycloak-webhook", "s3cret-value").await?;
    let got = secrets
        .get_secret_value()
        .secret_id("keycloak-webhook")
        .send()
        .await?;
    assert_eq!(got.secret_string(), Some("s3cret-value"));
    secrets
        .get_secret_value()
        .secret_id("keycloak-webhook")
        .send()
        .await?;

    let counts = front.calls();
    assert_eq!(counts.total, 3);
    assert_eq!(counts.service("secretsmanager"), 3);
    assert_eq!(counts.operation("secretsmanager.CreateSecret"), 1);
    assert_eq!(counts.operation("secretsmanager.GetSecretValue"), 2);
    assert_eq!(counts.by_operation.len(), 2, "{counts:?}");

    // The bench reads the same numbers over HTTP.
    let http = reqwest::Client::new();
    let over_http: CallCounts = http
        .get(format!("{}/_sandbox/calls", front.url()))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(over_http, counts);

    let reset = http
        .post(format!("{}/_sandbox/calls/reset", front.url()))
        .send()
        .await?;
    assert!(reset.status().is_success());
    assert_eq!(front.calls(), CallCounts::default());
    Ok(())
}

#[tokio::test]
async fn injected_503_fails_the_next_two_get_secret_value_then_moto_answers() -> TestResult {
    let (_moto, front) = moto_and_front("fault").await?;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk_config(&front, "eu-west-1").await);
    create_secret(&secrets, "infinispan-user", "ispn-password").await?;

    let status = post_control(
        &front,
        r#"{"service": "secretsmanager", "operation": "GetSecretValue", "status": 503, "error": "ServiceUnavailable", "count": 2}"#,
    )
    .await?;
    assert_eq!(status, reqwest::StatusCode::OK);

    for attempt in 1..=2 {
        let outcome = secrets
            .get_secret_value()
            .secret_id("infinispan-user")
            .send()
            .await;
        let error = match outcome {
            Ok(_) => return Err(format!("attempt {attempt} succeeded despite the fault").into()),
            Err(error) => error,
        };
        assert_eq!(
            error.code(),
            Some("ServiceUnavailable"),
            "attempt {attempt}: {error:?}"
        );
        let raw_status = error.raw_response().map(|raw| raw.status().as_u16());
        assert_eq!(raw_status, Some(503));
    }
    let got = secrets
        .get_secret_value()
        .secret_id("infinispan-user")
        .send()
        .await?;
    assert_eq!(got.secret_string(), Some("ispn-password"));
    // A faulted call is still a call the function made.
    assert_eq!(front.calls().operation("secretsmanager.GetSecretValue"), 3);
    Ok(())
}

#[tokio::test]
async fn ec2_query_fault_is_parsed_by_the_sdk_as_that_error_code() -> TestResult {
    let (_moto, front) = moto_and_front("ec2-fault").await?;
    let ec2 = aws_sdk_ec2::Client::new(&sdk_config(&front, "eu-west-1").await);
    let status = post_control(&front, r#"{"service": "ec2", "status": 429, "count": 1}"#).await?;
    assert_eq!(status, reqwest::StatusCode::OK);

    let error = match ec2.describe_vpcs().send().await {
        Ok(_) => return Err("DescribeVpcs succeeded despite the fault".into()),
        Err(error) => error,
    };
    assert_eq!(error.code(), Some("RequestLimitExceeded"), "{error:?}");
    ec2.describe_vpcs().send().await?;
    Ok(())
}

#[tokio::test]
async fn latency_delays_every_call_until_reset() -> TestResult {
    let (_moto, front) = moto_and_front("latency").await?;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk_config(&front, "eu-west-1").await);
    create_secret(&secrets, "timed", "v").await?;

    let timed_get = || async {
        let started = Instant::now();
        secrets.get_secret_value().secret_id("timed").send().await?;
        Ok::<Duration, Box<dyn std::error::Error>>(started.elapsed())
    };
    let latency = Duration::from_millis(1000);
    let body = format!(r#"{{"latency_ms": {}}}"#, latency.as_millis());
    assert_eq!(post_control(&front, &body).await?, reqwest::StatusCode::OK);
    let delayed = timed_get().await?;
    assert!(delayed >= latency, "delayed call took {delayed:?}");

    assert_eq!(
        post_control(&front, r#"{"reset": true}"#).await?,
        reqwest::StatusCode::OK
    );
    let after_reset = timed_get().await?;
    assert!(
        after_reset < latency,
        "call after reset took {after_reset:?}"
    );
    Ok(())
}

#[tokio::test]
async fn ec2_and_route53_calls_are_named_by_operation() -> TestResult {
    let (_moto, front) = moto_and_front("names").await?;
    let ec2 = aws_sdk_ec2::Client::new(&sdk_config(&front, "eu-west-1").await);
    let route53 = aws_sdk_route53::Client::new(&sdk_config(&front, "us-east-1").await);

    let vpcs = ec2.describe_vpcs().send().await?;
    assert!(!vpcs.vpcs().is_empty(), "moto has a default VPC");

    let config = aws_sdk_route53::types::HealthCheckConfig::builder()
        .r#type(aws_sdk_route53::types::HealthCheckType::Https)
        .fully_qualified_domain_name("site-a.keycloak.example")
        .port(443)
        .resource_path("/lb-check")
        .build()?;
    let created = route53
        .create_health_check()
        .caller_reference(format!("sandbox-{}", fastrand::u64(..)))
        .health_check_config(config)
        .send()
        .await?;
    let id = created
        .health_check()
        .map(|check| check.id().to_string())
        .ok_or("no health check in the answer")?;
    let fetched = route53
        .get_health_check()
        .health_check_id(&id)
        .send()
        .await?;
    assert_eq!(
        fetched.health_check().map(|check| check.id()),
        Some(id.as_str())
    );
    route53
        .update_health_check()
        .health_check_id(&id)
        .resource_path("/lb-check-failed-over")
        .send()
        .await?;

    let counts = front.calls();
    assert_eq!(counts.operation("ec2.DescribeVpcs"), 1, "{counts:?}");
    assert_eq!(
        counts.operation("route53.CreateHealthCheck"),
        1,
        "{counts:?}"
    );
    assert_eq!(counts.operation("route53.GetHealthCheck"), 1, "{counts:?}");
    assert_eq!(
        counts.operation("route53.UpdateHealthCheck"),
        1,
        "{counts:?}"
    );
    assert_eq!(counts.total, 4);
    Ok(())
}

#[tokio::test]
async fn bad_control_json_is_refused_with_400() -> TestResult {
    // Nothing listens upstream: controls never reach moto.
    let front = AwsFront::start("http://127.0.0.1:9".to_string()).await?;
    for body in [
        "not json",
        r#"{"service": "secretsmanager"}"#,
        r#"{"service": "secretsmanager", "status": 200}"#,
        r#"{"latency": 20}"#,
        "{}",
    ] {
        assert_eq!(
            post_control(&front, body).await?,
            reqwest::StatusCode::BAD_REQUEST,
            "{body}"
        );
    }
    Ok(())
}

fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[tokio::test]
async fn two_motos_started_together_get_their_own_ports_and_drop_stops_both() -> TestResult {
    let venv = Venv::locate();
    let (log_a, log_b) = (log_path("pair-a"), log_path("pair-b"));
    let (a, b) = tokio::join!(
        MotoServer::start(&venv, &log_a),
        MotoServer::start(&venv, &log_b)
    );
    let (a, b) = (a?, b?);
    assert_ne!(a.url(), b.url());

    // Each answers on its own: a secret created in one is absent from the other.
    let front_a = AwsFront::start(a.url()).await?;
    let front_b = AwsFront::start(b.url()).await?;
    let secrets_a = aws_sdk_secretsmanager::Client::new(&sdk_config(&front_a, "eu-west-1").await);
    let secrets_b = aws_sdk_secretsmanager::Client::new(&sdk_config(&front_b, "eu-west-1").await);
    create_secret(&secrets_a, "only-in-a", "v").await?;
    let in_b = secrets_b
        .get_secret_value()
        .secret_id("only-in-a")
        .send()
        .await;
    assert!(in_b.is_err(), "moto b sees moto a's secret");

    let pids = [a.pid(), b.pid()];
    assert!(pids.iter().all(|pid| process_exists(*pid)));
    drop(a);
    b.shutdown();
    for pid in pids {
        assert!(!process_exists(pid), "moto {pid} still running");
    }
    Ok(())
}
