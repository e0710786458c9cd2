//! The AWS SDK configuration every function starts from.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

/// How long connecting to an AWS endpoint may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one attempt of an AWS call may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an AWS call may take, the SDK's own retries included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(15);

/// Loads the standard AWS environment (credentials, `AWS_ENDPOINT_URL` and the per-service
/// `AWS_ENDPOINT_URL_<SERVICE>` overrides, retry settings), with `region` overriding the
/// environment's region when given. Each attempt is bounded, so that a stuck connection cannot
/// eat the function's whole time budget.
pub async fn sdk_config(region: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(
        TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .operation_attempt_timeout(ATTEMPT_TIMEOUT)
            .operation_timeout(OPERATION_TIMEOUT)
            .build(),
    );
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_owned()));
    }
    loader.load().await
}
