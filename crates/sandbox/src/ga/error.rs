//! The errors the emulator answers, named with Global Accelerator's own error codes.

use std::borrow::Cow;

/// An AWS error as the service reports it: the code goes to `__type` and `x-amzn-ErrorType`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub(super) struct GaError {
    pub code: Cow<'static, str>,
    pub message: String,
}

impl GaError {
    pub fn new(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        GaError {
            code: code.into(),
            message: message.into(),
        }
    }

    /// Server faults answer 5xx like AWS does, so clients treat them as transient; everything
    /// else, throttling included, is a 400 whose code tells the client what happened.
    pub fn status(&self) -> u16 {
        match self.code.as_ref() {
            "InternalServiceErrorException" => 500,
            "ServiceUnavailableException" => 503,
            _ => 400,
        }
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new("InvalidArgumentException", message)
    }

    pub fn invalid_port_range(message: impl Into<String>) -> Self {
        Self::new("InvalidPortRangeException", message)
    }

    pub fn limit_exceeded(message: impl Into<String>) -> Self {
        Self::new("LimitExceededException", message)
    }

    pub fn serialization(message: impl Into<String>) -> Self {
        Self::new("SerializationException", message)
    }

    pub fn accelerator_not_found(arn: &str) -> Self {
        Self::new(
            "AcceleratorNotFoundException",
            format!("Accelerator not found: {arn}"),
        )
    }

    pub fn listener_not_found(arn: &str) -> Self {
        Self::new(
            "ListenerNotFoundException",
            format!("Listener not found: {arn}"),
        )
    }

    pub fn endpoint_group_not_found(arn: &str) -> Self {
        Self::new(
            "EndpointGroupNotFoundException",
            format!("Endpoint group not found: {arn}"),
        )
    }
}
