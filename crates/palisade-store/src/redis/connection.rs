//! One connection per topology, made lazily and made again when it goes bad.
//!
//! The connection lives in a slot holding a shared connect future, so every
//! caller waiting for a connection waits for the same attempt, and the attempt
//! runs as its own task: a caller whose per-call timeout fires does not cancel
//! it, and the connection is ready for the next call. A failed attempt is never
//! served twice: the next caller that finds it starts a fresh one, so recovery
//! does not wait for a background schedule.
//!
//! What "goes bad" means depends on the topology (see [`Topology::drops_on`]):
//! a single server's `ConnectionManager` and a `ClusterConnection` repair
//! themselves, while a Sentinel-resolved master connection has to be thrown
//! away so the next call asks the Sentinels where the master is now.

use super::RedisMode;
use super::error::describe;
use ::redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use ::redis::cluster::ClusterClient;
use ::redis::cluster_async::ClusterConnection;
use ::redis::sentinel::SentinelClient;
use ::redis::{
    AsyncConnectionConfig, Client, Cmd, ErrorKind, Pipeline, RedisFuture, RedisResult,
    ServerErrorKind, Value,
};
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// A live connection of whichever topology is configured.
#[derive(Clone)]
pub(crate) enum Conn {
    /// Reconnects by itself after the server drops it.
    Single(ConnectionManager),
    /// A plain connection to the master the Sentinels named.
    Sentinel(MultiplexedConnection),
    /// Follows slot moves and reconnects to nodes by itself.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Sentinel(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Sentinel(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// How to make a connection for one topology.
pub(crate) enum Connector {
    Single {
        client: Client,
        config: ConnectionManagerConfig,
    },
    Sentinel {
        // A tokio mutex: resolving awaits, and the client caches its Sentinel
        // connections, which needs `&mut`.
        sentinel: Arc<tokio::sync::Mutex<SentinelClient>>,
        config: AsyncConnectionConfig,
    },
    Cluster {
        client: ClusterClient,
    },
}

impl Connector {
    fn mode(&self) -> RedisMode {
        match self {
            Self::Single { .. } => RedisMode::Single,
            Self::Sentinel { .. } => RedisMode::Sentinel,
            Self::Cluster { .. } => RedisMode::Cluster,
        }
    }

    /// One connect attempt, owning everything it needs so it can run as a task.
    fn attempt(&self) -> BoxFuture<'static, RedisResult<Conn>> {
        match self {
            Self::Single { client, config } => {
                let (client, config) = (client.clone(), config.clone());
                async move {
                    ConnectionManager::new_with_config(client, config)
                        .await
                        .map(Conn::Single)
                }
                .boxed()
            }
            Self::Sentinel { sentinel, config } => {
                let (sentinel, config) = (Arc::clone(sentinel), config.clone());
                async move {
                    // Asks the Sentinels for the master and checks it says it is one.
                    let client = sentinel.lock().await.async_get_client().await?;
                    let master = client.get_connection_info().addr().to_string();
                    let connection = client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?;
                    tracing::info!(%master, "redis master resolved through sentinel");
                    Ok(Conn::Sentinel(connection))
                }
                .boxed()
            }
            Self::Cluster { client } => {
                let client = client.clone();
                async move { client.get_async_connection().await.map(Conn::Cluster) }.boxed()
            }
        }
    }
}

/// Which errors mean the connection in the slot must be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Topology(RedisMode);

impl Topology {
    /// Whether `error`, returned by a command on a connection from the slot,
    /// means the slot should connect again.
    fn drops_on(self, error: &::redis::RedisError) -> bool {
        match self.0 {
            // The ConnectionManager reconnects after I/O errors itself, but a
            // reconnect that fails authentication is never retried by it; only a
            // new manager gets past a password that was fixed on the server.
            RedisMode::Single => error.kind() == ErrorKind::AuthenticationFailed,
            // Lost connection, a timeout (the master may be partitioned away and
            // replaced), or the node has become a replica after a failover: ask the
            // Sentinels again. A cheap query when nothing changed.
            RedisMode::Sentinel => {
                error.is_io_error()
                    || matches!(
                        error.kind(),
                        ErrorKind::AuthenticationFailed
                            | ErrorKind::Server(
                                ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown
                            )
                    )
            }
            // The cluster connection refreshes slots and reconnects nodes itself.
            RedisMode::Cluster => false,
        }
    }

    /// Whether a command abandoned mid-flight (the per-call timeout fired)
    /// should replace the connection: only for Sentinel, where a hung master may
    /// have been failed over.
    fn drops_on_cancel(self) -> bool {
        self.0 == RedisMode::Sentinel
    }
}

type Attempt = Shared<BoxFuture<'static, RedisResult<Conn>>>;

struct Slot {
    /// Bumped on every new attempt, so a report about an old connection cannot
    /// throw away a newer one.
    generation: u64,
    attempt: Attempt,
}

/// The connection slot for one [`Redis`](super::Redis).
pub(crate) struct Reconnecting {
    connector: Connector,
    topology: Topology,
    /// Bound on one whole connect attempt (a Sentinel lookup plus the connect),
    /// so an attempt cannot stay pending forever and block every later call.
    connect_bound: Duration,
    slot: Mutex<Slot>,
}

impl Reconnecting {
    /// A slot that starts connecting now when called inside a Tokio runtime (so
    /// the first request does not pay for the connect), or on first use otherwise.
    /// Never fails and never waits: Palisade starts whether Redis is up or not.
    pub(crate) fn new(connector: Connector, connect_bound: Duration) -> Self {
        let topology = Topology(connector.mode());
        let attempt = start(&connector, connect_bound);
        Self {
            connector,
            topology,
            connect_bound,
            slot: Mutex::new(Slot {
                generation: 0,
                attempt,
            }),
        }
    }

    /// A connection, waiting for the current connect attempt if there is one.
    /// Cancel-safe: dropping the future leaves the attempt running.
    pub(crate) async fn get(&self) -> RedisResult<Lease<'_>> {
        let (generation, attempt) = {
            let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
            if matches!(slot.attempt.peek(), Some(Err(_))) {
                self.renew(&mut slot);
            }
            (slot.generation, slot.attempt.clone())
        };
        let conn = attempt.await?;
        Ok(Lease {
            conn,
            generation,
            owner: self,
            settled: false,
        })
    }

    /// Replaces the connection of `generation` (if it is still the current one)
    /// with a fresh attempt.
    fn invalidate(&self, generation: u64) {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.generation == generation {
            tracing::debug!(
                mode = self.topology.0.as_str(),
                generation,
                "dropping redis connection; connecting again"
            );
            self.renew(&mut slot);
        }
    }

    fn renew(&self, slot: &mut Slot) {
        slot.generation += 1;
        slot.attempt = start(&self.connector, self.connect_bound);
    }

    /// The current connection generation, for tests and debugging.
    pub(crate) fn generation(&self) -> u64 {
        self.slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .generation
    }
}

impl fmt::Debug for Reconnecting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the connector: the clients inside hold connection details and credentials.
        f.debug_struct("Reconnecting")
            .field("mode", &self.topology.0)
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

/// Starts one bounded connect attempt, as a task when a runtime is at hand.
fn start(connector: &Connector, bound: Duration) -> Attempt {
    let mode = connector.mode();
    let connect = connector.attempt();
    let attempt = async move {
        let result = match tokio::time::timeout(bound, connect).await {
            Ok(result) => result,
            Err(_elapsed) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("connecting took longer than {} ms", bound.as_millis()),
            )
            .into()),
        };
        match &result {
            Ok(_) => tracing::debug!(mode = mode.as_str(), "connected to redis"),
            // Debug, not warn: during an outage this repeats on every probe, and the
            // breaker's transitions already tell operators Redis is down.
            Err(e) => tracing::debug!(mode = mode.as_str(), error = %describe(e), "connecting to redis failed"),
        }
        result
    }
    .boxed()
    .shared();
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(attempt.clone().map(drop));
    }
    attempt
}

/// A connection borrowed from the slot for one command. Report how the command
/// went with [`Lease::settle`]; dropped unsettled (the call was cancelled), it
/// counts as an abandoned command.
pub(crate) struct Lease<'a> {
    pub(crate) conn: Conn,
    generation: u64,
    owner: &'a Reconnecting,
    settled: bool,
}

impl Lease<'_> {
    /// Records the command's outcome, replacing the connection if the error says
    /// it went bad.
    pub(crate) fn settle(mut self, error: Option<&::redis::RedisError>) {
        self.settled = true;
        if let Some(error) = error
            && self.owner.topology.drops_on(error)
        {
            self.owner.invalidate(self.generation);
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if !self.settled && self.owner.topology.drops_on_cancel() {
            self.owner.invalidate(self.generation);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sentinel_connections_are_replaced_after_a_failover_reply() {
        let read_only =
            ::redis::RedisError::from((ErrorKind::Server(ServerErrorKind::ReadOnly), "replica"));
        let reset: ::redis::RedisError =
            std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset").into();
        let wrong_type = ::redis::make_extension_error("WRONGTYPE".into(), None);
        let sentinel = Topology(RedisMode::Sentinel);
        assert!(sentinel.drops_on(&read_only));
        assert!(sentinel.drops_on(&reset));
        assert!(!sentinel.drops_on(&wrong_type));
        assert!(sentinel.drops_on_cancel());
        for managed in [Topology(RedisMode::Single), Topology(RedisMode::Cluster)] {
            assert!(!managed.drops_on(&read_only), "{managed:?}");
            assert!(
                !managed.drops_on(&reset),
                "{managed:?} reconnects by itself"
            );
            assert!(!managed.drops_on_cancel());
        }
    }
}
