//! `cargo xtask deploy` and `cargo xtask destroy`.
//!
//! deploy: the desired state of a deployment (`plan::desired`, pure) is compared with what AWS
//! holds (`observe`), the difference is printed as a diff (`plan::diff`), and unless `--dry-run`
//! each change is applied in order (`apply`). Everything created carries the tag
//! `sitefence:deployment=<name>`; destroy deletes what carries it and nothing else.

pub mod apply;
pub mod cloudformation;
pub mod destroy;
pub mod observe;
pub mod plan;
pub mod policy;
pub mod preflight;
pub mod zip;

use crate::artifacts::{self, Arch};
use crate::aws::{self, AwsArgs};
use crate::config::Deployment;
use anyhow::{Context, bail};
use base64::Engine as _;
use plan::{Change, Function, Inputs, Plan};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct DeployArgs {
    /// The deployment description.
    #[arg(long, default_value = "sitefence.toml")]
    pub config: PathBuf,
    /// Print the plan as a diff and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Directory of prebuilt ZIPs, `DIR/<function>/bootstrap.zip` (default: `cargo xtask build`'s output for --arch).
    #[arg(long)]
    pub zips: Option<PathBuf>,
    /// CPU architecture of the ZIPs (default: `[code] arch` of the config, else arm64).
    #[arg(long, value_enum)]
    pub arch: Option<Arch>,
    /// Seconds to wait for the Route 53 health-check alarms to be OK before subscribing the function.
    #[arg(long, default_value_t = 120)]
    pub alarm_wait: u64,
    /// Print the passwords generated for secrets that did not exist.
    #[arg(long)]
    pub show_secrets: bool,
    /// Write the desired state as a template instead of applying it: `--emit cloudformation
    /// FILE` (a second file `<stem>.<region>.json` for what must live in another region).
    /// Reads the account and the accelerator, changes nothing.
    #[arg(long, num_args = 2, value_names = ["FORMAT", "FILE"])]
    pub emit: Option<Vec<String>>,
    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(clap::Args, Debug, Clone)]
pub struct DestroyArgs {
    /// The deployment description.
    #[arg(long, default_value = "sitefence.toml")]
    pub config: PathBuf,
    /// Delete without asking.
    #[arg(long)]
    pub yes: bool,
    /// List what would be deleted and delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// The SDK clients of one deployment: most services in its region, SNS and CloudWatch in the
/// region of the Route 53 health-check alarms (us-east-1) and in the functions' region (their
/// alarms and the topic those notify).
pub struct Clients {
    pub iam: aws_sdk_iam::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub events: aws_sdk_eventbridge::Client,
    /// In `alarms_region`.
    pub sns: aws_sdk_sns::Client,
    /// In `alarms_region`.
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// The functions' log groups.
    pub logs: aws_sdk_cloudwatchlogs::Client,
    /// SNS in the functions' region.
    pub regional_sns: aws_sdk_sns::Client,
    /// CloudWatch in the functions' region.
    pub regional_cloudwatch: aws_sdk_cloudwatch::Client,
    /// The region of the Route 53 health-check alarms, which `sns` and `cloudwatch` call.
    pub alarms_region: String,
    /// The configuration the regional clients were made from (the tests make their own).
    pub regional: aws_config::SdkConfig,
}

impl Clients {
    pub async fn load(args: &AwsArgs, deployment: &Deployment) -> Clients {
        let endpoint = deployment.endpoint_url.clone();
        let regional = aws::load(args, endpoint.clone(), deployment.region.clone()).await;
        let alarms_region = deployment
            .route53
            .as_ref()
            .map(|r| r.region.clone())
            .unwrap_or_else(|| aws_topology::route53::ALARM_REGION.to_string());
        let alarms = aws::load(args, endpoint, alarms_region.clone()).await;
        Clients {
            iam: aws_sdk_iam::Client::new(&regional),
            lambda: aws_sdk_lambda::Client::new(&regional),
            secrets: aws_sdk_secretsmanager::Client::new(&regional),
            events: aws_sdk_eventbridge::Client::new(&regional),
            sns: aws_sdk_sns::Client::new(&alarms),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&alarms),
            dynamodb: aws_sdk_dynamodb::Client::new(&regional),
            logs: aws_sdk_cloudwatchlogs::Client::new(&regional),
            regional_sns: aws_sdk_sns::Client::new(&regional),
            regional_cloudwatch: aws_sdk_cloudwatch::Client::new(&regional),
            alarms_region,
            regional,
        }
    }

    /// SNS in `region`: the health-check alarms' or the functions'.
    pub fn sns_in(&self, region: &str) -> &aws_sdk_sns::Client {
        if region == self.alarms_region {
            &self.sns
        } else {
            &self.regional_sns
        }
    }

    /// CloudWatch in `region`: the health-check alarms' or the functions'.
    pub fn cloudwatch_in(&self, region: &str) -> &aws_sdk_cloudwatch::Client {
        if region == self.alarms_region {
            &self.cloudwatch
        } else {
            &self.regional_cloudwatch
        }
    }

    /// The regions whose alarms and topics deploy manages: the health-check alarms' and the
    /// functions' (once when they are one).
    pub fn alarm_regions(&self) -> Vec<String> {
        let mut regions = vec![self.alarms_region.clone()];
        if let Some(functions) = self.regional.region().map(|r| r.as_ref().to_string())
            && functions != self.alarms_region
        {
            regions.push(functions);
        }
        regions
    }
}

/// The config file with the command line's overrides applied.
pub fn load_deployment(path: &Path, args: &AwsArgs) -> anyhow::Result<Deployment> {
    let mut deployment = Deployment::load(path)?;
    if let Some(region) = &args.region {
        deployment.region = region.clone();
    }
    if let Some(endpoint) = &args.endpoint_url {
        deployment.endpoint_url = Some(endpoint.clone());
    }
    if let Some(code) = &mut deployment.code
        && code.zips.is_relative()
    {
        code.zips = path.parent().unwrap_or(Path::new(".")).join(&code.zips);
    }
    if let Some(ca) = &deployment.fence.ca_bundle
        && ca.is_relative()
    {
        // Relative to the config file, so the file works from any directory.
        let base = path.parent().unwrap_or(Path::new("."));
        deployment.fence.ca_bundle = Some(base.join(ca));
    }
    Ok(deployment)
}

#[derive(Debug, Clone)]
pub struct Options {
    pub zips: PathBuf,
    pub arch: Arch,
    pub dry_run: bool,
    pub alarm_wait: Duration,
    pub show_secrets: bool,
}

#[derive(Debug)]
pub struct Report {
    pub plan: Plan,
    pub deferred: Vec<String>,
    pub function_url: Option<String>,
}

/// `deploy`: with no `--zips` and no `[code] zips` in the config, the ZIPs are looked for where
/// `default_zips` says for the architecture (`cargo xtask` builds them; `sitefence` has no
/// build and says to pass `--zips`).
pub fn run(
    args: &DeployArgs,
    default_zips: impl FnOnce(Arch) -> anyhow::Result<PathBuf>,
) -> anyhow::Result<()> {
    let deployment = load_deployment(&args.config, &args.aws)?;
    if let Some(emit) = &args.emit {
        let [format, file] = emit.as_slice() else {
            bail!("--emit takes a format and a file: --emit cloudformation FILE");
        };
        if format != "cloudformation" {
            bail!("--emit {format}: the only format is `cloudformation`");
        }
        let runtime = tokio::runtime::Runtime::new()?;
        let arch = args.arch.unwrap_or_else(|| configured_arch(&deployment));
        let file = Path::new(file);
        for path in runtime.block_on(emit_cloudformation(&deployment, file, arch, &args.aws))? {
            println!("{}", path.display());
        }
        return Ok(());
    }
    let configured = deployment.code.as_ref();
    let arch = match (args.arch, configured) {
        (Some(arch), _) => arch,
        (None, Some(code)) => Arch::from_lambda_name(&code.arch)
            .with_context(|| format!("[code] arch `{}`: arm64 or x86_64", code.arch))?,
        (None, None) => Arch::Arm64,
    };
    let options = Options {
        zips: match (&args.zips, configured) {
            (Some(dir), _) => dir.clone(),
            (None, Some(code)) => code.zips.clone(),
            (None, None) => default_zips(arch)?,
        },
        arch,
        dry_run: args.dry_run,
        alarm_wait: Duration::from_secs(args.alarm_wait),
        show_secrets: args.show_secrets,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime.block_on(deploy(&deployment, &options, &args.aws))?;
    if let Some(url) = &report.function_url {
        println!("fence Function URL: {url}");
    }
    if !report.deferred.is_empty() {
        eprintln!("deploy: {} change(s) deferred:", report.deferred.len());
        for note in &report.deferred {
            eprintln!("  {note}");
        }
    }
    Ok(())
}

/// Where resources are: account (STS), partition, and the accelerator's ARN (looked up by its DNS
/// name, so that the fence's policy names exactly that accelerator).
pub(crate) async fn scope(
    deployment: &Deployment,
    clients: &Clients,
    args: &AwsArgs,
) -> anyhow::Result<policy::Scope> {
    let identity = aws_sdk_sts::Client::new(&clients.regional)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", aws_sdk_sts::error::DisplayErrorContext(e)))
        .context("asking STS which account the credentials belong to")?;
    let account = identity
        .account()
        .context("STS returned no account")?
        .to_string();
    let ga_config = aws::load(
        args,
        deployment
            .accelerator
            .endpoint_url
            .clone()
            .or_else(|| deployment.endpoint_url.clone()),
        deployment.accelerator.region.clone(),
    )
    .await;
    let dns = common::site::AcceleratorDns::parse(&deployment.accelerator.dns_name)
        .map_err(|e| anyhow::anyhow!("accelerator.dns_name: {e}"))?;
    let accelerator_arn = aws_topology::globalaccelerator::GlobalAccelerator::new(&ga_config)
        .find_accelerator(&dns)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("looking up the accelerator")?
        .with_context(|| {
            format!(
                "no Global Accelerator has the DNS name {}",
                deployment.accelerator.dns_name
            )
        })?;
    Ok(policy::Scope {
        partition: policy::partition_of(&deployment.region).to_string(),
        account,
        region: deployment.region.clone(),
        accelerator_arn,
    })
}

/// `--emit cloudformation FILE`: the desired state as templates, one per region; returns the
/// files written.
pub async fn emit_cloudformation(
    deployment: &Deployment,
    file: &Path,
    arch: Arch,
    args: &AwsArgs,
) -> anyhow::Result<Vec<PathBuf>> {
    let clients = Clients::load(args, deployment).await;
    let scope = scope(deployment, &clients, args).await?;
    let inputs = inputs_without_code(deployment, scope, None, arch)?;
    let desired = plan::desired(deployment, &inputs)?;
    let templates = cloudformation::templates(deployment, &desired)?;
    let mut written = Vec::new();
    for (region, template) in &templates.templates {
        let path = cloudformation::path_for(file, region, &deployment.region);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&path, serde_json::to_string_pretty(template)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// The templates of the deployment's desired state, and what AWS holds of each resource in it
/// now: after a deploy, the two must describe the same resources with the same attributes
/// (the test that holds them against each other), but for the code, which a template names
/// by its S3 key.
pub async fn template_and_deployed(
    deployment: &Deployment,
    arch: Arch,
    args: &AwsArgs,
) -> anyhow::Result<(cloudformation::Templates, plan::Observed)> {
    let clients = Clients::load(args, deployment).await;
    let scope = scope(deployment, &clients, args).await?;
    let inputs = inputs_without_code(deployment, scope, None, arch)?;
    let desired = plan::desired(deployment, &inputs)?;
    let templates = cloudformation::templates(deployment, &desired)?;
    let observed = observe::observe(&desired, &clients).await?;
    Ok((templates, observed))
}

/// The architecture `[code] arch` names, else arm64 (deploy's default).
pub fn configured_arch(deployment: &Deployment) -> Arch {
    deployment
        .code
        .as_ref()
        .and_then(|c| Arch::from_lambda_name(&c.arch))
        .unwrap_or(Arch::Arm64)
}

/// The inputs of the desired state when the ZIPs may be absent (a template names a bucket, the
/// doctor has no build): with `zips`, their hashes; without, placeholders that every caller
/// leaves out of what it compares (`code_sha256`, and the architecture of `[code]` or arm64).
pub fn inputs_without_code(
    deployment: &Deployment,
    scope: policy::Scope,
    zips: Option<&Path>,
    arch: Arch,
) -> anyhow::Result<Inputs> {
    let code = match zips {
        Some(dir) => code(deployment, dir, arch)?,
        None => plan::functions(deployment)
            .into_iter()
            .map(|f| {
                let code = plan::Code {
                    zip: PathBuf::new(),
                    sha256_base64: String::new(),
                };
                (f, code)
            })
            .collect(),
    };
    Ok(Inputs {
        scope,
        architecture: arch.lambda_name().to_string(),
        code,
        ca_bundle_pem: ca_bundle_pem(deployment)?,
    })
}

/// The CA bundle's PEM text, when the config names one.
pub(crate) fn ca_bundle_pem(deployment: &Deployment) -> anyhow::Result<Option<String>> {
    match &deployment.fence.ca_bundle {
        Some(path) => Ok(Some(std::fs::read_to_string(path).with_context(|| {
            format!("reading fence.ca_bundle {}", path.display())
        })?)),
        None => Ok(None),
    }
}

/// The ZIP of each function of the deployment, with the SHA-256 Lambda will report.
pub(crate) fn code(
    deployment: &Deployment,
    zips: &Path,
    arch: Arch,
) -> anyhow::Result<BTreeMap<Function, plan::Code>> {
    let mut code = BTreeMap::new();
    for function in plan::functions(deployment) {
        let zip = artifacts::zip_path(zips, function.crate_name());
        let bytes = std::fs::read(&zip).with_context(|| {
            format!(
                "no ZIP for {} at {}: run `cargo xtask build --arch {}` or pass --zips DIR",
                function.crate_name(),
                zip.display(),
                arch.lambda_name()
            )
        })?;
        let sha256_base64 =
            base64::engine::general_purpose::STANDARD.encode(artifacts::sha256(&bytes));
        code.insert(function, plan::Code { zip, sha256_base64 });
    }
    Ok(code)
}

/// Lambda's limit on a function's environment (keys and values together).
const ENVIRONMENT_LIMIT: usize = 4096;

pub async fn deploy(
    deployment: &Deployment,
    options: &Options,
    args: &AwsArgs,
) -> anyhow::Result<Report> {
    let owner = deployment.name.clone();
    eprintln!("deploy: reading the current state of `{owner}`");
    let clients = Clients::load(args, deployment).await;
    let inputs = Inputs {
        scope: scope(deployment, &clients, args).await?,
        architecture: options.arch.lambda_name().to_string(),
        code: code(deployment, &options.zips, options.arch)?,
        ca_bundle_pem: ca_bundle_pem(deployment)?,
    };
    let desired = plan::desired(deployment, &inputs)?;
    for resource in &desired {
        if let plan::Resource::Function {
            name, environment, ..
        } = resource
        {
            let size: usize = environment.iter().map(|(k, v)| k.len() + v.len()).sum();
            if size > ENVIRONMENT_LIMIT {
                bail!(
                    "the environment of {name} is {size} bytes, over Lambda's {ENVIRONMENT_LIMIT} (a large fence.ca_bundle? keep only the CA that signs the Infinispan routes)"
                );
            }
        }
    }
    let observed = observe::observe(&desired, &clients).await?;
    let plan = plan::diff(&desired, &observed, &owner);
    print!("{plan}");
    if !plan.conflicts.is_empty() {
        bail!(
            "{} resource(s) with this deployment's names belong to someone else; rename the deployment (`name`) or remove them",
            plan.conflicts.len()
        );
    }
    refuse_unappliable(&plan)?;
    check_reserved_concurrency(&plan, &clients, &deployment.region).await?;
    let mut report = Report {
        plan,
        deferred: Vec::new(),
        function_url: None,
    };
    if options.dry_run {
        eprintln!("deploy: dry run, nothing changed");
        return Ok(report);
    }
    let settings = apply::Settings {
        owner,
        alarm_wait: options.alarm_wait,
        show_secrets: options.show_secrets,
    };
    let total = report.plan.changes.len();
    let started = Instant::now();
    for (i, change) in report.plan.changes.iter().enumerate() {
        let sign = match change {
            Change::Create(_) => '+',
            Change::Update { .. } => '~',
        };
        eprintln!("[{}/{total}] {sign} {}", i + 1, change.resource().key());
        let step = Instant::now();
        match apply::apply(change, &clients, &settings)
            .await
            .with_context(|| format!("applying {sign} {}", change.resource().key()))?
        {
            apply::Outcome::Done => {
                eprintln!("      done in {:.1} s", step.elapsed().as_secs_f64())
            }
            apply::Outcome::Deferred(why) => {
                eprintln!("      deferred: {why}");
                report
                    .deferred
                    .push(format!("{}: {why}", change.resource().key()));
            }
        }
    }
    if total > 0 {
        eprintln!(
            "deploy: {total} change(s) applied in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    report.function_url = clients
        .lambda
        .get_function_url_config()
        .function_name(Function::Fence.name(deployment))
        .send()
        .await
        .ok()
        .map(|u| u.function_url);
    Ok(report)
}

/// Fails before any change when the plan holds a difference no call can make in place.
fn refuse_unappliable(plan: &Plan) -> anyhow::Result<()> {
    let refused = plan.unappliable();
    if refused.is_empty() {
        return Ok(());
    }
    bail!(
        "nothing was changed: {} difference(s) cannot be applied:\n  {}",
        refused.len(),
        refused.join("\n  ")
    )
}

/// The deployment's decision table alone, made as deploy makes it (desired state, diff,
/// apply), for sandbox worlds whose functions are configured in code rather than deployed.
/// Returns the changes it applied (none when the table was already as wanted).
pub async fn ensure_decision_table(
    deployment: &Deployment,
    args: &AwsArgs,
) -> anyhow::Result<Plan> {
    let clients = Clients::load(args, deployment).await;
    let desired = [plan::decision_table(deployment)];
    let observed = observe::observe(&desired, &clients).await?;
    let plan = plan::diff(&desired, &observed, &deployment.name);
    if let Some(conflict) = plan.conflicts.first() {
        bail!("{conflict}");
    }
    refuse_unappliable(&plan)?;
    let settings = apply::Settings {
        owner: deployment.name.clone(),
        alarm_wait: Duration::ZERO,
        show_secrets: false,
    };
    for change in &plan.changes {
        apply::apply(change, &clients, &settings)
            .await
            .with_context(|| format!("applying {}", change.resource().key()))?;
    }
    Ok(plan)
}

/// Fails before any change when the plan reserves more concurrency than the account can give
/// (moto accepts any reservation; Lambda refuses one half-way through a deployment). When the
/// account's settings cannot be read the check is skipped with a note: PutFunctionConcurrency
/// then reports the limit itself.
async fn check_reserved_concurrency(
    plan: &Plan,
    clients: &Clients,
    region: &str,
) -> anyhow::Result<()> {
    let reservations = preflight::reservation_changes(plan);
    if preflight::additional_reserved(&reservations) <= 0 {
        return Ok(());
    }
    match preflight::read_account_concurrency(&clients.lambda).await {
        Ok(account) => preflight::check_unreserved(account, &reservations)
            .map_err(anyhow::Error::new)
            .with_context(|| format!("checking Lambda's concurrency quota in {region}")),
        Err(why) => {
            eprintln!(
                "deploy: reserved-concurrency check skipped ({why}); if the account has too little unreserved concurrency, PutFunctionConcurrency will fail after the changes before it"
            );
            Ok(())
        }
    }
}

pub fn destroy(args: &DestroyArgs) -> anyhow::Result<()> {
    let deployment = load_deployment(&args.config, &args.aws)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let clients = Clients::load(&args.aws, &deployment).await;
        let owned = destroy::discover(&deployment, &clients).await?;
        if owned.is_empty() {
            println!("nothing of deployment `{}` to delete", deployment.name);
            return Ok(());
        }
        for resource in &owned {
            println!("- {resource}");
        }
        if args.dry_run {
            eprintln!("destroy: dry run, nothing deleted");
            return Ok(());
        }
        if !args.yes && !confirm(&deployment.name, owned.len())? {
            bail!("destroy: not confirmed, nothing deleted");
        }
        destroy::delete(&owned, &clients).await
    })
}

fn confirm(name: &str, count: usize) -> anyhow::Result<bool> {
    use std::io::{BufRead, Write};
    eprint!("delete these {count} resource(s) of deployment `{name}`? type `yes`: ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}
