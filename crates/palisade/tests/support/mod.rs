//! Drives the real `palisade` binary as an operator and a client would.

#![allow(dead_code)]

use serde_json::Value;
use std::collections::HashMap;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to become ready in a test.
pub const READY_WITHIN: Duration = Duration::from_secs(20);

/// An HTTP client. reqwest's rustls is built without a default crypto
/// provider (Palisade installs aws-lc-rs, its one provider), so tests do too.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::new()
}

/// The binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_palisade")
}

/// A free loopback port (bind to 0, release; a tiny race that the start retries cover).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A `palisade` command in `dir` with a clean environment of our own.
pub fn command(dir: &Path, env: &HashMap<String, String>) -> Command {
    let mut cmd = Command::new(binary());
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .stdin(Stdio::null());
    cmd
}

/// A running server.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub dir: PathBuf,
    pub env: HashMap<String, String>,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
}

impl Server {
    /// Starts `palisade serve` in `dir` on a free port, output to files in `dir`.
    pub fn start(dir: &Path, mut env: HashMap<String, String>) -> Server {
        let port = free_port();
        env.insert(
            "PALISADE_SERVER__LISTEN".into(),
            format!("127.0.0.1:{port}"),
        );
        env.entry("PALISADE_LOG__FORMAT".into())
            .or_insert_with(|| "json".into());
        let n = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
        let stdout_path = dir.join(format!("stdout-{n}.log"));
        let stderr_path = dir.join(format!("stderr-{n}.log"));
        let child = command(dir, &env)
            .arg("serve")
            .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
            .spawn()
            .expect("spawn palisade serve");
        Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir: dir.to_owned(),
            env,
            stdout_path,
            stderr_path,
        }
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// The admin key printed on first start.
    pub fn printed_key(&self) -> Option<String> {
        printed_key(&self.stdout())
    }

    /// Waits until `/health/ready` answers `status`.
    pub async fn wait_ready(&mut self, status: u16) {
        let client = http_client();
        let started = Instant::now();
        loop {
            if let Ok(Some(exit)) = self.child.try_wait() {
                panic!(
                    "palisade exited with {exit} before ready:\n{}",
                    self.stderr()
                );
            }
            if let Ok(r) = client
                .get(format!("{}/health/ready", self.base))
                .send()
                .await
                && r.status().as_u16() == status
            {
                return;
            }
            assert!(
                started.elapsed() < READY_WITHIN,
                "readiness never became {status}:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends a signal to the server.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{name}");
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                started.elapsed() < within,
                "palisade did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Finds the admin key in `palisade init`/`serve` output.
pub fn printed_key(stdout: &str) -> Option<String> {
    stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("pal_"))
        .map(str::to_owned)
}

/// Runs a palisade command to completion with a bounded wait.
pub fn run(
    dir: &Path,
    env: &HashMap<String, String>,
    args: &[&str],
) -> (ExitStatus, String, String) {
    let mut child = command(dir, env)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn palisade");
    let started = Instant::now();
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("palisade {args:?} did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    (status, out, err)
}

/// An authenticated JSON client of one server.
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub key: String,
}

impl Client {
    pub fn new(base: &str, key: &str) -> Self {
        Self {
            http: http_client(),
            base: base.to_owned(),
            key: key.to_owned(),
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        match self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await
        {
            Ok(r) => (r.status().as_u16(), r.json().await.unwrap_or(Value::Null)),
            Err(_) => (0, Value::Null),
        }
    }

    /// POST; status 0 when the connection failed.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        match self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .json(body)
            .send()
            .await
        {
            Ok(r) => (r.status().as_u16(), r.json().await.unwrap_or(Value::Null)),
            Err(_) => (0, Value::Null),
        }
    }
}

/// An audit event numbered `n`, with a client-chosen id so acknowledgements can be checked.
pub fn audit_event(n: u64) -> (uuid::Uuid, Value) {
    let id = uuid::Uuid::now_v7();
    (
        id,
        serde_json::json!({"id": id, "action": "load.test", "actor": {"id": format!("u{n}")}, "outcome": "success", "metadata": {"n": n}}),
    )
}

/// The address of the test Redis (`PALISADE_TEST_REDIS_URL`), for a fault proxy in front of it.
#[allow(dead_code)]
pub fn redis_addr() -> std::net::SocketAddr {
    palisade_testkit::redis::redis_url()
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or("127.0.0.1:6379")
        .replace("localhost", "127.0.0.1")
        .parse()
        .expect("redis host:port")
}

/// The environment of instances sharing state: PostgreSQL at `database_url`
/// and the test Redis under a fresh key prefix named after `test`.
pub fn shared_state_env(database_url: String, test: &str) -> HashMap<String, String> {
    HashMap::from([
        ("PALISADE_DATABASE__URL".to_owned(), database_url),
        (
            "PALISADE_REDIS__URL".to_owned(),
            palisade_testkit::redis::redis_url(),
        ),
        (
            "PALISADE_REDIS__KEY_PREFIX".to_owned(),
            palisade_testkit::redis::unique_prefix(test),
        ),
    ])
}

/// Two ready `palisade serve` instances made from one `palisade init`: the
/// second has a copy of the first's configuration (same secrets), both with
/// `env`, the second's overridden by `second_env`. Clients use the admin key.
pub struct Twins {
    pub first: Server,
    pub second: Server,
    pub a: Client,
    pub b: Client,
    pub key: String,
    _dirs: [tempfile::TempDir; 2],
}

impl Twins {
    pub async fn start(
        env: &HashMap<String, String>,
        second_env: &HashMap<String, String>,
    ) -> Self {
        let dirs = [
            tempfile::tempdir().expect("temp dir"),
            tempfile::tempdir().expect("temp dir"),
        ];
        let (status, out, err) = run(dirs[0].path(), env, &["init"]);
        assert!(status.success(), "{err}");
        let key = printed_key(&out).expect("admin key");
        std::fs::create_dir_all(dirs[1].path().join("palisade-data")).expect("data dir");
        std::fs::copy(
            dirs[0].path().join("palisade-data/palisade.toml"),
            dirs[1].path().join("palisade-data/palisade.toml"),
        )
        .expect("copy config");
        let mut second = env.clone();
        second.extend(second_env.clone());
        // One after the other: the first start creates what both share (schema,
        // key files named in `env`).
        let mut first = Server::start(dirs[0].path(), env.clone());
        first.wait_ready(200).await;
        let mut second = Server::start(dirs[1].path(), second);
        second.wait_ready(200).await;
        let (a, b) = (
            Client::new(&first.base, &key),
            Client::new(&second.base, &key),
        );
        Self {
            first,
            second,
            a,
            b,
            key,
            _dirs: dirs,
        }
    }
}
