//! The whole sandbox: every emulator started, the two-site topology seeded, `sandbox.json` written.
//!
//! `World::start` is used by `sandbox run` (and so by `cargo xtask sandbox up`) and directly by
//! integration tests, which start and stop their own world on free ports.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `DIR/sandbox.json`: the contract of DESIGN.md, read by tests, the drill and the bench.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SandboxInfo {
    pub region: String,
    pub aws_endpoint_url: String,
    pub globalaccelerator_endpoint_url: String,
    pub accelerator_dns: String,
    pub accelerator_arn: String,
    pub endpoint_group_arns: Vec<String>,
    pub sites: BTreeMap<String, SiteInfo>,
    pub ca_bundle: PathBuf,
    pub infinispan: InfinispanInfo,
    pub fence: FenceInfo,
    pub route53: Route53Info,
    pub vpc: VpcInfo,
    /// Where moto itself listens, behind `aws_endpoint_url` (the counting front).
    pub moto_url: String,
    pub pids: Vec<u32>,
    /// Where each running function's configuration comes from, by crate name: moto's Lambda
    /// for deployed functions; absent for functions configured in code.
    #[serde(default)]
    pub configuration_sources: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SiteInfo {
    pub endpoint_id: String,
    pub ispn_url: String,
    pub metrics_url: String,
    pub control_url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InfinispanInfo {
    pub user: String,
    pub password: String,
    pub secret_name: String,
    pub caches: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FenceInfo {
    /// Absent when the world was started without the fence function.
    pub function_url: Option<String>,
    pub invoke_url: Option<String>,
    pub user: String,
    pub password: String,
    pub secret_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Route53Info {
    pub invoke_url: Option<String>,
    pub health_check_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VpcInfo {
    pub invoke_url: Option<String>,
    pub vpc_id: String,
    pub route_table_id: String,
    pub primary: ApplianceInfo,
    pub standby: ApplianceInfo,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApplianceInfo {
    pub instance_id: String,
    pub eni: String,
}

use crate::aws_front::AwsFront;
use crate::ga::{GaEmulator, GaSeed};
use crate::ispn::{IspnSite, IspnSiteOptions, IspnVersion};
use crate::lambda_host::{FunctionHost, FunctionSpec};
use crate::moto::MotoServer;
use crate::tls::SandboxCa;
use anyhow::Context;
use pytools::Venv;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The region the sandbox's sites, secrets and VPC live in.
pub const REGION: &str = "eu-west-1";
/// Global Accelerator's control plane exists only in us-west-2.
pub const ACCELERATOR_REGION: &str = "us-west-2";
/// Route 53 health-check metrics and their alarms live in us-east-1.
pub const ROUTE53_REGION: &str = "us-east-1";
pub const SITES: [&str; 2] = ["site-a", "site-b"];
/// Keycloak 26's caches with a cross-site backup.
pub const KEYCLOAK_CACHES: [&str; 4] = [
    "actionTokens",
    "authenticationSessions",
    "loginFailures",
    "work",
];
pub const WEBHOOK_USER: &str = "sitefence";
pub const WEBHOOK_SECRET_NAME: &str = "sitefence/webhook-password";
pub const INFINISPAN_USER: &str = "keycloak-xsite";
pub const INFINISPAN_SECRET_NAME: &str = "sitefence/infinispan-password";
/// moto accepts any credentials; these only make the SDKs sign requests.
pub const SANDBOX_ACCESS_KEY: &str = "testing";
pub const SANDBOX_SECRET_KEY: &str = "testing";
/// Lambda hands a function its execution role's temporary credentials, which always come with
/// a session token (docs/aws-behaviours.md #94).
pub const SANDBOX_SESSION_TOKEN: &str = "testing-session";

/// Which function runs behind the Runtime API host: the project's bootstrap binary, or a seed's
/// Python handler run the way AWS runs it (awslambdaric), for the fidelity test and the bench.
#[derive(Debug, Clone)]
pub enum FunctionCode {
    Bootstrap(PathBuf),
    SeedPython { peers_dir: PathBuf, module: String },
}

/// A function's own variables, computed once the world is up (they name its ports and
/// secrets). The function's crate names its variables (its `config` module); the sandbox adds
/// only what Lambda itself sets: region, credentials and the endpoints of the emulators.
pub type Environment = Arc<dyn Fn(&SandboxInfo) -> Vec<(String, String)> + Send + Sync>;

#[derive(Clone)]
pub struct FunctionOptions {
    pub code: FunctionCode,
    pub instances: usize,
    pub reserved_concurrency: Option<usize>,
    pub timeout: Duration,
    /// The function's configured variables; none when `None`.
    pub environment: Option<Environment>,
    /// Extra environment on top of `environment` (a test's override).
    pub extra_env: Vec<(String, String)>,
}

impl std::fmt::Debug for FunctionOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionOptions")
            .field("code", &self.code)
            .field("instances", &self.instances)
            .field("reserved_concurrency", &self.reserved_concurrency)
            .field("timeout", &self.timeout)
            .field("environment", &self.environment.as_ref().map(|_| "<fn>"))
            .field("extra_env", &self.extra_env)
            .finish()
    }
}

impl FunctionOptions {
    pub fn bootstrap(binary: impl Into<PathBuf>) -> Self {
        FunctionOptions {
            code: FunctionCode::Bootstrap(binary.into()),
            instances: 1,
            reserved_concurrency: None,
            timeout: Duration::from_secs(30),
            environment: None,
            extra_env: Vec::new(),
        }
    }

    /// The function's configured variables, computed from the world.
    pub fn with_environment(
        mut self,
        environment: impl Fn(&SandboxInfo) -> Vec<(String, String)> + Send + Sync + 'static,
    ) -> Self {
        self.environment = Some(Arc::new(environment));
        self
    }
}

#[derive(Debug, Clone)]
pub struct WorldOptions {
    pub dir: PathBuf,
    pub ispn_version: IspnVersion,
    pub push_delay: Duration,
    pub fence: Option<FunctionOptions>,
    pub route53: Option<FunctionOptions>,
    pub vpc: Option<FunctionOptions>,
    /// More fence functions beside `fence` (e.g. the seed's Python next to the Rust bootstrap,
    /// for the bench), each behind its own Runtime API host and Function URL, configured as the
    /// fence is. Their hosts follow the others in [`World::functions`], in this order, and
    /// `sandbox.json` does not list them.
    pub extra_fences: Vec<FunctionOptions>,
    /// The same for the Route 53 function; these hosts come after the extra fences.
    pub extra_route53: Vec<FunctionOptions>,
}

impl WorldOptions {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        WorldOptions {
            dir: dir.into(),
            ispn_version: IspnVersion::V15,
            push_delay: Duration::from_secs(2),
            fence: None,
            route53: None,
            vpc: None,
            extra_fences: Vec::new(),
            extra_route53: Vec::new(),
        }
    }
}

/// A running sandbox. Dropping it stops every emulator and kills every process it started.
pub struct World {
    info: SandboxInfo,
    pub ga: GaEmulator,
    pub sites: Vec<IspnSite>,
    pub aws_front: AwsFront,
    pub moto: MotoServer,
    pub functions: Vec<FunctionHost>,
    /// The tasks keeping deployed functions' hosts configured as moto says.
    watchers: Vec<tokio::task::AbortHandle>,
    /// `DIR/logs`, where each function's log goes.
    logs: PathBuf,
}

/// Which of the project's functions a deployed host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionRole {
    Fence,
    Route53,
    Vpc,
}

/// A function deployed into the sandbox's moto (by `cargo xtask deploy`), to run from the
/// configuration moto holds for it.
#[derive(Debug, Clone)]
pub struct DeployedFunction {
    pub role: FunctionRole,
    /// Its name in Lambda.
    pub name: String,
    /// The bootstrap the deployed ZIP holds, built for this machine.
    pub binary: PathBuf,
    /// Execution environments when no reserved concurrency caps them.
    pub instances: usize,
}

impl World {
    pub async fn start(options: WorldOptions) -> anyhow::Result<World> {
        let dir = &options.dir;
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;

        let ca = SandboxCa::generate().context("generating the sandbox CA")?;
        let ca_bundle = dir.join("ca.pem");
        ca.write_ca_bundle(&ca_bundle)
            .context("writing the CA bundle")?;
        let tls = ca
            .server_config(&["127.0.0.1", "localhost"])
            .context("issuing the Infinispan server certificate")?;

        let venv = Venv::locate();
        let moto = MotoServer::start(&venv, &logs.join("moto.log"))
            .await
            .context("starting moto")?;
        let aws_front = AwsFront::start(moto.url())
            .await
            .context("starting the AWS front")?;
        let ga = GaEmulator::start()
            .await
            .context("starting the Global Accelerator emulator")?;

        let ispn_password = random_password();
        let site_options = |name: &str, remote: &str| IspnSiteOptions {
            name: name.to_string(),
            remote_site: remote.to_string(),
            version: options.ispn_version,
            user: INFINISPAN_USER.to_string(),
            password: ispn_password.clone(),
            caches: KEYCLOAK_CACHES.iter().map(|c| c.to_string()).collect(),
            push_delay: options.push_delay,
        };
        let (site_a, site_b) = crate::ispn::start_pair(
            site_options(SITES[0], SITES[1]),
            site_options(SITES[1], SITES[0]),
            tls,
        )
        .await
        .context("starting the Infinispan emulators")?;

        let webhook_password = random_password();
        let seeded = seed_aws(&moto.url(), &ga, &ispn_password, &webhook_password).await?;

        let mut sites = BTreeMap::new();
        for (site, emulator) in [(SITES[0], &site_a), (SITES[1], &site_b)] {
            let endpoint_id = seeded
                .site_endpoints
                .get(site)
                .cloned()
                .context("seeded endpoint missing")?;
            sites.insert(
                site.to_string(),
                SiteInfo {
                    endpoint_id,
                    ispn_url: emulator.url(),
                    metrics_url: emulator.metrics_url(),
                    control_url: emulator.control_url(),
                },
            );
        }

        let mut info = SandboxInfo {
            region: REGION.to_string(),
            aws_endpoint_url: aws_front.url(),
            globalaccelerator_endpoint_url: ga.url(),
            accelerator_dns: seeded.accelerator.dns_name.clone(),
            accelerator_arn: seeded.accelerator.accelerator_arn.clone(),
            endpoint_group_arns: seeded.accelerator.endpoint_group_arns.clone(),
            sites,
            ca_bundle: ca_bundle.clone(),
            infinispan: InfinispanInfo {
                user: INFINISPAN_USER.to_string(),
                password: ispn_password,
                secret_name: INFINISPAN_SECRET_NAME.to_string(),
                caches: KEYCLOAK_CACHES.iter().map(|c| c.to_string()).collect(),
            },
            fence: FenceInfo {
                function_url: None,
                invoke_url: None,
                user: WEBHOOK_USER.to_string(),
                password: webhook_password,
                secret_name: WEBHOOK_SECRET_NAME.to_string(),
            },
            route53: Route53Info {
                invoke_url: None,
                health_check_id: seeded.health_check_id,
            },
            vpc: seeded.vpc,
            moto_url: moto.url(),
            pids: vec![std::process::id(), moto.pid()],
            configuration_sources: BTreeMap::new(),
        };

        let mut functions = Vec::new();
        if let Some(fence) = &options.fence {
            let env = function_env(&info, REGION, fence);
            let host = start_function("fence-lambda", fence, env, &logs, true).await?;
            info.fence.function_url = host.function_url();
            info.fence.invoke_url = Some(host.invoke_url());
            functions.push(host);
        }
        if let Some(route53) = &options.route53 {
            let env = function_env(&info, ROUTE53_REGION, route53);
            let host =
                start_function("route53-failover-lambda", route53, env, &logs, false).await?;
            info.route53.invoke_url = Some(host.invoke_url());
            functions.push(host);
        }
        if let Some(vpc) = &options.vpc {
            let env = function_env(&info, REGION, vpc);
            let host = start_function("vpc-route-failover-lambda", vpc, env, &logs, false).await?;
            info.vpc.invoke_url = Some(host.invoke_url());
            functions.push(host);
        }
        for extra in &options.extra_fences {
            let env = function_env(&info, REGION, extra);
            functions.push(start_function("fence-lambda", extra, env, &logs, true).await?);
        }
        for extra in &options.extra_route53 {
            let env = function_env(&info, ROUTE53_REGION, extra);
            let host = start_function("route53-failover-lambda", extra, env, &logs, false).await?;
            functions.push(host);
        }
        for host in &functions {
            info.pids.extend(host.pids());
        }

        Ok(World {
            info,
            ga,
            sites: vec![site_a, site_b],
            aws_front,
            moto,
            functions,
            watchers: Vec::new(),
            logs,
        })
    }

    /// Runs a function that was deployed into this world's moto: its environment, timeout,
    /// memory, reserved concurrency, Function URL auth type and resource policy are read back
    /// from moto, and re-read while it runs ([`crate::deployed`]). The host behaves as Lambda
    /// would with that configuration: the Function URL front refuses (403) what the policy
    /// does not allow, and invocations beyond the reserved concurrency are throttled (429).
    pub async fn start_deployed(&mut self, function: DeployedFunction) -> anyhow::Result<()> {
        let region = match function.role {
            FunctionRole::Route53 => ROUTE53_REGION,
            FunctionRole::Fence | FunctionRole::Vpc => REGION,
        };
        let runtime_env = aws_env(&self.info, region);
        // Straight to moto, past the counting front: the host's reads are Lambda's own
        // business, not calls of the function.
        let lambda = aws_sdk_lambda::Client::new(&sdk_config(&self.moto.url(), REGION).await);
        let configuration =
            crate::deployed::read_configuration(&lambda, &function.name, &runtime_env)
                .await
                .with_context(|| {
                    format!("reading the deployed configuration of {}", function.name)
                })?;
        let crate_name = match function.role {
            FunctionRole::Fence => "fence-lambda",
            FunctionRole::Route53 => "route53-failover-lambda",
            FunctionRole::Vpc => "vpc-route-failover-lambda",
        };
        // Lambda runs at most as many environments at once as are reserved.
        let instances = configuration
            .reserved_concurrency
            .map_or(function.instances, |reserved| {
                reserved.min(function.instances)
            })
            .max(1);
        let spec = FunctionSpec {
            name: function.name.clone(),
            program: function.binary.clone(),
            args: Vec::new(),
            cwd: function.binary.parent().map(Path::to_path_buf),
            env: configuration.env.clone(),
            handler: "bootstrap".to_string(),
            instances,
            reserved_concurrency: configuration.reserved_concurrency,
            timeout: configuration.timeout,
            memory_mb: configuration.memory_mb,
            log_path: self.logs.join(format!("{crate_name}.log")),
            function_url: function.role == FunctionRole::Fence,
            prestart: true,
            url_access: configuration.url_access.clone(),
        };
        let host = FunctionHost::start(spec)
            .await
            .with_context(|| format!("starting {}", function.name))?;
        self.watchers.push(crate::deployed::watch(
            &host,
            lambda,
            function.name.clone(),
            runtime_env,
        ));
        let source = format!(
            "deployed: moto's Lambda configuration of {} (GetFunctionConfiguration, GetFunctionConcurrency, GetFunctionUrlConfig, GetPolicy)",
            function.name
        );
        match function.role {
            FunctionRole::Fence => {
                self.info.fence.function_url = host.function_url();
                self.info.fence.invoke_url = Some(host.invoke_url());
            }
            FunctionRole::Route53 => self.info.route53.invoke_url = Some(host.invoke_url()),
            FunctionRole::Vpc => self.info.vpc.invoke_url = Some(host.invoke_url()),
        }
        self.info
            .configuration_sources
            .insert(crate_name.to_string(), source);
        self.info.pids.extend(host.pids());
        self.functions.push(host);
        Ok(())
    }

    pub fn info(&self) -> &SandboxInfo {
        &self.info
    }

    /// Writes `DIR/sandbox.json` atomically (a reader never sees half a file).
    pub fn write_info(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        let path = dir.join("sandbox.json");
        let partial = dir.join("sandbox.json.partial");
        let text = serde_json::to_string_pretty(&self.info)?;
        std::fs::write(&partial, text).with_context(|| format!("writing {}", partial.display()))?;
        std::fs::rename(&partial, &path)?;
        Ok(path)
    }

    /// Writes `DIR/sandbox.json`, then runs until SIGTERM or Ctrl-C and stops everything: the
    /// foreground life of a sandbox process.
    pub async fn serve(self, dir: &Path) -> anyhow::Result<()> {
        let path = self.write_info(dir)?;
        tracing::info!(sandbox_json = %path.display(), "sandbox ready");
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("stopping the sandbox");
        self.shutdown().await;
        Ok(())
    }

    pub async fn shutdown(self) {
        for watcher in &self.watchers {
            watcher.abort();
        }
        for host in self.functions {
            host.shutdown().await;
        }
        self.moto.shutdown();
    }
}

/// What seeding AWS produced, beyond the Global Accelerator.
struct Seeded {
    accelerator: crate::ga::SeededAccelerator,
    site_endpoints: BTreeMap<String, String>,
    health_check_id: String,
    vpc: VpcInfo,
}

fn random_password() -> String {
    std::iter::repeat_with(fastrand::alphanumeric)
        .take(24)
        .collect()
}

/// An AWS SDK configuration for the sandbox's moto (or its counting front at `endpoint`), with
/// the sandbox's credentials: for tests that read or prepare AWS state themselves.
pub async fn sdk_config(endpoint: &str, region: &str) -> aws_config::SdkConfig {
    let credentials = aws_sdk_secretsmanager::config::Credentials::new(
        SANDBOX_ACCESS_KEY,
        SANDBOX_SECRET_KEY,
        None,
        None,
        "sandbox",
    );
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(credentials)
        .load()
        .await
}

/// Seeds moto and the GA emulator with the HA guide's two-site topology: one NLB per site tagged
/// `site`/`accelerator`/`namespace`, an accelerator with a TCP 443 listener and one endpoint group
/// holding both NLBs (weight 128), the two secrets, the primary site's Route 53 health check and a
/// VPC with an appliance pair whose routes point at the primary's ENI.
async fn seed_aws(
    moto_url: &str,
    ga: &GaEmulator,
    ispn_password: &str,
    webhook_password: &str,
) -> anyhow::Result<Seeded> {
    use aws_sdk_ec2::types::{InstanceType, ResourceType, Tag as Ec2Tag, TagSpecification};
    use aws_sdk_elasticloadbalancingv2::types::{
        LoadBalancerSchemeEnum, LoadBalancerTypeEnum, Tag as ElbTag,
    };

    let regional = sdk_config(moto_url, REGION).await;
    let ec2 = aws_sdk_ec2::Client::new(&regional);
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&regional);
    let secrets = aws_sdk_secretsmanager::Client::new(&regional);
    let route53 = aws_sdk_route53::Client::new(&sdk_config(moto_url, ROUTE53_REGION).await);

    let vpc = ec2
        .create_vpc()
        .cidr_block("10.0.0.0/16")
        .amazon_provided_ipv6_cidr_block(true)
        .send()
        .await
        .context("CreateVpc")?;
    let vpc_id = vpc
        .vpc()
        .and_then(|v| v.vpc_id())
        .context("CreateVpc returned no id")?
        .to_string();
    let mut subnets = Vec::new();
    for (cidr, zone) in [("10.0.1.0/24", "eu-west-1a"), ("10.0.2.0/24", "eu-west-1b")] {
        let subnet = ec2
            .create_subnet()
            .vpc_id(&vpc_id)
            .cidr_block(cidr)
            .availability_zone(zone)
            .send()
            .await
            .context("CreateSubnet")?;
        subnets.push(
            subnet
                .subnet()
                .and_then(|s| s.subnet_id())
                .context("CreateSubnet returned no id")?
                .to_string(),
        );
    }

    let mut nlbs = BTreeMap::new();
    for site in SITES {
        let created = elb
            .create_load_balancer()
            .name(format!("keycloak-{site}"))
            .r#type(LoadBalancerTypeEnum::Network)
            .scheme(LoadBalancerSchemeEnum::InternetFacing)
            .set_subnets(Some(subnets.clone()))
            .send()
            .await
            .context("CreateLoadBalancer")?;
        let arn = created
            .load_balancers()
            .first()
            .and_then(|lb| lb.load_balancer_arn())
            .context("CreateLoadBalancer returned no ARN")?
            .to_string();
        nlbs.insert(site.to_string(), arn);
    }

    let accelerator = ga.seed(&GaSeed {
        name: "keycloak".to_string(),
        endpoint_group_region: REGION.to_string(),
        endpoint_ids: nlbs.values().cloned().collect(),
    });
    for (site, arn) in &nlbs {
        let tag = |key: &str, value: &str| ElbTag::builder().key(key).value(value).build();
        elb.add_tags()
            .resource_arns(arn)
            .tags(tag("site", site))
            .tags(tag("accelerator", &accelerator.dns_name))
            .tags(tag("namespace", "default"))
            .send()
            .await
            .context("AddTags")?;
    }

    for (name, value) in [
        (WEBHOOK_SECRET_NAME, webhook_password),
        (INFINISPAN_SECRET_NAME, ispn_password),
    ] {
        secrets
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .context("CreateSecret")?;
    }

    let health_check = route53
        .create_health_check()
        .caller_reference(format!("sitefence-sandbox-{}", fastrand::u64(..)))
        .health_check_config(
            aws_sdk_route53::types::HealthCheckConfig::builder()
                .r#type(aws_sdk_route53::types::HealthCheckType::Https)
                .fully_qualified_domain_name("primary.keycloak.example")
                .port(443)
                .resource_path("/lb-check")
                .request_interval(30)
                .failure_threshold(1)
                .enable_sni(true)
                .build()
                .context("HealthCheckConfig")?,
        )
        .send()
        .await
        .context("CreateHealthCheck")?;
    let health_check_id = health_check
        .health_check()
        .map(|h| h.id().to_string())
        .context("CreateHealthCheck returned no id")?;

    let mut appliances = Vec::new();
    for role in ["primary", "standby"] {
        let run = ec2
            .run_instances()
            .image_id("ami-12c6146b")
            .instance_type(InstanceType::T3Micro)
            .min_count(1)
            .max_count(1)
            .subnet_id(&subnets[0])
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Instance)
                    .tags(
                        Ec2Tag::builder()
                            .key("Name")
                            .value(format!("appliance-{role}"))
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .context("RunInstances")?;
        let instance = run
            .instances()
            .first()
            .context("RunInstances returned no instance")?;
        let instance_id = instance
            .instance_id()
            .context("instance without id")?
            .to_string();
        let eni = instance
            .network_interfaces()
            .first()
            .and_then(|n| n.network_interface_id())
            .context("instance without ENI")?
            .to_string();
        appliances.push(ApplianceInfo { instance_id, eni });
    }
    let route_table = ec2
        .create_route_table()
        .vpc_id(&vpc_id)
        .send()
        .await
        .context("CreateRouteTable")?;
    let route_table_id = route_table
        .route_table()
        .and_then(|t| t.route_table_id())
        .context("CreateRouteTable returned no id")?
        .to_string();
    let primary_eni = &appliances[0].eni;
    for cidr in ["10.100.0.0/16", "192.168.50.0/24"] {
        ec2.create_route()
            .route_table_id(&route_table_id)
            .destination_cidr_block(cidr)
            .network_interface_id(primary_eni)
            .send()
            .await
            .context("CreateRoute (IPv4)")?;
    }
    ec2.create_route()
        .route_table_id(&route_table_id)
        .destination_ipv6_cidr_block("2001:db8:100::/56")
        .network_interface_id(primary_eni)
        .send()
        .await
        .context("CreateRoute (IPv6)")?;
    // An unrelated route the failover must leave alone.
    let igw = ec2
        .create_internet_gateway()
        .send()
        .await
        .context("CreateInternetGateway")?;
    let igw_id = igw
        .internet_gateway()
        .and_then(|g| g.internet_gateway_id())
        .context("CreateInternetGateway returned no id")?
        .to_string();
    ec2.attach_internet_gateway()
        .internet_gateway_id(&igw_id)
        .vpc_id(&vpc_id)
        .send()
        .await
        .context("AttachInternetGateway")?;
    ec2.create_route()
        .route_table_id(&route_table_id)
        .destination_cidr_block("0.0.0.0/0")
        .gateway_id(&igw_id)
        .send()
        .await
        .context("CreateRoute (internet)")?;

    let standby = appliances.pop().context("standby appliance missing")?;
    let primary = appliances.pop().context("primary appliance missing")?;
    Ok(Seeded {
        accelerator,
        site_endpoints: nlbs,
        health_check_id,
        vpc: VpcInfo {
            invoke_url: None,
            vpc_id,
            route_table_id,
            primary,
            standby,
        },
    })
}

/// The environment every function gets in the sandbox: the standard AWS variables pointed at
/// the sandbox, exactly as a deployed function would read them (the role's credentials, with
/// their session token, and the Region, as Lambda sets them).
fn aws_env(info: &SandboxInfo, region: &str) -> Vec<(String, String)> {
    [
        ("AWS_ACCESS_KEY_ID", SANDBOX_ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SANDBOX_SECRET_KEY),
        ("AWS_SESSION_TOKEN", SANDBOX_SESSION_TOKEN),
        ("AWS_REGION", region),
        ("AWS_DEFAULT_REGION", region),
        ("AWS_ENDPOINT_URL", info.aws_endpoint_url.as_str()),
        (
            "AWS_ENDPOINT_URL_GLOBAL_ACCELERATOR",
            info.globalaccelerator_endpoint_url.as_str(),
        ),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// What Lambda sets (`aws_env`), then the function's configured variables, then a test's
/// overrides: the last assignment of a name wins.
fn function_env(
    info: &SandboxInfo,
    region: &str,
    options: &FunctionOptions,
) -> Vec<(String, String)> {
    let mut env = aws_env(info, region);
    if let Some(environment) = &options.environment {
        env.extend(environment(info));
    }
    env.extend(options.extra_env.iter().cloned());
    env
}

/// The variables of seed 002's fence (`seed_fence_lambda.py`): the seed's own interface, which
/// the project's fence also reads (its `config` module names them), except that the seed
/// builds `https://{endpoint}` itself and so takes host:port.
pub fn seed_fence_environment(info: &SandboxInfo) -> Vec<(String, String)> {
    let endpoints: BTreeMap<&str, &str> = info
        .sites
        .iter()
        .map(|(site, s)| (site.as_str(), s.ispn_url.trim_start_matches("https://")))
        .collect();
    [
        ("WEBHOOK_USER", info.fence.user.clone()),
        ("WEBHOOK_USER_SECRET", info.fence.secret_name.clone()),
        ("INFINISPAN_USER", info.infinispan.user.clone()),
        (
            "INFINISPAN_USER_SECRET",
            info.infinispan.secret_name.clone(),
        ),
        (
            "INFINISPAN_SITE_ENDPOINTS",
            serde_json::to_string(&endpoints).unwrap_or_default(),
        ),
        ("SECRETS_REGION", info.region.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

async fn start_function(
    name: &str,
    options: &FunctionOptions,
    env: Vec<(String, String)>,
    logs: &Path,
    function_url: bool,
) -> anyhow::Result<FunctionHost> {
    let (program, args, cwd, handler) = match &options.code {
        FunctionCode::Bootstrap(binary) => (
            binary.clone(),
            Vec::new(),
            binary.parent().map(Path::to_path_buf),
            "bootstrap".to_string(),
        ),
        FunctionCode::SeedPython { peers_dir, module } => {
            let venv = Venv::locate();
            venv.ensure(pytools::SEED_PYTHON)
                .context("installing the seed's Python runtime")?;
            let handler = format!("{module}.handler");
            (
                venv.python(),
                vec![
                    "-m".to_string(),
                    "awslambdaric".to_string(),
                    handler.clone(),
                ],
                Some(peers_dir.clone()),
                handler,
            )
        }
    };
    // The seed's Python logs apart from the bootstrap's, so that both can run side by side.
    let log_name = match &options.code {
        FunctionCode::Bootstrap(_) => name.to_string(),
        FunctionCode::SeedPython { module, .. } => module.clone(),
    };
    let spec = FunctionSpec {
        name: name.to_string(),
        program,
        args,
        cwd,
        env,
        handler,
        instances: options.instances.max(1),
        reserved_concurrency: options.reserved_concurrency,
        timeout: options.timeout,
        memory_mb: 128,
        log_path: logs.join(format!("{log_name}.log")),
        function_url,
        prestart: true,
        url_access: crate::lambda_host::UrlAccess::Unchecked,
    };
    FunctionHost::start(spec)
        .await
        .with_context(|| format!("starting {name}"))
}
