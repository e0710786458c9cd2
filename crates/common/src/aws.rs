//! The AWS SDK configuration every function starts from.

use std::time::Duration;

use aws_config::environment::{
    EnvironmentVariableCredentialsProvider, EnvironmentVariableRegionProvider,
};
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
///
/// Load it once per process and derive other regions with `to_builder().region(..)`: each load
/// reads the profile files and builds the providers it needs.
pub async fn sdk_config(region: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        )
        .http_client(Counting(HTTPS_CLIENT.clone()));
    // Lambda gives a function its execution role's credentials and its region as environment
    // variables. The default chains look there first too, but only after building every other
    // provider they hold (an STS client for web identity, IMDS clients for credentials and for
    // the region): a third of a cold fence's CPU before its first call, by `perf`. Taken from
    // the environment directly when they are there; the chains otherwise (the operator's
    // machine, a profile).
    let set = |name: &str| std::env::var_os(name).is_some_and(|value| !value.is_empty());
    if set("AWS_ACCESS_KEY_ID") && (set("AWS_SECRET_ACCESS_KEY") || set("SECRET_ACCESS_KEY")) {
        loader = loader.credentials_provider(EnvironmentVariableCredentialsProvider::new());
    }
    match region {
        Some(region) => loader = loader.region(Region::new(region.to_owned())),
        None if set("AWS_REGION") || set("AWS_DEFAULT_REGION") => {
            loader = loader.region(EnvironmentVariableRegionProvider::new());
        }
        None => {}
    }
    loader.load().await
}

/// The five roots of Amazon Trust Services, which issues the certificate of every AWS service
/// endpoint. Amazon Trust Services recommends all five for a custom trust store
/// (<https://www.amazontrust.com/repository/>); the tests hold each to its published public key
/// hash.
pub const AMAZON_TRUST_SERVICES_ROOTS: &str = include_str!("aws/amazon-trust-services-roots.pem");

/// One HTTPS client for every SDK configuration of the process: its connectors (one per
/// timeout settings, so one here) and their TLS configuration are made once, not per
/// configuration.
static HTTPS_CLIENT: std::sync::LazyLock<SharedHttpClient> = std::sync::LazyLock::new(https_client);

/// The SDK's default HTTPS client as `default-https-client` builds it (hyper 1, rustls with
/// aws-lc), made here so that it can be wrapped and given its trust store. Unlike the default:
/// - it trusts Amazon Trust Services' roots, not the platform's store. The functions talk to AWS
///   endpoints only (the Infinispan client has its own CA), and loading the platform's store
///   read and parsed every certificate file of the system at each cold start: 6 to 10 ms before
///   the first call here, twice the parse with two SDK configurations, and about 0.4 MiB kept
///   (docs/aws-behaviours.md #90);
/// - it reads no proxy from the environment; Lambda sets none.
fn https_client() -> SharedHttpClient {
    let trust = tls::TrustStore::empty().with_pem_certificate(AMAZON_TRUST_SERVICES_ROOTS);
    let builder = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc));
    match tls::TlsContext::builder().with_trust_store(trust).build() {
        Ok(context) => builder.tls_context(context).build_https(),
        Err(err) => {
            // The builder refuses nothing today; should it ever, the platform's store still works.
            tracing::warn!(event = "trust_store_not_built", error = %err);
            builder.build_https()
        }
    }
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

#[cfg(test)]
mod tests {
    use super::AMAZON_TRUST_SERVICES_ROOTS;
    use base64::Engine as _;
    use sha2::{Digest, Sha256};

    /// SHA-256 of each root's SubjectPublicKeyInfo as Amazon Trust Services publishes it
    /// (<https://www.amazontrust.com/repository/>), in the file's order.
    const PUBLISHED_SPKI_SHA256: [(&str, &str); 5] = [
        (
            "Amazon Root CA 1",
            "fbe3018031f9586bcbf41727e417b7d1c45c2f47f93be372a17b96b50757d5a2",
        ),
        (
            "Amazon Root CA 2",
            "7f4296fc5b6a4e3b35d3c369623e364ab1af381d8fa7121533c9d6c633ea2461",
        ),
        (
            "Amazon Root CA 3",
            "36abc32656acfc645c61b71613c4bf21c787f5cabbee48348d58597803d7abc9",
        ),
        (
            "Amazon Root CA 4",
            "f7ecded5c66047d28ed6466b543c40e0743abe81d109254dcf845d4c2c7853c5",
        ),
        (
            "Starfield Services Root Certificate Authority - G2",
            "2b071c59a0a0ae76b0eadb2bad23bad4580b69c3601b630c2eaf0613afa83f92",
        ),
    ];

    fn pem_certificates(pem: &str) -> Vec<Vec<u8>> {
        let mut certificates = Vec::new();
        let mut body: Option<String> = None;
        for line in pem.lines() {
            match (line, &mut body) {
                ("-----BEGIN CERTIFICATE-----", None) => body = Some(String::new()),
                ("-----END CERTIFICATE-----", Some(text)) => {
                    let der = base64::engine::general_purpose::STANDARD
                        .decode(text.as_bytes())
                        .expect("base64 body");
                    certificates.push(der);
                    body = None;
                }
                (line, Some(text)) => text.push_str(line.trim()),
                (_, None) => {}
            }
        }
        assert!(body.is_none(), "a certificate is not closed");
        certificates
    }

    /// One DER element at `at`: (its tag, where its contents start, where it ends).
    fn element(der: &[u8], at: usize) -> (u8, usize, usize) {
        let tag = der[at];
        let first = der[at + 1];
        let (length, header) = if first < 0x80 {
            (usize::from(first), 2)
        } else {
            let octets = usize::from(first & 0x7f);
            let length = der[at + 2..at + 2 + octets]
                .iter()
                .fold(0usize, |acc, byte| (acc << 8) | usize::from(*byte));
            (length, 2 + octets)
        };
        (tag, at + header, at + header + length)
    }

    /// The whole SubjectPublicKeyInfo element of a certificate: the seventh element of its
    /// tbsCertificate (version, serial, signature, issuer, validity, subject, SPKI).
    fn subject_public_key_info(certificate: &[u8]) -> &[u8] {
        let (_, tbs_start, _) = element(certificate, 0);
        let (_, mut at, _) = element(certificate, tbs_start);
        for _ in 0..6 {
            at = element(certificate, at).2;
        }
        let (tag, _, end) = element(certificate, at);
        assert_eq!(tag, 0x30, "SubjectPublicKeyInfo is a SEQUENCE");
        &certificate[at..end]
    }

    #[test]
    fn the_trust_store_is_the_five_published_amazon_roots() {
        let certificates = pem_certificates(AMAZON_TRUST_SERVICES_ROOTS);
        assert_eq!(certificates.len(), PUBLISHED_SPKI_SHA256.len());
        for (certificate, (name, published)) in certificates.iter().zip(PUBLISHED_SPKI_SHA256) {
            let hash = Sha256::digest(subject_public_key_info(certificate));
            let hex: String = hash.iter().map(|byte| format!("{byte:02x}")).collect();
            assert_eq!(hex, published, "{name}");
        }
    }
}
