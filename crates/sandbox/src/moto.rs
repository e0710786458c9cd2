//! moto's standalone server (`moto_server`), run from the project virtualenv on a free
//! loopback port, for every AWS service the sandbox does not emulate itself. It is started
//! through `moto_launcher.py`, which answers two of moto's per-request lookups of things that
//! never change once instead of on every request: the same answers, about twice as fast.
//!
//! A cold start takes about a second (most of it importing moto); the first start on a machine
//! also installs moto into the virtualenv, which takes about a minute.

use std::fs::OpenOptions;
use std::io::Seek;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use pytools::{Venv, VenvError};

/// How long moto may take to answer after it was spawned. A cold start takes about a second;
/// the margin is for a machine busy compiling.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Another process can take the free port between our probe and moto's bind.
const PORT_ATTEMPTS: usize = 5;
const STOP_GRACE: Duration = Duration::from_secs(3);
/// Starts `moto.server.main` with the server's arguments (`python -c LAUNCHER ARGS...`).
const LAUNCHER: &str = include_str!("moto_launcher.py");

#[derive(Debug, thiserror::Error)]
pub enum MotoError {
    #[error("installing moto into the virtualenv: {0}")]
    Venv(#[from] VenvError),
    #[error("cannot open moto's log {path}: {source}")]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("moto_server exited ({status}) before it answered; last lines of {log}:\n{tail}")]
    Exited {
        status: std::process::ExitStatus,
        log: PathBuf,
        tail: String,
    },
    #[error("moto_server did not answer within {seconds} s; last lines of {log}:\n{tail}")]
    Timeout {
        seconds: u64,
        log: PathBuf,
        tail: String,
    },
    #[error("no free loopback port for moto after {attempts} attempts")]
    NoFreePort { attempts: usize },
    #[error("{url}: {detail}")]
    Request { url: String, detail: String },
}

/// A running `moto_server`; stopped (its whole process group) on [`MotoServer::shutdown`] or drop.
#[derive(Debug)]
pub struct MotoServer {
    child: Option<Child>,
    pid: u32,
    port: u16,
    log_path: PathBuf,
}

impl MotoServer {
    /// Installs moto if missing, starts it on a free loopback port with its output appended to
    /// `log_path`, and returns once it answers HTTP.
    pub async fn start(venv: &Venv, log_path: &Path) -> Result<MotoServer, MotoError> {
        let installing = venv.clone();
        tokio::task::spawn_blocking(move || installing.ensure(pytools::MOTO))
            .await
            .map_err(|join| MotoError::Spawn {
                program: venv.python(),
                source: std::io::Error::other(join.to_string()),
            })??;

        for attempt in 1..=PORT_ATTEMPTS {
            let port = free_port().map_err(|source| MotoError::Spawn {
                program: venv.python(),
                source,
            })?;
            match Self::spawn_on(venv, log_path, port).await? {
                Some(server) => return Ok(server),
                None => tracing::debug!(port, attempt, "moto port taken, retrying"),
            }
        }
        Err(MotoError::NoFreePort {
            attempts: PORT_ATTEMPTS,
        })
    }

    /// `None` when another process took the port first.
    async fn spawn_on(
        venv: &Venv,
        log_path: &Path,
        port: u16,
    ) -> Result<Option<MotoServer>, MotoError> {
        let log_error = |source| MotoError::Log {
            path: log_path.to_path_buf(),
            source,
        };
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .map_err(log_error)?;
        let log_start = log.seek(std::io::SeekFrom::End(0)).map_err(log_error)?;
        let log_err = log.try_clone().map_err(log_error)?;

        let program = venv.python();
        let started = Instant::now();
        let child = {
            use std::os::unix::process::CommandExt;
            Command::new(&program)
                .args(["-c", LAUNCHER, "-H", "127.0.0.1", "-p", &port.to_string()])
                // moto builds the URLs it hands out (queue URLs, presigned URLs) from MOTO_PORT.
                .env("MOTO_PORT", port.to_string())
                .env("PYTHONUNBUFFERED", "1")
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log_err)
                // Its own process group, so that shutdown reaches anything it forks.
                .process_group(0)
                .spawn()
                .map_err(|source| MotoError::Spawn {
                    program: program.clone(),
                    source,
                })?
        };
        let mut server = MotoServer {
            pid: child.id(),
            child: Some(child),
            port,
            log_path: log_path.to_path_buf(),
        };

        // werkzeug prints this banner only once it holds the socket: with it, an answer on the
        // port comes from this moto and not from another process (a parallel test's moto) that
        // took the port first.
        let banner = format!("Running on http://127.0.0.1:{port}");
        let deadline = started + START_TIMEOUT;
        loop {
            let log_text = pytools::read_since(log_path, log_start);
            if let Some(status) = server.exit_status() {
                if log_text.contains("Address already in use") || log_text.contains("is in use") {
                    return Ok(None);
                }
                return Err(MotoError::Exited {
                    status,
                    log: server.log_path.clone(),
                    tail: pytools::read_tail_from(log_path, log_start),
                });
            }
            if log_text.contains(&banner)
                && request("GET", &server.url(), "/moto-api/data.json")
                    .await
                    .is_ok()
            {
                tracing::info!(
                    port,
                    pid = server.pid,
                    seconds = started.elapsed().as_secs_f64(),
                    "moto ready"
                );
                return Ok(Some(server));
            }
            if Instant::now() >= deadline {
                let tail = pytools::read_tail_from(log_path, log_start);
                server.stop();
                return Err(MotoError::Timeout {
                    seconds: START_TIMEOUT.as_secs(),
                    log: server.log_path.clone(),
                    tail,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Stops moto and its process group: SIGTERM, then SIGKILL after a grace period.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten())
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let Ok(group) = libc::pid_t::try_from(child.id()) else {
            let _ = child.kill();
            let _ = child.wait();
            return;
        };
        // SAFETY: signals the process group this server created for the child it spawned.
        unsafe { libc::kill(-group, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Also reaches anything left in the group after moto itself exited.
        // SAFETY: as above.
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = child.wait();
        tracing::info!(pid = self.pid, port = self.port, "moto stopped");
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Clears every resource in moto (`POST /moto-api/reset`), e.g. between two tests sharing it.
pub async fn reset(url: &str) -> Result<(), MotoError> {
    request("POST", url, "/moto-api/reset").await
}

fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// One HTTP/1.1 request to moto; succeeds on a 2xx answer.
async fn request(method: &str, url: &str, path: &str) -> Result<(), MotoError> {
    let failed = |detail: String| MotoError::Request {
        url: format!("{method} {url}{path}"),
        detail,
    };
    let authority = url
        .strip_prefix("http://")
        .map(|rest| rest.trim_end_matches('/'))
        .filter(|authority| !authority.is_empty() && !authority.contains('/'))
        .ok_or_else(|| failed("expected http://HOST:PORT".to_string()))?;
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|error| failed(error.to_string()))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| failed(error.to_string()))?;
    tokio::spawn(connection);
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, authority)
        .body(Empty::<Bytes>::new())
        .map_err(|error| failed(error.to_string()))?;
    let response = tokio::time::timeout(Duration::from_secs(30), sender.send_request(request))
        .await
        .map_err(|_| failed("no answer within 30 s".to_string()))?
        .map_err(|error| failed(error.to_string()))?;
    let status = response.status();
    // Drain the body so that moto does not log a broken pipe.
    let _ = response.into_body().collect().await;
    if status.is_success() {
        Ok(())
    } else {
        Err(failed(format!("answered {status}")))
    }
}
