//! The Lambda host runs a real Runtime API client (a standard-library Python function, and
//! awslambdaric when a virtualenv has it) and behaves like Lambda towards its callers.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sandbox::lambda_host::{FunctionHost, FunctionSpec, HostError, HostStats};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The interpreter itself, not a shim: instances run with a clean environment.
fn python() -> PathBuf {
    let output = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("these tests need python3 on PATH");
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/echo_function.py")
}

fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sitefence-lambda-host-{test}-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn echo_spec(test: &str) -> FunctionSpec {
    FunctionSpec {
        name: "echo".to_string(),
        program: python(),
        args: vec![fixture().display().to_string()],
        cwd: Some(fixture().parent().expect("fixtures dir").to_path_buf()),
        env: vec![
            ("AWS_REGION".to_string(), "eu-west-1".to_string()),
            ("ECHO_SETTING".to_string(), "from-spec".to_string()),
        ],
        handler: "echo_function.handler".to_string(),
        instances: 1,
        reserved_concurrency: None,
        timeout: Duration::from_secs(10),
        memory_mb: 256,
        log_path: scratch_dir(test).join("logs/echo.log"),
        function_url: true,
        prestart: false,
        url_access: sandbox::lambda_host::UrlAccess::Unchecked,
    }
}

async fn start(spec: FunctionSpec) -> FunctionHost {
    FunctionHost::start(spec)
        .await
        .expect("function host starts")
}

struct Invoked {
    status: u16,
    function_error: Option<String>,
    request_id: Option<String>,
    body: Value,
}

async fn invoke(host: &FunctionHost, event: Value) -> Invoked {
    let response = reqwest::Client::new()
        .post(host.invoke_url())
        .json(&event)
        .send()
        .await
        .expect("invoke answers");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (function_error, request_id) = (header("x-amz-function-error"), header("x-amzn-requestid"));
    let status = response.status().as_u16();
    let body = response.json().await.expect("invoke answers JSON");
    Invoked {
        status,
        function_error,
        request_id,
        body,
    }
}

fn url(host: &FunctionHost, path_and_query: &str) -> String {
    let base = host
        .function_url()
        .expect("the spec asked for a Function URL");
    format!("{}{}", base.trim_end_matches('/'), path_and_query)
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn raw_invoke_round_trip_runs_the_function_with_lambdas_environment() {
    let host = start(echo_spec("raw")).await;
    let before = std::time::SystemTime::now();
    let invoked = invoke(&host, json!({"hello": "world", "n": 1})).await;

    assert_eq!(invoked.status, 200);
    assert_eq!(invoked.function_error, None);
    assert_eq!(invoked.body["event"], json!({"hello": "world", "n": 1}));
    let context = &invoked.body["context"];
    assert_eq!(
        context["request_id"].as_str(),
        invoked.request_id.as_deref()
    );
    assert_eq!(
        context["function_arn"],
        "arn:aws:lambda:eu-west-1:123456789012:function:echo"
    );
    assert!(
        context["trace_id"]
            .as_str()
            .is_some_and(|t| t.starts_with("Root=1-"))
    );
    let deadline = context["deadline_ms"].as_u64().expect("deadline");
    let now_ms = before
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    assert!(
        deadline > now_ms && deadline <= now_ms + 11_000,
        "deadline {deadline} vs now {now_ms}"
    );

    let env = &context["env"];
    assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "echo");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_VERSION"], "$LATEST");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
    assert_eq!(env["AWS_REGION"], "eu-west-1");
    assert_eq!(env["_HANDLER"], "echo_function.handler");
    assert_eq!(env["TZ"], ":UTC");
    assert_eq!(env["ECHO_SETTING"], "from-spec");
    assert_eq!(
        env["HOME"],
        Value::Null,
        "the host's environment must not leak in"
    );
    let task_root = std::fs::canonicalize(fixture().parent().expect("dir")).expect("canonical");
    assert_eq!(env["LAMBDA_TASK_ROOT"], task_root.display().to_string());
    host.shutdown().await;
}

#[tokio::test]
async fn invoke_api_rejects_what_lambda_rejects() {
    let host = start(echo_spec("reject")).await;
    let client = reqwest::Client::new();
    let not_json = client
        .post(host.invoke_url())
        .body("not json")
        .send()
        .await
        .expect("answers");
    assert_eq!(not_json.status(), 400);
    assert_eq!(
        not_json.headers()["x-amzn-errortype"],
        "InvalidRequestContentException"
    );

    let other = host
        .invoke_url()
        .replace("/functions/echo/", "/functions/other/");
    let missing = client.post(other).body("{}").send().await.expect("answers");
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["x-amzn-errortype"],
        "ResourceNotFoundException"
    );

    let big = vec![b' '; 6 * 1024 * 1024 + 1];
    let too_large = client
        .post(host.invoke_url())
        .body(big)
        .send()
        .await
        .expect("answers");
    assert_eq!(too_large.status(), 413);
    host.shutdown().await;
}

#[tokio::test]
async fn function_url_turns_a_json_request_into_a_payload_2_event_and_back() {
    let host = start(echo_spec("url-json")).await;
    let response = reqwest::Client::new()
        .post(url(&host, "/alerts/v2?x=1&x=2&name=Jane%20Doe"))
        .header("Content-Type", "application/json")
        .header("X-Multi", "one")
        .header("x-multi", "two")
        .header("X-Upper-Case", "Value")
        .header("Cookie", "session=abc; theme=dark")
        .header("User-Agent", "Alertmanager/0.25.0")
        .body(r#"{"status":"firing"}"#)
        .send()
        .await
        .expect("function URL answers");

    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["x-echo"], "yes");
    assert_eq!(response.headers()["content-type"], "application/json");
    let cookies: Vec<_> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(cookies, ["first=1; Max-Age=60", "second=2"]);
    let request_id = response.headers()["x-amzn-requestid"]
        .to_str()
        .expect("ascii")
        .to_string();
    let answer: Value = response.json().await.expect("JSON body");
    let event = &answer["event"];

    assert_eq!(event["version"], "2.0");
    assert_eq!(event["routeKey"], "$default");
    assert_eq!(event["rawPath"], "/alerts/v2");
    assert_eq!(event["rawQueryString"], "x=1&x=2&name=Jane%20Doe");
    assert_eq!(
        event["queryStringParameters"],
        json!({"x": "1,2", "name": "Jane Doe"})
    );
    assert_eq!(event["cookies"], json!(["session=abc", "theme=dark"]));
    assert_eq!(event["headers"]["x-multi"], "one,two");
    assert_eq!(event["headers"]["x-upper-case"], "Value");
    assert!(event["headers"].get("X-Upper-Case").is_none());
    assert_eq!(event["body"], r#"{"status":"firing"}"#);
    assert_eq!(event["isBase64Encoded"], false);
    let context = &event["requestContext"];
    assert_eq!(context["accountId"], "anonymous");
    assert_eq!(context["http"]["method"], "POST");
    assert_eq!(context["http"]["path"], "/alerts/v2");
    assert_eq!(context["http"]["protocol"], "HTTP/1.1");
    assert_eq!(context["http"]["sourceIp"], "127.0.0.1");
    assert_eq!(context["http"]["userAgent"], "Alertmanager/0.25.0");
    assert_eq!(context["stage"], "$default");
    assert_eq!(context["requestId"], request_id.as_str());
    assert_eq!(
        answer["context"]["request_id"],
        request_id.as_str(),
        "the event's requestId is the invocation's"
    );
    assert!(
        context["domainName"]
            .as_str()
            .is_some_and(|d| d.ends_with(".lambda-url.eu-west-1.on.aws"))
    );
    host.shutdown().await;
}

#[tokio::test]
async fn function_url_carries_binary_bodies_in_base64_both_ways() {
    let host = start(echo_spec("url-binary")).await;
    let client = reqwest::Client::new();
    let bytes: Vec<u8> = (0..=255u8).rev().collect();

    let echoed = client
        .post(url(&host, "/"))
        .header("Content-Type", "application/octet-stream")
        .body(bytes.clone())
        .send()
        .await
        .expect("answers");
    let event = echoed.json::<Value>().await.expect("JSON")["event"].clone();
    assert_eq!(event["isBase64Encoded"], true);
    assert_eq!(event["body"], BASE64.encode(&bytes));

    let round_trip = client
        .post(url(&host, "/bytes"))
        .header("Content-Type", "application/octet-stream")
        .body(bytes.clone())
        .send()
        .await
        .expect("answers");
    assert_eq!(round_trip.status(), 200);
    assert_eq!(
        round_trip.headers()["content-type"],
        "application/octet-stream"
    );
    assert_eq!(
        round_trip.bytes().await.expect("body").as_ref(),
        bytes.as_slice()
    );

    let plain = client
        .get(url(&host, "/plain"))
        .send()
        .await
        .expect("answers");
    assert_eq!(plain.status(), 200);
    assert_eq!(plain.headers()["content-type"], "application/json");
    assert_eq!(
        plain.json::<Value>().await.expect("JSON"),
        json!({"hello": "world"})
    );

    let big = vec![0u8; 6 * 1024 * 1024 + 1];
    let too_large = client
        .post(url(&host, "/"))
        .body(big)
        .send()
        .await
        .expect("answers");
    assert_eq!(too_large.status(), 413);
    host.shutdown().await;
}

#[tokio::test]
async fn function_errors_are_502_on_the_url_and_flagged_on_invoke() {
    let spec = echo_spec("errors");
    let log_path = spec.log_path.clone();
    let host = start(spec).await;

    let failed = reqwest::get(url(&host, "/fail")).await.expect("answers");
    assert_eq!(failed.status(), 502);
    assert_eq!(failed.text().await.expect("body"), "Internal Server Error");

    let invoked = invoke(&host, json!({"fail": "boom"})).await;
    assert_eq!(invoked.status, 200);
    assert_eq!(invoked.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(invoked.body["errorType"], "ValueError");
    assert_eq!(invoked.body["errorMessage"], "boom");

    eventually("the error is in the function log", || {
        std::fs::read_to_string(&log_path).is_ok_and(|log| log.contains("[ERROR] ValueError: boom"))
    })
    .await;
    let stats = host.stats();
    assert_eq!((stats.invocations, stats.errors), (2, 2));
    host.shutdown().await;
}

#[tokio::test]
async fn a_timeout_kills_the_instance_and_the_next_invocation_starts_cold() {
    let mut spec = echo_spec("timeout");
    spec.timeout = Duration::from_secs(1);
    spec.prestart = true;
    let host = start(spec).await;
    let first_pid = host.pids()[0];

    let started = Instant::now();
    let timed_out = invoke(&host, json!({"sleep_ms": 5000})).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(timed_out.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(timed_out.body["errorType"], "Sandbox.Timedout");
    assert!(
        timed_out.body["errorMessage"]
            .as_str()
            .is_some_and(|m| m.ends_with("Task timed out after 1.00 seconds")),
        "{}",
        timed_out.body
    );
    eventually("the timed-out instance is gone", || !pid_alive(first_pid)).await;

    let next = invoke(&host, json!({})).await;
    assert_eq!(next.function_error, None);
    let second_pid = next.body["pid"].as_u64().expect("pid") as u32;
    assert_ne!(second_pid, first_pid);
    assert_eq!(host.pids(), [second_pid]);

    let url_timeout = reqwest::get(url(&host, "/sleep?ms=5000"))
        .await
        .expect("answers");
    assert_eq!(url_timeout.status(), 502);

    let stats = host.stats();
    assert_eq!(stats.timeouts, 2);
    assert_eq!(stats.cold_starts, 2);
    assert_eq!(stats.instances[0].exit.as_deref(), Some("signal: killed"));
    host.shutdown().await;
}

#[tokio::test]
async fn a_crash_fails_the_invocation_and_the_next_one_starts_cold() {
    let host = start(echo_spec("crash")).await;
    let crashed = invoke(&host, json!({"exit": 3})).await;
    assert_eq!(crashed.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(crashed.body["errorType"], "Runtime.ExitError");
    assert!(
        crashed.body["errorMessage"]
            .as_str()
            .is_some_and(|m| m.ends_with("Runtime exited with error: exit status 3"))
    );

    let next = invoke(&host, json!({"again": true})).await;
    assert_eq!(next.function_error, None);
    assert_eq!(next.body["event"], json!({"again": true}));
    host.shutdown().await;
}

#[tokio::test]
async fn three_instances_run_three_slow_invocations_at_once() {
    let mut spec = echo_spec("parallel");
    spec.instances = 3;
    spec.prestart = true;
    let host = start(spec).await;
    assert_eq!(host.pids().len(), 3);

    let started = Instant::now();
    let (a, b, c) = tokio::join!(
        invoke(&host, json!({"sleep_ms": 1500})),
        invoke(&host, json!({"sleep_ms": 1500})),
        invoke(&host, json!({"sleep_ms": 1500})),
    );
    let elapsed = started.elapsed();
    // One after the other would take 4.5 s.
    assert!(elapsed < Duration::from_millis(3000), "took {elapsed:?}");
    let mut pids: Vec<u64> = [a, b, c]
        .iter()
        .map(|i| i.body["pid"].as_u64().expect("pid"))
        .collect();
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 3, "each invocation ran in its own instance");
    host.shutdown().await;
}

#[tokio::test]
async fn reserved_concurrency_throttles_instead_of_queueing() {
    let mut spec = echo_spec("throttle");
    spec.instances = 2;
    spec.reserved_concurrency = Some(1);
    spec.prestart = true;
    let host = start(spec).await;

    let slow = tokio::spawn(reqwest::get(url(&host, "/sleep?ms=1500")));
    eventually("the first request is in flight", || {
        host.stats().in_flight == 1
    })
    .await;

    let throttled = reqwest::get(url(&host, "/")).await.expect("answers");
    assert_eq!(throttled.status(), 429);
    assert_eq!(
        throttled.json::<Value>().await.expect("JSON"),
        json!({"Message": "Rate Exceeded."})
    );
    let throttled_invoke = reqwest::Client::new()
        .post(host.invoke_url())
        .body("{}")
        .send()
        .await
        .expect("answers");
    assert_eq!(throttled_invoke.status(), 429);
    assert_eq!(
        throttled_invoke.headers()["x-amzn-errortype"],
        "TooManyRequestsException"
    );

    let first = slow.await.expect("task").expect("answers");
    assert_eq!(first.status(), 200);
    // Once its runtime asks for the next event, the next request is admitted again.
    assert!(host.wait_idle(Duration::from_secs(5)).await);
    assert_eq!(
        reqwest::get(url(&host, "/plain"))
            .await
            .expect("answers")
            .status(),
        200
    );
    assert_eq!(host.stats().throttles, 2);
    host.shutdown().await;
}

/// As on Lambda (docs/aws-behaviours.md #91): the caller has its answer when the runtime posts
/// it, and the environment stays the invocation's, its unit of concurrency held, until the
/// runtime asks for the next event.
#[tokio::test]
async fn the_caller_has_its_answer_while_the_runtime_still_works_and_the_environment_stays_busy() {
    let mut spec = echo_spec("after-answer");
    spec.reserved_concurrency = Some(1);
    spec.prestart = true;
    let host = start(spec).await;
    assert_eq!(invoke(&host, json!({})).await.status, 200);
    assert!(host.wait_idle(Duration::from_secs(5)).await);

    let started = Instant::now();
    let answered = invoke(&host, json!({"after_answer_ms": 1500})).await;
    let answered_after = started.elapsed();
    assert_eq!(answered.status, 200);
    assert!(
        answered_after < Duration::from_millis(1000),
        "the answer waited for the work after it: {answered_after:?}"
    );
    assert_eq!(host.stats().in_flight, 1, "the environment is still busy");
    let throttled = reqwest::Client::new()
        .post(host.invoke_url())
        .body("{}")
        .send()
        .await
        .expect("answers");
    assert_eq!(throttled.status(), 429, "its unit of concurrency is held");

    assert!(host.wait_idle(Duration::from_secs(5)).await);
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert_eq!(invoke(&host, json!({})).await.status, 200);
    let stats = host.stats();
    assert_eq!((stats.cold_starts, stats.timeouts), (1, 0));
    host.shutdown().await;
}

#[tokio::test]
async fn work_after_the_answer_still_counts_against_the_timeout() {
    let mut spec = echo_spec("after-answer-timeout");
    spec.timeout = Duration::from_secs(1);
    spec.prestart = true;
    let host = start(spec).await;
    let answered = invoke(&host, json!({"after_answer_ms": 5000})).await;
    assert_eq!(answered.status, 200, "{}", answered.body);
    eventually("the timeout stops the environment", || {
        host.stats().timeouts == 1
    })
    .await;
    assert!(host.wait_idle(Duration::from_secs(5)).await);
    // The next invocation gets a new environment.
    assert_eq!(invoke(&host, json!({})).await.status, 200);
    assert_eq!(host.stats().cold_starts, 2);
    host.shutdown().await;
}

#[tokio::test]
async fn stats_report_the_cold_start_and_peak_memory() {
    let host = start(echo_spec("stats")).await;
    assert!(
        host.pids().is_empty(),
        "nothing runs before the first invocation"
    );
    invoke(&host, json!({})).await;
    invoke(&host, json!({})).await;

    let stats = host.stats();
    assert_eq!(stats.cold_starts, 1);
    assert_eq!(stats.invocations, 2);
    let instance = &stats.instances[0];
    assert!(instance.alive);
    assert_eq!(instance.invocations, 2);
    let init = instance.init_ms.expect("init measured");
    let cold_start = instance.cold_start_ms.expect("cold start measured");
    assert!(
        init > 0.0 && cold_start >= init,
        "init {init} ms, cold start {cold_start} ms"
    );
    assert!(
        instance.peak_rss_kb > 1000,
        "peak RSS {} KiB",
        instance.peak_rss_kb
    );

    let served: Value = reqwest::get(host.stats_url())
        .await
        .expect("answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(served["cold_starts"], 1);
    assert_eq!(served["instances"][0]["pid"], instance.pid);
    host.shutdown().await;
}

#[tokio::test]
async fn the_log_file_gets_every_line_the_function_prints() {
    let spec = echo_spec("log");
    let log_path = spec.log_path.clone();
    let host = start(spec).await;
    invoke(&host, json!({"log": "hello from the function"})).await;
    eventually("both streams reached the log", || {
        std::fs::read_to_string(&log_path).is_ok_and(|log| {
            log.contains("echo_function init pid=")
                && log.lines().any(|l| l == "stdout: hello from the function")
                && log.lines().any(|l| l == "stderr: hello from the function")
        })
    })
    .await;
    host.shutdown().await;
}

#[tokio::test]
async fn no_instance_outlives_shutdown_or_drop() {
    let mut spec = echo_spec("shutdown");
    spec.instances = 2;
    spec.prestart = true;
    let host = start(spec.clone()).await;
    let pids = host.pids();
    assert_eq!(pids.len(), 2);
    host.shutdown().await;
    for pid in pids {
        assert!(!pid_alive(pid), "pid {pid} survived shutdown");
    }

    let dropped = start(spec).await;
    let pids = dropped.pids();
    drop(dropped);
    eventually("dropped instances are gone", || {
        pids.iter().all(|&pid| !pid_alive(pid))
    })
    .await;
}

#[tokio::test]
async fn a_function_that_cannot_start_fails_its_invocation_and_a_warm_start() {
    let mut spec = echo_spec("broken");
    spec.args = vec![
        "-c".to_string(),
        "import sys; print('cannot init'); sys.exit(2)".to_string(),
    ];
    let host = start(spec.clone()).await;
    let invoked = invoke(&host, json!({})).await;
    assert_eq!(invoked.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(invoked.body["errorType"], "Runtime.ExitError");
    host.shutdown().await;

    spec.prestart = true;
    match FunctionHost::start(spec).await {
        Err(HostError::InitFailed { detail, .. }) => {
            assert!(detail.contains("exit status 2"), "{detail}")
        }
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("a function that exits during init must not start warm"),
    }
}

/// awslambdaric, the runtime AWS uses for Python, against this host: needs a virtualenv
/// with it at `$SITEFENCE_VENV` (the seed fidelity test covers it otherwise).
#[tokio::test]
async fn awslambdaric_runs_a_python_handler() {
    let Some(venv) = std::env::var_os("SITEFENCE_VENV").map(PathBuf::from) else {
        println!("SITEFENCE_VENV is not set: not checking awslambdaric here");
        return;
    };
    let python = venv.join("bin/python");
    let has_ric = std::process::Command::new(&python)
        .args(["-c", "import awslambdaric"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_ric {
        println!(
            "{} has no awslambdaric: not checking it here",
            venv.display()
        );
        return;
    }
    let code = scratch_dir("ric");
    std::fs::write(
        code.join("ric_handler.py"),
        "def handler(event, context):\n    print('ric handler ran')\n    if event.get('fail'):\n        raise KeyError('missing')\n    return {'echo': event, 'request_id': context.aws_request_id, 'remaining': context.get_remaining_time_in_millis()}\n",
    )
    .expect("write handler");
    let mut spec = echo_spec("ric");
    spec.program = python;
    spec.args = vec![
        "-m".to_string(),
        "awslambdaric".to_string(),
        "ric_handler.handler".to_string(),
    ];
    spec.cwd = Some(code);
    spec.handler = "ric_handler.handler".to_string();
    spec.prestart = true;
    let host = start(spec).await;

    let invoked = invoke(&host, json!({"a": 1})).await;
    assert_eq!(invoked.function_error, None, "{}", invoked.body);
    assert_eq!(invoked.body["echo"], json!({"a": 1}));
    assert_eq!(
        invoked.body["request_id"].as_str(),
        invoked.request_id.as_deref()
    );
    assert!(
        invoked.body["remaining"]
            .as_u64()
            .is_some_and(|ms| ms > 0 && ms <= 10_000)
    );

    let failed = invoke(&host, json!({"fail": true})).await;
    assert_eq!(failed.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(failed.body["errorType"], "KeyError");

    let stats: HostStats = host.stats();
    assert_eq!(
        stats.cold_starts, 1,
        "awslambdaric keeps one process across invocations"
    );
    host.shutdown().await;
}
