//! What every throwaway server fixture does with its process, shared by
//! [`crate::redis_server`], [`crate::moto`] and [`crate::openbao`]: pick a
//! free loopback port, spawn the program with its output captured in a log
//! file, wait bounded until it answers (failing early, with the log's tail,
//! if it exits), retry once when another process took the port first, and
//! kill and reap it on drop. Each server's command line and readiness probe
//! stay in its own module.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use crate::TestkitError;

/// A running server process, killed and reaped when dropped.
///
/// A std `Child` with an explicit kill-and-wait is used rather than tokio's
/// `kill_on_drop`: the process is gone (not merely signalled) when `drop`
/// returns, and it works whichever runtime, if any, is current. Children stay in
/// the test's process group, so a test runner that kills a timed-out test's
/// group (nextest does) takes them too.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    child: Child,
    program: &'static str,
    port: u16,
    log: PathBuf,
}

impl ServerProcess {
    /// Runs `command` (stdin closed, stdout and stderr both into the new
    /// file `log`) as the server `program` listening on `port`. A program
    /// that is not installed is [`TestkitError::MissingProgram`] with `hint`.
    pub(crate) fn spawn(
        program: &'static str,
        hint: &'static str,
        mut command: Command,
        port: u16,
        log: PathBuf,
    ) -> Result<Self, TestkitError> {
        let stdout = std::fs::File::create(&log)
            .map_err(|e| TestkitError::io(format!("create {}", log.display()), e))?;
        let stderr = stdout
            .try_clone()
            .map_err(|e| TestkitError::io("duplicate log handle", e))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => TestkitError::MissingProgram { program, hint },
                _ => TestkitError::io(
                    format!("spawn {}", Path::new(command.get_program()).display()),
                    e,
                ),
            })?;
        Ok(Self {
            child,
            program,
            port,
            log,
        })
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        loopback(self.port)
    }

    /// Re-runs `probe` every `poll` until it answers `Ok`, failing with
    /// [`TestkitError::ProcessExited`] as soon as the process exits, or with
    /// [`TestkitError::Timeout`] (waiting for `what`, with the last probe's
    /// error and the log's tail) once `timeout` has passed. `probe` must
    /// bound its own calls.
    pub(crate) async fn wait_ready<F, Fut>(
        &mut self,
        what: impl FnOnce() -> String,
        timeout: Duration,
        poll: Duration,
        mut probe: F,
    ) -> Result<(), TestkitError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .map_err(|e| TestkitError::io(format!("check {} status", self.program), e))?
            {
                return Err(TestkitError::ProcessExited {
                    program: self.program,
                    status: status.to_string(),
                    log: self.log.clone(),
                    log_tail: log_tail(&self.log),
                });
            }
            let last = match probe().await {
                Ok(()) => return Ok(()),
                Err(last) => last,
            };
            if Instant::now() >= deadline {
                return Err(TestkitError::Timeout {
                    what: what(),
                    waited: timeout,
                    detail: Some(format!(
                        "{last}; log {}:\n{}",
                        self.log.display(),
                        log_tail(&self.log)
                    )),
                });
            }
            tokio::time::sleep(poll).await;
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Errors only mean the process has already exited.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `start` and, if the server exited saying its port was taken (its log
/// contains `in_use`), once more: free ports are found by binding port 0 and
/// closing the listener, so another process can take one before the server
/// binds it. That race is small; a second clash is reported.
pub(crate) async fn retry_port_clash<T, F, Fut>(
    program: &str,
    in_use: &str,
    mut start: F,
) -> Result<T, TestkitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, TestkitError>>,
{
    match start().await {
        Err(TestkitError::ProcessExited { log_tail, .. }) if log_tail.contains(in_use) => {
            tracing::debug!(program, "port taken before the server bound it; retrying");
            start().await
        }
        other => other,
    }
}

pub(crate) fn loopback(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
}

/// A port nothing listens on right now (see [`retry_port_clash`] for the race).
pub(crate) fn free_port() -> Result<u16, TestkitError> {
    let listener = TcpListener::bind(loopback(0))
        .map_err(|e| TestkitError::io("bind 127.0.0.1:0 to find a free port", e))?;
    Ok(listener
        .local_addr()
        .map_err(|e| TestkitError::io("read port of probe listener", e))?
        .port())
}

/// The last lines of a log, for error messages.
pub(crate) fn log_tail(log: &Path) -> String {
    match std::fs::read_to_string(log) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(20)..].join("\n")
        }
        Err(error) => format!("(could not read log: {error})"),
    }
}

/// A program installed by `pip install --user` (as `scripts/test` does for
/// the pinned versions): `$env_var` if set, else the first `name` found in
/// the Python user base's `bin` (`python3 -m site --user-base`),
/// `~/.local/bin`, then `PATH`. The user base comes first so the pinned
/// version wins over another one on `PATH`.
pub(crate) fn find_user_program(env_var: &str, name: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env_var) {
        return Some(PathBuf::from(path));
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
        .map(|base| base.join("bin").join(name));
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name));
    user_bins
        .chain(on_path)
        .find(|candidate| candidate.is_file())
}
