//! `/v1/audit/stream` (Server-Sent Events) and `/v1/audit/ws` (WebSocket): the
//! audit log as a live feed, in index order, resumable without gaps or duplicates.
//!
//! Indexes are contiguous and append-only, so a subscriber needs no fan-out from the
//! writer: each one has a reader task that reads `index > position` from the store a
//! page at a time, then sleeps on the log's append signal (a `watch` the writer
//! updates without ever waiting) or a poll tick (appends made by other instances on
//! the same database). Appends therefore never wait for subscribers.
//!
//! Between the reader task and the connection sits a bounded buffer. A subscriber
//! that leaves it full for longer than the grace period is cut off: SSE gets
//! `event: cutoff` with `data: {"cursor": "<n>"}` (and `id: <n>`), WebSocket a close
//! frame (1008) whose reason is `cutoff:<n>`; `<n>` is the index of the last event
//! it was sent, and resuming from it continues exactly where it stopped.
//!
//! The cursor is the decimal index of the last event received (the SSE `id`, the
//! `index` of a WebSocket message); resume with `Last-Event-ID` or `?cursor=`.
//! Without one, a subscription starts at the end of the log (`start=earliest` reads
//! the whole log first).

use crate::auth::Caller;
use crate::problem::Problem;
use crate::routes::audit::Filters;
use crate::state::AppState;
use axum::Extension;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, Stream, StreamExt};
use palisade_audit::log::{AuditError, AuditLog};
use palisade_audit::pii::PiiAccess;
use palisade_audit::store::{EventFilter, PageAfter, StoredEvent};
use palisade_auth::Scope;
use serde::Deserialize;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use utoipa::IntoParams;

/// Events read from the store per query.
const PAGE: u32 = 200;
/// WebSocket close code of a cut-off subscriber (policy violation).
const CUTOFF_CLOSE_CODE: u16 = 1008;
/// WebSocket close code when the server stops the feed for another reason.
const ERROR_CLOSE_CODE: u16 = 1011;
/// Floor of the configured intervals: zero would spin (or panic, for a ping timer).
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Limits of live subscribers. Install with `Router::layer(Extension(settings))`;
/// without it the defaults apply.
#[derive(Debug, Clone)]
pub struct AuditStreamSettings {
    /// Events buffered per subscriber between the store reader and the connection.
    pub buffer: usize,
    /// How long the buffer may stay full before the subscriber is cut off.
    pub grace: Duration,
    /// Interval of SSE keep-alive comments and WebSocket pings, so proxies keep idle
    /// streams open.
    pub keep_alive: Duration,
    /// How often an idle subscriber re-reads the store even without a local append
    /// (other instances append to the same database).
    pub poll_interval: Duration,
    /// How long a cut-off WebSocket subscriber gets to take its close frame before
    /// its connection is dropped.
    pub close_timeout: Duration,
}

impl AuditStreamSettings {
    fn keep_alive(&self) -> Duration {
        self.keep_alive.max(MIN_INTERVAL)
    }

    fn poll_interval(&self) -> Duration {
        self.poll_interval.max(MIN_INTERVAL)
    }
}

impl Default for AuditStreamSettings {
    fn default() -> Self {
        Self {
            buffer: 256,
            grace: Duration::from_secs(5),
            keep_alive: Duration::from_secs(15),
            poll_interval: Duration::from_secs(1),
            close_timeout: Duration::from_secs(10),
        }
    }
}

/// The event view JSON of `GET /v1/audit/events` items, for one stored event.
pub(crate) fn view_json(event: &StoredEvent) -> String {
    // Serializing a `Value` tree into a String cannot fail.
    serde_json::to_string(&super::audit::view(event)).unwrap_or_default()
}

/// Stream filters and where to start.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StreamParams {
    /// Tenant (admin keys only; others always see their own).
    pub tenant: Option<String>,
    /// Actor id.
    pub actor: Option<String>,
    /// Action prefix on dot boundaries (`auth` matches `auth.login`).
    pub action: Option<String>,
    /// Resource type.
    pub resource_type: Option<String>,
    /// Resource id.
    pub resource_id: Option<String>,
    /// Outcome.
    pub outcome: Option<String>,
    /// Received at or after (Unix ms).
    pub from: Option<i64>,
    /// Received before (Unix ms).
    pub to: Option<i64>,
    /// Resume after this event index (the last `id` received). `Last-Event-ID`
    /// takes precedence, since browsers resend it on every reconnect.
    pub cursor: Option<String>,
    /// Without a cursor: `latest` (default) streams events appended from now on,
    /// `earliest` the whole log first.
    pub start: Option<String>,
}

impl StreamParams {
    fn split(self) -> (Filters, Option<String>, Option<String>) {
        (
            Filters {
                tenant: self.tenant,
                actor: self.actor,
                action: self.action,
                resource_type: self.resource_type,
                resource_id: self.resource_id,
                outcome: self.outcome,
                from: self.from,
                to: self.to,
            },
            self.cursor,
            self.start,
        )
    }
}

/// The position to stream after: the resume cursor, or the start the caller chose.
async fn start_position(
    log: &AuditLog,
    headers: &HeaderMap,
    cursor: Option<String>,
    start: Option<String>,
) -> Result<Option<u64>, Problem> {
    let last_event_id = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| Problem::bad_request("invalid Last-Event-ID"))
        })
        .transpose()?
        .filter(|v| !v.is_empty());
    let size = log.tree_size().await?;
    match last_event_id.or(cursor) {
        Some(raw) => {
            let index: u64 = raw
                .trim()
                .parse()
                .map_err(|_| Problem::bad_request("invalid cursor"))?;
            // A cursor can only name an event that exists; anything else is from
            // another log, and honouring it would silently skip events.
            if index >= size {
                return Err(Problem::bad_request("cursor is beyond the end of the log"));
            }
            Ok(Some(index))
        }
        None => match start.as_deref() {
            None | Some("latest") => Ok(size.checked_sub(1)),
            Some("earliest") => Ok(None),
            Some(_) => Err(Problem::bad_request("start must be 'earliest' or 'latest'")),
        },
    }
}

/// One rendered event on its way to a subscriber.
#[derive(Debug)]
struct Rendered {
    index: u64,
    json: String,
}

/// What a connection sends next.
#[derive(Debug)]
enum Next {
    /// An event.
    Event(Rendered),
    /// The subscriber was too slow; resume after this index.
    Cutoff(Option<u64>),
    /// The reader stopped (storage failed); the subscriber should reconnect.
    End,
}

/// The connection's side of a subscription: the bounded buffer, the cut-off signal,
/// and the last index handed to the connection (the resume cursor).
#[derive(Debug)]
struct Subscription {
    events: mpsc::Receiver<Rendered>,
    cut: watch::Receiver<bool>,
    last: Option<u64>,
}

impl Subscription {
    /// Starts the reader task of a subscriber streaming after `position`.
    fn start(
        log: AuditLog,
        filter: EventFilter,
        access: PiiAccess,
        position: Option<u64>,
        settings: &AuditStreamSettings,
    ) -> Self {
        let (events, rx) = mpsc::channel(settings.buffer.max(1));
        let (cut_tx, cut) = watch::channel(false);
        tokio::spawn(read_loop(
            log,
            filter,
            access,
            position,
            settings.clone(),
            events,
            cut_tx,
        ));
        Self {
            events: rx,
            cut,
            last: position,
        }
    }

    /// The next thing to send. Cancel-safe. A cut-off takes precedence over events
    /// still buffered: the cursor says which ones the subscriber got.
    async fn next(&mut self) -> Next {
        if *self.cut.borrow() {
            return Next::Cutoff(self.last);
        }
        match self.events.recv().await {
            Some(_) if *self.cut.borrow() => Next::Cutoff(self.last),
            Some(event) => {
                self.last = Some(event.index);
                Next::Event(event)
            }
            None if *self.cut.borrow() => Next::Cutoff(self.last),
            None => Next::End,
        }
    }
}

/// Counts live subscribers for as long as a reader task runs.
struct SubscriberGauge;

impl SubscriberGauge {
    fn new() -> Self {
        metrics::gauge!("palisade_audit_stream_subscribers").increment(1.0);
        Self
    }
}

impl Drop for SubscriberGauge {
    fn drop(&mut self) {
        metrics::gauge!("palisade_audit_stream_subscribers").decrement(1.0);
    }
}

/// The reader task: store pages into the buffer, then wait for more. Ends when the
/// subscriber leaves, when it is cut off, or when storage fails for good.
async fn read_loop(
    log: AuditLog,
    filter: EventFilter,
    access: PiiAccess,
    mut position: Option<u64>,
    settings: AuditStreamSettings,
    buffer: mpsc::Sender<Rendered>,
    cut: watch::Sender<bool>,
) {
    let _gauge = SubscriberGauge::new();
    // Subscribed before the first read, so an append during any read is noticed.
    let mut appends = Some(log.subscribe_appends());
    loop {
        loop {
            let page = PageAfter {
                after: position,
                before: None,
                limit: PAGE,
            };
            let mut page = match log.query_after(&filter, page).await {
                Ok(page) => page,
                Err(AuditError::Store(e)) if e.is_unavailable() => {
                    tracing::debug!(error = %e, "audit stream waiting for the database");
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %e, "audit stream read failed");
                    return;
                }
            };
            let full = page.events.len() >= PAGE as usize;
            log.reveal_pii(&mut page.events, access).await;
            for event in page.events {
                let rendered = Rendered {
                    index: event.index,
                    json: view_json(&event),
                };
                let permit = match tokio::time::timeout(settings.grace, buffer.reserve()).await {
                    Ok(Ok(permit)) => permit,
                    // The connection is gone.
                    Ok(Err(_)) => return,
                    Err(_) => {
                        metrics::counter!("palisade_audit_stream_cutoffs_total").increment(1);
                        tracing::info!(
                            grace_ms = settings.grace.as_millis() as u64,
                            "audit stream subscriber too slow: cut off"
                        );
                        cut.send_replace(true);
                        return;
                    }
                };
                position = Some(rendered.index);
                permit.send(rendered);
            }
            position = position.max(page.through);
            if !full {
                break;
            }
        }
        let appended = async {
            match appends.as_mut() {
                Some(rx) => {
                    if rx.changed().await.is_err() {
                        // The log is gone; polling is all that is left.
                        appends = None;
                    }
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = appended => {}
            () = tokio::time::sleep(settings.poll_interval()) => {}
            () = buffer.closed() => return,
        }
    }
}

/// The subscription as SSE events, ending with `event: cutoff` when it is cut off.
fn sse_events(subscription: Subscription) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold(Some(subscription), |state| async move {
        let mut subscription = state?;
        match subscription.next().await {
            Next::Event(event) => Some((
                Ok(Event::default()
                    .id(event.index.to_string())
                    .data(event.json)),
                Some(subscription),
            )),
            Next::Cutoff(cursor) => {
                let cursor = cursor.map(|c| c.to_string());
                let data = serde_json::json!({ "cursor": cursor }).to_string();
                let mut event = Event::default().event("cutoff").data(data);
                // With an id, a browser's EventSource resumes from the cursor by itself.
                if let Some(cursor) = cursor {
                    event = event.id(cursor);
                }
                Some((Ok(event), None))
            }
            Next::End => None,
        }
    })
}

/// Live audit events as Server-Sent Events: `id: <index>`, `data: <event view>`, in
/// index order; keep-alive comments while idle; `event: cutoff` with a resume cursor
/// for a subscriber too slow to keep up.
#[utoipa::path(get, path = "/v1/audit/stream", tag = "audit",
    params(StreamParams,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event index")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "An endless event stream: `id: <index>`, `data: <EventView JSON>`; `event: cutoff` with `data: {\"cursor\": \"<index>\"}` before a slow subscriber is disconnected", content_type = "text/event-stream"),
        (status = 400, body = Problem), (status = 403, body = Problem), (status = 503, body = Problem)))]
pub async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    settings: Option<Extension<AuditStreamSettings>>,
    headers: HeaderMap,
    Query(params): Query<StreamParams>,
) -> Result<Response, Problem> {
    caller.require(Scope::AUDIT_READ)?;
    let settings = settings.map(|Extension(s)| s).unwrap_or_default();
    let (filters, cursor, start) = params.split();
    let filter = filters.into_filter(&caller)?;
    let position = start_position(&state.audit, &headers, cursor, start).await?;
    let access = super::audit::pii_access(&caller);
    let subscription =
        Subscription::start(state.audit.clone(), filter, access, position, &settings);
    let keep_alive = KeepAlive::new()
        .interval(settings.keep_alive())
        .text("keep-alive");
    Ok((
        // Reverse proxies (nginx) must not buffer a live stream.
        [("x-accel-buffering", "no")],
        Sse::new(sse_events(subscription)).keep_alive(keep_alive),
    )
        .into_response())
}

/// Live audit events over a WebSocket: one text message per event (the event view,
/// whose `index` is the cursor), in index order; pings while idle; a close frame
/// (1008, reason `cutoff:<index>`) for a subscriber too slow to keep up.
#[utoipa::path(get, path = "/v1/audit/ws", tag = "audit", params(StreamParams),
    security(("api_key" = [])),
    responses(
        (status = 101, description = "A WebSocket of EventView JSON text messages; closed with code 1008 and reason `cutoff:<index>` when the subscriber falls behind"),
        (status = 400, body = Problem), (status = 403, body = Problem), (status = 503, body = Problem)))]
pub async fn websocket(
    State(state): State<AppState>,
    caller: Caller,
    settings: Option<Extension<AuditStreamSettings>>,
    headers: HeaderMap,
    Query(params): Query<StreamParams>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, Problem> {
    caller.require(Scope::AUDIT_READ)?;
    let settings = settings.map(|Extension(s)| s).unwrap_or_default();
    let (filters, cursor, start) = params.split();
    let filter = filters.into_filter(&caller)?;
    // Scope and filters are judged before the handshake, so a refused caller learns
    // why rather than that its request was not an upgrade.
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return Ok(rejection.into_response()),
    };
    let position = start_position(&state.audit, &headers, cursor, start).await?;
    let log = state.audit.clone();
    let access = super::audit::pii_access(&caller);
    Ok(upgrade.on_upgrade(move |socket| async move {
        let subscription = Subscription::start(log, filter, access, position, &settings);
        serve_socket(socket, subscription, &settings).await;
    }))
}

/// Runs one WebSocket subscriber. Once it is cut off it has `close_timeout` to take
/// what is in flight and its close frame; then the connection is dropped, so a
/// client that stopped reading cannot hold the task forever.
async fn serve_socket(
    socket: WebSocket,
    mut subscription: Subscription,
    settings: &AuditStreamSettings,
) {
    let mut cut = subscription.cut.clone();
    let close_timeout = settings.close_timeout;
    let deadline = async move {
        if cut.wait_for(|c| *c).await.is_err() {
            // The reader ended without a cut-off: no deadline.
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(close_timeout).await;
    };
    tokio::select! {
        () = forward(socket, &mut subscription, settings.keep_alive()) => {}
        () = deadline => {
            tracing::info!("audit WebSocket subscriber did not take its close frame: dropped");
        }
    }
}

async fn forward(socket: WebSocket, subscription: &mut Subscription, keep_alive: Duration) {
    let (mut sink, mut incoming) = socket.split();
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + keep_alive, keep_alive);
    loop {
        let next = tokio::select! {
            next = subscription.next() => next,
            message = incoming.next() => match message {
                // Pongs and anything a client says are ignored; a close or a broken
                // connection ends the subscription.
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => continue,
            },
            _ = ping.tick() => {
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
                continue;
            }
        };
        let close = |code: u16, reason: String| {
            Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            }))
        };
        match next {
            Next::Event(event) => {
                if sink.send(Message::Text(event.json.into())).await.is_err() {
                    return;
                }
            }
            Next::Cutoff(cursor) => {
                let cursor = cursor.map(|c| c.to_string()).unwrap_or_default();
                let _ = sink
                    .send(close(CUTOFF_CLOSE_CODE, format!("cutoff:{cursor}")))
                    .await;
                return;
            }
            Next::End => {
                let cursor = subscription.last.map(|c| c.to_string()).unwrap_or_default();
                let _ = sink
                    .send(close(ERROR_CLOSE_CODE, format!("error:{cursor}")))
                    .await;
                return;
            }
        }
    }
}
