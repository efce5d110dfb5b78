//! Forwarding of the audit log to a syslog server: RFC 5424 messages, framed by
//! octet counting (RFC 6587 §3.4.1), over TCP or TLS (RFC 5425).
//!
//! One task follows the log in index order from a position kept in a small file
//! (`data_dir/audit-syslog.position`, the next index to send, replaced atomically
//! after every batch), so a restart resumes where the last one stopped and no event
//! is skipped. Delivery is **at least once**: syslog over TCP has no
//! acknowledgements, so when a connection breaks the batch last written to it is
//! sent again on the next connection, and a crash between a write and the position
//! update resends that batch too. Each message carries the event's `index` (and the
//! event id in the body), so a receiver can drop duplicates.
//!
//! The forwarder only reads the log: appends never wait for it and never fail
//! because of it. While the syslog server is down it reconnects with capped
//! exponential backoff and the unsent events simply wait in the log.
//!
//! Every instance that has forwarding configured forwards the whole log, so with
//! several instances on one PostgreSQL database configure it on one of them.
//!
//! # Message layout
//!
//! `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [palisade@32473 index="N"
//! tenant="T" leafHash="B64"] BOM MSG`, where PRI = facility·8 + severity
//! (success → 6 informational, failure → 5 notice, denied → 4 warning, error → 3
//! error), TIMESTAMP is the event's `received_at`, MSGID is the action and MSG is
//! the event as JSON (the NDJSON export record), OCSF JSON or a CEF line.

use crate::export::{self, leaf_hash_base64};
use crate::log::{AuditError, AuditLog};
use crate::store::StoredEvent;
use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use palisade_core::health::{ComponentHealth, HealthCheck};
use serde::Deserialize;
use serde_json::Value;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

/// The SD-ID of Palisade's structured data element. 32473 is the private
/// enterprise number RFC 5612 reserves for documentation and examples.
pub const SD_ID: &str = "palisade@32473";
/// The file in the data directory holding the next index to forward.
pub const POSITION_FILE: &str = "audit-syslog.position";
/// Most events written in one batch (one write, one position update).
const BATCH: u64 = 256;
/// First reconnect delay; doubles on every failure up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest reconnect delay.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Longest a connect (TCP and TLS handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest one batch write may take before the connection is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the log is re-read without an append notification: appends made by
/// other instances on the same database do not wake this one.
const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// Events waiting beyond which `/health` reports the forwarder degraded even
/// while connected.
const LAG_DEGRADED: u64 = 10_000;
/// The longest MSGID RFC 5424 allows.
const MSGID_MAX: usize = 32;
/// The longest APP-NAME RFC 5424 allows.
pub const APP_NAME_MAX: usize = 48;
/// The longest HOSTNAME RFC 5424 allows.
pub const HOSTNAME_MAX: usize = 255;
/// The UTF-8 byte order mark that marks MSG as UTF-8 (RFC 5424 §6.4).
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// How to reach the syslog server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Plain TCP (RFC 6587).
    Tcp,
    /// TLS (RFC 5425), rustls with aws-lc-rs.
    Tls,
}

/// What MSG holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageFormat {
    /// The NDJSON export record: `index`, `id`, `event` (the leaf), `leaf_hash`.
    Json,
    /// The OCSF 1.3 event of the export.
    Ocsf,
    /// The CEF line of the export.
    Cef,
}

/// A syslog facility code (0–23, RFC 5424 §6.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facility(u8);

impl Facility {
    /// `authpriv` (10): security messages meant for a restricted log.
    pub const AUTHPRIV: Self = Self(10);

    /// Parses a facility name (`auth`, `authpriv`, `local0`…`local7`, …) or its number.
    pub fn parse(raw: &str) -> Option<Self> {
        const NAMES: [&str; 24] = [
            "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
            "authpriv", "ftp", "ntp", "security", "console", "clock", "local0", "local1", "local2",
            "local3", "local4", "local5", "local6", "local7",
        ];
        if let Ok(code) = raw.parse::<u8>() {
            return (code < 24).then_some(Self(code));
        }
        NAMES
            .iter()
            .position(|name| name.eq_ignore_ascii_case(raw))
            .and_then(|code| u8::try_from(code).ok())
            .map(Self)
    }

    /// The numeric code.
    pub fn code(self) -> u8 {
        self.0
    }
}

/// A syslog severity (RFC 5424 §6.2.1), from the event's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// 3: the action broke.
    Error = 3,
    /// 4: refused by policy, what an operator most wants to see.
    Warning = 4,
    /// 5: attempted and failed (a wrong password), or an unknown outcome.
    Notice = 5,
    /// 6: it worked.
    Informational = 6,
}

impl Severity {
    /// The severity of an outcome name.
    pub fn of_outcome(outcome: &str) -> Self {
        match outcome {
            "success" => Self::Informational,
            "denied" => Self::Warning,
            "error" => Self::Error,
            _ => Self::Notice,
        }
    }
}

/// The PRI value: facility · 8 + severity.
pub fn pri(facility: Facility, severity: Severity) -> u8 {
    facility.0 * 8 + severity as u8
}

/// Frames one message for a stream: `<octet count> <message>` (RFC 6587 §3.4.1),
/// so a message may contain line breaks.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 8);
    out.extend_from_slice(message.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(message);
    out
}

/// Escapes an SD-PARAM value: `"`, `\` and `]` take a backslash (RFC 5424 §6.3.3).
pub fn escape_sd_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Makes a header field (HOSTNAME, APP-NAME, MSGID) valid: printable US-ASCII
/// without spaces (33–126), anything else replaced by `_`, at most `max`
/// characters; empty becomes the NILVALUE `-`.
pub fn sanitize_header_field(value: &str, max: usize) -> String {
    let out: String = value
        .chars()
        .take(max)
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    if out.is_empty() { "-".into() } else { out }
}

/// The MSGID of an action: sanitised, at most 32 characters.
pub fn msgid(action: &str) -> String {
    sanitize_header_field(action, MSGID_MAX)
}

/// Whether a configured header value is valid as given (1 to `max` printable
/// US-ASCII characters without spaces): configured values are checked, not fixed.
pub fn is_valid_header_field(value: &str, max: usize) -> bool {
    !value.is_empty() && value.len() <= max && value.bytes().all(|b| b.is_ascii_graphic())
}

/// RFC 5424 TIMESTAMP: UTC, microseconds (the most the RFC allows).
fn timestamp(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.microsecond()
    )
}

/// The machine's host name (Linux `/proc`, then `/etc/hostname`, then `$HOSTNAME`),
/// sanitised for the HOSTNAME field; `-` when none is known.
pub fn machine_hostname() -> String {
    let found = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .chain(std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .find(|name| !name.is_empty());
    sanitize_header_field(found.as_deref().unwrap_or(""), HOSTNAME_MAX)
}

/// Builds the RFC 5424 message of a stored event.
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    facility: Facility,
    hostname: String,
    app_name: String,
    procid: String,
    format: MessageFormat,
}

impl MessageBuilder {
    /// A builder; `hostname` and `app_name` are sanitised (configuration should
    /// have rejected invalid ones already).
    pub fn new(facility: Facility, hostname: &str, app_name: &str, format: MessageFormat) -> Self {
        Self {
            facility,
            hostname: sanitize_header_field(hostname, HOSTNAME_MAX),
            app_name: sanitize_header_field(app_name, APP_NAME_MAX),
            procid: std::process::id().to_string(),
            format,
        }
    }

    /// The message (without framing). A leaf that is not JSON (damaged storage,
    /// which `audit verify` reports) is still forwarded, with NILVALUE fields.
    pub fn message(&self, event: &StoredEvent) -> Vec<u8> {
        let leaf: Value = serde_json::from_slice(&event.leaf).unwrap_or(Value::Null);
        let severity = Severity::of_outcome(leaf["outcome"].as_str().unwrap_or_default());
        let at = leaf["received_at"]
            .as_str()
            .and_then(|raw| OffsetDateTime::parse(raw, &Rfc3339).ok())
            .map_or_else(|| "-".to_owned(), timestamp);
        let mut head = String::with_capacity(256);
        let _ = write!(
            head,
            "<{}>1 {at} {} {} {} {} [{SD_ID} index=\"{}\" tenant=\"{}\" leafHash=\"{}\"] ",
            pri(self.facility, severity),
            self.hostname,
            self.app_name,
            self.procid,
            msgid(leaf["action"].as_str().unwrap_or_default()),
            event.index,
            escape_sd_value(&event.tenant),
            escape_sd_value(&leaf_hash_base64(event)),
        );
        let body = match self.format {
            MessageFormat::Json => export::ndjson(event).to_string(),
            MessageFormat::Ocsf => export::ocsf(event).to_string(),
            MessageFormat::Cef => export::cef(event),
        };
        let mut out = head.into_bytes();
        out.extend_from_slice(BOM);
        out.extend_from_slice(body.as_bytes());
        out
    }
}

/// Where and how to forward.
#[derive(Debug, Clone)]
pub struct ForwarderSettings {
    /// `host:port` of the syslog server.
    pub address: String,
    /// TCP or TLS.
    pub transport: Transport,
    /// PEM file of the CA certificates that sign the server's (TLS only; required).
    pub ca_file: Option<PathBuf>,
    /// How messages are built.
    pub message: MessageBuilder,
    /// Where the position file lives (the data directory).
    pub state_dir: PathBuf,
}

/// Why the forwarder cannot start or a connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The position file exists and cannot be read or parsed.
    #[error("syslog position file {path}: {message}")]
    Position {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The TLS settings cannot be used (CA file, server name).
    #[error("syslog TLS: {0}")]
    Tls(String),
    /// Connecting or writing failed.
    #[error("syslog connection: {0}")]
    Io(#[from] std::io::Error),
    /// Reading the log failed.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// What the forwarder reports to `/health` and metrics, shared with its task.
#[derive(Debug, Default)]
struct Status {
    /// Set after a failed connect or write, cleared by the next successful write.
    failing: AtomicBool,
    lag: AtomicU64,
    forwarded: AtomicU64,
}

/// A running forwarder: its health check and what it has done.
#[derive(Debug, Clone)]
pub struct Forwarder {
    status: Arc<Status>,
}

impl Forwarder {
    /// Reads the position file, prepares TLS, and starts the forwarding task on the
    /// current runtime. Fails only on local problems (an unreadable position file,
    /// an unusable CA file), never because the syslog server is down.
    pub fn start(log: AuditLog, settings: ForwarderSettings) -> Result<Self, ForwardError> {
        let position_path = settings.state_dir.join(POSITION_FILE);
        let next = read_position(&position_path)?;
        let tls = match settings.transport {
            Transport::Tcp => None,
            Transport::Tls => Some(tls_connector(&settings)?),
        };
        let status = Arc::new(Status::default());
        let task = Task {
            log,
            settings,
            tls,
            position_path,
            next,
            status: status.clone(),
        };
        tokio::spawn(task.run());
        Ok(Self { status })
    }

    /// Events forwarded by this process so far.
    pub fn forwarded(&self) -> u64 {
        self.status.forwarded.load(Ordering::Relaxed)
    }

    /// The health check of this forwarder (optional: it only ever degrades).
    pub fn health(&self) -> SyslogHealth {
        SyslogHealth {
            status: self.status.clone(),
        }
    }
}

/// `/health` component `audit_syslog`: up when connected and keeping up,
/// degraded when the server is unreachable or the backlog is large, never down
/// (the audit log itself works without it).
#[derive(Debug, Clone)]
pub struct SyslogHealth {
    status: Arc<Status>,
}

impl HealthCheck for SyslogHealth {
    fn name(&self) -> &str {
        "audit_syslog"
    }

    fn required(&self) -> bool {
        false
    }

    fn check(&self) -> BoxFuture<'_, ComponentHealth> {
        let lag = self.status.lag.load(Ordering::Relaxed);
        // The detail names no address: /health may be public.
        let health = if self.status.failing.load(Ordering::Relaxed) {
            ComponentHealth::degraded(format!("syslog server unreachable; {lag} events waiting"))
        } else if lag > LAG_DEGRADED {
            ComponentHealth::degraded(format!("{lag} events waiting to be forwarded"))
        } else {
            ComponentHealth::up()
        };
        async move { health }.boxed()
    }
}

/// A connection to the syslog server.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

struct Task {
    log: AuditLog,
    settings: ForwarderSettings,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    position_path: PathBuf,
    /// The next index to send.
    next: u64,
    status: Arc<Status>,
}

impl Task {
    async fn run(mut self) {
        let mut appends = self.log.subscribe_appends();
        let mut connection: Option<Box<dyn Stream>> = None;
        // The first index written to the current connection in its last batch:
        // where to resume if that connection turns out to be broken.
        let mut unconfirmed: Option<u64> = None;
        let mut backoff = MIN_BACKOFF;
        loop {
            // Marks every wake-up so far as seen before reading the size, so an
            // append landing after the read still wakes the wait below.
            appends.borrow_and_update();
            let size = match self.log.tree_size().await {
                Ok(size) => size,
                Err(e) => {
                    tracing::debug!(error = %e, "syslog forwarder cannot read the log size");
                    tokio::time::sleep(POLL_INTERVAL).await;
                    continue;
                }
            };
            let lag = size.saturating_sub(self.next);
            self.status.lag.store(lag, Ordering::Relaxed);
            metrics::gauge!("palisade_audit_syslog_lag_events").set(lag as f64);
            if lag == 0 {
                let _ = tokio::time::timeout(POLL_INTERVAL, appends.changed()).await;
                continue;
            }
            let end = size.min(self.next.saturating_add(BATCH));
            let events = match self.log.store().events_range(self.next, end).await {
                Ok(events) => events,
                Err(e) => {
                    tracing::debug!(error = %e, "syslog forwarder cannot read events");
                    tokio::time::sleep(POLL_INTERVAL).await;
                    continue;
                }
            };
            // Only a contiguous run from `next`: a lagging replica may return fewer.
            let mut batch = Vec::new();
            let mut last = None;
            for event in &events {
                if event.index != last.map_or(self.next, |l: u64| l + 1) {
                    break;
                }
                batch.extend_from_slice(&frame(&self.settings.message.message(event)));
                last = Some(event.index);
            }
            let Some(last) = last else {
                tokio::time::sleep(POLL_INTERVAL.min(Duration::from_millis(200))).await;
                continue;
            };
            let sent = self.send(&mut connection, &batch).await;
            match sent {
                Ok(()) => {
                    backoff = MIN_BACKOFF;
                    let count = last + 1 - self.next;
                    unconfirmed = Some(self.next);
                    self.next = last + 1;
                    self.status.failing.store(false, Ordering::Relaxed);
                    self.status.forwarded.fetch_add(count, Ordering::Relaxed);
                    metrics::counter!("palisade_audit_syslog_forwarded_total").increment(count);
                    if let Err(e) = self.save_position().await {
                        tracing::warn!(error = %e, "cannot save the syslog position; a restart will resend");
                    }
                }
                Err(e) => {
                    metrics::counter!("palisade_audit_syslog_errors_total").increment(1);
                    if !self.status.failing.swap(true, Ordering::Relaxed) {
                        tracing::warn!(error = %e, "syslog forwarding failed; retrying with backoff");
                    } else {
                        tracing::debug!(error = %e, "syslog forwarding still failing");
                    }
                    connection = None;
                    // The previous batch may have been lost with the connection: send it again.
                    if let Some(from) = unconfirmed.take() {
                        self.next = self.next.min(from);
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Writes a batch, connecting first when needed. A connection the server has
    /// closed is noticed before writing (a write into a closed socket can still
    /// "succeed" locally), so the common case loses nothing at all.
    async fn send(
        &self,
        connection: &mut Option<Box<dyn Stream>>,
        batch: &[u8],
    ) -> Result<(), ForwardError> {
        if let Some(stream) = connection.as_mut()
            && peer_closed(stream.as_mut())
        {
            *connection = None;
            return Err(ForwardError::Io(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "the server closed the connection",
            )));
        }
        let stream = match connection {
            Some(stream) => stream,
            None => {
                let fresh = self.connect().await?;
                tracing::info!("connected to the syslog server");
                connection.insert(fresh)
            }
        };
        tokio::time::timeout(WRITE_TIMEOUT, async {
            stream.write_all(batch).await?;
            stream.flush().await
        })
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "write timed out"))??;
        Ok(())
    }

    async fn connect(&self) -> Result<Box<dyn Stream>, ForwardError> {
        let timed_out = |_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.settings.address))
            .await
            .map_err(timed_out)??;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => Ok(Box::new(tcp)),
            Some((connector, name)) => {
                let tls =
                    tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name.clone(), tcp))
                        .await
                        .map_err(timed_out)??;
                Ok(Box::new(tls))
            }
        }
    }

    async fn save_position(&self) -> std::io::Result<()> {
        let path = self.position_path.clone();
        let next = self.next;
        tokio::task::spawn_blocking(move || write_position(&path, next))
            .await
            .map_err(std::io::Error::other)?
    }
}

/// Whether the server has closed (or reset) the connection. Syslog receivers never
/// send, so anything readable means the end of the stream.
fn peer_closed(stream: &mut dyn Stream) -> bool {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte).now_or_never() {
        None => false,
        Some(Ok(0)) | Some(Err(_)) => true,
        // Unexpected data: RFC 6587 gives the receiver nothing to say; ignore it.
        Some(Ok(_)) => false,
    }
}

/// The next index to forward, from the position file; 0 when there is none yet.
fn read_position(path: &Path) -> Result<u64, ForwardError> {
    match std::fs::read_to_string(path) {
        Ok(text) => text.trim().parse().map_err(|_| ForwardError::Position {
            path: path.to_owned(),
            message: "not a non-negative integer".into(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(ForwardError::Position {
            path: path.to_owned(),
            message: e.to_string(),
        }),
    }
}

/// Replaces the position file atomically: temp file, fsync, rename, fsync of the
/// directory, so a crash leaves either the old or the new position, never a torn one.
fn write_position(path: &Path, next: u64) -> std::io::Result<()> {
    let tmp = path.with_extension("position.tmp");
    let mut file = std::fs::File::create(&tmp)?;
    writeln!(file, "{next}")?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// A TLS connector trusting only the configured CA file, and the name the
/// server's certificate must carry (the host part of the address).
fn tls_connector(
    settings: &ForwarderSettings,
) -> Result<(TlsConnector, ServerName<'static>), ForwardError> {
    let ca_file = settings
        .ca_file
        .as_ref()
        .ok_or_else(|| ForwardError::Tls("ca_file is required for transport = \"tls\"".into()))?;
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| ForwardError::Tls(format!("{}: {e}", ca_file.display())))?;
    for cert in certs {
        let cert = cert.map_err(|e| ForwardError::Tls(format!("{}: {e}", ca_file.display())))?;
        roots
            .add(cert)
            .map_err(|e| ForwardError::Tls(format!("{}: {e}", ca_file.display())))?;
    }
    if roots.is_empty() {
        return Err(ForwardError::Tls(format!(
            "{}: no certificates",
            ca_file.display()
        )));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ForwardError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let host = host_of(&settings.address)
        .ok_or_else(|| ForwardError::Tls("address must be host:port".into()))?;
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| ForwardError::Tls(format!("{host} is not a valid server name")))?;
    Ok((TlsConnector::from(Arc::new(config)), name))
}

/// The host of `host:port` or `[v6]:port`.
pub fn host_of(address: &str) -> Option<&str> {
    let (host, port) = address.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(leaf: &str) -> StoredEvent {
        StoredEvent {
            index: 7,
            id: uuid::Uuid::nil(),
            tenant: "acme \"q\" ]\\".into(),
            leaf: leaf.as_bytes().to_vec(),
            pii: None,
        }
    }

    const LEAF: &str = r#"{"action":"auth.login","actor":{"id":"u1"},"id":"00000000-0000-0000-0000-000000000000","outcome":"denied","received_at":"2026-01-02T03:04:05.678Z","tenant":"acme","v":1}"#;

    #[test]
    fn frames_by_octet_count_not_characters() {
        assert_eq!(frame(b"abc"), b"3 abc".to_vec());
        // "é" is two octets: the count is of bytes.
        assert_eq!(frame("é\n".as_bytes()), b"3 \xC3\xA9\n".to_vec());
        assert_eq!(frame(b""), b"0 ".to_vec());
    }

    #[test]
    fn pri_combines_facility_and_severity() {
        assert_eq!(pri(Facility::AUTHPRIV, Severity::Informational), 86);
        assert_eq!(
            pri(
                Facility::parse("auth").unwrap_or(Facility(0)),
                Severity::Warning
            ),
            36
        );
        assert_eq!(
            pri(
                Facility::parse("local7").unwrap_or(Facility(0)),
                Severity::Error
            ),
            187
        );
        assert_eq!(
            pri(
                Facility::parse("kern").unwrap_or(Facility(9)),
                Severity::Notice
            ),
            5
        );
    }

    #[test]
    fn parses_facility_names_and_numbers_and_rejects_others() {
        assert_eq!(Facility::parse("authpriv"), Some(Facility(10)));
        assert_eq!(Facility::parse("AUTH"), Some(Facility(4)));
        assert_eq!(Facility::parse("23"), Some(Facility(23)));
        assert_eq!(Facility::parse("24"), None);
        assert_eq!(Facility::parse("local8"), None);
    }

    #[test]
    fn severity_follows_the_outcome() {
        assert_eq!(Severity::of_outcome("success"), Severity::Informational);
        assert_eq!(Severity::of_outcome("failure"), Severity::Notice);
        assert_eq!(Severity::of_outcome("denied"), Severity::Warning);
        assert_eq!(Severity::of_outcome("error"), Severity::Error);
        assert_eq!(Severity::of_outcome("???"), Severity::Notice);
    }

    #[test]
    fn escapes_quote_backslash_and_bracket_in_sd_values() {
        assert_eq!(escape_sd_value(r#"a"b\c]d"#), r#"a\"b\\c\]d"#);
        assert_eq!(escape_sd_value("plain [x] é"), "plain [x\\] é");
    }

    #[test]
    fn msgid_is_printable_ascii_without_spaces_and_at_most_32() {
        assert_eq!(msgid("auth.login"), "auth.login");
        assert_eq!(msgid("a b\tc\u{e9}"), "a_b_c_");
        assert_eq!(msgid(""), "-");
        let long = "x".repeat(40);
        assert_eq!(msgid(&long).len(), 32);
        assert!(is_valid_header_field("palisade", APP_NAME_MAX));
        assert!(!is_valid_header_field("pali sade", APP_NAME_MAX));
        assert!(!is_valid_header_field("", APP_NAME_MAX));
    }

    #[test]
    fn builds_an_rfc5424_message_with_structured_data_and_a_bom() {
        let builder = MessageBuilder::new(
            Facility::AUTHPRIV,
            "host-1",
            "palisade",
            MessageFormat::Json,
        );
        let message = builder.message(&stored(LEAF));
        let text = String::from_utf8(message).unwrap_or_default();
        let pid = std::process::id();
        let hash = leaf_hash_base64(&stored(LEAF));
        let expected_head = format!(
            "<84>1 2026-01-02T03:04:05.678000Z host-1 palisade {pid} auth.login [palisade@32473 index=\"7\" tenant=\"acme \\\"q\\\" \\]\\\\\" leafHash=\"{hash}\"] \u{feff}"
        );
        assert!(text.starts_with(&expected_head), "{text}");
        let body: Value = serde_json::from_str(&text[expected_head.len()..]).unwrap_or(Value::Null);
        assert_eq!(body["index"], 7);
        assert_eq!(body["event"]["action"], "auth.login");
    }

    #[test]
    fn a_damaged_leaf_still_makes_a_valid_message() {
        let builder = MessageBuilder::new(Facility::AUTHPRIV, "h", "a", MessageFormat::Cef);
        let text = String::from_utf8(builder.message(&stored("not json"))).unwrap_or_default();
        assert!(text.starts_with("<85>1 - h a "), "{text}");
        assert!(text.contains(" - [palisade@32473 index=\"7\""), "{text}");
    }

    #[test]
    fn position_file_round_trips_and_defaults_to_zero() {
        let Ok(dir) = tempfile::tempdir() else { return };
        let path = dir.path().join(POSITION_FILE);
        assert_eq!(read_position(&path).ok(), Some(0));
        assert!(write_position(&path, 42).is_ok());
        assert_eq!(read_position(&path).ok(), Some(42));
        assert!(write_position(&path, 43).is_ok());
        assert_eq!(read_position(&path).ok(), Some(43));
        assert!(std::fs::write(&path, "garbage").is_ok());
        assert!(read_position(&path).is_err());
    }

    #[test]
    fn host_of_handles_names_ipv4_and_bracketed_ipv6() {
        assert_eq!(host_of("logs.example.com:6514"), Some("logs.example.com"));
        assert_eq!(host_of("127.0.0.1:514"), Some("127.0.0.1"));
        assert_eq!(host_of("[::1]:6514"), Some("::1"));
        assert_eq!(host_of("nohost"), None);
        assert_eq!(host_of(":514"), None);
        assert_eq!(host_of("h:port"), None);
    }
}
