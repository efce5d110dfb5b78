//! A throwaway moto server (`moto_server`, an AWS emulator), for the AWS KMS
//! tests and benchmark of `palisade-crypto` (feature `aws-kms`).
//!
//! `moto_server` comes from the PyPI package `moto[server]` (pinned in
//! `scripts/python-requirements.txt`, installed by `scripts/test`), which puts
//! it in the user's script directory (`~/.local/bin`) rather than on `PATH`,
//! so it is looked up in order: `$PALISADE_TEST_MOTO_SERVER`, the Python user
//! base's `bin`, then `PATH` (`child::find_user_program`). A missing one is
//! [`TestkitError::MissingProgram`]: the tests fail, never skip.
//!
//! The server keeps everything in memory, listens on a free loopback port,
//! accepts any credentials (use fake ones, passed to the client through its
//! configuration, never the process environment) and is killed and reaped
//! when the value is dropped. Every wait is bounded.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::TestkitError;
use crate::child::{ServerProcess, find_user_program, free_port, loopback, retry_port_clash};

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
    process: ServerProcess,
    _dir: tempfile::TempDir,
}

impl MotoServer {
    /// Starts `moto_server -H 127.0.0.1 -p PORT` on a free port and waits
    /// until it answers HTTP; a start that fails with "address already in
    /// use" is retried once on a new port.
    pub async fn start() -> Result<Self, TestkitError> {
        let program = find_user_program("PALISADE_TEST_MOTO_SERVER", MOTO).ok_or(
            TestkitError::MissingProgram {
                program: MOTO,
                hint: HINT,
            },
        )?;
        let dir = tempfile::Builder::new()
            .prefix("palisade-moto-")
            .tempdir()
            .map_err(|e| TestkitError::io("create temp dir for moto_server", e))?;
        let (program, home) = (&program, dir.path());
        let process = retry_port_clash(MOTO, "already in use", move || async move {
            let mut process = launch(program, home)?;
            let port = process.port();
            process
                .wait_ready(
                    || format!("moto_server on {} to answer HTTP", loopback(port)),
                    START_TIMEOUT,
                    POLL_INTERVAL,
                    || async move {
                        match tokio::time::timeout(PROBE_TIMEOUT, answers_http(port)).await {
                            Ok(Ok(())) => Ok(()),
                            Ok(Err(error)) => Err(error.to_string()),
                            Err(_) => Err("no answer to the probe".to_owned()),
                        }
                    },
                )
                .await?;
            Ok(process)
        })
        .await?;
        Ok(Self { process, _dir: dir })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.process.addr()
    }

    /// Its endpoint URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
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
fn launch(program: &Path, dir: &Path) -> Result<ServerProcess, TestkitError> {
    let port = free_port()?;
    let mut command = Command::new(program);
    command
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .current_dir(dir)
        // Nothing of the caller's AWS set-up reaches the emulator.
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN");
    ServerProcess::spawn(
        MOTO,
        HINT,
        command,
        port,
        dir.join(format!("moto-{port}.log")),
    )
}
