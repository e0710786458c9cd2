//! [`HealthChecks`] over the Route 53 API.

use aws_sdk_route53::Client;
use aws_sdk_route53::config::http::HttpResponse;
use aws_sdk_route53::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_route53::operation::get_health_check::GetHealthCheckError;
use aws_sdk_route53::operation::update_health_check::UpdateHealthCheckError;

use super::*;
use crate::retry::SdkFailure;

impl HealthChecks for Client {
    async fn read(&self, id: &HealthCheckId) -> Result<HealthCheck, Route53Error> {
        let output = self
            .get_health_check()
            .health_check_id(id.as_str())
            .send()
            .await
            .map_err(|err| match err.as_service_error() {
                Some(GetHealthCheckError::NoSuchHealthCheck(_)) => {
                    Route53Error::NotFound(id.clone())
                }
                _ => classify("GetHealthCheck", &err),
            })?;
        let Some(found) = output.health_check() else {
            return Err(Route53Error::NotFound(id.clone()));
        };
        let config = found.health_check_config();
        Ok(HealthCheck {
            id: id.clone(),
            version: found.health_check_version(),
            kind: config
                .map(|c| c.r#type().as_str().to_owned())
                .unwrap_or_default(),
            resource_path: config.and_then(|c| c.resource_path()).map(str::to_owned),
            disabled: config.and_then(|c| c.disabled()).unwrap_or(false),
        })
    }

    async fn write_path(
        &self,
        id: &HealthCheckId,
        version: i64,
        path: &str,
    ) -> Result<(), Route53Error> {
        self.update_health_check()
            .health_check_id(id.as_str())
            .health_check_version(version)
            .resource_path(path)
            .send()
            .await
            .map_err(|err| match err.as_service_error() {
                Some(UpdateHealthCheckError::HealthCheckVersionMismatch(_)) => {
                    Route53Error::StaleVersion(id.clone())
                }
                Some(UpdateHealthCheckError::NoSuchHealthCheck(_)) => {
                    Route53Error::NotFound(id.clone())
                }
                _ => classify("UpdateHealthCheck", &err),
            })?;
        Ok(())
    }
}

/// Error codes Route 53 uses for "not now": throttling and its own concurrency guard.
fn classify<E>(operation: &'static str, err: &SdkError<E, HttpResponse>) -> Route53Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match crate::retry::classify_sdk(err) {
        // Timeouts, connection failures and unreadable responses are transient: the request may
        // not even have arrived, and trying again is safe because every write is
        // version-guarded.
        SdkFailure::Transient(message) => Route53Error::Transient { operation, message },
        SdkFailure::Refused { code, message } => Route53Error::Refused {
            operation,
            code,
            message,
        },
    }
}
