//! `AuditLog`: the library API of the audit log. Validates events, appends them
//! through one group-commit writer task (concurrent appends share a transaction and
//! a checkpoint), falls back to the local spool when the database is unreachable,
//! replays the spool in order when it returns, and serves proofs.

use crate::checkpoint::NoteSigner;
use crate::event::{EventLimits, InvalidField, NewEvent, PreparedEvent};
use crate::merkle::{self, Hash, ProofError};
use crate::pii::{self, PiiAccess, PiiCipher, PiiError, SubjectPii};
use crate::spool::{Spool, SpoolError};
use crate::store::{
    AscendingPage, AuditStore, AuditStoreError, EventFilter, Page, PageAfter, StoredCheckpoint,
    StoredEvent,
};
use palisade_core::principal::TenantId;
use palisade_core::{SharedClock, new_id};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use uuid::Uuid;

/// Most events one group commit takes from the queue.
const MAX_GROUP_EVENTS: usize = 5000;
/// How often the spool is checked for events to replay.
const REPLAY_INTERVAL: Duration = Duration::from_millis(500);
/// Spooled events replayed per transaction.
const REPLAY_BATCH: usize = 1000;
/// Most ascending reads (live streams, exports) running at once. Without a replica
/// they share the primary's pool with appends; however many subscribers wake after
/// an append, they hold at most this many connections.
const ORDERED_READERS: usize = 4;

/// Why an audit operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Event `index` of the batch has an invalid field.
    #[error("events[{index}].{}: {}", .field.field, .field.message)]
    Invalid {
        /// Position in the batch.
        index: usize,
        /// The field and what is wrong.
        field: InvalidField,
    },
    /// The batch is empty or larger than the limit.
    #[error("a batch holds 1 to {max} events")]
    BatchSize {
        /// The limit.
        max: usize,
    },
    /// Neither the database nor the spool can take the events now; nothing was accepted.
    #[error("the audit log cannot accept events now: {0}")]
    Unavailable(String),
    /// A proof or read asked for a tree size or index outside the log.
    #[error("{0}")]
    OutOfRange(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] AuditStoreError),
}

impl From<ProofError> for AuditError {
    fn from(e: ProofError) -> Self {
        Self::OutOfRange(e.to_string())
    }
}

/// What an append produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Event ids in request order.
    pub ids: Vec<Uuid>,
    /// Their indexes, when they were sequenced at once (`None` when spooled).
    pub indexes: Option<Vec<u64>>,
    /// A tree size whose checkpoint contains them (`None` when spooled).
    pub tree_size: Option<u64>,
}

/// Settings of the log.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// The log's origin line in checkpoints (e.g. `palisade.example.com/audit`).
    pub origin: String,
    /// Event bounds.
    pub limits: EventLimits,
}

type Reply = oneshot::Sender<Result<Receipt, AuditError>>;

struct WriteRequest {
    events: Vec<PreparedEvent>,
    reply: Reply,
}

/// The audit log. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

struct Inner {
    store: AuditStore,
    signer: Arc<NoteSigner>,
    settings: AuditSettings,
    clock: SharedClock,
    spool: Option<Arc<Spool>>,
    writer: mpsc::Sender<WriteRequest>,
    /// The largest tree size this instance has committed, announced after each
    /// append so live readers wake without polling; sending never waits for them.
    appended: watch::Sender<u64>,
    /// Bounds concurrent [`AuditLog::query_after`] reads.
    ordered_reads: Semaphore,
    /// Seals and opens events' personal data, once installed
    /// ([`AuditLog::set_pii_cipher`]); without it `pii` is refused.
    pii: OnceLock<Arc<dyn PiiCipher>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("origin", &self.inner.settings.origin)
            .field("spool", &self.inner.spool.is_some())
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Starts the log's writer (and, with a spool, its replayer) on the current runtime.
    pub fn start(
        store: AuditStore,
        signer: NoteSigner,
        settings: AuditSettings,
        clock: SharedClock,
        spool: Option<Spool>,
    ) -> Self {
        let (writer, queue) = mpsc::channel(1024);
        let inner = Arc::new(Inner {
            store,
            signer: Arc::new(signer),
            settings,
            clock,
            spool: spool.map(Arc::new),
            writer,
            appended: watch::Sender::new(0),
            ordered_reads: Semaphore::new(ORDERED_READERS),
            pii: OnceLock::new(),
        });
        tokio::spawn(write_loop(inner.clone(), queue));
        if inner.spool.is_some() {
            tokio::spawn(replay_loop(Arc::downgrade(&inner)));
        }
        Self { inner }
    }

    /// Appends one event; see [`AuditLog::append_batch`].
    pub async fn append(&self, tenant: TenantId, event: NewEvent) -> Result<Receipt, AuditError> {
        self.append_batch(vec![(tenant, event)]).await
    }

    /// Validates and appends a batch, each event under its tenant. Returns only when
    /// every event is durable: committed and sequenced in the database, or fsync'd to
    /// the spool. One invalid event rejects the whole batch; nothing is half-written.
    pub async fn append_batch(
        &self,
        events: Vec<(TenantId, NewEvent)>,
    ) -> Result<Receipt, AuditError> {
        self.append_batch_with_pii(
            events
                .into_iter()
                .map(|(tenant, event)| (tenant, event, SubjectPii::none()))
                .collect(),
        )
        .await
    }

    /// [`AuditLog::append_batch`] of events that may carry personal data about a
    /// subject: each `pii` object is sealed under its subject's key before the leaf
    /// is built, so the leaf (and the spool) only ever hold the ciphertext. `pii`
    /// without a subject, or without a cipher installed, is refused (`Invalid`); a
    /// cipher that cannot be reached is `Unavailable`. Everything is validated
    /// before anything is sealed.
    pub async fn append_batch_with_pii(
        &self,
        events: Vec<(TenantId, NewEvent, SubjectPii)>,
    ) -> Result<Receipt, AuditError> {
        let max = self.inner.settings.limits.max_batch;
        if events.is_empty() || events.len() > max {
            return Err(AuditError::BatchSize { max });
        }
        let limits = &self.inner.settings.limits;
        let cipher = self.inner.pii.get();
        let mut checked = Vec::with_capacity(events.len());
        for (index, (tenant, event, personal)) in events.into_iter().enumerate() {
            let invalid = |field| AuditError::Invalid { index, field };
            let fields = event.check(limits).map_err(invalid)?;
            let personal = personal.check(limits).map_err(invalid)?;
            if personal.plaintext.is_some() && cipher.is_none() {
                return Err(invalid(crate::event::InvalidField {
                    field: "pii".into(),
                    message: "this audit log has no encryption keyring; personal data is never \
                              stored in clear"
                        .into(),
                }));
            }
            let id = event
                .id
                .unwrap_or_else(|| new_id(self.inner.clock.as_ref()));
            checked.push((tenant, event, fields, personal, id));
        }
        let received_at = OffsetDateTime::from(self.inner.clock.now());
        let mut prepared = Vec::with_capacity(checked.len());
        for (index, (tenant, event, fields, personal, id)) in checked.into_iter().enumerate() {
            let sealed = match (cipher, &personal.subject, &personal.plaintext) {
                (Some(cipher), Some(subject), Some(plaintext)) => {
                    let aad = pii::pii_aad(tenant.as_str(), subject, id);
                    let sealed = cipher
                        .seal(tenant.as_str(), subject, plaintext, &aad)
                        .await
                        .map_err(|e| match e {
                            PiiError::InvalidSubject(message) => AuditError::Invalid {
                                index,
                                field: crate::event::InvalidField {
                                    field: "subject".into(),
                                    message,
                                },
                            },
                            other => AuditError::Unavailable(format!(
                                "cannot encrypt events[{index}].pii: {other}"
                            )),
                        })?;
                    Some(sealed)
                }
                _ => None,
            };
            let event = event
                .build(
                    tenant,
                    id,
                    received_at,
                    &fields,
                    personal.subject.as_deref(),
                    sealed.as_deref(),
                )
                .map_err(|field| AuditError::Invalid { index, field })?;
            prepared.push(event);
        }
        self.append_prepared(prepared).await
    }

    /// Installs the cipher of events' personal data (the first one wins; later
    /// calls return false). Until one is installed, events with `pii` are refused.
    pub fn set_pii_cipher(&self, cipher: Arc<dyn PiiCipher>) -> bool {
        self.inner.pii.set(cipher).is_ok()
    }

    /// Whether a cipher of personal data is installed.
    pub fn has_pii_cipher(&self) -> bool {
        self.inner.pii.get().is_some()
    }

    /// Resolves the `pii` of read events for a reader with `access` (see
    /// [`crate::pii`]): fills each [`StoredEvent::pii`] with the decrypted object,
    /// `{"redacted": true}`, `{"erased": true}` (subject key destroyed, for every
    /// reader), `{"unavailable": true}` or `{"unreadable": true}`. Events without
    /// `pii` are left alone. Never fails: a read must not stop at one event.
    pub async fn reveal_pii(&self, events: &mut [StoredEvent], access: PiiAccess) {
        for event in events.iter_mut() {
            if !pii::may_carry_pii(&event.leaf) {
                continue;
            }
            let Ok(leaf) = serde_json::from_slice::<serde_json::Value>(&event.leaf) else {
                continue;
            };
            let Some(sealed) = pii::sealed_in(&leaf) else {
                continue;
            };
            let opened = match self.inner.pii.get() {
                Some(cipher) => cipher.open(sealed.ciphertext, &sealed.aad).await,
                None => Err(PiiError::Unavailable("no cipher installed".into())),
            };
            if let Err(PiiError::Failed(reason)) = &opened {
                tracing::warn!(index = event.index, %reason, "audit event pii does not open");
            }
            event.pii = Some(pii::view_of(opened, access));
        }
    }

    /// Wakes on every append this instance commits, carrying the tree size after it.
    /// The value is a wake-up hint, not the log's size: it starts at 0 and does not
    /// see appends made by other instances on the same database, so a reader still
    /// reads the store and should also poll now and then.
    pub fn subscribe_appends(&self) -> watch::Receiver<u64> {
        self.inner.appended.subscribe()
    }

    /// Events matching a filter after a position, oldest first, with how far the read
    /// got; see [`AuditStore::query_after`]. At most a few run at once, so that many
    /// live subscribers cannot take the connections appends need.
    pub async fn query_after(
        &self,
        filter: &EventFilter,
        page: PageAfter,
    ) -> Result<AscendingPage, AuditError> {
        let _permit = self
            .inner
            .ordered_reads
            .acquire()
            .await
            .map_err(|_| AuditError::Unavailable("the audit log is shutting down".into()))?;
        Ok(self.inner.store.query_after(filter, page).await?)
    }

    /// The limits events are checked against.
    pub fn limits(&self) -> &EventLimits {
        &self.inner.settings.limits
    }

    /// Appends events that were already validated (e.g. replayed from elsewhere).
    pub async fn append_prepared(&self, events: Vec<PreparedEvent>) -> Result<Receipt, AuditError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .writer
            .send(WriteRequest { events, reply })
            .await
            .map_err(|_| AuditError::Unavailable("the audit writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| AuditError::Unavailable("the audit writer has stopped".into()))?
    }

    /// The newest signed checkpoint.
    pub async fn checkpoint(&self) -> Result<Option<StoredCheckpoint>, AuditError> {
        Ok(self.inner.store.latest_checkpoint().await?)
    }

    /// The verifier key of checkpoints, in note format.
    pub fn verifier_key(&self) -> String {
        self.inner.signer.verifier_key()
    }

    /// The origin line of checkpoints.
    pub fn origin(&self) -> &str {
        &self.inner.settings.origin
    }

    /// Current tree size.
    pub async fn tree_size(&self) -> Result<u64, AuditError> {
        Ok(self.inner.store.tree_size().await?)
    }

    /// Leaf hash and audit path of leaf `index` in the tree of `tree_size` leaves.
    pub async fn inclusion_proof(
        &self,
        index: u64,
        tree_size: u64,
    ) -> Result<(Hash, Vec<Hash>), AuditError> {
        self.check_size(tree_size).await?;
        let nodes = merkle::inclusion_proof_nodes(index, tree_size)?;
        let hashes = self.inner.store.read_hashes(&nodes).await?;
        let proof = merkle::assemble_inclusion_proof(index, tree_size, &hashes)?;
        let leaf = self
            .inner
            .store
            .read_hashes(&[merkle::NodeId::new(0, index)])
            .await?;
        let leaf = leaf
            .first()
            .copied()
            .ok_or_else(|| AuditError::OutOfRange("no such leaf".into()))?;
        Ok((leaf, proof))
    }

    /// Consistency proof from tree size `from` to `to`.
    pub async fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Hash>, AuditError> {
        self.check_size(to).await?;
        let nodes = merkle::consistency_proof_nodes(from, to)?;
        let hashes = self.inner.store.read_hashes(&nodes).await?;
        Ok(merkle::assemble_consistency_proof(from, to, &hashes)?)
    }

    /// The stored event at `index`.
    pub async fn leaf(&self, index: u64) -> Result<Option<StoredEvent>, AuditError> {
        let end = index
            .checked_add(1)
            .ok_or_else(|| AuditError::OutOfRange("index too large".into()))?;
        Ok(self
            .inner
            .store
            .events_range(index, end)
            .await?
            .into_iter()
            .next())
    }

    /// One event by id.
    pub async fn event(&self, id: Uuid) -> Result<Option<StoredEvent>, AuditError> {
        Ok(self.inner.store.event_by_id(id).await?)
    }

    /// Events matching a filter, newest first.
    pub async fn query(
        &self,
        filter: &EventFilter,
        page: Page,
    ) -> Result<Vec<StoredEvent>, AuditError> {
        Ok(self.inner.store.query(filter, page).await?)
    }

    /// `width` hashes of tree level `level` starting at `start` (tlog tiles).
    pub async fn hashes(&self, level: u8, start: u64, width: u64) -> Result<Vec<Hash>, AuditError> {
        let end = start
            .checked_add(width)
            .ok_or_else(|| AuditError::OutOfRange("tile out of range".into()))?;
        Ok(self.inner.store.hash_range(level, start, end).await?)
    }

    /// The store underneath (for the verifier and tests).
    pub fn store(&self) -> &AuditStore {
        &self.inner.store
    }

    async fn check_size(&self, tree_size: u64) -> Result<(), AuditError> {
        let current = self.inner.store.tree_size().await?;
        if tree_size > current {
            return Err(AuditError::OutOfRange(format!(
                "tree_size {tree_size} is larger than the log ({current})"
            )));
        }
        Ok(())
    }
}

impl Inner {
    fn now_ms(&self) -> i64 {
        self.clock.now_unix_ms()
    }

    /// Writes a group to the spool: the database is unreachable, or older events are
    /// still waiting there (new events queue behind them to keep acceptance order).
    async fn spool(&self, events: &[PreparedEvent]) -> Result<(), AuditError> {
        let Some(spool) = self.spool.clone() else {
            return Err(AuditError::Unavailable(
                "the database is unreachable and no spool is configured".into(),
            ));
        };
        let records = events
            .iter()
            .map(serde_json::to_vec)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AuditError::Unavailable(format!("cannot encode for the spool: {e}")))?;
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
            spool.append(&refs).map(|_| ())
        })
        .await
        .map_err(|e| AuditError::Unavailable(format!("spool task failed: {e}")))?
        .map_err(|e| match e {
            SpoolError::Full { .. } => AuditError::Unavailable("the local spool is full".into()),
            other => AuditError::Unavailable(format!("spool: {other}")),
        })
    }

    /// Announces a committed tree size to live readers (never lowering it: the
    /// writer and the replayer may finish out of order).
    fn announce(&self, tree_size: u64) {
        self.appended.send_if_modified(|size| {
            let grew = tree_size > *size;
            if grew {
                *size = tree_size;
            }
            grew
        });
    }

    fn spool_has_pending(&self) -> bool {
        self.spool.as_ref().is_some_and(|s| !s.is_empty())
    }
}

/// The single writer: takes every request waiting in the queue (up to a bound),
/// appends them in one transaction, and answers each.
async fn write_loop(inner: Arc<Inner>, mut queue: mpsc::Receiver<WriteRequest>) {
    while let Some(first) = queue.recv().await {
        let mut group = vec![first];
        let mut count = group[0].events.len();
        while count < MAX_GROUP_EVENTS {
            match queue.try_recv() {
                Ok(next) => {
                    count += next.events.len();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        let events: Vec<PreparedEvent> = group
            .iter()
            .flat_map(|r| r.events.iter().cloned())
            .collect();
        let outcome = write_group(&inner, &events).await;
        let mut offset = 0;
        for request in group {
            let n = request.events.len();
            let answer = match &outcome {
                Ok(Some((indexes, tree_size))) => Ok(Receipt {
                    ids: request.events.iter().map(|e| e.id).collect(),
                    indexes: Some(indexes[offset..offset + n].to_vec()),
                    tree_size: Some(*tree_size),
                }),
                Ok(None) => Ok(Receipt {
                    ids: request.events.iter().map(|e| e.id).collect(),
                    indexes: None,
                    tree_size: None,
                }),
                Err(e) => Err(AuditError::Unavailable(e.to_string())),
            };
            offset += n;
            let _ = request.reply.send(answer);
        }
    }
}

/// Appends a group; `Ok(None)` means it was spooled.
async fn write_group(
    inner: &Inner,
    events: &[PreparedEvent],
) -> Result<Option<(Vec<u64>, u64)>, AuditError> {
    if inner.spool_has_pending() {
        inner.spool(events).await?;
        return Ok(None);
    }
    match inner
        .store
        .append(
            events,
            &inner.signer,
            &inner.settings.origin,
            inner.now_ms(),
        )
        .await
    {
        Ok(appended) => {
            metrics::counter!("palisade_audit_events_appended_total")
                .increment(events.len() as u64);
            metrics::gauge!("palisade_audit_tree_size").set(appended.tree_size as f64);
            inner.announce(appended.tree_size);
            Ok(Some((
                appended.entries.iter().map(|(_, i)| *i).collect(),
                appended.tree_size,
            )))
        }
        Err(e) if e.is_unavailable() && inner.spool.is_some() => {
            tracing::warn!(error = %e, events = events.len(), "database unreachable: spooling audit events");
            inner.spool(events).await?;
            metrics::counter!("palisade_audit_events_spooled_total").increment(events.len() as u64);
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Replays spooled events, oldest first, whenever there are any and the database
/// takes them. Stops when the log is dropped.
async fn replay_loop(inner: std::sync::Weak<Inner>) {
    loop {
        tokio::time::sleep(REPLAY_INTERVAL).await;
        let Some(inner) = inner.upgrade() else { return };
        let Some(spool) = inner.spool.clone() else {
            return;
        };
        while !spool.is_empty() {
            let reader = spool.clone();
            let pending = match tokio::task::spawn_blocking(move || {
                reader.read_pending(REPLAY_BATCH)
            })
            .await
            {
                Ok(Ok(pending)) if !pending.is_empty() => pending,
                Ok(Ok(_)) => break,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "cannot read the audit spool");
                    break;
                }
                Err(_) => break,
            };
            let Some(last) = pending.last().map(|(seq, _)| *seq) else {
                break;
            };
            let mut events = Vec::with_capacity(pending.len());
            for (seq, bytes) in &pending {
                match serde_json::from_slice::<PreparedEvent>(bytes) {
                    Ok(event) => events.push(event),
                    // A record that passed its CRC but does not decode was written by
                    // another version; keep it (never drop audit data) and stop here.
                    Err(e) => {
                        tracing::error!(error = %e, seq, "undecodable spool record; replay halted");
                        return;
                    }
                }
            }
            // Straight to the store: these are older than anything in the writer's queue.
            match inner
                .store
                .append(
                    &events,
                    &inner.signer,
                    &inner.settings.origin,
                    inner.now_ms(),
                )
                .await
            {
                Ok(appended) => {
                    inner.announce(appended.tree_size);
                    let acker = spool.clone();
                    match tokio::task::spawn_blocking(move || acker.acknowledge_through(last)).await
                    {
                        Ok(Ok(())) => {
                            metrics::counter!("palisade_audit_events_replayed_total")
                                .increment(events.len() as u64);
                            tracing::info!(events = events.len(), "replayed spooled audit events");
                        }
                        // Not acknowledged: they will be replayed again, which the store
                        // ignores by event id.
                        _ => break,
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "spool replay deferred");
                    break;
                }
            }
        }
    }
}
