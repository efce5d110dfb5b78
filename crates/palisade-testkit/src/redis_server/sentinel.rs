//! A Sentinel deployment: one master, one replica, three sentinels.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::process::{self, Check, Mode, Ports, ServerProcess, info_field, query, wait_until};
use crate::TestkitError;

/// How long the deployment may take to settle: the replica to sync, and every
/// sentinel to discover the replica and the other sentinels (hello messages go
/// out every 2 s).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a forced failover may take until every sentinel reports the new
/// master and the old master is replicating from it.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(45);

/// Sentinels needed to agree a master is down. Two of three, as in production;
/// forced failovers ([`RedisSentinel::failover`]) do not need it.
const QUORUM: usize = 2;
const SENTINELS: usize = 3;

/// A master, a replica of it and three sentinels monitoring it under one
/// master name, for testing clients that find their master through Sentinel
/// and survive a failover.
#[derive(Debug)]
pub struct RedisSentinel {
    // Sentinels go first so none of them reacts to the data nodes dying.
    sentinels: Vec<ServerProcess>,
    servers: Vec<ServerProcess>,
    master_name: String,
    _dir: tempfile::TempDir,
}

impl RedisSentinel {
    /// Starts the deployment and waits until every sentinel knows the master,
    /// the replica and the two other sentinels, so a failover can be forced at
    /// once.
    ///
    /// `master_name` is the name clients ask Sentinel for; letters, digits,
    /// `-`, `_` and `.` only.
    pub async fn start(master_name: &str) -> Result<Self, TestkitError> {
        if master_name.is_empty()
            || !master_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(TestkitError::InvalidArgument(format!(
                "sentinel master name {master_name:?} must be non-empty ASCII letters, digits, '-', '_' or '.'"
            )));
        }
        let dir = super::temp_dir("palisade-sentinel-")?;
        let master = process::spawn(
            dir.path(),
            "master",
            Mode::Server,
            Ports::Client,
            process::base_config,
        )
        .await?;
        let master_port = master.port();
        let replica = process::spawn(
            dir.path(),
            "replica",
            Mode::Server,
            Ports::Client,
            |port, home| {
                format!(
                    "{}replicaof 127.0.0.1 {master_port}\n",
                    process::base_config(port, home)
                )
            },
        )
        .await?;
        wait_for_replication(master.addr(), replica.addr(), SETTLE_TIMEOUT).await?;

        // Sentinels start only once the replica is attached: a sentinel learns
        // about replicas from the master's INFO, which it reads at once on
        // connecting and then only every 10 s.
        let mut sentinels = Vec::with_capacity(SENTINELS);
        for index in 0..SENTINELS {
            let name = master_name.to_owned();
            let sentinel = process::spawn(
                dir.path(),
                &format!("sentinel-{index}"),
                Mode::Sentinel,
                Ports::Client,
                move |port, home| sentinel_config(port, home, &name, master_port),
            )
            .await?;
            sentinels.push(sentinel);
        }
        let deployment = Self {
            sentinels,
            servers: vec![master, replica],
            master_name: master_name.to_owned(),
            _dir: dir,
        };
        deployment
            .wait_until_sentinels_agree(deployment.servers[0].addr(), SETTLE_TIMEOUT)
            .await?;
        Ok(deployment)
    }

    /// The name the master is monitored under.
    pub fn master_name(&self) -> &str {
        &self.master_name
    }

    /// The three sentinels' addresses.
    pub fn sentinel_addrs(&self) -> Vec<SocketAddr> {
        self.sentinels.iter().map(ServerProcess::addr).collect()
    }

    /// The three sentinels' `redis://` URLs, as Sentinel clients take them.
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinel_addrs()
            .into_iter()
            .map(process::url)
            .collect()
    }

    /// The two data nodes' addresses, initial master first.
    pub fn server_addrs(&self) -> Vec<SocketAddr> {
        self.servers.iter().map(ServerProcess::addr).collect()
    }

    /// The master's address as the first sentinel reports it now.
    pub async fn master_addr(&self) -> Result<SocketAddr, TestkitError> {
        reported_master(self.sentinels[0].addr(), &self.master_name).await
    }

    /// Forces a failover (`SENTINEL FAILOVER`) and returns the new master's
    /// address once every sentinel reports it, it acts as master, and the old
    /// master replicates from it.
    ///
    /// The old master is demoted here with `REPLICAOF` rather than left to
    /// Sentinel, which does the same only after about eight seconds; ending in
    /// the same one-master-one-replica shape lets a test fail over again.
    pub async fn failover(&self) -> Result<SocketAddr, TestkitError> {
        let old = self.master_addr().await?;
        let sentinel = self.sentinels[0].addr();
        let mut failover = ::redis::cmd("SENTINEL");
        failover.arg("FAILOVER").arg(&self.master_name);
        let command = &failover;
        // NOGOODSLAVE means the sentinel's view of the replica is stale (for
        // example just after a previous failover); it refreshes within seconds.
        wait_until(
            format!("sentinel {sentinel} to accept SENTINEL FAILOVER"),
            FAILOVER_TIMEOUT,
            || async move {
                match query::<String>(sentinel, command, "SENTINEL FAILOVER").await {
                    Ok(_) => Ok(Check::Ready(())),
                    // Only our own earlier attempt can be in progress: its
                    // reply was lost, but the failover started.
                    Err(error) if error.to_string().contains("INPROG") => Ok(Check::Ready(())),
                    Err(error) => Ok(Check::NotYet(error.to_string())),
                }
            },
        )
        .await?;

        let sentinels = self.sentinel_addrs();
        let name = self.master_name.as_str();
        let new = wait_until(
            format!("every sentinel to report a master other than {old}"),
            FAILOVER_TIMEOUT,
            || {
                let sentinels = sentinels.clone();
                async move {
                    let mut seen = Vec::new();
                    for sentinel in &sentinels {
                        match reported_master(*sentinel, name).await {
                            Ok(addr) => seen.push(addr),
                            Err(error) => return Ok(Check::NotYet(error.to_string())),
                        }
                    }
                    let first = seen[0];
                    if first != old && seen.iter().all(|addr| *addr == first) {
                        Ok(Check::Ready(first))
                    } else {
                        Ok(Check::NotYet(format!("sentinels report {seen:?}")))
                    }
                }
            },
        )
        .await?;
        wait_for_role(new, "master", FAILOVER_TIMEOUT).await?;

        let mut demote = ::redis::cmd("REPLICAOF");
        demote.arg(new.ip().to_string()).arg(new.port());
        let _: String = query(old, &demote, "demote old master with REPLICAOF").await?;
        wait_for_replication(new, old, FAILOVER_TIMEOUT).await?;
        self.wait_until_sentinels_agree(new, FAILOVER_TIMEOUT)
            .await?;
        Ok(new)
    }

    /// Waits until every sentinel reports `master`, one healthy replica and two
    /// other sentinels: the state in which a failover can start.
    async fn wait_until_sentinels_agree(
        &self,
        master: SocketAddr,
        timeout: Duration,
    ) -> Result<(), TestkitError> {
        for sentinel in self.sentinel_addrs() {
            let name = self.master_name.as_str();
            wait_until(
                format!("sentinel {sentinel} to see master {master}, its replica and {} other sentinels", SENTINELS - 1),
                timeout,
                || async move { sentinel_view(sentinel, name, master).await },
            )
            .await?;
        }
        Ok(())
    }
}

fn sentinel_config(port: u16, home: &Path, name: &str, master_port: u16) -> String {
    // Short timings keep failovers quick; a sentinel rewrites this file, so it
    // lives in the sentinel's own directory.
    format!(
        "port {port}\n\
         bind 127.0.0.1\n\
         daemonize no\n\
         logfile \"\"\n\
         dir \"{}\"\n\
         sentinel monitor {name} 127.0.0.1 {master_port} {QUORUM}\n\
         sentinel down-after-milliseconds {name} 1000\n\
         sentinel failover-timeout {name} 5000\n\
         sentinel parallel-syncs {name} 1\n",
        home.display()
    )
}

async fn reported_master(sentinel: SocketAddr, name: &str) -> Result<SocketAddr, TestkitError> {
    let mut command = ::redis::cmd("SENTINEL");
    command.arg("GET-MASTER-ADDR-BY-NAME").arg(name);
    let reply: Option<(String, u16)> =
        query(sentinel, &command, "SENTINEL GET-MASTER-ADDR-BY-NAME").await?;
    let (host, port) = reply.ok_or_else(|| {
        TestkitError::InvalidArgument(format!("sentinel {sentinel} does not monitor {name:?}"))
    })?;
    format!("{host}:{port}").parse().map_err(|_| {
        TestkitError::InvalidArgument(format!(
            "sentinel {sentinel} reported unparsable master address {host}:{port}"
        ))
    })
}

/// One sentinel's view, ready when it matches a deployment able to fail over.
async fn sentinel_view(
    sentinel: SocketAddr,
    name: &str,
    master: SocketAddr,
) -> Result<Check<()>, TestkitError> {
    let mut command = ::redis::cmd("SENTINEL");
    command.arg("MASTER").arg(name);
    let state: HashMap<String, String> = match query(sentinel, &command, "SENTINEL MASTER").await {
        Ok(state) => state,
        Err(error) => return Ok(Check::NotYet(error.to_string())),
    };
    let field = |key: &str| state.get(key).map(String::as_str).unwrap_or("?");
    let reported = format!("{}:{}", field("ip"), field("port"));
    let ready = reported == master.to_string()
        && field("flags") == "master"
        && field("num-slaves") == "1"
        && field("num-other-sentinels") == (SENTINELS - 1).to_string();
    if !ready {
        return Ok(Check::NotYet(format!(
            "master {reported} flags={} num-slaves={} num-other-sentinels={}",
            field("flags"),
            field("num-slaves"),
            field("num-other-sentinels")
        )));
    }
    let mut command = ::redis::cmd("SENTINEL");
    command.arg("REPLICAS").arg(name);
    let replicas: Vec<HashMap<String, String>> =
        match query(sentinel, &command, "SENTINEL REPLICAS").await {
            Ok(replicas) => replicas,
            Err(error) => return Ok(Check::NotYet(error.to_string())),
        };
    // "slave" alone: no s_down, no disconnected, so it can be promoted.
    match replicas.first().and_then(|r| r.get("flags")) {
        Some(flags) if flags == "slave" => Ok(Check::Ready(())),
        other => Ok(Check::NotYet(format!("replica flags {other:?}"))),
    }
}

/// Waits until `replica` has a live link to `master` and `master` lists it online.
async fn wait_for_replication(
    master: SocketAddr,
    replica: SocketAddr,
    timeout: Duration,
) -> Result<(), TestkitError> {
    wait_until(
        format!("{replica} to replicate from {master}"),
        timeout,
        || async move {
            let replica_info = match info(replica).await {
                Ok(info) => info,
                Err(error) => return Ok(Check::NotYet(error.to_string())),
            };
            let linked = info_field(&replica_info, "role") == Some("slave")
                && info_field(&replica_info, "master_port") == Some(&master.port().to_string())
                && info_field(&replica_info, "master_link_status") == Some("up");
            if !linked {
                return Ok(Check::NotYet(format!(
                    "replica role={:?} master_port={:?} link={:?}",
                    info_field(&replica_info, "role"),
                    info_field(&replica_info, "master_port"),
                    info_field(&replica_info, "master_link_status")
                )));
            }
            let master_info = match info(master).await {
                Ok(info) => info,
                Err(error) => return Ok(Check::NotYet(error.to_string())),
            };
            let listed = format!("port={},state=online", replica.port());
            if master_info
                .lines()
                .any(|line| line.starts_with("slave") && line.contains(&listed))
            {
                Ok(Check::Ready(()))
            } else {
                Ok(Check::NotYet(format!(
                    "master does not list {replica} online yet"
                )))
            }
        },
    )
    .await
}

async fn wait_for_role(
    addr: SocketAddr,
    role: &'static str,
    timeout: Duration,
) -> Result<(), TestkitError> {
    wait_until(
        format!("{addr} to report role:{role}"),
        timeout,
        || async move {
            match info(addr).await {
                Ok(info) if info_field(&info, "role") == Some(role) => Ok(Check::Ready(())),
                Ok(info) => Ok(Check::NotYet(format!(
                    "role:{:?}",
                    info_field(&info, "role")
                ))),
                Err(error) => Ok(Check::NotYet(error.to_string())),
            }
        },
    )
    .await
}

async fn info(addr: SocketAddr) -> Result<String, TestkitError> {
    let mut command = ::redis::cmd("INFO");
    command.arg("replication");
    query(addr, &command, "INFO replication").await
}
