//! Functions run from what was deployed: the configuration a function's host runs under is
//! read back from the sandbox's Lambda (moto), as the Lambda service would apply it, and kept
//! in step with it while the host runs.
//!
//! Read per function: `GetFunctionConfiguration` (environment, timeout, memory),
//! `GetFunctionConcurrency` (reserved concurrency), `GetFunctionUrlConfig` (auth type) and
//! `GetPolicy` (the resource policy the Function URL front evaluates). A change made in moto
//! afterwards (a redeploy, boto3, the AWS CLI) reaches the host within [`WATCH_INTERVAL`],
//! with no restart.

use crate::lambda_host::{Configuration, FunctionHost, Reconfigurer, UrlAccess};
use std::time::Duration;

/// How often a running host re-reads its function's configuration.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// Why a deployed function's configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{operation} {function}: {detail}")]
    Lambda {
        operation: &'static str,
        function: String,
        detail: String,
    },
}

fn lambda_error<E: std::error::Error + 'static>(
    operation: &'static str,
    function: &str,
    error: aws_sdk_lambda::error::SdkError<E>,
) -> ReadError {
    ReadError::Lambda {
        operation,
        function: function.to_string(),
        detail: aws_sdk_lambda::error::DisplayErrorContext(error).to_string(),
    }
}

/// The configuration of `function` as the Lambda API reports it now. `runtime_env` is what
/// Lambda itself sets in every environment (region, credentials, endpoints); the function's
/// own variables follow it.
pub async fn read_configuration(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    runtime_env: &[(String, String)],
) -> Result<Configuration, ReadError> {
    let (config, concurrency, url, policy) = tokio::join!(
        lambda
            .get_function_configuration()
            .function_name(function)
            .send(),
        lambda
            .get_function_concurrency()
            .function_name(function)
            .send(),
        lambda
            .get_function_url_config()
            .function_name(function)
            .send(),
        lambda.get_policy().function_name(function).send(),
    );
    let config = config.map_err(|e| lambda_error("GetFunctionConfiguration", function, e))?;
    let reserved_concurrency = concurrency
        .map_err(|e| lambda_error("GetFunctionConcurrency", function, e))?
        .reserved_concurrent_executions()
        .map(|n| usize::try_from(n).unwrap_or(0));
    let auth_type = match url {
        Ok(url) => Some(url.auth_type().as_str().to_string()),
        Err(e) if not_found(&e) => None,
        Err(e) => return Err(lambda_error("GetFunctionUrlConfig", function, e)),
    };
    let policy = match policy {
        Ok(policy) => policy
            .policy()
            .and_then(|text| serde_json::from_str(text).ok()),
        Err(e) if not_found(&e) => None,
        Err(e) => return Err(lambda_error("GetPolicy", function, e)),
    };
    let mut env = runtime_env.to_vec();
    if let Some(variables) = config.environment().and_then(|e| e.variables()) {
        let mut own: Vec<(String, String)> = variables
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        own.sort();
        env.extend(own);
    }
    Ok(Configuration {
        env,
        timeout: Duration::from_secs(
            config
                .timeout()
                .map_or(3, |t| u64::try_from(t).unwrap_or(3)),
        ),
        memory_mb: config
            .memory_size()
            .and_then(|m| u32::try_from(m).ok())
            .unwrap_or(128),
        reserved_concurrency,
        url_access: UrlAccess::Deployed { auth_type, policy },
    })
}

fn not_found<E>(error: &aws_sdk_lambda::error::SdkError<E>) -> bool {
    error
        .raw_response()
        .is_some_and(|r| r.status().as_u16() == 404)
}

/// Keeps `host` configured as moto says, until the host is gone. A read that fails leaves the
/// configuration as it was (moto restarting, a function being replaced) and is logged.
pub fn watch(
    host: &FunctionHost,
    lambda: aws_sdk_lambda::Client,
    function: String,
    runtime_env: Vec<(String, String)>,
) -> tokio::task::AbortHandle {
    let reconfigurer: Reconfigurer = host.reconfigurer();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(WATCH_INTERVAL).await;
            match read_configuration(&lambda, &function, &runtime_env).await {
                Ok(configuration) => {
                    if !reconfigurer.reconfigure(configuration) {
                        return;
                    }
                }
                Err(error) => {
                    tracing::warn!(%function, %error, "cannot re-read the deployed configuration");
                }
            }
        }
    })
    .abort_handle()
}
