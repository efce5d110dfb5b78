//! The fault proxy against a local echo server and against the real test Redis.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use palisade_testkit::{FaultProxy, eventually, redis::redis_url, within};
use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Generous bound for operations that should succeed promptly.
const PROMPT: Duration = Duration::from_secs(5);
/// How long a blackholed read must stay silent to count as "nothing arrives".
const SILENCE: Duration = Duration::from_millis(300);

/// An echo server on a free loopback port; stops when dropped.
struct Echo {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Echo {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
        let addr = listener.local_addr().expect("echo addr");
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let (mut read, mut write) = socket.split();
                    if tokio::io::copy(&mut read, &mut write).await.is_ok() {
                        let _ = write.shutdown().await;
                    }
                });
            }
        });
        Self { addr, task }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn connect(addr: SocketAddr) -> TcpStream {
    within(PROMPT, "connect to the proxy", TcpStream::connect(addr))
        .await
        .expect("connect to the proxy")
}

/// Sends `message` and reads back as many bytes, within `limit`.
async fn echo_round_trip(
    stream: &mut TcpStream,
    message: &[u8],
    limit: Duration,
) -> Result<Vec<u8>, String> {
    let work = async {
        stream.write_all(message).await?;
        let mut reply = vec![0; message.len()];
        stream.read_exact(&mut reply).await?;
        Ok::<_, std::io::Error>(reply)
    };
    match tokio::time::timeout(limit, work).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(error)) => Err(format!("io error: {error}")),
        Err(_) => Err("timed out".to_owned()),
    }
}

/// Asserts the connection is closed (EOF or error) promptly, the sign of a cut.
async fn assert_closed_fast(stream: &mut TcpStream, what: &str) {
    let started = Instant::now();
    let mut byte = [0_u8; 1];
    let outcome = within(PROMPT, what, async {
        // A write may still succeed into the local buffer; the read shows the close.
        let _ = stream.write_all(b"x").await;
        stream.read(&mut byte).await
    })
    .await;
    match outcome {
        Ok(0) => {}
        Ok(n) => panic!("{what}: expected a closed connection, read {n} bytes"),
        Err(error) => assert!(
            matches!(
                error.kind(),
                ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted
            ),
            "{what}: unexpected error {error}"
        ),
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{what}: closing took {:?}, clients should fail fast",
        started.elapsed()
    );
}

#[tokio::test]
async fn forwards_bytes_both_ways_including_large_payloads_and_half_close() {
    let echo = Echo::start().await;
    let proxy = FaultProxy::start(echo.addr).await.expect("start proxy");
    assert_eq!(proxy.upstream(), echo.addr);
    let mut stream = connect(proxy.addr()).await;

    let reply = echo_round_trip(&mut stream, b"hello", PROMPT).await;
    assert_eq!(reply.as_deref(), Ok(&b"hello"[..]));

    // Larger than the proxy's chunk and the socket buffers, written while
    // reading, then half-closed: the echo's EOF must come back through.
    let payload: Vec<u8> = (0..2_000_000_u32).map(|i| (i % 251) as u8).collect();
    let (mut read, mut write) = stream.split();
    let (written, received) = within(PROMPT, "2 MB round trip through the proxy", async {
        tokio::join!(
            async {
                write.write_all(&payload).await?;
                write.shutdown().await
            },
            async {
                let mut received = Vec::new();
                read.read_to_end(&mut received).await.map(|_| received)
            }
        )
    })
    .await;
    written.expect("write payload");
    let received = received.expect("read echo");
    assert_eq!(received.len(), payload.len());
    assert!(received == payload, "echoed bytes differ from those sent");
}

#[tokio::test]
async fn cut_resets_open_connections_and_new_ones_fail_fast() {
    let echo = Echo::start().await;
    let proxy = FaultProxy::start(echo.addr).await.expect("start proxy");
    let mut first = connect(proxy.addr()).await;
    let mut second = connect(proxy.addr()).await;
    assert!(echo_round_trip(&mut first, b"a", PROMPT).await.is_ok());
    assert!(echo_round_trip(&mut second, b"b", PROMPT).await.is_ok());
    assert_eq!(proxy.open_connections(), 2);

    proxy.cut();
    eventually(PROMPT, "the proxy to close both connections", || {
        let open = proxy.open_connections();
        async move { open == 0 }
    })
    .await;
    assert_closed_fast(&mut first, "first connection after cut").await;
    assert_closed_fast(&mut second, "second connection after cut").await;

    let mut late = connect(proxy.addr()).await;
    assert_closed_fast(&mut late, "connection opened after cut").await;
}

#[tokio::test]
async fn resume_after_cut_forwards_new_connections_again() {
    let echo = Echo::start().await;
    let proxy = FaultProxy::start(echo.addr).await.expect("start proxy");
    proxy.cut();
    let mut refused = connect(proxy.addr()).await;
    assert_closed_fast(&mut refused, "connection during cut").await;

    proxy.resume();
    let mut stream = connect(proxy.addr()).await;
    let reply = echo_round_trip(&mut stream, b"back", PROMPT).await;
    assert_eq!(reply.as_deref(), Ok(&b"back"[..]));
}

#[tokio::test]
async fn blackhole_holds_connections_silently_and_resume_delivers_held_data() {
    let echo = Echo::start().await;
    let proxy = FaultProxy::start(echo.addr).await.expect("start proxy");
    let mut open = connect(proxy.addr()).await;
    assert!(echo_round_trip(&mut open, b"warm", PROMPT).await.is_ok());

    proxy.blackhole();
    let silent = echo_round_trip(&mut open, b"held", SILENCE).await;
    assert_eq!(silent, Err("timed out".to_owned()), "open connection");
    // A new client is accepted (its connect succeeds) but hears nothing.
    let mut late = connect(proxy.addr()).await;
    let silent = echo_round_trip(&mut late, b"late", SILENCE).await;
    assert_eq!(silent, Err("timed out".to_owned()), "new connection");
    assert_eq!(
        proxy.open_connections(),
        2,
        "blackholed connections stay open"
    );

    proxy.resume();
    // The bytes written during the blackhole were held, not dropped.
    let mut reply = [0_u8; 4];
    within(
        PROMPT,
        "held bytes on the open connection",
        open.read_exact(&mut reply),
    )
    .await
    .expect("read held echo");
    assert_eq!(&reply, b"held");
    within(
        PROMPT,
        "held bytes on the late connection",
        late.read_exact(&mut reply),
    )
    .await
    .expect("read late echo");
    assert_eq!(&reply, b"late");
}

#[tokio::test]
async fn delay_adds_latency_to_each_chunk_until_resumed() {
    let echo = Echo::start().await;
    let proxy = FaultProxy::start(echo.addr).await.expect("start proxy");
    let mut stream = connect(proxy.addr()).await;
    assert!(echo_round_trip(&mut stream, b"warm", PROMPT).await.is_ok());

    let latency = Duration::from_millis(200);
    proxy.delay(latency);
    let started = Instant::now();
    let reply = echo_round_trip(&mut stream, b"slow", PROMPT).await;
    let elapsed = started.elapsed();
    assert_eq!(reply.as_deref(), Ok(&b"slow"[..]));
    // One delayed chunk each way.
    assert!(
        elapsed >= latency * 2,
        "round trip took {elapsed:?}, expected at least {:?}",
        latency * 2
    );

    proxy.resume();
    let started = Instant::now();
    let reply = echo_round_trip(&mut stream, b"fast", PROMPT).await;
    assert_eq!(reply.as_deref(), Ok(&b"fast"[..]));
    assert!(
        started.elapsed() < latency,
        "round trip after resume took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn unreachable_upstream_resets_the_client() {
    // Bind then drop a listener: nothing listens on that port afterwards.
    let dead = {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("addr")
    };
    let proxy = FaultProxy::start(dead).await.expect("start proxy");
    let mut stream = connect(proxy.addr()).await;
    assert_closed_fast(&mut stream, "connection to a dead upstream").await;
}

#[tokio::test]
async fn dropping_the_proxy_closes_connections_and_stops_listening() {
    let echo = Echo::start().await;
    let proxy = FaultProxy::start(echo.addr).await.expect("start proxy");
    let addr = proxy.addr();
    let mut stream = connect(addr).await;
    assert!(echo_round_trip(&mut stream, b"x", PROMPT).await.is_ok());

    drop(proxy);
    let mut byte = [0_u8; 1];
    let read = within(
        PROMPT,
        "the dropped proxy to close the connection",
        stream.read(&mut byte),
    )
    .await;
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "connection still delivered data: {read:?}"
    );
    eventually(
        PROMPT,
        "the dropped proxy's port to refuse connections",
        || async move { TcpStream::connect(addr).await.is_err() },
    )
    .await;
}

/// The test Redis as a socket address, for the proxy's upstream.
async fn test_redis_addr() -> SocketAddr {
    let url = redis_url();
    let info = url
        .as_str()
        .into_connection_info()
        .expect("parse test Redis URL");
    let redis::ConnectionAddr::Tcp(host, port) = info.addr() else {
        panic!("the test Redis URL {url} is not plain TCP");
    };
    tokio::net::lookup_host((host.as_str(), *port))
        .await
        .expect("resolve test Redis host")
        .next()
        .expect("test Redis host has an address")
}

async fn ping_through(
    proxy: &FaultProxy,
    response_timeout: Duration,
) -> redis::RedisResult<String> {
    let client = Client::open(format!("redis://{}", proxy.addr()))?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(response_timeout));
    let mut connection = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    redis::cmd("PING").query_async(&mut connection).await
}

#[tokio::test]
async fn redis_ping_through_proxy_fails_after_cut_and_works_after_resume() {
    let proxy = FaultProxy::start(test_redis_addr().await)
        .await
        .expect("start proxy");
    let client = Client::open(format!("redis://{}", proxy.addr())).expect("client");
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(1)));
    let mut connection = within(
        PROMPT,
        "connect to Redis through the proxy",
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await
    .expect("connect to the test Redis through the proxy (is Redis running? see scripts/test)");
    let pong: String = redis::cmd("PING")
        .query_async(&mut connection)
        .await
        .expect("PING through the proxy");
    assert_eq!(pong, "PONG");

    proxy.cut();
    let started = Instant::now();
    let after_cut: redis::RedisResult<String> = within(
        PROMPT,
        "PING after cut",
        redis::cmd("PING").query_async(&mut connection),
    )
    .await;
    assert!(
        after_cut.is_err(),
        "PING on a cut connection answered {after_cut:?}"
    );
    let fresh = within(
        PROMPT,
        "new connection after cut",
        ping_through(&proxy, Duration::from_secs(1)),
    )
    .await;
    assert!(
        fresh.is_err(),
        "PING on a new connection during cut answered {fresh:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "failing took {:?}; a cut must fail fast, not time out",
        started.elapsed()
    );

    proxy.resume();
    let pong = within(
        PROMPT,
        "PING after resume",
        ping_through(&proxy, Duration::from_secs(1)),
    )
    .await
    .expect("PING after resume");
    assert_eq!(pong, "PONG");
}

#[tokio::test]
async fn redis_ping_times_out_under_blackhole_and_works_after_resume() {
    let proxy = FaultProxy::start(test_redis_addr().await)
        .await
        .expect("start proxy");
    let pong = within(
        PROMPT,
        "PING before blackhole",
        ping_through(&proxy, Duration::from_secs(1)),
    )
    .await
    .expect("PING through the proxy (is Redis running? see scripts/test)");
    assert_eq!(pong, "PONG");

    proxy.blackhole();
    let timed_out = within(
        PROMPT,
        "PING under blackhole",
        ping_through(&proxy, SILENCE),
    )
    .await;
    let error = timed_out.expect_err("PING under blackhole must not be answered");
    assert!(error.is_timeout(), "expected a timeout, got {error}");

    proxy.resume();
    let pong = within(
        PROMPT,
        "PING after resume",
        ping_through(&proxy, Duration::from_secs(1)),
    )
    .await
    .expect("PING after resume");
    assert_eq!(pong, "PONG");
}
