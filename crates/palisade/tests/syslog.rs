//! Audit forwarding to syslog against the real binary: a TCP receiver in the test
//! parses octet-counted RFC 5424 frames, goes away while events are appended, and
//! comes back on the same port; every event arrives, in index order, none skipped.

mod support;

use serde_json::Value;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{Client, Server, audit_event};
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// The longest any wait in these tests may take.
const WITHIN: Duration = Duration::from_secs(20);
/// `authpriv` (10) · 8 + informational (6): the PRI of a successful event.
const PRI_SUCCESS: u32 = 86;

/// One received message, checked and taken apart.
#[derive(Debug, Clone)]
struct Message {
    /// Which accepted connection it came on (0, 1, ...).
    connection: usize,
    index: u64,
    id: Uuid,
}

#[derive(Default)]
struct Received {
    messages: Vec<Message>,
    /// Frames that were not valid RFC 5424, with why.
    invalid: Vec<String>,
    connections: usize,
}

type Shared = Arc<Mutex<Received>>;

/// A syslog receiver on `addr` until aborted; aborting drops the listener and
/// every connection, as a server going down would.
async fn receiver(addr: SocketAddr, received: Shared) -> JoinHandle<()> {
    let listener = TcpListener::bind(addr).await.expect("bind the syslog port");
    tokio::spawn(async move {
        let mut readers = tokio::task::JoinSet::new();
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let connection = {
                let mut r = received.lock().expect("lock");
                r.connections += 1;
                r.connections - 1
            };
            let received = received.clone();
            // Owned by the JoinSet, so aborting the receiver closes them too.
            readers.spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                    }
                    while let Some((frame, used)) = next_frame(&buffer) {
                        let parsed = parse_rfc5424(&frame);
                        let mut r = received.lock().expect("lock");
                        match parsed {
                            Ok((index, id)) => r.messages.push(Message {
                                connection,
                                index,
                                id,
                            }),
                            Err(why) => r.invalid.push(why),
                        }
                        buffer.drain(..used);
                    }
                }
            });
        }
    })
}

/// Splits one octet-counted frame (`<len> <msg>`, RFC 6587 §3.4.1) off the front.
fn next_frame(buffer: &[u8]) -> Option<(Vec<u8>, usize)> {
    let space = buffer.iter().position(|b| *b == b' ')?;
    let len: usize = std::str::from_utf8(&buffer[..space]).ok()?.parse().ok()?;
    let end = space + 1 + len;
    (buffer.len() >= end).then(|| (buffer[space + 1..end].to_vec(), end))
}

/// Checks a message against RFC 5424's grammar (the parts Palisade fills) and
/// returns its index (from the structured data, cross-checked with the body) and id.
fn parse_rfc5424(message: &[u8]) -> Result<(u64, Uuid), String> {
    let text = std::str::from_utf8(message).map_err(|e| format!("not UTF-8: {e}"))?;
    let fail = |why: &str| format!("{why}: {text}");
    let rest = text.strip_prefix('<').ok_or_else(|| fail("no PRI"))?;
    let (pri, rest) = rest.split_once('>').ok_or_else(|| fail("no PRI end"))?;
    let pri: u32 = pri.parse().map_err(|_| fail("PRI"))?;
    let mut fields = rest.splitn(7, ' ');
    let mut field = || fields.next().ok_or_else(|| fail("too few header fields"));
    let version = field()?;
    let timestamp = field()?;
    let hostname = field()?;
    let app_name = field()?;
    let procid = field()?;
    let msgid = field()?;
    let rest = field()?;
    if version != "1" {
        return Err(fail("VERSION"));
    }
    if !is_rfc5424_timestamp(timestamp) {
        return Err(fail("TIMESTAMP"));
    }
    for (value, max) in [(hostname, 255), (app_name, 48), (procid, 128), (msgid, 32)] {
        if value.is_empty() || value.len() > max || !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(fail("header field"));
        }
    }
    if app_name != "palisade" {
        return Err(fail("APP-NAME"));
    }
    // The test's own events succeed; anything Palisade records itself is still authpriv.
    if (msgid == "load.test" && pri != PRI_SUCCESS) || pri / 8 != 10 {
        return Err(fail("PRI"));
    }
    // One SD element, ending at the first `]` not escaped by a backslash.
    let sd = rest
        .strip_prefix("[palisade@32473 ")
        .ok_or_else(|| fail("SD-ID"))?;
    let mut end = None;
    let mut escaped = false;
    for (i, c) in sd.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ']' => {
                end = Some(i);
                break;
            }
            _ => {}
        }
    }
    let end = end.ok_or_else(|| fail("unterminated SD"))?;
    let params = &sd[..end];
    let index: u64 = params
        .strip_prefix("index=\"")
        .and_then(|p| p.split('"').next())
        .and_then(|i| i.parse().ok())
        .ok_or_else(|| fail("SD index"))?;
    if !params.contains(" tenant=\"default\"") || !params.contains(" leafHash=\"") {
        return Err(fail("SD params"));
    }
    let msg = sd[end + 1..]
        .strip_prefix(" \u{feff}")
        .ok_or_else(|| fail("MSG without BOM"))?;
    let body: Value = serde_json::from_str(msg).map_err(|_| fail("MSG is not JSON"))?;
    if body["index"].as_u64() != Some(index) {
        return Err(fail("body index differs"));
    }
    let id = body["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| fail("body id"))?;
    Ok((index, id))
}

/// `YYYY-MM-DDTHH:MM:SS[.1 to 6 digits]Z`, the UTC form of RFC 5424's TIMESTAMP.
fn is_rfc5424_timestamp(value: &str) -> bool {
    let Some(value) = value.strip_suffix('Z') else {
        return false;
    };
    let (main, fraction) = value.split_once('.').unwrap_or((value, "1"));
    let shape = main.bytes().enumerate().all(|(i, b)| match i {
        4 | 7 => b == b'-',
        10 => b == b'T',
        13 | 16 => b == b':',
        _ => b.is_ascii_digit(),
    });
    shape
        && main.len() == 19
        && (1..=6).contains(&fraction.len())
        && fraction.bytes().all(|b| b.is_ascii_digit())
}

/// Appends `count` events numbered from `first`; each must be acknowledged quickly,
/// syslog server or not.
async fn append(client: &Client, first: u64, count: u64) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for n in first..first + count {
        let (id, event) = audit_event(n);
        let started = Instant::now();
        let (status, body) = client.post("/v1/audit/events", &event).await;
        assert_eq!(status, 201, "{body}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "an append waited on syslog"
        );
        ids.push(id);
    }
    ids
}

/// Waits until every id has arrived.
async fn wait_for(received: &Shared, ids: &[Uuid]) {
    let started = Instant::now();
    loop {
        let missing = {
            let r = received.lock().expect("lock");
            let got: HashSet<Uuid> = r.messages.iter().map(|m| m.id).collect();
            ids.iter().filter(|id| !got.contains(id)).count()
        };
        if missing == 0 {
            return;
        }
        assert!(
            started.elapsed() < WITHIN,
            "{missing} events never reached syslog"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `/health` shows the forwarder with `status`.
async fn wait_health(client: &Client, status: &str) {
    let started = Instant::now();
    loop {
        let (_, health) = client.get("/health").await;
        if health["components"]["audit_syslog"]["status"] == status {
            assert_eq!(health["components"]["audit_syslog"]["required"], false);
            return;
        }
        assert!(
            started.elapsed() < WITHIN,
            "audit_syslog never became {status}: {health}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every frame valid; on each connection indexes go up by one; across connections a
/// new one starts at most one past where the previous ended (a resend may repeat
/// the last batch); together they cover 0..=max without a gap.
fn assert_ordered_without_gaps(received: &Received) {
    assert!(received.invalid.is_empty(), "{:?}", received.invalid);
    let mut previous: Option<&Message> = None;
    let mut highest: Option<u64> = None;
    for m in &received.messages {
        match previous {
            Some(p) if p.connection == m.connection => {
                assert_eq!(m.index, p.index + 1, "out of order on one connection");
            }
            _ => {
                let expected_at_most = highest.map_or(0, |h| h + 1);
                assert!(
                    m.index <= expected_at_most,
                    "connection {} started at {} after {:?}: a gap",
                    m.connection,
                    m.index,
                    highest
                );
            }
        }
        highest = Some(highest.map_or(m.index, |h| h.max(m.index)));
        previous = Some(m);
    }
    let unique: BTreeSet<u64> = received.messages.iter().map(|m| m.index).collect();
    let expected: BTreeSet<u64> = (0..unique.len() as u64).collect();
    assert_eq!(unique, expected, "indexes 0..n, none missing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_every_event_in_order_and_catches_up_after_the_server_returns() {
    let dir = tempfile::tempdir().expect("temp dir");
    let syslog: SocketAddr = format!("127.0.0.1:{}", support::free_port())
        .parse()
        .expect("addr");
    let received: Shared = Arc::default();
    let listener = receiver(syslog, received.clone()).await;
    let mut env = HashMap::new();
    env.insert(
        "PALISADE_AUDIT__SYSLOG__ADDRESS".to_owned(),
        syslog.to_string(),
    );
    let mut server = Server::start(dir.path(), env);
    server.wait_ready(200).await;
    let key = server.printed_key().expect("admin key");
    let client = Client::new(&server.base, &key);

    let first = append(&client, 0, 20).await;
    wait_for(&received, &first).await;
    wait_health(&client, "up").await;

    // The server goes away; appends go on, and health degrades (never down).
    listener.abort();
    let _ = listener.await;
    let second = append(&client, 20, 15).await;
    wait_health(&client, "degraded").await;
    let (status, health) = client.get("/health").await;
    assert_eq!(status, 200, "{health}");

    // Back on the same port: the rest arrive, nothing skipped.
    let listener = receiver(syslog, received.clone()).await;
    wait_for(&received, &second).await;
    wait_health(&client, "up").await;
    listener.abort();

    let expected = {
        let received = received.lock().expect("lock");
        assert!(received.connections >= 2, "a second connection was made");
        assert_ordered_without_gaps(&received);
        let ours: HashSet<Uuid> = first.iter().chain(&second).copied().collect();
        let got: HashSet<Uuid> = received.messages.iter().map(|m| m.id).collect();
        assert!(ours.is_subset(&got));
        received
            .messages
            .iter()
            .map(|m| m.index)
            .max()
            .map(|h| h + 1)
    };
    // The persisted position is the next index to send: one past the last (it is
    // written just after the batch, so it may trail the receiver for a moment).
    let path = dir
        .path()
        .join("palisade-data")
        .join("audit-syslog.position");
    let started = Instant::now();
    loop {
        let position = std::fs::read_to_string(&path)
            .ok()
            .and_then(|p| p.trim().parse::<u64>().ok());
        if position == expected {
            break;
        }
        assert!(
            started.elapsed() < WITHIN,
            "position {position:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Kills the child on drop, so a failed assertion leaves no server behind.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_over_tls_to_a_server_signed_by_the_configured_ca() {
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).expect("certs dir");
    palisade_testkit::tls::write_test_certificates(&certs).expect("test certificates");
    let port = support::free_port();
    // `openssl s_server -quiet` prints what the client sends: the framed messages.
    let mut tls_server = Reaped(
        std::process::Command::new("openssl")
            .args(["s_server", "-quiet", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-cert", "server.crt", "-key", "server.key"])
            .current_dir(&certs)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("openssl s_server"),
    );
    let mut stdout = tls_server.0.stdout.take().expect("stdout");
    let (frames, arrived) = std::sync::mpsc::channel::<Result<(u64, Uuid), String>>();
    std::thread::spawn(move || {
        use std::io::Read as _;
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 8192];
        while let Ok(n) = stdout.read(&mut chunk) {
            if n == 0 {
                return;
            }
            buffer.extend_from_slice(&chunk[..n]);
            while let Some((frame, used)) = next_frame(&buffer) {
                let _ = frames.send(parse_rfc5424(&frame));
                buffer.drain(..used);
            }
        }
    });
    let mut env = HashMap::new();
    env.insert(
        "PALISADE_AUDIT__SYSLOG__ADDRESS".to_owned(),
        format!("localhost:{port}"),
    );
    env.insert("PALISADE_AUDIT__SYSLOG__TRANSPORT".to_owned(), "tls".into());
    env.insert(
        "PALISADE_AUDIT__SYSLOG__CA_FILE".to_owned(),
        certs.join("ca.crt").display().to_string(),
    );
    let mut server = Server::start(dir.path(), env);
    server.wait_ready(200).await;
    let key = server.printed_key().expect("admin key");
    let client = Client::new(&server.base, &key);
    let ids = append(&client, 0, 5).await;
    let mut got = HashSet::new();
    let mut indexes = Vec::new();
    let started = Instant::now();
    while !ids.iter().all(|id| got.contains(id)) {
        let left = WITHIN.saturating_sub(started.elapsed());
        match arrived.recv_timeout(left) {
            Ok(Ok((index, id))) => {
                indexes.push(index);
                got.insert(id);
            }
            Ok(Err(why)) => panic!("invalid message: {why}"),
            Err(_) => panic!(
                "only {} of {} events arrived over TLS",
                got.len(),
                ids.len()
            ),
        }
    }
    let expected: Vec<u64> = (0..indexes.len() as u64).collect();
    assert_eq!(indexes, expected, "in index order from 0");
    wait_health(&client, "up").await;
}
