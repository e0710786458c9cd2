//! Lambda's advanced logging at TRACE (`AWS_LAMBDA_LOG_LEVEL=TRACE`, set from the console) must
//! not put a credential in the function's log: the real bootstrap binary, behind the sandbox's
//! Function URL front, is sent an authenticated report and unauthenticated ones, and its whole
//! stdout and stderr are searched for what each request carried.

mod support;

use base64::Engine;
use sandbox::harness::Sandbox;
use support::{FUNCTION, assert_site_b_fenced, send_sample, with_fence_env};

/// A password that is not the webhook's, sent by the unauthenticated request.
const WRONG_PASSWORD: &str = "not-the-webhook-password-9f2c";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_logs_hold_no_credential_nor_authorization_header() -> anyhow::Result<()> {
    // What Lambda sets when the function's application log level is TRACE (JSON log format).
    let env = [("AWS_LAMBDA_LOG_LEVEL", "TRACE")];
    with_fence_env("trace-logs", 1, &env, |sandbox: Sandbox| async move {
        let fence = sandbox.info.fence.clone();
        let body = support::notification(&sandbox, "site-b-offline-reported-by-site-a")?;

        let wrong = sandbox
            .post_function_url(FUNCTION, &body, Some((&fence.user, WRONG_PASSWORD)))
            .await?;
        assert_eq!(wrong.status, 401, "{}", wrong.body);
        let none = sandbox.post_function_url(FUNCTION, &body, None).await?;
        assert_eq!(none.status, 401, "{}", none.body);
        let right = send_sample(&sandbox, "site-b-offline-reported-by-site-a").await?;
        assert_eq!(right.status, 200, "{}", right.body);
        assert_site_b_fenced(&sandbox).await?;

        let log = sandbox.function_log(FUNCTION)?;
        // TRACE was on: without it this test would show nothing.
        anyhow::ensure!(
            log.lines().any(|line| line.contains(r#""level":"TRACE""#)),
            "no TRACE line in the function's log: AWS_LAMBDA_LOG_LEVEL was not honoured\n{log}"
        );
        let basic = |user: &str, password: &str| {
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        };
        let right_header = basic(&fence.user, &fence.password);
        let wrong_header = basic(&fence.user, WRONG_PASSWORD);
        for (what, needle) in [
            ("the webhook password", fence.password.as_str()),
            ("the wrong password", WRONG_PASSWORD),
            (
                "the authenticated request's Authorization value",
                &right_header,
            ),
            (
                "the unauthenticated request's Authorization value",
                &wrong_header,
            ),
        ] {
            let found: Vec<&str> = log.lines().filter(|line| line.contains(needle)).collect();
            anyhow::ensure!(
                found.is_empty(),
                "{what} is in the function's log: {found:?}"
            );
        }
        // No header named anywhere: the raw event and the wire would show it as a quoted key
        // (`"authorization":…`); the decision record's reasons name it unquoted.
        let headers: Vec<&str> = log
            .lines()
            .filter(|line| line.to_ascii_lowercase().contains("\"authorization\""))
            .collect();
        anyhow::ensure!(
            headers.is_empty(),
            "an Authorization header is in the function's log: {headers:?}"
        );
        Ok(())
    })
    .await
}
