//! The audit log's live stream (SSE and WebSocket) and export, driven over real TCP
//! against a running server on both backends: resuming without gaps or duplicates,
//! cutting off a stalled subscriber while appends carry on, tenant isolation, bad
//! input, and the NDJSON / OCSF / CEF exports.
//!
//! The HTTP and WebSocket clients are a few lines of hand-written protocol, so the
//! tests can stall a connection at the socket (a tiny receive buffer, no reads),
//! which no high-level client allows.

mod common;

use axum::Extension;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use palisade_audit::event::NewEvent;
use palisade_audit::merkle::leaf_hash;
use palisade_auth::{NewApiKey, Scopes};
use palisade_core::SystemClock;
use palisade_core::principal::TenantId;
use palisade_http::routes::audit_stream::AuditStreamSettings;
use palisade_http::{AppState, HttpSettings, api_router};
use palisade_testkit::within;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The grace period of the test server: short, so a cut-off is quick to provoke.
const GRACE: Duration = Duration::from_millis(300);
/// Events the test server buffers per subscriber.
const BUFFER: usize = 8;
/// Bound on any single wait for the server.
const WAIT: Duration = Duration::from_secs(10);

/// A running server on one backend.
struct Harness {
    addr: SocketAddr,
    state: AppState,
    admin: String,
    _backend: common::Backend,
}

async fn sqlite() -> Harness {
    harness(common::sqlite(HttpSettings::default()).await).await
}

async fn postgres() -> Harness {
    harness(common::postgres(HttpSettings::default()).await).await
}

async fn harness(backend: common::Backend) -> Harness {
    let state = backend.state.clone();
    let app = api_router(state.clone()).layer(Extension(AuditStreamSettings {
        buffer: BUFFER,
        grace: GRACE,
        keep_alive: Duration::from_millis(250),
        poll_interval: Duration::from_millis(500),
        close_timeout: Duration::from_secs(5),
    }));
    // A fixed, modest send buffer (inherited by accepted sockets) stops the kernel
    // from growing it to megabytes, so a stalled client pushes back on the server
    // after a few hundred kilobytes rather than after most of a test's events.
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_send_buffer_size(64 * 1024).expect("SO_SNDBUF");
    socket
        .bind("127.0.0.1:0".parse().expect("address"))
        .expect("bind");
    let listener = socket.listen(128).expect("listen");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    Harness {
        addr,
        state,
        admin: backend.admin.clone(),
        _backend: backend,
    }
}

impl Harness {
    /// A key of `tenant` with `scopes`.
    async fn key(&self, tenant: &str, scopes: &[&str]) -> String {
        let created = self
            .state
            .api_keys
            .create(NewApiKey {
                name: format!("{tenant} key"),
                tenant: TenantId::parse(tenant).expect("tenant"),
                scopes: Scopes::parse(scopes.iter().copied()).expect("scopes"),
                expires_at_ms: None,
            })
            .await
            .expect("key");
        created.secret.expose().to_owned()
    }

    /// Appends `events` under `tenant`; returns their indexes.
    async fn append(&self, tenant: &str, events: Vec<Value>) -> Vec<u64> {
        let tenant = TenantId::parse(tenant).expect("tenant");
        let batch = events
            .into_iter()
            .map(|e| {
                let event: NewEvent = serde_json::from_value(e).expect("event");
                (tenant.clone(), event)
            })
            .collect();
        let receipt = within(WAIT, "an append", self.state.audit.append_batch(batch))
            .await
            .expect("append");
        receipt.indexes.expect("sequenced at once")
    }
}

fn event(action: &str, n: usize) -> Value {
    json!({"action": action, "actor": {"id": format!("user-{n}"), "ip": "10.0.0.1"}, "outcome": "success", "metadata": {"n": n}})
}

fn events(action: &str, range: std::ops::Range<usize>) -> Vec<Value> {
    range.map(|n| event(action, n)).collect()
}

// ---------------------------------------------------------------------------
// A minimal HTTP/1.1 client.
// ---------------------------------------------------------------------------

/// An open connection after the response head.
struct Connection {
    stream: TcpStream,
    /// Bytes read past what was consumed.
    raw: Vec<u8>,
    status: u16,
    headers: Vec<(String, String)>,
}

impl Connection {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Reads more bytes; `false` at end of stream.
    async fn fill(&mut self) -> bool {
        let mut buf = [0u8; 16 * 1024];
        match self.stream.read(&mut buf).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.raw.extend_from_slice(&buf[..n]);
                true
            }
        }
    }
}

/// Sends a GET and reads the response head. `tiny_receive_buffer` shrinks the socket's
/// receive buffer so that a client that stops reading pushes back on the server fast.
async fn open(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    tiny_receive_buffer: bool,
) -> Connection {
    let socket = TcpSocket::new_v4().expect("socket");
    if tiny_receive_buffer {
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    }
    let mut stream = within(WAIT, "connect", socket.connect(addr))
        .await
        .expect("connect");
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send request");
    let mut connection = Connection {
        stream,
        raw: Vec::new(),
        status: 0,
        headers: Vec::new(),
    };
    let end = within(WAIT, "the response head", async {
        loop {
            if let Some(end) = find(&connection.raw, b"\r\n\r\n") {
                return end;
            }
            assert!(connection.fill().await, "connection closed before the head");
        }
    })
    .await;
    let head = String::from_utf8_lossy(&connection.raw[..end]).into_owned();
    connection.raw.drain(..end + 4);
    let mut lines = head.split("\r\n");
    connection.status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    connection.headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    connection
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Decodes a response body as it arrives: chunked, sized, or until close.
struct Body {
    connection: Connection,
    chunked: bool,
    remaining: Option<usize>,
    decoded: Vec<u8>,
    ended: bool,
}

impl Body {
    fn new(connection: Connection) -> Self {
        let chunked = connection
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        let remaining = connection
            .header("content-length")
            .and_then(|v| v.parse().ok());
        Self {
            connection,
            chunked,
            remaining,
            decoded: Vec::new(),
            ended: false,
        }
    }

    /// Moves every complete piece of `raw` into `decoded`.
    fn decode(&mut self) {
        let raw = &mut self.connection.raw;
        if !self.chunked {
            let take = self.remaining.map_or(raw.len(), |r| r.min(raw.len()));
            self.decoded.extend(raw.drain(..take));
            if let Some(r) = self.remaining.as_mut() {
                *r -= take;
                self.ended = *r == 0;
            }
            return;
        }
        while let Some(line_end) = find(raw, b"\r\n") {
            let size_line = String::from_utf8_lossy(&raw[..line_end]).into_owned();
            let size_hex = size_line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_hex, 16).expect("chunk size");
            if size == 0 {
                self.ended = true;
                return;
            }
            if raw.len() < line_end + 2 + size + 2 {
                return;
            }
            self.decoded
                .extend_from_slice(&raw[line_end + 2..line_end + 2 + size]);
            raw.drain(..line_end + 2 + size + 2);
        }
    }

    /// Reads more of the body; `false` once it is complete or the connection closed.
    async fn more(&mut self) -> bool {
        if self.ended {
            return false;
        }
        if !self.connection.fill().await {
            self.ended = true;
            return false;
        }
        self.decode();
        true
    }

    async fn read_to_end(mut self) -> Vec<u8> {
        self.decode();
        within(WAIT, "the whole body", async {
            while !self.ended && self.more().await {}
        })
        .await;
        self.decoded
    }
}

/// A complete response.
struct Answer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.body)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

async fn get(addr: SocketAddr, path: &str, key: &str) -> Answer {
    let auth = format!("Bearer {key}");
    let connection = open(
        addr,
        path,
        &[("Authorization", &auth), ("Connection", "close")],
        false,
    )
    .await;
    let status = connection.status;
    let content_type = connection
        .header("content-type")
        .unwrap_or_default()
        .to_owned();
    let body = Body::new(connection).read_to_end().await;
    Answer {
        status,
        content_type,
        body,
    }
}

#[track_caller]
fn assert_problem(answer: &Answer, status: u16) {
    assert_eq!(
        answer.status,
        status,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.content_type, "application/problem+json");
    assert_eq!(answer.json()["status"], status);
}

// ---------------------------------------------------------------------------
// Subscribers: SSE and a minimal WebSocket client behind one interface.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Transport {
    Sse,
    Ws,
}

/// What a subscriber received.
#[derive(Debug)]
enum Received {
    /// An event: its cursor (SSE id / WS index) and view.
    Event(u64, Value),
    /// The cut-off message, with its resume cursor.
    Cutoff(String),
    /// The stream ended without a cut-off.
    End,
}

enum Subscriber {
    Sse { body: Body, keep_alives: usize },
    Ws { connection: Connection },
}

/// Opens a subscription (`query` without the leading `?`), resuming after `cursor`:
/// SSE sends it as `Last-Event-ID`, WebSocket as `?cursor=`.
async fn subscribe(
    h: &Harness,
    transport: Transport,
    key: &str,
    query: &str,
    cursor: Option<&str>,
    stall: bool,
) -> Subscriber {
    let auth = format!("Bearer {key}");
    match transport {
        Transport::Sse => {
            let mut headers = vec![("Authorization", auth.as_str())];
            if let Some(cursor) = cursor {
                headers.push(("Last-Event-ID", cursor));
            }
            let connection = open(
                h.addr,
                &format!("/v1/audit/stream?{query}"),
                &headers,
                stall,
            )
            .await;
            assert_eq!(connection.status, 200);
            assert_eq!(connection.header("content-type"), Some("text/event-stream"));
            Subscriber::Sse {
                body: Body::new(connection),
                keep_alives: 0,
            }
        }
        Transport::Ws => {
            let mut path = format!("/v1/audit/ws?{query}");
            if let Some(cursor) = cursor {
                path.push_str(&format!("&cursor={cursor}"));
            }
            let connection = open(
                h.addr,
                &path,
                &[
                    ("Authorization", auth.as_str()),
                    ("Upgrade", "websocket"),
                    ("Connection", "Upgrade"),
                    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                    ("Sec-WebSocket-Version", "13"),
                ],
                stall,
            )
            .await;
            assert_eq!(connection.status, 101);
            assert_eq!(
                connection.header("sec-websocket-accept"),
                Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
                "RFC 6455's example key and answer"
            );
            Subscriber::Ws { connection }
        }
    }
}

impl Subscriber {
    /// The next event, cut-off or end, within `limit`.
    async fn next(&mut self, limit: Duration) -> Received {
        within(limit, "the next stream message", self.next_unbounded()).await
    }

    async fn next_unbounded(&mut self) -> Received {
        match self {
            Self::Sse { body, keep_alives } => loop {
                if let Some(end) = find(&body.decoded, b"\n\n") {
                    let block = String::from_utf8_lossy(&body.decoded[..end]).into_owned();
                    body.decoded.drain(..end + 2);
                    let (mut id, mut kind, mut data) = (None, None, String::new());
                    for line in block.lines() {
                        if line.starts_with(':') {
                            *keep_alives += 1;
                        } else if let Some(v) = line.strip_prefix("id: ") {
                            id = Some(v.to_owned());
                        } else if let Some(v) = line.strip_prefix("event: ") {
                            kind = Some(v.to_owned());
                        } else if let Some(v) = line.strip_prefix("data: ") {
                            data.push_str(v);
                        }
                    }
                    let data: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
                    match (kind.as_deref(), id) {
                        (Some("cutoff"), id) => {
                            let cursor = data["cursor"].as_str().unwrap_or_default().to_owned();
                            assert_eq!(id.as_deref(), Some(cursor.as_str()), "cutoff id");
                            return Received::Cutoff(cursor);
                        }
                        (None, Some(id)) => {
                            return Received::Event(id.parse().expect("numeric id"), data);
                        }
                        // A keep-alive comment.
                        _ => continue,
                    }
                }
                if !body.more().await {
                    return Received::End;
                }
            },
            Self::Ws { connection } => loop {
                let Some((opcode, payload)) = ws_frame(connection).await else {
                    return Received::End;
                };
                match opcode {
                    1 => {
                        let data: Value = serde_json::from_slice(&payload).expect("JSON text");
                        let index = data["index"].as_u64().expect("index");
                        return Received::Event(index, data);
                    }
                    8 => {
                        let code = payload
                            .get(..2)
                            .map(|c| u16::from_be_bytes([c[0], c[1]]))
                            .unwrap_or_default();
                        let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or_default())
                            .into_owned();
                        return match reason.strip_prefix("cutoff:") {
                            Some(cursor) if code == 1008 => Received::Cutoff(cursor.to_owned()),
                            _ => Received::End,
                        };
                    }
                    // Ping, pong.
                    _ => continue,
                }
            },
        }
    }
}

/// One unmasked server frame: (opcode, payload), or `None` at end of stream.
async fn ws_frame(connection: &mut Connection) -> Option<(u8, Vec<u8>)> {
    loop {
        let raw = &connection.raw;
        if raw.len() >= 2 {
            let opcode = raw[0] & 0x0f;
            let (len, offset) = match raw[1] & 0x7f {
                126 if raw.len() >= 4 => (usize::from(u16::from_be_bytes([raw[2], raw[3]])), 4),
                127 if raw.len() >= 10 => {
                    let mut n = [0u8; 8];
                    n.copy_from_slice(&raw[2..10]);
                    (usize::try_from(u64::from_be_bytes(n)).ok()?, 10)
                }
                126 | 127 => (usize::MAX, 0),
                n => (usize::from(n), 2),
            };
            if len != usize::MAX && raw.len() >= offset + len {
                let payload = raw[offset..offset + len].to_vec();
                connection.raw.drain(..offset + len);
                return Some((opcode, payload));
            }
        }
        if !connection.fill().await {
            return None;
        }
    }
}

/// Reads events until `count` arrived; panics on a cut-off or end.
async fn read_events(subscriber: &mut Subscriber, count: usize) -> Vec<(u64, Value)> {
    let mut got = Vec::new();
    while got.len() < count {
        match subscriber.next(WAIT).await {
            Received::Event(index, view) => got.push((index, view)),
            other => panic!("expected an event, got {other:?} after {got:?}"),
        }
    }
    got
}

// ---------------------------------------------------------------------------
// Scenarios.
// ---------------------------------------------------------------------------

async fn resumes_without_gaps_or_duplicates(h: Harness, transport: Transport) {
    let key = h.key("stream-a", &["audit:read"]).await;
    let mut expected = Vec::new();
    let mut subscriber = subscribe(&h, transport, &key, "", None, false).await;
    expected.extend(h.append("stream-a", events("doc.read", 0..5)).await);
    // Another tenant's events are never delivered.
    h.append("stream-b", events("doc.read", 0..3)).await;

    let mut seen = read_events(&mut subscriber, 3).await;
    let cursor = seen.last().map(|(i, _)| i.to_string()).expect("a cursor");
    drop(subscriber);

    // Appended while the subscriber is away.
    expected.extend(h.append("stream-a", events("doc.update", 5..9)).await);
    h.append("stream-b", events("doc.read", 3..6)).await;
    let mut subscriber = subscribe(&h, transport, &key, "", Some(&cursor), false).await;
    seen.extend(read_events(&mut subscriber, 2).await);
    // Appended while it is connected again.
    expected.extend(h.append("stream-a", events("doc.delete", 9..12)).await);
    let remaining = expected.len() - seen.len();
    seen.extend(read_events(&mut subscriber, remaining).await);

    let indexes: Vec<u64> = seen.iter().map(|(i, _)| *i).collect();
    assert_eq!(indexes, expected, "every event once, in index order");
    for (index, view) in &seen {
        assert_eq!(view["index"], *index, "the cursor is the event's index");
        assert_eq!(view["event"]["tenant"], "stream-a");
        assert!(view["id"].is_string());
    }
    // Nothing more: no duplicate arrives later (keep-alives may).
    let quiet = tokio::time::timeout(Duration::from_millis(400), subscriber.next_unbounded()).await;
    assert!(quiet.is_err(), "unexpected {quiet:?}");
    if let Subscriber::Sse { keep_alives, .. } = subscriber {
        assert!(
            keep_alives > 0,
            "idle SSE streams carry keep-alive comments"
        );
    }
}

async fn sse_resumes_without_gaps_or_duplicates(h: Harness) {
    resumes_without_gaps_or_duplicates(h, Transport::Sse).await;
}

async fn ws_resumes_without_gaps_or_duplicates(h: Harness) {
    resumes_without_gaps_or_duplicates(h, Transport::Ws).await;
}

async fn stalled_subscriber_is_cut_off_while_appends_continue(h: Harness, transport: Transport) {
    let key = h.key("stall", &["audit:read"]).await;
    // Large events fill the socket buffers quickly.
    let big = |n: usize| json!({"action": "doc.read", "actor": {"id": format!("u{n}")}, "outcome": "success", "metadata": {"pad": "x".repeat(12_000), "n": n}});
    let mut subscriber = subscribe(&h, transport, &key, "", None, true).await;

    // The subscriber never reads while these are appended.
    let mut expected = Vec::new();
    let started = Instant::now();
    for batch in 0..4 {
        let one = Instant::now();
        expected.extend(
            h.append("stall", (batch * 50..batch * 50 + 50).map(big).collect())
                .await,
        );
        assert!(
            one.elapsed() < Duration::from_secs(3),
            "an append waited for the stalled subscriber: {:?}",
            one.elapsed()
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "appends slowed down: {:?}",
        started.elapsed()
    );
    // Longer than the grace period, so the server has given up on the subscriber.
    tokio::time::sleep(GRACE * 2).await;

    let mut seen = Vec::new();
    let cursor = loop {
        match subscriber.next(WAIT).await {
            Received::Event(index, _) => seen.push(index),
            Received::Cutoff(cursor) => break cursor,
            Received::End => panic!("the stream ended without a cut-off after {seen:?}"),
        }
    };
    assert!(
        seen.len() < expected.len(),
        "the subscriber was cut off before the end"
    );
    // The log was empty when the subscription began, so before any event the cursor
    // is empty (resume from the start).
    let resume_after = seen.last().map(u64::to_string).unwrap_or_default();
    assert_eq!(cursor, resume_after, "the cursor names the last event sent");
    // And the connection's stream really ends.
    assert!(matches!(subscriber.next(WAIT).await, Received::End));

    // Resuming from the cursor delivers the rest, exactly once.
    let mut resumed = subscribe(&h, transport, &key, "", Some(&cursor), false).await;
    let rest = read_events(&mut resumed, expected.len() - seen.len()).await;
    seen.extend(rest.iter().map(|(i, _)| *i));
    assert_eq!(seen, expected, "no gap and no duplicate across the cut-off");
}

async fn sse_stalled_subscriber_is_cut_off(h: Harness) {
    stalled_subscriber_is_cut_off_while_appends_continue(h, Transport::Sse).await;
}

async fn ws_stalled_subscriber_is_cut_off(h: Harness) {
    stalled_subscriber_is_cut_off_while_appends_continue(h, Transport::Ws).await;
}

async fn tenants_are_isolated_and_bad_input_is_refused(h: Harness) {
    let key_a = h.key("iso-a", &["audit:read"]).await;
    let key_b = h.key("iso-b", &["audit:read"]).await;
    let writer = h.key("iso-a", &["audit:write"]).await;
    let a = h.append("iso-a", events("auth.login", 0..3)).await;
    let b = h.append("iso-b", events("auth.login", 0..2)).await;

    // A key sees only its tenant, from the stream and from the export.
    for transport in [Transport::Sse, Transport::Ws] {
        let mut sub = subscribe(&h, transport, &key_b, "start=earliest", None, false).await;
        let got: Vec<u64> = read_events(&mut sub, 2)
            .await
            .iter()
            .map(|(i, _)| *i)
            .collect();
        assert_eq!(got, b);
        let more = tokio::time::timeout(Duration::from_millis(200), sub.next_unbounded()).await;
        assert!(more.is_err(), "{transport:?} leaked {more:?}");
    }
    let export = get(h.addr, "/v1/audit/export", &key_b).await;
    assert_eq!(export.status, 200);
    let tenants: Vec<Value> = export
        .lines()
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).expect("line")["event"]["tenant"].clone())
        .collect();
    assert_eq!(tenants, vec![json!("iso-b"); 2]);
    // An admin may name the tenant.
    let admin_export = get(h.addr, "/v1/audit/export?tenant=iso-a", &h.admin).await;
    assert_eq!(admin_export.lines().len(), a.len());

    for path in [
        "/v1/audit/stream?tenant=iso-a",
        "/v1/audit/ws?tenant=iso-a",
        "/v1/audit/export?tenant=iso-a",
    ] {
        assert_problem(&get(h.addr, path, &key_b).await, 403);
        // Without audit:read.
        assert_problem(
            &get(h.addr, path.split('?').next().unwrap_or(path), &writer).await,
            403,
        );
    }
    for path in [
        "/v1/audit/stream?outcome=maybe",
        "/v1/audit/stream?cursor=abc",
        "/v1/audit/stream?cursor=99999999",
        "/v1/audit/stream?start=middle",
        "/v1/audit/stream?surprise=1",
        "/v1/audit/stream?from=10&to=5",
        "/v1/audit/ws?cursor=-1",
        "/v1/audit/export?format=xml",
        "/v1/audit/export?format=",
        "/v1/audit/export?outcome=maybe",
        "/v1/audit/export?from=abc",
    ] {
        assert_problem(&get(h.addr, path, &key_a).await, 400);
    }
    // Not an upgrade request.
    let answer = get(h.addr, "/v1/audit/ws", &key_a).await;
    assert!(
        (400..500).contains(&answer.status),
        "a plain GET of the WebSocket route: {}",
        answer.status
    );
    assert_eq!(answer.content_type, "application/problem+json");
}

async fn exports_ndjson_ocsf_and_cef(h: Harness) {
    let key = h.key("exp", &["audit:read"]).await;
    let mut login = event("auth.login", 0);
    login["request_id"] = json!("req-1");
    let mut first = vec![login];
    first.extend(events("document.read", 1..4));
    let early = h.append("exp", first).await;
    tokio::time::sleep(Duration::from_millis(3)).await;
    let middle = SystemClock::shared().now_unix_ms();
    tokio::time::sleep(Duration::from_millis(3)).await;
    let late = h
        .append(
            "exp",
            vec![
                event("auth.logout", 4),
                event("palisade.api_key.create", 5),
                json!({"action": "doc.update", "actor": {"id": "we|ird=na\\me"}, "outcome": "denied", "metadata": {"note": "line\nbreak"}}),
            ],
        )
        .await;
    let all: Vec<u64> = early.iter().chain(&late).copied().collect();

    let ndjson = get(h.addr, "/v1/audit/export?format=ndjson", &key).await;
    assert_eq!(ndjson.status, 200);
    assert_eq!(ndjson.content_type, "application/x-ndjson");
    let records: Vec<Value> = ndjson
        .lines()
        .iter()
        .map(|l| serde_json::from_str(l).expect("one JSON value per line"))
        .collect();
    assert_eq!(records.len(), all.len(), "one line per event");
    let indexes: Vec<u64> = records.iter().filter_map(|r| r["index"].as_u64()).collect();
    assert_eq!(indexes, all, "oldest first");
    for record in &records {
        let index = record["index"].as_u64().unwrap_or_default();
        let stored = h
            .state
            .audit
            .leaf(index)
            .await
            .expect("read")
            .expect("stored");
        assert_eq!(
            record["leaf_hash"],
            STANDARD.encode(leaf_hash(&stored.leaf)),
            "the leaf hash of the stored leaf"
        );
        assert_eq!(record["id"], stored.id.to_string());
    }

    let default = get(h.addr, "/v1/audit/export", &key).await;
    assert_eq!(default.body, ndjson.body, "NDJSON is the default");
    let from = get(h.addr, &format!("/v1/audit/export?from={middle}"), &key).await;
    assert_eq!(from.lines().len(), late.len());
    let to = get(h.addr, &format!("/v1/audit/export?to={middle}"), &key).await;
    assert_eq!(to.lines().len(), early.len());
    let filtered = get(h.addr, "/v1/audit/export?action=auth", &key).await;
    assert_eq!(filtered.lines().len(), 2);

    let ocsf = get(h.addr, "/v1/audit/export?format=ocsf", &key).await;
    assert_eq!(ocsf.status, 200);
    let ocsf: Vec<Value> = ocsf
        .lines()
        .iter()
        .map(|l| serde_json::from_str(l).expect("OCSF line"))
        .collect();
    assert_eq!(ocsf.len(), all.len());
    let login = &ocsf[0];
    assert_eq!(login["class_uid"], 3002);
    assert_eq!(login["activity_id"], 1);
    assert_eq!(login["metadata"]["sequence"], early[0]);
    assert_eq!(login["metadata"]["correlation_uid"], "req-1");
    assert_eq!(login["unmapped"]["palisade"]["index"], early[0]);
    assert_eq!(
        login["unmapped"]["palisade"]["leaf_hash"],
        records[0]["leaf_hash"]
    );
    assert_eq!(login["actor"]["user"]["uid"], "user-0");
    assert_eq!(login["src_endpoint"]["ip"], "10.0.0.1");
    assert_eq!(ocsf[4]["class_uid"], 3002, "auth.logout");
    assert_eq!(ocsf[4]["activity_id"], 2);
    assert_eq!(ocsf[5]["class_uid"], 3001, "api key changes");
    assert_eq!(ocsf[1]["class_uid"], 6003, "API activity");

    let cef = get(h.addr, "/v1/audit/export?format=cef", &key).await;
    assert_eq!(cef.status, 200);
    assert!(cef.content_type.starts_with("text/plain"));
    let lines = cef.lines();
    assert_eq!(
        lines.len(),
        all.len(),
        "escaped newlines keep one record per line"
    );
    for (line, index) in lines.iter().zip(&all) {
        assert!(line.starts_with("CEF:0|Palisade|Palisade|"), "{line}");
        assert!(
            line.contains(&format!(" cs1Label=index cs1={index} ")),
            "{line}"
        );
    }
    assert!(lines[6].contains(r"suser=we|ird\=na\\me "), "{}", lines[6]);
    assert!(
        lines[6].contains("|doc.update|doc.update|7|"),
        "{}",
        lines[6]
    );
}

async fn exports_many_pages_in_order(h: Harness) {
    let key = h.key("bulk", &["audit:read"]).await;
    let mut all = h.append("bulk", events("doc.read", 0..700)).await;
    all.extend(h.append("bulk", events("doc.read", 700..1300)).await);
    let export = get(h.addr, "/v1/audit/export", &key).await;
    let indexes: Vec<u64> = export
        .lines()
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("line")["index"]
                .as_u64()
                .unwrap_or(0)
        })
        .collect();
    assert_eq!(indexes, all, "every event once, in order, across pages");
    // The stream replays the same log from the start, in order, before going live.
    let mut sub = subscribe(&h, Transport::Sse, &key, "start=earliest", None, false).await;
    let streamed: Vec<u64> = read_events(&mut sub, all.len())
        .await
        .iter()
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(streamed, all);
}

#[tokio::test]
async fn openapi_documents_the_stream_and_export() {
    let h = sqlite().await;
    let doc = serde_json::to_value(palisade_http::openapi_document(&h.state)).expect("document");
    for path in ["/v1/audit/stream", "/v1/audit/ws", "/v1/audit/export"] {
        assert!(
            doc["paths"][path]["get"].is_object(),
            "{path} is documented"
        );
    }
}

macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        mod on_sqlite {
            use super::*;
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $scenario() { super::$scenario(sqlite().await).await } )*
        }
        mod on_postgres {
            use super::*;
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $scenario() { super::$scenario(postgres().await).await } )*
        }
    };
}

on_both_backends!(
    sse_resumes_without_gaps_or_duplicates,
    ws_resumes_without_gaps_or_duplicates,
    sse_stalled_subscriber_is_cut_off,
    ws_stalled_subscriber_is_cut_off,
    tenants_are_isolated_and_bad_input_is_refused,
    exports_ndjson_ocsf_and_cef,
    exports_many_pages_in_order,
);
