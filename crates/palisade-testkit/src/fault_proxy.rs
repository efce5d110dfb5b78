//! A TCP proxy that injects network faults between a client and a real server.
//!
//! Point the code under test at [`FaultProxy::addr`] instead of the server, then
//! cut, blackhole or slow the link to see how it copes: does the circuit breaker
//! open, does the request time out instead of hanging, does it recover on
//! [`FaultProxy::resume`]?

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::TestkitError;

/// How long the proxy waits to connect to the upstream for a new client; on
/// timeout the client's connection is reset, as a dead upstream would.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes read per chunk; each chunk is delayed once under [`FaultProxy::delay`].
const CHUNK: usize = 16 * 1024;

/// The fault in force. Each control replaces the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Forward everything, each chunk after `delay`.
    Forward { delay: Duration },
    /// Accept and hold connections, forward nothing.
    Blackhole,
    /// Reset every connection, open or new.
    Cut,
}

/// A loopback TCP proxy to one upstream address with switchable faults.
///
/// Every task it starts (the accept loop and one per connection) stops when the
/// proxy is dropped, closing all its connections. Must be started inside a
/// Tokio runtime.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    fault: watch::Sender<Fault>,
    open: Arc<AtomicUsize>,
    accept_loop: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts forwarding from a free port on 127.0.0.1 to `upstream`.
    ///
    /// The listener stays bound for the proxy's life, so unlike the
    /// `redis_server` fixtures there is no port race.
    pub async fn start(upstream: SocketAddr) -> Result<Self, TestkitError> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| TestkitError::io("bind fault proxy on 127.0.0.1:0", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| TestkitError::io("read fault proxy address", e))?;
        let (fault, watcher) = watch::channel(Fault::Forward {
            delay: Duration::ZERO,
        });
        let open = Arc::new(AtomicUsize::new(0));
        let accept_loop = tokio::spawn(accept_loop(listener, upstream, watcher, open.clone()));
        Ok(Self {
            addr,
            upstream,
            fault,
            open,
            accept_loop,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the proxy forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// Connections currently held open by the proxy, so a test can see a cut
    /// take effect or a client's pool reconnect.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Resets every open connection and every new one at once (TCP RST), so
    /// clients fail fast, as when a server crashes or a firewall rejects them.
    ///
    /// No byte is forwarded after this returns; the sockets themselves close
    /// as soon as their tasks run, which a test can observe with
    /// [`open_connections`](Self::open_connections).
    pub fn cut(&self) {
        self.fault.send_replace(Fault::Cut);
    }

    /// Keeps connections open and accepts new ones but forwards nothing, so
    /// clients see timeouts, as on a partitioned network.
    ///
    /// Data is left unread in the kernel buffers rather than dropped, so on
    /// [`resume`](Self::resume) a connection continues intact, as TCP does
    /// when a partition heals.
    pub fn blackhole(&self) {
        self.fault.send_replace(Fault::Blackhole);
    }

    /// Forwards everything, each chunk (each read, up to 16 KiB, in either
    /// direction) after `latency`, as on a slow link.
    pub fn delay(&self, latency: Duration) {
        self.fault.send_replace(Fault::Forward { delay: latency });
    }

    /// Back to plain forwarding: no fault, no delay.
    pub fn resume(&self) {
        self.fault.send_replace(Fault::Forward {
            delay: Duration::ZERO,
        });
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every
        // connection task and so closes every socket.
        self.accept_loop.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    fault: watch::Receiver<Fault>,
    open: Arc<AtomicUsize>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    if *fault.borrow() == Fault::Cut {
                        reset(&client);
                        continue;
                    }
                    connections.spawn(serve(client, upstream, fault.clone(), OpenGuard::new(&open)));
                }
                // Running out of file descriptors is the usual cause; pausing
                // lets connections close instead of spinning on the error.
                Err(error) => {
                    tracing::warn!(%error, "fault proxy accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            // Reap finished connection tasks so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Counts a connection as open for as long as it lives.
#[derive(Debug)]
struct OpenGuard(Arc<AtomicUsize>);

impl OpenGuard {
    fn new(open: &Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::SeqCst);
        Self(open.clone())
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn serve(
    mut client: TcpStream,
    upstream: SocketAddr,
    mut fault: watch::Receiver<Fault>,
    _open: OpenGuard,
) {
    // A client that arrives during a blackhole is held, unconnected, until
    // the fault changes.
    let cut_watch = fault.clone();
    let admitted = tokio::select! {
        forwarding = wait_forwarding(&mut fault) => forwarding.is_some(),
        () = until_cut(cut_watch) => false,
    };
    if !admitted {
        reset(&client);
        return;
    }
    let connect = tokio::time::timeout(UPSTREAM_CONNECT_TIMEOUT, TcpStream::connect(upstream));
    let mut server = tokio::select! {
        connected = connect => match connected {
            Ok(Ok(server)) => server,
            Ok(Err(error)) => {
                tracing::debug!(%error, %upstream, "fault proxy could not reach upstream");
                reset(&client);
                return;
            }
            Err(_) => {
                tracing::debug!(%upstream, "fault proxy timed out connecting to upstream");
                reset(&client);
                return;
            }
        },
        () = until_cut(fault.clone()) => {
            reset(&client);
            return;
        }
    };
    // Small writes (a PING) must not wait for Nagle's algorithm, or every test
    // would see latency the proxy was not asked to add.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);

    let cut = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let relay = async {
            tokio::try_join!(
                pump(client_read, server_write, fault.clone()),
                pump(server_read, client_write, fault.clone()),
            )
        };
        tokio::select! {
            () = until_cut(fault.clone()) => true,
            // An I/O error on either side ends the connection, as it would
            // end a direct one; the error itself is the peer's business.
            _ = relay => false,
        }
    };
    if cut {
        reset(&client);
        reset(&server);
    }
}

/// Copies one direction chunk by chunk, obeying the fault in force.
async fn pump(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    mut fault: watch::Receiver<Fault>,
) -> std::io::Result<()> {
    let mut buf = vec![0_u8; CHUNK];
    loop {
        // Under a blackhole, do not even read: the data waits in the kernel,
        // and the sender's window fills, as on a dead link.
        if wait_forwarding(&mut fault).await.is_none() {
            return Ok(());
        }
        let read = tokio::select! {
            read = from.read(&mut buf) => read?,
            changed = fault.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                continue;
            }
        };
        if read == 0 {
            // Pass the half-close on; the other direction keeps running.
            to.shutdown().await?;
            return Ok(());
        }
        // The fault may change while a chunk is in hand: hold it through a
        // blackhole, drop it on a cut, and apply whatever delay is in force.
        loop {
            let Some(delay) = wait_forwarding(&mut fault).await else {
                return Ok(());
            };
            if delay.is_zero() {
                break;
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {
                    if matches!(*fault.borrow(), Fault::Forward { .. }) {
                        break;
                    }
                }
                changed = fault.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                }
            }
        }
        to.write_all(&buf[..read]).await?;
    }
}

/// Waits until the fault allows forwarding and returns the delay in force, or
/// `None` once the proxy is gone. Under a cut it waits forever: the caller is
/// always raced against [`until_cut`], which closes the connection.
async fn wait_forwarding(fault: &mut watch::Receiver<Fault>) -> Option<Duration> {
    loop {
        if let Fault::Forward { delay } = *fault.borrow_and_update() {
            return Some(delay);
        }
        fault.changed().await.ok()?;
    }
}

/// Completes when the proxy is cut or dropped.
async fn until_cut(mut fault: watch::Receiver<Fault>) {
    loop {
        if *fault.borrow_and_update() == Fault::Cut {
            return;
        }
        if fault.changed().await.is_err() {
            return;
        }
    }
}

/// Makes the coming close a reset (RST), so the peer fails at once instead of
/// reading a clean end of stream it might treat as a graceful shutdown.
fn reset(stream: &TcpStream) {
    // Best effort: if it fails the close is a normal FIN, still a failure for
    // the peer.
    let _ = stream.set_zero_linger();
}
