//! `cargo xtask sandbox up|down --dir DIR`: the sandbox in the background, as DESIGN.md specifies.
//! `up` runs `sandbox serve` (this binary, hidden) in the background: the emulators, the
//! functions deployed into moto with deploy's own code, and each function run from what was
//! deployed ([`crate::sandbox_world`]).

use crate::workspace;
use anyhow::{Context, bail};
use sandbox::ispn::IspnVersion;
use sandbox::world::SandboxInfo;
use sandbox::world::WorldOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct UpArgs {
    /// Directory for sandbox.json, sitefence.toml, ca.pem and logs/.
    #[arg(long, default_value = ".sandbox")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub world: WorldArgs,
    /// Run release builds of the functions (as the bench does).
    #[arg(long)]
    pub release: bool,
}

/// How the world behaves: what `up` takes and hands on to `serve` unchanged.
#[derive(clap::Args, Debug, Clone)]
pub struct WorldArgs {
    /// Infinispan version the emulators speak.
    #[arg(long, value_parser = ["v14", "v15"], default_value = "v15")]
    pub ispn_version: String,
    /// Instances of the fence function running at once.
    #[arg(long, default_value_t = 2)]
    pub fence_instances: usize,
    /// How long a push-state stays SENDING, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub push_delay_ms: u64,
}

impl WorldArgs {
    /// The same settings as command-line arguments, for `serve`.
    fn to_args(&self) -> Vec<String> {
        vec![
            "--ispn-version".to_string(),
            self.ispn_version.clone(),
            "--fence-instances".to_string(),
            self.fence_instances.to_string(),
            "--push-delay-ms".to_string(),
            self.push_delay_ms.to_string(),
        ]
    }
}

/// `sandbox serve`: what `up` runs in the background (not for direct use).
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    #[arg(long)]
    pub dir: PathBuf,
    #[command(flatten)]
    pub world: WorldArgs,
    /// Where the function binaries are.
    #[arg(long)]
    pub bin_dir: PathBuf,
}

#[derive(clap::Args, Debug, Clone)]
pub struct DownArgs {
    #[arg(long, default_value = ".sandbox")]
    pub dir: PathBuf,
}

/// Starts the sandbox and returns once `DIR/sandbox.json` says everything answers.
pub fn up(args: &UpArgs) -> anyhow::Result<SandboxInfo> {
    let started = Instant::now();
    let dir = absolute(&args.dir)?;
    std::fs::create_dir_all(dir.join("logs"))
        .with_context(|| format!("creating {}", dir.display()))?;
    let info_path = dir.join("sandbox.json");
    if let Ok(existing) = read_info(&dir)
        && existing.pids.first().is_some_and(|pid| alive(*pid))
    {
        bail!(
            "a sandbox is already running in {} (pid {}); run `cargo xtask sandbox down --dir {}` first",
            dir.display(),
            existing.pids[0],
            args.dir.display()
        );
    }
    let _ = std::fs::remove_file(&info_path);

    eprintln!("sandbox: building the functions and the emulators");
    let bin_dir = workspace::build_sandbox_binaries(args.release)?;
    eprintln!("sandbox: preparing the Python virtualenv (moto)");
    pytools::Venv::locate()
        .ensure(pytools::MOTO)
        .context("installing moto into the project virtualenv")?;

    let log_path = dir.join("logs").join("sandbox.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    // The xtask just built beside the functions: this process's own file may have been
    // replaced by that build.
    let mut command = Command::new(bin_dir.join("xtask"));
    command
        .args(["sandbox", "serve", "--dir"])
        .arg(&dir)
        .args(args.world.to_args())
        .arg("--bin-dir")
        .arg(&bin_dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: a Ctrl-C meant for this command must not stop the sandbox.
        .process_group(0);
    let mut child = command.spawn().context("starting the sandbox process")?;

    eprintln!("sandbox: starting moto and the emulators, deploying the functions into moto");
    let deadline = Instant::now() + Duration::from_secs(300);
    let info = loop {
        if let Ok(info) = read_info(&dir) {
            break info;
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "the sandbox exited ({status}) before it was ready:\n{}",
                tail(&log_path, 30)
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!(
                "the sandbox was not ready within 300 s:\n{}",
                tail(&log_path, 30)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };

    let toml_path = dir.join("sitefence.toml");

    eprintln!("sandbox: ready in {:.1} s", started.elapsed().as_secs_f64());
    eprintln!("  sandbox.json       {}", info_path.display());
    eprintln!("  sitefence.toml     {}", toml_path.display());
    eprintln!("  AWS (moto)         {}", info.aws_endpoint_url);
    eprintln!(
        "  Global Accelerator {}",
        info.globalaccelerator_endpoint_url
    );
    for (site, s) in &info.sites {
        eprintln!("  {site:<18} {} (control {})", s.ispn_url, s.control_url);
    }
    if let Some(url) = &info.fence.function_url {
        eprintln!("  fence Function URL {url}");
    }
    for (function, source) in &info.configuration_sources {
        eprintln!("  {function:<18} configured from {source}");
    }
    eprintln!("  logs               {}", dir.join("logs").display());
    Ok(info)
}

/// The sandbox in the foreground, deployed: writes `DIR/sandbox.json` once everything answers
/// and stops everything on SIGTERM or Ctrl-C.
pub fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let world = &args.world;
        let mut options = WorldOptions::new(&args.dir);
        options.ispn_version = match world.ispn_version.as_str() {
            "v14" => IspnVersion::V14,
            _ => IspnVersion::V15,
        };
        options.push_delay = Duration::from_millis(world.push_delay_ms);
        crate::sandbox_world::start(options, &args.bin_dir, world.fence_instances)
            .await
            .context("starting the sandbox")?
            .serve(&args.dir)
            .await
    })
}

/// Stops everything `up` started in DIR; leaves no process behind.
pub fn down(args: &DownArgs) -> anyhow::Result<()> {
    let dir = absolute(&args.dir)?;
    let info = match read_info(&dir) {
        Ok(info) => info,
        Err(_) => {
            eprintln!("sandbox: nothing running in {}", dir.display());
            return Ok(());
        }
    };
    stop_pids(&info.pids);
    let _ = std::fs::remove_file(dir.join("sandbox.json"));
    eprintln!("sandbox: stopped");
    Ok(())
}

/// SIGTERM to the sandbox process (which stops its children), then SIGKILL to anything left.
pub fn stop_pids(pids: &[u32]) {
    let Some(&main) = pids.first() else { return };
    signal(main, libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && pids.iter().any(|&pid| alive(pid)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    for &pid in pids {
        if alive(pid) {
            signal(pid, libc::SIGKILL);
        }
    }
}

pub fn read_info(dir: &Path) -> anyhow::Result<SandboxInfo> {
    let path = dir.join("sandbox.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn absolute(dir: &Path) -> anyhow::Result<PathBuf> {
    Ok(if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir()?.join(dir)
    })
}

fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // Signal 0 checks existence; a zombie still "exists", so look at /proc as well.
    // SAFETY: kill with signal 0 sends nothing; it only checks the pid.
    let exists = unsafe { libc::kill(pid, 0) } == 0;
    exists
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| !stat.contains(") Z "))
            .unwrap_or(false)
}

fn signal(pid: u32, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: sending a signal to a pid we started has no memory-safety implications.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
