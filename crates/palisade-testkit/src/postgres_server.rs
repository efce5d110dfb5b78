//! A throwaway PostgreSQL server with TLS, for tests that need what the shared
//! server cannot give: certificate verification, a second server, a server to stop.
//!
//! Runs Debian's PostgreSQL binaries directly as the `postgres` user (the tests run
//! as root, and `initdb` refuses root), with fsync off and a data directory in a
//! temp dir. The server presents a certificate for `localhost` only, signed by a CA
//! the fixture generates with the `openssl` command, so a test can check that
//! `sslmode=verify-full` accepts `localhost` and rejects `127.0.0.1`.

use crate::TestkitError;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const START_WITHIN: Duration = Duration::from_secs(30);

/// A running TLS-enabled PostgreSQL server, stopped and removed on drop.
#[derive(Debug)]
pub struct PostgresServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl PostgresServer {
    /// Initialises and starts a server on a free loopback port.
    pub fn start_with_tls() -> Result<Self, TestkitError> {
        let bin = find_bin()?;
        let (uid, gid) = postgres_user()?;
        let dir = tempfile::tempdir().map_err(|e| TestkitError::io("temp dir", e))?;
        let root = dir.path();
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| TestkitError::io("chmod temp dir", e))?;
        crate::tls::write_test_certificates(root)?;
        let data = root.join("data");
        std::fs::create_dir(&data).map_err(|e| TestkitError::io("data dir", e))?;
        for path in [
            data.as_path(),
            &root.join("server.key"),
            &root.join("server.crt"),
        ] {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(|e| TestkitError::io(format!("chown {}", path.display()), e))?;
        }
        let status = Command::new(bin.join("initdb"))
            .args([
                "-D",
                &data.display().to_string(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ])
            .uid(uid)
            .gid(gid)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| TestkitError::io("run initdb", e))?;
        if !status.success() {
            return Err(TestkitError::io(
                "initdb",
                std::io::Error::other(status.to_string()),
            ));
        }
        let port = free_port()?;
        let log = std::fs::File::create(root.join("postgres.log"))
            .map_err(|e| TestkitError::io("log file", e))?;
        let child = Command::new(bin.join("postgres"))
            .args([
                "-D",
                &data.display().to_string(),
                "-p",
                &port.to_string(),
                "-k",
                // The socket goes in the data directory: it is the one the postgres user owns.
                &data.display().to_string(),
            ])
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "ssl=on",
            ])
            .arg("-c")
            .arg(format!(
                "ssl_cert_file={}",
                root.join("server.crt").display()
            ))
            .arg("-c")
            .arg(format!(
                "ssl_key_file={}",
                root.join("server.key").display()
            ))
            .uid(uid)
            .gid(gid)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| TestkitError::io("start postgres", e))?;
        let mut server = Self { child, port, dir };
        server.wait_until_accepting(&bin)?;
        Ok(server)
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The CA certificate that signed the server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// A CA that did not sign anything this server presents.
    pub fn other_ca_file(&self) -> PathBuf {
        self.dir.path().join("other-ca.crt")
    }

    /// `postgres://postgres@<host>:<port>/postgres` plus `query`.
    pub fn url(&self, host: &str, query: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres{query}", self.port)
    }

    fn wait_until_accepting(&mut self, bin: &Path) -> Result<(), TestkitError> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(self.dir.path().join("postgres.log"))
                    .unwrap_or_default();
                return Err(TestkitError::io(
                    "postgres exited during start-up",
                    std::io::Error::other(format!("{status}: {log}")),
                ));
            }
            let ready = Command::new(bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return Ok(());
            }
            if started.elapsed() > START_WITHIN {
                return Err(TestkitError::Timeout {
                    what: format!("PostgreSQL on port {}", self.port),
                    waited: START_WITHIN,
                    detail: None,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // SIGINT is PostgreSQL's "fast shutdown": it ends every backend and exits.
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

use std::os::unix::process::CommandExt as _;

fn find_bin() -> Result<PathBuf, TestkitError> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .into_iter()
        .rev()
        .find(|b| b.join("initdb").exists())
        .ok_or(TestkitError::MissingProgram {
            program: "initdb",
            hint: "install Debian's postgresql package (apt-get install postgresql)",
        })
}

fn postgres_user() -> Result<(u32, u32), TestkitError> {
    let passwd = std::fs::read_to_string("/etc/passwd")
        .map_err(|e| TestkitError::io("read /etc/passwd", e))?;
    passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .and_then(|l| {
            let fields: Vec<&str> = l.split(':').collect();
            Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?))
        })
        .ok_or(TestkitError::MissingProgram {
            program: "postgres (user)",
            hint: "install Debian's postgresql package, which creates the postgres user",
        })
}

fn free_port() -> Result<u16, TestkitError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| TestkitError::io("find a free port", e))
}
