//! Spawning one `redis-server` process, finding ports for it, and talking to it
//! while a fixture sets up.

use std::fmt::Write as _;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::{AsyncConnectionConfig, Client, Cmd, FromRedisValue};
use tokio::time::Instant;

use crate::TestkitError;
pub(crate) use crate::child::ServerProcess;
use crate::child::{free_port, loopback, retry_port_clash};

/// The program every fixture runs; Sentinel is the same binary with `--sentinel`.
const REDIS_SERVER: &str = "redis-server";

/// How long a freshly spawned server may take to answer PING.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// How often waits re-check their condition: short, because every fixture
/// start pays it, yet long enough not to spin.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Per-command bounds for set-up traffic, so a wedged server cannot stall a
/// wait past its deadline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether the process runs as a data server or as a Sentinel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Server,
    Sentinel,
}

/// Which ports a process needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ports {
    /// Just the client port.
    Client,
    /// The client port and the cluster bus port (client port + 10000), which
    /// `redis-server` derives itself.
    ClientAndClusterBus,
}

pub(crate) fn url(addr: SocketAddr) -> String {
    format!("redis://{addr}")
}

/// Spawns `redis-server` in `dir/name` with the config `config(port)` returns,
/// on a free port, and waits until it answers PING. A start that fails with
/// "Address already in use" is retried once on new ports
/// ([`retry_port_clash`]).
pub(crate) async fn spawn(
    dir: &Path,
    name: &str,
    mode: Mode,
    ports: Ports,
    config: impl Fn(u16, &Path) -> String,
) -> Result<ServerProcess, TestkitError> {
    let home = &dir.join(name);
    let config = &config;
    retry_port_clash(REDIS_SERVER, "Address already in use", move || async move {
        // A failed attempt may have left files (a cluster's nodes.conf names
        // its old port); start each attempt from an empty directory.
        if home.exists() {
            std::fs::remove_dir_all(home)
                .map_err(|e| TestkitError::io(format!("clear {}", home.display()), e))?;
        }
        std::fs::create_dir_all(home)
            .map_err(|e| TestkitError::io(format!("create {}", home.display()), e))?;
        let port = match ports {
            Ports::Client => free_port()?,
            Ports::ClientAndClusterBus => free_cluster_port()?,
        };
        let conf = home.join("redis.conf");
        std::fs::write(&conf, config(port, home))
            .map_err(|e| TestkitError::io(format!("write {}", conf.display()), e))?;
        let mut process = launch(REDIS_SERVER, home, &conf, mode, port)?;
        let addr = process.addr();
        process
            .wait_ready(
                || format!("{REDIS_SERVER} on {addr} to answer PING"),
                START_TIMEOUT,
                POLL_INTERVAL,
                || async move {
                    match query::<String>(addr, &::redis::cmd("PING"), "PING").await {
                        Ok(reply) if reply == "PONG" => Ok(()),
                        Ok(reply) => Err(format!("PING answered {reply:?}")),
                        Err(error) => Err(error.to_string()),
                    }
                },
            )
            .await?;
        Ok(process)
    })
    .await
}

fn launch(
    program: &'static str,
    home: &Path,
    conf: &Path,
    mode: Mode,
    port: u16,
) -> Result<ServerProcess, TestkitError> {
    let mut command = Command::new(program);
    command.arg(conf);
    if mode == Mode::Sentinel {
        command.arg("--sentinel");
    }
    command.current_dir(home);
    // The config sets `logfile ""`, so the log and any fatal config error both
    // go to stdout/stderr, captured in one file the errors can quote.
    ServerProcess::spawn(
        program,
        "install it (Debian: `apt-get install redis-server`) or run `scripts/test`, which does",
        command,
        port,
        home.join("redis.log"),
    )
}

/// A port `p` where both `p` and the cluster bus port `p + 10000` are free.
fn free_cluster_port() -> Result<u16, TestkitError> {
    // Ephemeral ports (Linux default 32768-60999) are mostly below 55536, so a
    // handful of tries suffices; the bound keeps a crowded machine from looping.
    for _ in 0..200 {
        let client = TcpListener::bind(loopback(0))
            .map_err(|e| TestkitError::io("bind 127.0.0.1:0 to find a free port", e))?;
        let port = client
            .local_addr()
            .map_err(|e| TestkitError::io("read port of probe listener", e))?
            .port();
        let Some(bus) = port.checked_add(10_000) else {
            continue;
        };
        // Both listeners are held at once so the pair is free at one instant.
        if TcpListener::bind(loopback(bus)).is_ok() {
            return Ok(port);
        }
    }
    Err(TestkitError::io(
        "find a port p with p and p+10000 both free on 127.0.0.1",
        std::io::Error::from(std::io::ErrorKind::AddrInUse),
    ))
}

/// Sends one command on a fresh connection, with connect and response timeouts.
///
/// A fresh connection per call keeps set-up code free of connection state and
/// survives the server restarting or changing role between calls.
pub(crate) async fn query<T: FromRedisValue>(
    addr: SocketAddr,
    command: &Cmd,
    context: &str,
) -> Result<T, TestkitError> {
    let error = |source| TestkitError::Redis {
        addr: addr.to_string(),
        context: context.to_owned(),
        source,
    };
    let client = Client::open(url(addr)).map_err(error)?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    let mut connection: MultiplexedConnection = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(error)?;
    command.query_async(&mut connection).await.map_err(error)
}

/// One field of an `INFO` or `CLUSTER INFO` reply (`key:value` lines).
pub(crate) fn info_field<'a>(info: &'a str, key: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        line.trim_end()
            .strip_prefix(key)
            .and_then(|rest| rest.strip_prefix(':'))
    })
}

/// The result of one check in [`wait_until`].
#[derive(Debug)]
pub(crate) enum Check<T> {
    /// The condition holds.
    Ready(T),
    /// Not yet; the text says what was seen, for the timeout message.
    NotYet(String),
}

/// Re-runs `check` until it is ready, fails, or `timeout` passes.
///
/// Errors from `check` end the wait at once; use them for conditions that
/// cannot fix themselves, and [`Check::NotYet`] for ones that can (including a
/// server briefly refusing connections).
pub(crate) async fn wait_until<T, F, Fut>(
    what: impl Into<String>,
    timeout: Duration,
    mut check: F,
) -> Result<T, TestkitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Check<T>, TestkitError>>,
{
    let what = what.into();
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no check finished");
    loop {
        match tokio::time::timeout_at(deadline, check()).await {
            Ok(Ok(Check::Ready(value))) => return Ok(value),
            Ok(Ok(Check::NotYet(seen))) => last = seen,
            Ok(Err(error)) => return Err(error),
            // The deadline fell during a check; the previous one's finding is
            // the useful detail.
            Err(_) => {}
        }
        if Instant::now() >= deadline {
            return Err(TestkitError::Timeout {
                what,
                waited: timeout,
                detail: Some(last),
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The base config every data node uses: loopback only, no persistence (tests
/// want speed and nothing left behind), logging to stdout.
pub(crate) fn base_config(port: u16, home: &Path) -> String {
    let mut config = String::new();
    // Writing to a String cannot fail.
    let _ = write!(
        config,
        "port {port}\n\
         bind 127.0.0.1\n\
         daemonize no\n\
         logfile \"\"\n\
         dir \"{}\"\n\
         save \"\"\n\
         appendonly no\n",
        home.display()
    );
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_program_is_reported_with_an_install_hint() {
        let dir = tempfile::tempdir().expect("temp dir");
        let conf = dir.path().join("redis.conf");
        let error = launch(
            "palisade-testkit-no-such-program",
            dir.path(),
            &conf,
            Mode::Server,
            1,
        )
        .expect_err("a missing program cannot start");
        let message = error.to_string();
        assert!(
            matches!(error, TestkitError::MissingProgram { .. }),
            "unexpected error: {message}"
        );
        assert!(
            message.contains("apt-get install redis-server"),
            "{message}"
        );
    }

    /// A config whose first `failures` starts use a port someone else holds.
    fn config_colliding_first(taken: u16, failures: usize) -> impl Fn(u16, &Path) -> String {
        let calls = std::cell::Cell::new(0);
        move |port, home| {
            calls.set(calls.get() + 1);
            let port = if calls.get() <= failures { taken } else { port };
            base_config(port, home)
        }
    }

    #[tokio::test]
    async fn a_port_taken_before_binding_is_retried_once_on_new_ports() {
        let holder = TcpListener::bind(loopback(0)).expect("hold a port");
        let taken = holder.local_addr().expect("addr").port();
        let dir = tempfile::tempdir().expect("temp dir");
        let server = spawn(
            dir.path(),
            "retry",
            Mode::Server,
            Ports::Client,
            config_colliding_first(taken, 1),
        )
        .await
        .expect("the retry picks a free port");
        assert_ne!(server.port(), taken);
        let pong: String = query(server.addr(), &::redis::cmd("PING"), "PING")
            .await
            .expect("PING");
        assert_eq!(pong, "PONG");
    }

    #[tokio::test]
    async fn a_second_collision_is_reported_with_the_log() {
        let holder = TcpListener::bind(loopback(0)).expect("hold a port");
        let taken = holder.local_addr().expect("addr").port();
        let dir = tempfile::tempdir().expect("temp dir");
        let error = spawn(
            dir.path(),
            "collide",
            Mode::Server,
            Ports::Client,
            config_colliding_first(taken, 2),
        )
        .await
        .expect_err("both attempts collide");
        let message = error.to_string();
        assert!(
            matches!(error, TestkitError::ProcessExited { .. }),
            "unexpected error: {message}"
        );
        assert!(message.contains("Address already in use"), "{message}");
    }

    #[test]
    fn info_field_reads_the_value_of_one_key() {
        let info = "# Replication\r\nrole:slave\r\nmaster_port:6380\r\nmaster_link_status:up\r\n";
        assert_eq!(info_field(info, "role"), Some("slave"));
        assert_eq!(info_field(info, "master_port"), Some("6380"));
        // A key that is a prefix of another must not match it.
        assert_eq!(info_field(info, "master"), None);
        assert_eq!(info_field(info, "missing"), None);
    }

    #[test]
    fn cluster_port_leaves_room_for_a_free_bus_port() {
        let port = free_cluster_port().expect("a free port pair");
        let bus = port.checked_add(10_000).expect("bus port fits in u16");
        TcpListener::bind(loopback(port)).expect("client port is free");
        TcpListener::bind(loopback(bus)).expect("bus port is free");
    }
}
