//! Instance processes: spawning with Lambda's environment, copying their output into the
//! function log, killing their process group, and learning how they ended.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::lock::lock;
use super::{Configuration, FunctionSpec};

/// The function's log file, shared by every instance; each line is written whole.
pub(crate) struct LogSink {
    file: Mutex<File>,
}

impl LogSink {
    pub(crate) fn open(path: &Path) -> std::io::Result<Arc<LogSink>> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Arc::new(LogSink {
            file: Mutex::new(file),
        }))
    }

    fn write_line(&self, line: &[u8]) {
        let mut file = lock(&self.file);
        // A full disk must not take the function down with it; the line is lost.
        let _ = file.write_all(line);
    }
}

/// How an instance process ended, as the waiter thread saw it.
pub(super) struct Exit {
    /// `exit status 1`, `signal: killed`: the words Lambda uses in `Runtime.ExitError`.
    pub status: String,
}

/// The process group of one instance. Killing goes through here so that a pid is never
/// signalled after it was reaped (and possibly reused).
pub(super) struct ProcessGroup {
    pid: i32,
    reaped: Mutex<bool>,
}

impl ProcessGroup {
    pub(super) fn kill(&self) {
        let reaped = lock(&self.reaped);
        if !*reaped {
            signal_group(self.pid);
        }
    }
}

fn signal_group(pid: i32) {
    // SAFETY: kill(2) takes plain integers; the negative pid names the group this module
    // created for the instance, whose leader is not reaped yet (see `ProcessGroup`).
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}

pub(super) struct Spawned {
    pub pid: u32,
    pub group: Arc<ProcessGroup>,
}

/// What the environment of every instance of one function has in common.
pub(super) struct Launch {
    pub region: String,
    pub task_root: PathBuf,
}

/// Starts one instance. `on_exit` runs on a plain thread once the process has ended.
pub(super) fn spawn(
    spec: &FunctionSpec,
    configuration: &Configuration,
    launch: &Launch,
    runtime_api: SocketAddr,
    log: &Arc<LogSink>,
    on_exit: impl FnOnce(Exit) + Send + 'static,
) -> std::io::Result<Spawned> {
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .current_dir(&launch.task_root)
        .env_clear()
        .envs(environment(
            spec,
            configuration,
            launch,
            runtime_api,
            SystemTime::now(),
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so that a timeout kills whatever the runtime started too.
        .process_group(0);
    let mut child = command.spawn()?;
    let pid = child.id();
    let group = Arc::new(ProcessGroup {
        pid: i32::try_from(pid).unwrap_or(i32::MAX),
        reaped: Mutex::new(false),
    });

    let mut pumps = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        pumps.push(pump(stdout, log.clone())?);
    }
    if let Some(stderr) = child.stderr.take() {
        pumps.push(pump(stderr, log.clone())?);
    }
    // The pid is reaped by hand below (to read its rusage); `child` is never waited on.
    drop(child);

    let waited = group.clone();
    let waiter = std::thread::Builder::new()
        .name(format!("lambda-wait-{pid}"))
        .spawn(move || {
            let exit = wait(&waited);
            // The log is complete before anyone hears of the exit.
            for pump in pumps {
                let _ = pump.join();
            }
            on_exit(exit);
        });
    if let Err(error) = waiter {
        group.kill();
        return Err(error);
    }
    Ok(Spawned { pid, group })
}

/// Lambda's environment: the function's variables, then what Lambda itself sets (those win,
/// as Lambda's reserved variables cannot be overridden by configuration).
fn environment(
    spec: &FunctionSpec,
    configuration: &Configuration,
    launch: &Launch,
    runtime_api: SocketAddr,
    now: SystemTime,
) -> Vec<(String, String)> {
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".to_string());
    let mut env = vec![
        ("PATH".to_string(), path),
        ("LANG".to_string(), "C.UTF-8".to_string()),
    ];
    env.extend(configuration.env.iter().cloned());
    let lambda = [
        ("_HANDLER", spec.handler.clone()),
        ("AWS_REGION", launch.region.clone()),
        ("AWS_DEFAULT_REGION", launch.region.clone()),
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", spec.name.clone()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_string()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            configuration.memory_mb.to_string(),
        ),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", spec.name),
        ),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            super::ids::log_stream_name(now),
        ),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_string()),
        ("LAMBDA_TASK_ROOT", launch.task_root.display().to_string()),
        ("TZ", ":UTC".to_string()),
    ];
    env.extend(
        lambda
            .into_iter()
            .map(|(name, value)| (name.to_string(), value)),
    );
    env
}

fn pump(
    stream: impl Read + Send + 'static,
    log: Arc<LogSink>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("lambda-log".to_string())
        .spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if !line.ends_with(b"\n") {
                            line.push(b'\n');
                        }
                        log.write_line(&line);
                    }
                }
            }
        })
}

/// Blocks until the instance has ended, then reaps it for its exit status and peak RSS.
fn wait(group: &ProcessGroup) -> Exit {
    let pid = group.pid;
    // First wait without reaping: while the process is a zombie its pid cannot be reused,
    // so the group can still be killed safely (what the runtime left behind goes with it,
    // as it would when Lambda recycles an environment).
    loop {
        // SAFETY: siginfo_t is plain data that waitid fills in; all-zero is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid, writable siginfo_t for the duration of the call.
        let result = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if result == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
        {
            break;
        }
    }
    {
        let mut reaped = lock(&group.reaped);
        signal_group(pid);
        *reaped = true;
    }
    loop {
        let mut status: libc::c_int = 0;
        // The kernel's `ru_maxrss` is not read: it keeps the larger of the process's own peak
        // and the RSS of the image it replaced at `exec`, here the host (tens of MiB), which
        // would hide a small function's own peak. `VmHWM`, sampled around every invocation,
        // is the exec'd image's alone.
        // SAFETY: `status` is valid and writable for the duration of the call.
        let result = unsafe { libc::waitpid(pid, &mut status, 0) };
        if result == pid {
            return Exit {
                status: describe(status),
            };
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return Exit {
                status: "exit status unknown".to_string(),
            };
        }
    }
}

fn describe(status: libc::c_int) -> String {
    if libc::WIFEXITED(status) {
        format!("exit status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        match libc::WTERMSIG(status) {
            libc::SIGKILL => "signal: killed".to_string(),
            libc::SIGSEGV => "signal: segmentation fault".to_string(),
            libc::SIGABRT => "signal: aborted".to_string(),
            libc::SIGTERM => "signal: terminated".to_string(),
            other => format!("signal: {other}"),
        }
    } else {
        format!("wait status {status}")
    }
}

/// `VmHWM` of a live process, in KiB: the peak resident set so far.
pub(super) fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn spec() -> FunctionSpec {
        FunctionSpec {
            name: "fence-lambda".to_string(),
            program: PathBuf::from("bootstrap"),
            args: Vec::new(),
            cwd: None,
            env: vec![
                ("PATH".to_string(), "/opt/bin".to_string()),
                (
                    "AWS_LAMBDA_FUNCTION_NAME".to_string(),
                    "spoofed".to_string(),
                ),
                ("WEBHOOK_USER".to_string(), "alertmanager".to_string()),
            ],
            handler: "bootstrap".to_string(),
            instances: 1,
            reserved_concurrency: None,
            timeout: Duration::from_secs(3),
            memory_mb: 256,
            log_path: PathBuf::from("fence.log"),
            function_url: false,
            prestart: false,
            url_access: super::super::UrlAccess::Unchecked,
        }
    }

    /// The value a process would see: the last assignment of a name wins.
    fn seen(env: &[(String, String)], name: &str) -> Option<String> {
        env.iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    #[test]
    fn instance_environment_is_lambdas() {
        let launch = Launch {
            region: "eu-west-1".to_string(),
            task_root: PathBuf::from("/var/task"),
        };
        let spec = spec();
        let env = environment(
            &spec,
            &spec.configuration(),
            &launch,
            "127.0.0.1:9001".parse().unwrap(),
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(
            seen(&env, "AWS_LAMBDA_RUNTIME_API").as_deref(),
            Some("127.0.0.1:9001")
        );
        assert_eq!(
            seen(&env, "AWS_LAMBDA_FUNCTION_NAME").as_deref(),
            Some("fence-lambda")
        );
        assert_eq!(
            seen(&env, "AWS_LAMBDA_FUNCTION_VERSION").as_deref(),
            Some("$LATEST")
        );
        assert_eq!(
            seen(&env, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE").as_deref(),
            Some("256")
        );
        assert_eq!(seen(&env, "AWS_REGION").as_deref(), Some("eu-west-1"));
        assert_eq!(
            seen(&env, "AWS_DEFAULT_REGION").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(seen(&env, "_HANDLER").as_deref(), Some("bootstrap"));
        assert_eq!(seen(&env, "LAMBDA_TASK_ROOT").as_deref(), Some("/var/task"));
        assert_eq!(seen(&env, "TZ").as_deref(), Some(":UTC"));
        assert_eq!(seen(&env, "PATH").as_deref(), Some("/opt/bin"));
        assert_eq!(seen(&env, "WEBHOOK_USER").as_deref(), Some("alertmanager"));
        assert!(
            seen(&env, "AWS_LAMBDA_LOG_STREAM_NAME")
                .is_some_and(|s| s.starts_with("1970/01/01/[$LATEST]"))
        );
    }

    #[test]
    fn exit_statuses_read_like_lambdas() {
        assert_eq!(describe(1 << 8), "exit status 1");
        assert_eq!(describe(libc::SIGKILL), "signal: killed");
    }
}
