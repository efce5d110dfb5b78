//! A throwaway moto server (`moto_server`, an AWS emulator), for the AWS KMS
//! tests and benchmark of `palisade-crypto` (feature `aws-kms`).
//!
//! `moto_server` comes from the PyPI package `moto[server]` (pinned in
//! `scripts/python-requirements.txt`, installed by `scripts/test`), which puts
//! it in the user's script directory (`~/.local/bin`) rather than on `PATH`,
//! so it is looked up in order: `$PALISADE_TEST_MOTO_SERVER`, the Python user
//! base's `bin`, then `PATH`. A missing one is
//! [`TestkitError::MissingProgram`]: the tests fail, never skip.
//!
//! The server keeps everything in memory, listens on a free loopback port,
//! accepts any credentials (use fake ones, passed to the client through its
//! configuration, never the process environment) and is killed and reaped
//! when the value is dropped. Every wait is bounded.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::TestkitError;

/// The program's name, for errors.
const MOTO: &str = "moto_server";
/// How long a fresh server may take to answer HTTP (Python start-up is slow
/// on a loaded machine).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on one readiness probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
const POLL_INTERVAL: Duration = Duration::from_millis(100);
const HINT: &str = "run `scripts/test`, which installs it, or \
     `python3 -m pip install --user -r scripts/python-requirements.txt` (PyPI moto[server], \
     puts `moto_server` in ~/.local/bin); or point PALISADE_TEST_MOTO_SERVER at the program";

/// One `moto_server` on a loopback port.
#[derive(Debug)]
pub struct MotoServer {
    // Fields drop in order: the process dies before its directory goes.
    process: Process,
    _dir: tempfile::TempDir,
}

/// The running server, killed and reaped when dropped.
#[derive(Debug)]
struct Process {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        // Errors only mean the process has already exited.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl MotoServer {
    /// Starts `moto_server -H 127.0.0.1 -p PORT` on a free port and waits
    /// until it answers HTTP.
    ///
    /// The free port is found by binding port 0 and closing the listener, so
    /// another process may take it first; a start that fails with "address
    /// already in use" is retried once on a new port.
    pub async fn start() -> Result<Self, TestkitError> {
        let program = find_moto()?;
        let dir = tempfile::Builder::new()
            .prefix("palisade-moto-")
            .tempdir()
            .map_err(|e| TestkitError::io("create temp dir for moto_server", e))?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut process = launch(&program, dir.path())?;
            match wait_until_ready(&mut process).await {
                Ok(()) => return Ok(Self { process, _dir: dir }),
                Err(TestkitError::ProcessExited { log_tail, .. })
                    if attempt == 1 && log_tail.contains("already in use") =>
                {
                    tracing::debug!(
                        port = process.port,
                        "port taken before moto bound it; retrying"
                    );
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        loopback(self.process.port)
    }

    /// Its endpoint URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
}

async fn wait_until_ready(process: &mut Process) -> Result<(), TestkitError> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = process
            .child
            .try_wait()
            .map_err(|e| TestkitError::io("check moto_server status", e))?
        {
            return Err(TestkitError::ProcessExited {
                program: MOTO,
                status: status.to_string(),
                log: process.log.clone(),
                log_tail: log_tail(&process.log),
            });
        }
        let last = match tokio::time::timeout(PROBE_TIMEOUT, answers_http(process.port)).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(error)) => error.to_string(),
            Err(_) => "no answer to the probe".to_owned(),
        };
        if Instant::now() >= deadline {
            return Err(TestkitError::Timeout {
                what: format!("moto_server on {} to answer HTTP", loopback(process.port)),
                waited: START_TIMEOUT,
                detail: Some(format!(
                    "{last}; log {}:\n{}",
                    process.log.display(),
                    log_tail(&process.log)
                )),
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// One HTTP request to moto's own API; any HTTP status line means it serves.
async fn answers_http(port: u16) -> std::io::Result<()> {
    let mut stream = tokio::net::TcpStream::connect(loopback(port)).await?;
    stream
        .write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .await?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await?;
    if head.starts_with(b"HTTP/1.") {
        Ok(())
    } else {
        Err(std::io::Error::other("not an HTTP answer"))
    }
}

/// Spawns `moto_server` in `dir` on a free loopback port.
fn launch(program: &Path, dir: &Path) -> Result<Process, TestkitError> {
    let port = free_port()?;
    let log = dir.join(format!("moto-{port}.log"));
    let stdout = std::fs::File::create(&log)
        .map_err(|e| TestkitError::io(format!("create {}", log.display()), e))?;
    let stderr = stdout
        .try_clone()
        .map_err(|e| TestkitError::io("duplicate log handle", e))?;
    let child = Command::new(program)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .current_dir(dir)
        // Nothing of the caller's AWS set-up reaches the emulator.
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => TestkitError::MissingProgram {
                program: MOTO,
                hint: HINT,
            },
            _ => TestkitError::io(format!("spawn {}", program.display()), e),
        })?;
    Ok(Process { child, port, log })
}

/// `$PALISADE_TEST_MOTO_SERVER`, the Python user base's `bin/moto_server`
/// (where `scripts/test` installs the pinned version), or `PATH`.
fn find_moto() -> Result<PathBuf, TestkitError> {
    if let Some(path) = std::env::var_os("PALISADE_TEST_MOTO_SERVER") {
        return Ok(PathBuf::from(path));
    }
    let user_base = Command::new("python3")
        .args(["-m", "site", "--user-base"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let user_bins = user_base
        .into_iter()
        .chain(std::env::var_os("HOME").map(|home| Path::new(&home).join(".local")))
        .map(|base| base.join("bin").join(MOTO));
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(MOTO));
    user_bins
        .chain(on_path)
        .find(|candidate| candidate.is_file())
        .ok_or(TestkitError::MissingProgram {
            program: MOTO,
            hint: HINT,
        })
}

fn free_port() -> Result<u16, TestkitError> {
    let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| TestkitError::io("bind 127.0.0.1:0 to find a free port", e))?;
    Ok(listener
        .local_addr()
        .map_err(|e| TestkitError::io("read port of probe listener", e))?
        .port())
}

fn log_tail(log: &Path) -> String {
    match std::fs::read_to_string(log) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(20)..].join("\n")
        }
        Err(error) => format!("(could not read log: {error})"),
    }
}
