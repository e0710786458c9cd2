//! The AWS SDK configuration every function starts from.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::shared::IntoShared as _;

/// How long connecting to an AWS endpoint may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one attempt of an AWS call may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an AWS call may take, the SDK's own retries included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(15);

/// Loads the standard AWS environment (credentials, `AWS_ENDPOINT_URL` and the per-service
/// `AWS_ENDPOINT_URL_<SERVICE>` overrides, retry settings), with `region` overriding the
/// environment's region when given. Each attempt is bounded, so that a stuck connection cannot
/// eat the function's whole time budget. Every request its clients send is counted
/// ([`crate::metrics::count_remote_call`]).
pub async fn sdk_config(region: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        )
        .http_client(Counting(https_client()));
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_owned()));
    }
    loader.load().await
}

/// The SDK's default HTTPS client as `default-https-client` builds it (hyper 1, rustls with
/// aws-lc), made here so that it can be wrapped. Unlike the default it reads no proxy from the
/// environment; Lambda sets none.
fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .build_https()
}

/// An HTTP client that counts each request (each attempt: the SDK's retries are requests too)
/// for the invocation's metrics. Counting here, under every client made from [`sdk_config`],
/// counts what goes on the wire in every service without touching a call site; an interceptor
/// would have to be added to each client.
#[derive(Debug)]
struct Counting(SharedHttpClient);

impl HttpClient for Counting {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        CountingConnector(self.0.http_connector(settings, components)).into_shared()
    }

    fn connector_metadata(
        &self,
    ) -> Option<aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata> {
        self.0.connector_metadata()
    }
}

#[derive(Debug)]
struct CountingConnector(SharedHttpConnector);

impl HttpConnector for CountingConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        crate::metrics::count_remote_call();
        self.0.call(request)
    }
}
