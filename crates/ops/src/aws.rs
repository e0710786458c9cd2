//! AWS SDK configuration for every xtask command: `--endpoint-url` (or `AWS_ENDPOINT_URL`),
//! `--region`, `--profile`, and the deployment's own endpoint overrides (the sandbox).

use crate::config::Deployment;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct AwsArgs {
    /// Endpoint for every AWS service but Global Accelerator (also `AWS_ENDPOINT_URL`).
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// Region of the functions and secrets (overrides sitefence.toml).
    #[arg(long)]
    pub region: Option<String>,
    /// Named profile from the AWS config files.
    #[arg(long, env = "AWS_PROFILE")]
    pub profile: Option<String>,
}

/// Region-specific SDK configurations of one deployment.
pub struct Aws {
    pub regional: aws_config::SdkConfig,
}

impl Aws {
    pub async fn load(args: &AwsArgs, deployment: &Deployment) -> Aws {
        let endpoint = args
            .endpoint_url
            .clone()
            .or_else(|| deployment.endpoint_url.clone());
        let region = args
            .region
            .clone()
            .unwrap_or_else(|| deployment.region.clone());
        let regional = load(args, endpoint, region).await;
        Aws { regional }
    }
}

pub async fn load(
    args: &AwsArgs,
    endpoint: Option<String>,
    region: String,
) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region));
    if let Some(profile) = &args.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(endpoint) = endpoint {
        let local = is_loopback(&endpoint);
        loader = loader.endpoint_url(endpoint);
        // Emulators on this machine accept any credentials; anything else gets the normal chain.
        if local && std::env::var_os("AWS_ACCESS_KEY_ID").is_none() && args.profile.is_none() {
            loader = loader.credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
                "testing",
                "testing",
                None,
                None,
                "sitefence-emulator",
            ));
        }
    }
    loader.load().await
}

fn is_loopback(endpoint: &str) -> bool {
    let host = endpoint.split("://").nth(1).unwrap_or(endpoint);
    host.starts_with("127.") || host.starts_with("localhost") || host.starts_with("[::1]")
}
