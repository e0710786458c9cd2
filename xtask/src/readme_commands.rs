//! Every `cargo xtask …` command README.md shows, run as a user runs it.
//!
//! Which commands count:
//! - in a ```` ```sh ```` or ```` ```text ```` block, every `cargo xtask …` up to the end of the
//!   line or a ` #` comment (a comment may show a command of its own: "then: cargo xtask sandbox
//!   down …"; a `text` block shows output that names the next command);
//! - in prose, every inline code span that starts with `cargo xtask` (a span may wrap lines).
//!
//! Spans that name a subcommand without `cargo xtask` (`site status`) are prose, and blocks in
//! other languages are file contents, not commands.
//!
//! Each command is in [`RUN`] (run as written, against a sandbox started the README way, by
//! `readme_commands_run_as_written_against_the_sandbox`) or in [`EXCLUDED`] with the reason.
//! `every_readme_command_is_run_or_excluded` fails on a README command that is neither, and on a
//! listed command the README no longer shows: a new or changed command needs a decision here.
//!
//! How "as written" is kept: the commands run in a scratch directory holding the sandbox in
//! `.sandbox/` (so `--dir .sandbox` and `--config .sandbox/sitefence.toml` mean what they say),
//! and the commands that read `./sitefence.toml` run in `.sandbox/`, where `sandbox up` writes
//! it (naming the ZIPs it deployed, `.sandbox/zips`). Placeholders are substituted (`DIR` is
//! those ZIPs, `ID` the health check); nothing else is added, except `--yes` after
//! the command as written has refused to change anything without a terminal (which is checked:
//! the README promises it). Between the commands the test plays the rest of the world: the
//! sample `SiteOffline` webhook fences site-b as Alertmanager would, and the health check is
//! pinned as the Route 53 function would.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use aws_topology::route53::{self, HealthCheckId};
use sandbox::world::SandboxInfo;
use serde_json::Value;

use crate::{lint, sandbox_cmd, workspace};

/// README commands this test runs, as the README shows them (whitespace collapsed).
const RUN: &[&str] = &[
    SANDBOX_UP,
    SANDBOX_DOWN,
    SITE_STATUS,
    SITE_HISTORY,
    DOCTOR,
    EMIT_CLOUDFORMATION,
    SUPPLY_CHAIN,
    MANIFESTS,
    LINT,
    TAKE_OFFLINE,
    BRING_ONLINE,
    SYNC,
    FAILBACK,
    DEPLOY_DRY_RUN,
    DEPLOY,
    DEPLOY_TO_SANDBOX,
    DESTROY,
];

const SANDBOX_UP: &str = "cargo xtask sandbox up --dir .sandbox";
const SANDBOX_DOWN: &str = "cargo xtask sandbox down --dir .sandbox";
const SITE_STATUS: &str = "cargo xtask site status";
const SITE_HISTORY: &str = "cargo xtask site history";
const DOCTOR: &str = "cargo xtask doctor --config .sandbox/sitefence.toml";
const EMIT_CLOUDFORMATION: &str =
    "cargo xtask deploy --config sitefence.toml --emit cloudformation sitefence.cfn.json";
const SUPPLY_CHAIN: &str = "cargo xtask supply-chain";
const MANIFESTS: &str = "cargo xtask manifests";
const LINT: &str = "cargo xtask lint";
const TAKE_OFFLINE: &str = "cargo xtask site take-offline site-b";
const BRING_ONLINE: &str = "cargo xtask site bring-online site-b";
const SYNC: &str = "cargo xtask site sync --from site-a --to site-b";
const FAILBACK: &str = "cargo xtask route53 failback --health-check-id ID";
const DEPLOY_DRY_RUN: &str = "cargo xtask deploy --config sitefence.toml --dry-run";
const DEPLOY: &str = "cargo xtask deploy --config sitefence.toml";
const DEPLOY_TO_SANDBOX: &str =
    "cargo xtask deploy --config .sandbox/sitefence.toml --zips DIR --arch x86_64";
const DESTROY: &str = "cargo xtask destroy --config sitefence.toml";

/// A README command this test does not run, and why.
struct Exclusion {
    command: &'static str,
    /// Also every command that starts with `command`'s words.
    with_any_arguments: bool,
    why: &'static str,
}

const EXCLUDED: &[Exclusion] = &[
    Exclusion {
        command: "cargo xtask",
        with_any_arguments: false,
        why: "names the tool in prose; without a subcommand clap prints the usage and exits 2",
    },
    Exclusion {
        command: "cargo xtask drill",
        with_any_arguments: true,
        why: "minutes per run, installs and runs Prometheus and Alertmanager; \
              `cargo xtask test` runs it (its drill stage)",
    },
    Exclusion {
        command: "cargo xtask test",
        with_any_arguments: true,
        why: "runs every test, this one included, then the drill and the reliability suite",
    },
    Exclusion {
        command: "cargo xtask bench",
        with_any_arguments: true,
        why: "builds the functions in release mode and needs the seeds' Python functions \
              (`../shared/peers`); minutes",
    },
    Exclusion {
        command: "cargo xtask reliability",
        with_any_arguments: true,
        why: "500 rounds in sandbox worlds and 5 s of fuzzing per parser; \
              the last stage of `cargo xtask test`",
    },
    Exclusion {
        command: "cargo xtask build",
        with_any_arguments: true,
        why: "cross-compiles with cargo-lambda (and the aarch64 standard library); \
              deploy here uploads the ZIPs of the native binaries `sandbox up` wrote",
    },
];

/// A `cargo xtask …` command README.md shows, and the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shown {
    command: String,
    line: usize,
}

/// The commands `markdown` shows (see the module comment for which count).
fn shown_commands(markdown: &str) -> Vec<Shown> {
    let mut shown = Vec::new();
    // Prose with every code block blanked out, line for line: inline spans are found in it and
    // cannot reach into a block.
    let mut prose = Vec::new();
    let mut block: Option<String> = None;
    for (index, line) in markdown.lines().enumerate() {
        let fence = line.trim_start().strip_prefix("```");
        match (&block, fence) {
            (None, Some(language)) => {
                block = Some(language.trim().to_owned());
                prose.push("");
            }
            (Some(_), Some(_)) => {
                block = None;
                prose.push("");
            }
            (Some(language), None) => {
                if language == "sh" || language == "text" {
                    shown.extend(commands_in_line(line).into_iter().map(|command| Shown {
                        command,
                        line: index + 1,
                    }));
                }
                prose.push("");
            }
            (None, None) => prose.push(line),
        }
    }
    let prose = prose.join("\n");
    let mut rest = prose.as_str();
    let mut offset = 0;
    while let Some(open) = rest.find('`') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('`') else { break };
        let span = &after[..close];
        // A span never crosses a paragraph: an unmatched backtick is literal text.
        if span.contains("\n\n") {
            offset += open + 1;
            rest = after;
            continue;
        }
        let command = normalize(span);
        if command == "cargo xtask" || command.starts_with("cargo xtask ") {
            shown.push(Shown {
                command,
                line: 1 + prose[..offset + open].matches('\n').count(),
            });
        }
        offset += open + 1 + close + 1;
        rest = &after[close + 1..];
    }
    shown.sort_by_key(|s| s.line);
    shown
}

/// The `cargo xtask …` commands of one line of a shell or output block.
fn commands_in_line(line: &str) -> Vec<String> {
    const START: &str = "cargo xtask";
    let mut commands = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find(START) {
        let tail = &rest[at..];
        let next = tail[START.len()..]
            .find(START)
            .map_or(tail.len(), |n| n + START.len());
        let end = tail[..next].find(" #").unwrap_or(next);
        commands.push(normalize(&tail[..end]));
        rest = &tail[next..];
    }
    commands
}

fn normalize(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

enum Decision {
    Run,
    Excluded(&'static str),
    Undecided,
}

fn decide(command: &str) -> Decision {
    if RUN.contains(&command) {
        return Decision::Run;
    }
    let words: Vec<&str> = command.split_whitespace().collect();
    for exclusion in EXCLUDED {
        let excluded: Vec<&str> = exclusion.command.split_whitespace().collect();
        if words == excluded || (exclusion.with_any_arguments && words.starts_with(&excluded)) {
            return Decision::Excluded(exclusion.why);
        }
    }
    Decision::Undecided
}

fn readme() -> String {
    let path = workspace::root().join("README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

#[test]
fn shows_block_commands_up_to_comments_and_inline_spans_across_lines() {
    let markdown = "\
Run `cargo xtask site status` first; `site sync` is prose and so is `cargo nextest run`.
With seed 000, `cargo xtask route53 failback
--health-check-id ID` fails back.

```sh
cargo xtask drill                 # --timings fast|seed
cargo xtask sandbox up --dir .sandbox   # ... then: cargo xtask sandbox down --dir .sandbox
```

```toml
name = \"cargo xtask in a file\"
```

   ```text
   verdict: fenced: site-b out, next: cargo xtask site sync --from site-a --to site-b
   ```
An unmatched ` backtick

stays literal, and `cargo xtask` alone is shown.
";
    let shown = shown_commands(markdown);
    let shown: Vec<(usize, &str)> = shown.iter().map(|s| (s.line, s.command.as_str())).collect();
    assert_eq!(
        shown,
        vec![
            (1, "cargo xtask site status"),
            (2, "cargo xtask route53 failback --health-check-id ID"),
            (6, "cargo xtask drill"),
            (7, "cargo xtask sandbox up --dir .sandbox"),
            (7, "cargo xtask sandbox down --dir .sandbox"),
            (15, "cargo xtask site sync --from site-a --to site-b"),
            (19, "cargo xtask"),
        ]
    );
}

#[test]
fn every_readme_command_is_run_or_excluded() {
    let shown = shown_commands(&readme());
    assert!(
        shown.len() >= RUN.len(),
        "README.md shows only {} `cargo xtask` commands: is the extraction broken?",
        shown.len()
    );
    let mut problems = Vec::new();
    for s in &shown {
        match decide(&s.command) {
            Decision::Run => println!("README.md:{}: run: {}", s.line, s.command),
            Decision::Excluded(why) => {
                println!("README.md:{}: excluded: {} ({why})", s.line, s.command)
            }
            Decision::Undecided => problems.push(format!(
                "README.md:{} shows `{}`, which readme_commands.rs neither runs (RUN) nor excludes (EXCLUDED)",
                s.line, s.command
            )),
        }
    }
    for listed in RUN {
        if !shown.iter().any(|s| s.command == *listed) {
            problems.push(format!(
                "readme_commands.rs runs `{listed}` as a README command, but README.md no longer shows it"
            ));
        }
    }
    for exclusion in EXCLUDED {
        if !shown.iter().any(|s| {
            let words: Vec<&str> = s.command.split_whitespace().collect();
            let excluded: Vec<&str> = exclusion.command.split_whitespace().collect();
            words == excluded || (exclusion.with_any_arguments && words.starts_with(&excluded))
        }) {
            problems.push(format!(
                "readme_commands.rs excludes `{}`, but README.md no longer shows it",
                exclusion.command
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Where a command runs: the user's directory (holding `.sandbox/`), or `.sandbox/` itself,
/// where `./sitefence.toml` is the sandbox's.
#[derive(Clone, Copy)]
enum Cwd {
    Scratch,
    Sandbox,
}

/// What one command did; its output is also kept in `log.stdout` / `log.stderr`.
struct Ran {
    shown: String,
    status: ExitStatus,
    stdout: String,
    stderr: String,
    log: PathBuf,
}

impl Ran {
    fn describe(&self) -> String {
        format!(
            "`{}` ({}; output in {}.stdout/.stderr)\n--- stdout\n{}\n--- stderr\n{}",
            self.shown,
            self.status,
            self.log.display(),
            tail(&self.stdout),
            tail(&self.stderr)
        )
    }

    /// Exit code 0, and each of `expected` somewhere in its output.
    fn succeeded(self, expected: &[&str]) -> anyhow::Result<Ran> {
        ensure!(self.status.success(), "failed: {}", self.describe());
        let output = format!("{}{}", self.stdout, self.stderr);
        for text in expected {
            ensure!(
                output.contains(text),
                "the output lacks `{text}`: {}",
                self.describe()
            );
        }
        Ok(self)
    }

    /// A non-zero exit code with `reason` in its output.
    fn refused(self, reason: &str) -> anyhow::Result<Ran> {
        ensure!(
            !self.status.success() && self.stderr.contains(reason),
            "expected a refusal saying `{reason}`: {}",
            self.describe()
        );
        Ok(self)
    }

    /// The `verdict:` line `site status` printed.
    fn verdict(&self) -> anyhow::Result<&str> {
        self.stdout
            .lines()
            .find(|l| l.starts_with("verdict: "))
            .with_context(|| format!("no verdict line: {}", self.describe()))
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// A command that hangs fails the test instead of hanging it; generous because the first
/// `sandbox up` and `lint` install moto and the linters.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// The operator's shell: the xtask binary `cargo xtask` runs, a working directory holding the
/// sandbox in `.sandbox/`, and a log of every command.
struct Session {
    xtask: PathBuf,
    scratch: PathBuf,
    sandbox: PathBuf,
    logs: PathBuf,
    commands: usize,
    ran: BTreeSet<&'static str>,
}

impl Session {
    fn new() -> anyhow::Result<Session> {
        let scratch = std::env::temp_dir().join(format!(
            "sitefence-readme-{}-{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        let logs = scratch.join("commands");
        std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
        // The binary `cargo xtask` (`cargo run --package xtask`) builds, built as `sandbox up`
        // builds every binary, so that its own build is then a no-op.
        let xtask = workspace::build_sandbox_binaries(false)?.join("xtask");
        Ok(Session {
            xtask,
            sandbox: scratch.join(".sandbox"),
            scratch,
            logs,
            commands: 0,
            ran: BTreeSet::new(),
        })
    }

    /// Runs the README's `shown` with its placeholders substituted, plus `extra` arguments.
    fn readme(
        &mut self,
        shown: &'static str,
        cwd: Cwd,
        placeholders: &[(&str, &str)],
        extra: &[&str],
    ) -> anyhow::Result<Ran> {
        ensure!(RUN.contains(&shown), "`{shown}` is not listed in RUN");
        self.ran.insert(shown);
        let words = shown
            .strip_prefix("cargo xtask ")
            .with_context(|| format!("`{shown}` is not a cargo xtask command"))?
            .split_whitespace();
        let mut args = Vec::new();
        for word in words {
            let value = placeholders
                .iter()
                .find(|(name, _)| *name == word)
                .map_or(word, |(_, value)| *value);
            ensure!(
                !value.chars().all(|c| c.is_ascii_uppercase()),
                "`{shown}`: no value for the placeholder {value}"
            );
            args.push(value.to_owned());
        }
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        self.run(&args, cwd)
    }

    fn run(&mut self, args: &[String], cwd: Cwd) -> anyhow::Result<Ran> {
        self.commands += 1;
        let shown = format!("cargo xtask {}", args.join(" "));
        let slug: String = args
            .iter()
            .take(2)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("-")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let log = self.logs.join(format!("{:02}-{slug}", self.commands));
        let (stdout_path, stderr_path) =
            (log.with_extension("stdout"), log.with_extension("stderr"));
        let dir = match cwd {
            Cwd::Scratch => &self.scratch,
            Cwd::Sandbox => &self.sandbox,
        };
        println!("$ (cd {}; {shown})", dir.display());
        let started = Instant::now();
        let mut child = Command::new(&self.xtask)
            .args(args)
            .current_dir(dir)
            // No terminal, as in CI: the commands that change something must refuse without --yes.
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout_path)?)
            .stderr(std::fs::File::create(&stderr_path)?)
            // The sandbox's sitefence.toml names its endpoint; a developer's AWS settings must
            // not send these commands anywhere else.
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_PROFILE")
            .spawn()
            .with_context(|| format!("starting {}", self.xtask.display()))?;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if started.elapsed() > COMMAND_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "`{shown}` did not finish within {} s (output in {}.stdout/.stderr)",
                    COMMAND_TIMEOUT.as_secs(),
                    log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        println!("  → {status} in {:.1} s", started.elapsed().as_secs_f64());
        Ok(Ran {
            shown,
            status,
            stdout: std::fs::read_to_string(&stdout_path).unwrap_or_default(),
            stderr: std::fs::read_to_string(&stderr_path).unwrap_or_default(),
            log,
        })
    }

    /// A command that changes something: as written (no terminal) it shows its plan and
    /// refuses; with `--yes` it applies it.
    fn readme_confirmed(
        &mut self,
        shown: &'static str,
        cwd: Cwd,
        placeholders: &[(&str, &str)],
        refusal: &str,
        expected: &[&str],
    ) -> anyhow::Result<Ran> {
        self.readme(shown, cwd, placeholders, &[])?
            .refused(refusal)?;
        self.readme(shown, cwd, placeholders, &["--yes"])?
            .succeeded(expected)
    }

    fn status(&mut self) -> anyhow::Result<String> {
        let ran = self
            .readme(SITE_STATUS, Cwd::Sandbox, &[], &[])?
            .succeeded(&["verdict: "])?;
        Ok(ran.verdict()?.to_owned())
    }
}

/// `site`'s refusal without a terminal and without `--yes` (README, "After a fence").
const NOT_A_TERMINAL: &str = "standard input is not a terminal";

#[test]
fn readme_commands_run_as_written_against_the_sandbox() {
    let mut session = Session::new().unwrap_or_else(|e| panic!("preparing the test: {e:#}"));
    let runtime = tokio::runtime::Runtime::new()
        .unwrap_or_else(|e| panic!("starting the async runtime: {e}"));
    let outcome = walk_through(&mut session, &runtime);

    // Always stopped, the README way; anything left is stopped by its pids.
    let down = session
        .readme(SANDBOX_DOWN, Cwd::Scratch, &[], &[])
        .and_then(|ran| ran.succeeded(&["sandbox: "]))
        .and_then(|_| {
            ensure!(
                !session.sandbox.join("sandbox.json").exists(),
                "`sandbox down` left sandbox.json behind"
            );
            Ok(())
        });
    if down.is_err()
        && let Ok(info) = sandbox_cmd::read_info(&session.sandbox)
    {
        sandbox_cmd::stop_pids(&info.pids);
    }
    let where_ = format!(
        "every command's output is in {}, the sandbox's logs in {}",
        session.logs.display(),
        session.sandbox.join("logs").display()
    );
    if let Err(e) = outcome {
        panic!("{e:#}\n({where_})");
    }
    if let Err(e) = down {
        panic!("{e:#}\n({where_})");
    }
    let never_ran: Vec<&&str> = RUN.iter().filter(|c| !session.ran.contains(**c)).collect();
    assert!(
        never_ran.is_empty(),
        "RUN lists commands the test never runs: {never_ran:?}"
    );
    let _ = std::fs::remove_dir_all(&session.scratch);
}

/// Everything between `sandbox up` and `sandbox down`, in the order an operator runs it.
fn walk_through(session: &mut Session, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    session
        .readme(SANDBOX_UP, Cwd::Scratch, &[], &[])?
        .succeeded(&["sandbox: ready"])?;
    let info = sandbox_cmd::read_info(&session.sandbox)?;
    ensure!(
        session.sandbox.join("sitefence.toml").is_file(),
        "`sandbox up` wrote no .sandbox/sitefence.toml"
    );

    let verdict = session.status()?;
    ensure!(verdict.starts_with("verdict: healthy"), "seeded: {verdict}");
    // The fresh deployment passes every check (without Prometheus URLs, alerting is skipped).
    session
        .readme(DOCTOR, Cwd::Scratch, &[], &[])?
        .succeeded(&["doctor: all "])?;
    // The template of the same deployment, read back into deploy's own attributes.
    session
        .readme(EMIT_CLOUDFORMATION, Cwd::Sandbox, &[], &[])?
        .succeeded(&["sitefence.cfn.json"])?;
    let text = std::fs::read_to_string(session.sandbox.join("sitefence.cfn.json"))
        .context("`deploy --emit cloudformation` wrote no sitefence.cfn.json")?;
    let template: Value = serde_json::from_str(&text)?;
    ensure!(
        template["Outputs"]["FenceFunctionUrl"].is_object(),
        "the template has no FenceFunctionUrl output"
    );
    session
        .readme(SUPPLY_CHAIN, Cwd::Scratch, &[], &[])?
        .succeeded(&["advisories: "])?;

    // The alerting for this deployment, as documented (./sitefence.toml → ./manifests), and
    // with explicit paths; the linters check what it wrote.
    let ran = session
        .readme(MANIFESTS, Cwd::Sandbox, &[], &[])?
        .succeeded(&["site-a.rules.yml", "alertmanager"])?;
    for path in ran.stdout.lines() {
        let path = session.sandbox.join(path);
        ensure!(
            path.is_file(),
            "`manifests` printed {} but it is not a file",
            path.display()
        );
    }
    let config = session.sandbox.join("sitefence.toml");
    let out = session.sandbox.join("m");
    session
        .run(
            &[
                "manifests".to_owned(),
                "--config".to_owned(),
                config.display().to_string(),
                "--out".to_owned(),
                out.display().to_string(),
            ],
            Cwd::Scratch,
        )?
        .succeeded(&["site-b.rules.yml"])?;
    lint::check_manifests(&out)
        .with_context(|| format!("linting what `manifests` wrote into {}", out.display()))?;
    session
        .readme(LINT, Cwd::Scratch, &[], &[])?
        .succeeded(&["linters pass"])?;

    // Maintenance (chapter 16, then 8): replication keeps running, so the sites stay in sync
    // and bring-online follows directly.
    session.readme_confirmed(TAKE_OFFLINE, Cwd::Sandbox, &[], NOT_A_TERMINAL, &[])?;
    let verdict = session.status()?;
    ensure!(
        verdict.starts_with("verdict: fenced: site-b out; the sites are in sync"),
        "after take-offline: {verdict}"
    );
    session.readme_confirmed(BRING_ONLINE, Cwd::Sandbox, &[], NOT_A_TERMINAL, &[])?;
    let verdict = session.status()?;
    ensure!(
        verdict.starts_with("verdict: healthy"),
        "after bring-online: {verdict}"
    );

    // A fence, as Alertmanager triggers it; then the README's three commands.
    runtime.block_on(fence_site_b(&info))?;
    let verdict = session.status()?;
    let documented = documented_verdicts(&readme());
    ensure!(
        documented.iter().any(|d| matches_documented(d, &verdict)),
        "after the fence, `site status` says\n  {verdict}\nbut README.md documents\n  {}",
        documented.join("\n  ")
    );
    session.readme_confirmed(SYNC, Cwd::Sandbox, &[], NOT_A_TERMINAL, &[])?;
    let verdict = session.status()?;
    ensure!(
        verdict.starts_with("verdict: fenced: site-b out; the sites are in sync"),
        "after sync: {verdict}"
    );
    session.readme_confirmed(BRING_ONLINE, Cwd::Sandbox, &[], NOT_A_TERMINAL, &[])?;
    let verdict = session.status()?;
    ensure!(
        verdict.starts_with("verdict: healthy"),
        "after the recovery: {verdict}"
    );
    // The fence looked back on: its decision, what it did, and that bring-online closed it.
    session
        .readme(SITE_HISTORY, Cwd::Sandbox, &[], &[])?
        .succeeded(&["site-a", "site-b", "steps: removed", "closed"])?;

    // Route 53 (seed 000): the failover function's pin, then the operator's fail-back.
    let id = info.route53.health_check_id.clone();
    runtime.block_on(pin_health_check(&info, &id))?;
    session.readme_confirmed(
        FAILBACK,
        Cwd::Sandbox,
        &[("ID", &id)],
        NOT_A_TERMINAL,
        &[route53::ORIGINAL_PATH],
    )?;

    // `sandbox up` deployed the functions with deploy's code and runs what it deployed: deploy
    // finds nothing to change, whichever README form names the sandbox's deployment. Then
    // destroy, which asks first.
    session
        .readme(DEPLOY_DRY_RUN, Cwd::Sandbox, &[], &[])?
        .succeeded(&["no changes"])?;
    session
        .readme(DEPLOY, Cwd::Sandbox, &[], &[])?
        .succeeded(&["no changes"])?;
    // `--arch x86_64` as written: the sandbox deployed the host's architecture, so on another
    // host this form changes the functions' architecture.
    let unchanged: &[&str] = if cfg!(target_arch = "x86_64") {
        &["no changes"]
    } else {
        &[]
    };
    session
        .readme(
            DEPLOY_TO_SANDBOX,
            Cwd::Scratch,
            &[("DIR", ".sandbox/zips")],
            &[],
        )?
        .succeeded(unchanged)?;
    session
        .readme(DESTROY, Cwd::Sandbox, &[], &[])?
        .refused("not confirmed")?;
    session
        .readme(DESTROY, Cwd::Sandbox, &[], &["--yes"])?
        .succeeded(&[])?;
    session
        .readme(DESTROY, Cwd::Sandbox, &[], &[])?
        .succeeded(&["nothing of deployment"])?;
    Ok(())
}

/// The `verdict:` lines README.md's output blocks show.
fn documented_verdicts(markdown: &str) -> Vec<String> {
    markdown
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("verdict: "))
        .map(str::to_owned)
        .collect()
}

/// Whether `line` is what `documented` shows, where `…` stands for anything.
fn matches_documented(documented: &str, line: &str) -> bool {
    let pieces: Vec<&str> = documented.split('…').collect();
    let (Some(first), Some(last)) = (pieces.first(), pieces.last()) else {
        return false;
    };
    if !line.starts_with(first) || !line.ends_with(last) {
        return false;
    }
    let mut rest = &line[first.len()..];
    for piece in &pieces[1..] {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    true
}

#[test]
fn ellipsis_in_documented_output_stands_for_anything() {
    let documented = "verdict: fenced: site-b out; not in sync (a=offline, …), next: cargo xtask x";
    for (line, matches) in [
        (
            "verdict: fenced: site-b out; not in sync (a=offline, b=offline), next: cargo xtask x",
            true,
        ),
        (
            "verdict: fenced: site-b out; not in sync (a=offline, ), next: cargo xtask x",
            true,
        ),
        (
            "verdict: fenced: site-a out; not in sync (a=offline, b), next: cargo xtask x",
            false,
        ),
        (
            "verdict: fenced: site-b out; not in sync (a=offline, b), next: cargo xtask y",
            false,
        ),
    ] {
        assert_eq!(matches_documented(documented, line), matches, "{line}");
    }
}

/// The sample `SiteOffline` alert, aimed at this sandbox's accelerator, posted to the fence's
/// Function URL with the webhook credentials, as Alertmanager posts it.
async fn fence_site_b(info: &SandboxInfo) -> anyhow::Result<()> {
    let path = workspace::root().join("events/fence/site-b-offline-reported-by-site-a.json");
    let sample =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let alert: Value = serde_json::from_str(&sample)?;
    let body = sample.replace(
        alert["commonLabels"]["accelerator"]
            .as_str()
            .context("the sample alert has an accelerator label")?,
        &info.accelerator_dns,
    );
    let url = info
        .fence
        .function_url
        .clone()
        .context("the sandbox runs the fence function")?;
    let response = reqwest::Client::new()
        .post(url)
        .basic_auth(&info.fence.user, Some(&info.fence.password))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    ensure!(status.is_success(), "the fence answered {status}: {text}");
    Ok(())
}

/// What the Route 53 failover function does on an alarm: pins the health check.
async fn pin_health_check(info: &SandboxInfo, id: &str) -> anyhow::Result<()> {
    let id: HealthCheckId = id
        .parse()
        .map_err(|e| anyhow::anyhow!("health check id `{id}`: {e}"))?;
    let config = crate::aws::load(
        &crate::aws::AwsArgs::default(),
        Some(info.aws_endpoint_url.clone()),
        sandbox::world::ROUTE53_REGION.to_owned(),
    )
    .await;
    route53::pin(
        &aws_sdk_route53::Client::new(&config),
        &id,
        route53::FAILED_OVER_PATH,
    )
    .await?;
    Ok(())
}
