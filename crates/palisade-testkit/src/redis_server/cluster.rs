//! A Redis Cluster of masters only.

use std::net::SocketAddr;
use std::time::Duration;

use super::process::{self, Check, Mode, Ports, ServerProcess, info_field, query, wait_until};
use crate::TestkitError;

/// Hash slots in every Redis Cluster.
const SLOTS: usize = 16_384;

/// Upper bound on fixture size: beyond this a test is a load test, and start-up
/// (one process each) gets slow.
const MAX_MASTERS: usize = 16;

/// How long the nodes may take to meet and agree on the slot map (gossip runs
/// every 100 ms, so this is mostly headroom for a loaded CI machine).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A Redis Cluster of `masters` master nodes with the hash slots split evenly
/// between them and no replicas, for testing cluster clients and hash-tagged
/// keys and scripts.
#[derive(Debug)]
pub struct RedisCluster {
    // The processes must die before their directory goes.
    nodes: Vec<ServerProcess>,
    _dir: tempfile::TempDir,
}

impl RedisCluster {
    /// Starts the nodes, assigns slots, joins them, and waits until every node
    /// reports `cluster_state:ok` and knows every other node.
    ///
    /// Slots are assigned by hand (`CLUSTER ADDSLOTSRANGE`, `CLUSTER MEET`)
    /// rather than with `redis-cli --cluster create`, which needs only
    /// `redis-server` and skips redis-cli's fixed waits.
    pub async fn start(masters: usize) -> Result<Self, TestkitError> {
        if masters == 0 || masters > MAX_MASTERS {
            return Err(TestkitError::InvalidArgument(format!(
                "a test cluster has 1 to {MAX_MASTERS} masters, not {masters}"
            )));
        }
        let dir = super::temp_dir("palisade-cluster-")?;
        let mut nodes = Vec::with_capacity(masters);
        for index in 0..masters {
            let node = process::spawn(
                dir.path(),
                &format!("node-{index}"),
                Mode::Server,
                Ports::ClientAndClusterBus,
                |port, home| {
                    format!(
                        "{}cluster-enabled yes\n\
                         cluster-config-file nodes.conf\n\
                         cluster-node-timeout 5000\n",
                        process::base_config(port, home)
                    )
                },
            )
            .await?;
            nodes.push(node);
        }
        let cluster = Self { nodes, _dir: dir };
        cluster.assign_slots_and_meet().await?;
        cluster.wait_until_ok().await?;
        Ok(cluster)
    }

    /// The nodes' addresses.
    pub fn node_addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(ServerProcess::addr).collect()
    }

    /// The nodes' `redis://` URLs, as cluster clients take their seed nodes.
    pub fn node_urls(&self) -> Vec<String> {
        self.node_addrs().into_iter().map(process::url).collect()
    }

    async fn assign_slots_and_meet(&self) -> Result<(), TestkitError> {
        let count = self.nodes.len();
        for (index, node) in self.nodes.iter().enumerate() {
            let addr = node.addr();
            // Distinct config epochs up front, as redis-cli does, so the nodes
            // need not resolve epoch collisions before agreeing.
            let mut epoch = ::redis::cmd("CLUSTER");
            epoch.arg("SET-CONFIG-EPOCH").arg(index + 1);
            let _: String = query(addr, &epoch, "CLUSTER SET-CONFIG-EPOCH").await?;

            let first = index * SLOTS / count;
            let last = (index + 1) * SLOTS / count - 1;
            let mut slots = ::redis::cmd("CLUSTER");
            slots.arg("ADDSLOTSRANGE").arg(first).arg(last);
            let _: String = query(addr, &slots, "CLUSTER ADDSLOTSRANGE").await?;
        }
        let Some((seed, others)) = self.nodes.split_first() else {
            return Ok(());
        };
        for node in others {
            let mut meet = ::redis::cmd("CLUSTER");
            meet.arg("MEET").arg("127.0.0.1").arg(node.port());
            let _: String = query(seed.addr(), &meet, "CLUSTER MEET").await?;
        }
        Ok(())
    }

    async fn wait_until_ok(&self) -> Result<(), TestkitError> {
        let expected_nodes = self.nodes.len().to_string();
        let expected_slots = SLOTS.to_string();
        for addr in self.node_addrs() {
            let (nodes, slots) = (expected_nodes.as_str(), expected_slots.as_str());
            wait_until(
                format!("cluster node {addr} to report cluster_state:ok with {nodes} nodes"),
                SETTLE_TIMEOUT,
                || async move {
                    let mut command = ::redis::cmd("CLUSTER");
                    command.arg("INFO");
                    let info: String = match query(addr, &command, "CLUSTER INFO").await {
                        Ok(info) => info,
                        Err(error) => return Ok(Check::NotYet(error.to_string())),
                    };
                    let state = info_field(&info, "cluster_state");
                    let known = info_field(&info, "cluster_known_nodes");
                    let assigned = info_field(&info, "cluster_slots_ok");
                    if state == Some("ok") && known == Some(nodes) && assigned == Some(slots) {
                        Ok(Check::Ready(()))
                    } else {
                        Ok(Check::NotYet(format!(
                            "cluster_state={state:?} cluster_known_nodes={known:?} cluster_slots_ok={assigned:?}"
                        )))
                    }
                },
            )
            .await?;
        }
        Ok(())
    }
}
