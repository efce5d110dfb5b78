//! Threat detection and response: detectors that read the security-event
//! stream, a response policy per detector, blocks enforced on requests, and
//! incidents grouping what belongs together.
//!
//! [`ThreatDefense`] is the service. It subscribes to
//! [`SecurityEvents`](palisade_core::SecurityEvents) ([`ThreatDefense::start`]),
//! runs every event through the detectors (`detect.rs`), and for each
//! detection applies its detector's [`ResponseAction`]: log, flag, tighten
//! the rate limit of, or block the address (or network) or the subject for a
//! TTL that grows for repeat offenders. Every detection and action is handed
//! to the [`ThreatReporter`] the HTTP layer wires to the audit log, with its
//! evidence.
//!
//! State is in process by default and shared through Redis when one is given:
//! detector windows (`window.rs`), blocks (`shared.rs`), rate-limit
//! tightenings (`tightened.rs`) and incidents (`shared_incidents.rs`), so
//! several instances see one attack, enforce one set of blocks and list one
//! set of incidents.
//!
//! [`ThreatDefense::check_ip`] is the per-request check, in this order: a
//! manual block refuses; an allow list lets through; an automatic block or a
//! block list refuses; a flag marks.

mod detect;
mod incidents;
mod inspection;
mod settings;
mod shared;
mod shared_incidents;
mod tightened;
mod window;

pub use detect::{Detection, DetectorKind};
pub use incidents::{Incident, IncidentDetection, Incidents};
pub use inspection::{detector_of, inspection_events};
pub use settings::{DetectorRule, ResponseAction, ThreatSettings};

use crate::GuardError;
use crate::anomaly::{
    AnomalyAlert, AnomalyDetector, AnomalyKey, AnomalySettings, KeyKind, Outcome,
};
use crate::ratelimit::{Tightening, Tightenings};
use crate::reputation::{
    Block, BlockMode, BlockOrigin, BlockTable, BlockTarget, ListMatch, Listing, Reputation,
};
use detect::Detectors;
use ipnet::IpNet;
use palisade_core::{SecurityEvent, SecurityEvents, SharedClock};
use palisade_store::Redis;
use serde::Serialize;
use shared::SharedBlocks;
use shared_incidents::SharedIncidents;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tightened::SharedTightenings;
use window::Windows;

/// What the service hands out for the audit log.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "notice", rename_all = "snake_case")]
pub enum ThreatNotice {
    /// A detector fired.
    Detection {
        /// What was found, with evidence.
        detection: Detection,
        /// The incident it was filed into.
        incident: String,
        /// The action its detector is configured with.
        action: ResponseAction,
    },
    /// A block or flag was made in response.
    Action {
        /// The block (its origin names the detector).
        block: Block,
        /// The detection it answers.
        detection: String,
    },
    /// A key's rate limit was tightened in response.
    RateLimitTightened {
        /// The tightening (target, factor, expiry, detector).
        tightening: Tightening,
        /// The detection it answers.
        detection: String,
    },
    /// The configured action was not taken.
    ActionSkipped {
        /// The detection.
        detection: String,
        /// Why (`allowlisted`, `manual_block_in_force`, `no_target`,
        /// `table_full`, `no_rate_limiter`).
        reason: &'static str,
    },
    /// A traffic spike.
    Anomaly(AnomalyAlert),
}

/// Receives every notice; must not block (spawn the audit append).
pub type ThreatReporter = Arc<dyn Fn(ThreatNotice) + Send + Sync>;

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A manual or automatic block.
    Block(Block),
    /// A block list.
    List(ListMatch),
}

/// The per-request verdict on a client address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpVerdict {
    /// Nothing against it.
    Pass,
    /// Let through, marked suspicious.
    Flagged(Block),
    /// Refused.
    Refused(Refusal),
}

/// What the service is built from.
#[derive(Clone)]
pub struct ThreatOptions {
    /// The detectors.
    pub settings: ThreatSettings,
    /// Traffic anomaly detection.
    pub anomaly: AnomalySettings,
    /// Shared state, when several instances run.
    pub redis: Option<Redis>,
    /// The allow and block lists.
    pub reputation: Arc<Reputation>,
    /// Where notices go (the audit log).
    pub reporter: Option<ThreatReporter>,
    /// The rate limiter's tightened keys ([`crate::ratelimit::RateLimiter::tightenings`]),
    /// for the `tighten_rate_limit` response; without it that response is
    /// reported as skipped (`no_rate_limiter`).
    pub tightenings: Option<Arc<Tightenings>>,
}

impl std::fmt::Debug for ThreatOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreatOptions")
            .field("settings", &self.settings)
            .field("redis", &self.redis.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for ThreatOptions {
    fn default() -> Self {
        Self {
            settings: ThreatSettings::default(),
            anomaly: AnomalySettings::default(),
            redis: None,
            reputation: Arc::new(Reputation::empty()),
            reporter: None,
            tightenings: None,
        }
    }
}

struct Inner {
    detectors: Detectors,
    blocks: SharedBlocks,
    tightenings: Option<SharedTightenings>,
    reputation: Arc<Reputation>,
    anomaly: AnomalyDetector,
    incidents: SharedIncidents,
    events: SecurityEvents,
    clock: SharedClock,
    reporter: Option<ThreatReporter>,
    processed: AtomicU64,
    lagged: AtomicU64,
    detections: AtomicU64,
}

/// Threat detection and response. Cheap to clone.
#[derive(Clone)]
pub struct ThreatDefense(Arc<Inner>);

impl std::fmt::Debug for ThreatDefense {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreatDefense")
            .field("processed", &self.processed())
            .field("blocks", &self.0.blocks.table().len())
            .finish_non_exhaustive()
    }
}

impl ThreatDefense {
    /// The service over `events`, reading time from `clock`. Call
    /// [`ThreatDefense::start`] to have it consume the events.
    pub fn new(
        options: ThreatOptions,
        events: SecurityEvents,
        clock: SharedClock,
    ) -> Result<Self, GuardError> {
        options.settings.validate()?;
        options.anomaly.validate()?;
        let windows = Windows::new(options.redis.clone(), options.settings.max_tracked_keys);
        let table = Arc::new(BlockTable::new(options.settings.max_blocks));
        Ok(Self(Arc::new(Inner {
            incidents: SharedIncidents::new(
                Incidents::new(
                    options.settings.incident_gap_ms,
                    options.settings.max_incidents,
                ),
                options.redis.clone(),
                options.settings.max_incidents,
            ),
            detectors: Detectors::new(options.settings, windows, clock.clone()),
            tightenings: options
                .tightenings
                .map(|set| SharedTightenings::new(set, options.redis.clone())),
            blocks: SharedBlocks::new(table, options.redis),
            reputation: options.reputation,
            anomaly: AnomalyDetector::new(options.anomaly),
            events,
            clock,
            reporter: options.reporter,
            processed: AtomicU64::new(0),
            lagged: AtomicU64::new(0),
            detections: AtomicU64::new(0),
        })))
    }

    /// Subscribes to the events now and processes them on a task of their
    /// own; also keeps the shared blocks in sync and drops idle state. The
    /// tasks end once every handle of the service is dropped.
    pub fn start(&self) {
        let mut rx = self.0.events.subscribe();
        let weak: Weak<Inner> = Arc::downgrade(&self.0);
        tokio::spawn(async move {
            loop {
                let event = match rx.recv().await {
                    Ok(event) => event,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        if let Some(inner) = weak.upgrade() {
                            inner.lagged.fetch_add(n, Ordering::Relaxed);
                        }
                        tracing::warn!(lost = n, "threat detection fell behind; events lost");
                        metrics::counter!("palisade_threats_events_lost_total").increment(n);
                        continue;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                ThreatDefense(inner).process(&event).await;
            }
        });
        let weak: Weak<Inner> = Arc::downgrade(&self.0);
        let every = Duration::from_millis(self.0.detectors.settings().block_sync_ms);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut ticks = 0u64;
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                let now = inner.clock.now_unix_ms();
                if let Err(error) = inner.blocks.sync(now).await {
                    tracing::debug!(%error, "shared blocks not synced; keeping this instance's");
                }
                if let Some(tightenings) = &inner.tightenings
                    && let Err(error) = tightenings.sync(now).await
                {
                    tracing::debug!(%error, "shared rate-limit tightenings not synced; keeping this instance's");
                }
                ticks += 1;
                if ticks.is_multiple_of(60) {
                    let idle = i64::try_from(inner.anomaly.settings().interval_ms)
                        .unwrap_or(i64::MAX / 128)
                        .saturating_mul(64);
                    inner.anomaly.evict_idle(now, idle);
                }
            }
        });
    }

    /// The event sink the service reads (emit into it to report events).
    pub fn events(&self) -> &SecurityEvents {
        &self.0.events
    }

    /// The settings in force.
    pub fn settings(&self) -> &ThreatSettings {
        self.0.detectors.settings()
    }

    /// The allow and block lists.
    pub fn reputation(&self) -> &Arc<Reputation> {
        &self.0.reputation
    }

    /// The clock the service reads.
    pub fn clock(&self) -> &SharedClock {
        &self.0.clock
    }

    /// Events processed so far.
    pub fn processed(&self) -> u64 {
        self.0.processed.load(Ordering::Acquire)
    }

    /// Events lost because processing fell behind.
    pub fn lagged(&self) -> u64 {
        self.0.lagged.load(Ordering::Relaxed)
    }

    /// Detections so far.
    pub fn detections(&self) -> u64 {
        self.0.detections.load(Ordering::Relaxed)
    }

    /// Runs one event through the detectors and responds to what they find.
    /// [`ThreatDefense::start`] calls it for every event; call it directly to
    /// process an event synchronously.
    pub async fn process(&self, event: &SecurityEvent) -> Vec<Detection> {
        let detections = self.0.detectors.observe(event).await;
        if detections.is_empty() {
            self.0.incidents.record_event(event).await;
        }
        let mut incident_of_event: Option<String> = None;
        for detection in &detections {
            self.0.detections.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("palisade_threat_detections_total", "detector" => detection.detector.as_str())
                .increment(1);
            self.0.incidents.prepare(detection).await;
            let incident = self.0.incidents.local().record_detection(
                detection,
                incident_of_event.as_deref(),
                self.new_id(),
            );
            incident_of_event = Some(incident.clone());
            let rule = detection.detector.rule(self.settings()).clone();
            tracing::warn!(detector = detection.detector.as_str(), source = ?detection.source, incident = %incident, summary = %detection.summary, "threat detected");
            self.report(ThreatNotice::Detection {
                detection: detection.clone(),
                incident: incident.clone(),
                action: rule.action,
            });
            self.respond(detection, &rule, &incident).await;
            self.0.incidents.publish(&incident).await;
        }
        self.0.processed.fetch_add(1, Ordering::Release);
        detections
    }

    fn new_id(&self) -> String {
        palisade_core::new_id(&*self.0.clock).to_string()
    }

    fn report(&self, notice: ThreatNotice) {
        if let Some(reporter) = &self.0.reporter {
            reporter(notice);
        }
    }

    async fn respond(&self, detection: &Detection, rule: &DetectorRule, incident: &str) {
        let skipped = |reason| ThreatNotice::ActionSkipped {
            detection: detection.id.clone(),
            reason,
        };
        let subject_target = || {
            detection.subject.as_ref().map(|s| {
                BlockTarget::Subject(match &detection.tenant {
                    Some(t)
                        if !t.as_str().is_empty()
                            && *t != palisade_core::principal::TenantId::default_tenant() =>
                    {
                        format!("{t}/{s}")
                    }
                    _ => s.clone(),
                })
            })
        };
        let ip_target = || detection.source.map(BlockTarget::ip);
        let (target, mode) = match rule.action {
            ResponseAction::Log => return,
            ResponseAction::Flag => (ip_target().or_else(subject_target), BlockMode::Flag),
            ResponseAction::BlockIp => (ip_target().or_else(subject_target), BlockMode::Block),
            ResponseAction::BlockSubject => (subject_target().or_else(ip_target), BlockMode::Block),
            ResponseAction::TightenRateLimit => {
                // Rate-limit subject keys carry no tenant (see ratelimit::Tightenings).
                let target =
                    ip_target().or_else(|| detection.subject.clone().map(BlockTarget::Subject));
                return self.tighten(detection, rule, incident, target).await;
            }
        };
        let Some(target) = target else {
            self.report(skipped("no_target"));
            return;
        };
        let now = self.0.clock.now_unix_ms();
        if let BlockTarget::Ip(net) = &target
            && self.0.reputation.is_allowed(net.network())
        {
            self.report(skipped("allowlisted"));
            return;
        }
        let existing = self.0.blocks.table().get(&target, now);
        if existing.as_ref().is_some_and(Block::is_manual) {
            self.report(skipped("manual_block_in_force"));
            return;
        }
        let (offense, mut expires_at_ms) = self
            .escalation("offense", &target, detection, rule, now)
            .await;
        // Never shorten a stronger block already in force.
        let mut mode = mode;
        if let Some(existing) = &existing {
            expires_at_ms = expires_at_ms.max(existing.expires_at_ms);
            if existing.mode == BlockMode::Block {
                mode = BlockMode::Block;
            }
        }
        let block = Block {
            target,
            mode,
            origin: BlockOrigin::Detector {
                detector: detection.detector.as_str().to_owned(),
            },
            reason: detection.summary.clone(),
            created_at_ms: now,
            expires_at_ms,
            incident: Some(incident.to_owned()),
            offense,
        };
        match self.0.blocks.put(block.clone(), now).await {
            Ok(()) => {
                self.0.incidents.local().record_action(incident, &block);
                self.report(ThreatNotice::Action {
                    block,
                    detection: detection.id.clone(),
                });
            }
            Err(error) => {
                tracing::error!(%error, "could not apply a threat block");
                self.report(skipped("table_full"));
            }
        }
    }

    /// The offence number of `target` under the counter `kind` (this
    /// detection counted once within the rule's escalation window) and when
    /// the TTL it earns ends, from `now`. Blocks and tightenings escalate
    /// alike, each on a counter of its own.
    async fn escalation(
        &self,
        kind: &str,
        target: &BlockTarget,
        detection: &Detection,
        rule: &DetectorRule,
        now: i64,
    ) -> (u32, i64) {
        let offense = self
            .0
            .detectors
            .windows()
            .add(
                &format!("{kind}:{}", target.key()),
                &detection.id,
                detection.at_ms,
                rule.escalation_window_ms,
                1_000,
            )
            .await;
        let offense = u32::try_from(offense).unwrap_or(u32::MAX).max(1);
        let ttl = i64::try_from(rule.ttl_ms(offense)).unwrap_or(i64::MAX / 4);
        (offense, now.saturating_add(ttl))
    }

    /// The `tighten_rate_limit` response: `target` pays the rule's factor per
    /// request for the (escalating) TTL.
    async fn tighten(
        &self,
        detection: &Detection,
        rule: &DetectorRule,
        incident: &str,
        target: Option<BlockTarget>,
    ) {
        let skipped = |reason| ThreatNotice::ActionSkipped {
            detection: detection.id.clone(),
            reason,
        };
        let Some(tightenings) = &self.0.tightenings else {
            self.report(skipped("no_rate_limiter"));
            return;
        };
        let Some(target) = target else {
            self.report(skipped("no_target"));
            return;
        };
        if let BlockTarget::Ip(net) = &target
            && self.0.reputation.is_allowed(net.network())
        {
            self.report(skipped("allowlisted"));
            return;
        }
        let now = self.0.clock.now_unix_ms();
        let (offense, mut expires_at_ms) = self
            .escalation("tighten", &target, detection, rule, now)
            .await;
        let mut factor = rule.tighten_factor;
        // Never loosen a tightening already in force.
        if let Some(existing) = tightenings.set().get(&target, now) {
            expires_at_ms = expires_at_ms.max(existing.expires_at_ms);
            factor = factor.max(existing.factor);
        }
        let tightening = Tightening {
            target,
            factor,
            detector: detection.detector.as_str().to_owned(),
            reason: detection.summary.clone(),
            created_at_ms: now,
            expires_at_ms,
            incident: Some(incident.to_owned()),
            offense,
        };
        match tightenings.put(tightening.clone(), now).await {
            Ok(()) => {
                self.0
                    .incidents
                    .local()
                    .record_tightening(incident, &tightening);
                self.report(ThreatNotice::RateLimitTightened {
                    tightening,
                    detection: detection.id.clone(),
                });
            }
            Err(error) => {
                tracing::error!(%error, "could not tighten a rate limit");
                self.report(skipped("table_full"));
            }
        }
    }

    /// The verdict on a request from `ip` (see the module docs for the order).
    #[inline]
    pub fn check_ip(&self, ip: IpAddr) -> IpVerdict {
        let now = self.0.clock.now_unix_ms();
        let block = self.0.blocks.table().lookup_ip(ip, now);
        if let Some(block) = &block
            && block.is_manual()
            && block.mode == BlockMode::Block
        {
            return IpVerdict::Refused(Refusal::Block(block.clone()));
        }
        let listing = self.0.reputation.lookup(ip);
        if matches!(listing, Listing::Allowed(_)) {
            return IpVerdict::Pass;
        }
        match (block, listing) {
            (Some(block), _) if block.mode == BlockMode::Block => {
                IpVerdict::Refused(Refusal::Block(block))
            }
            (_, Listing::Blocked(hit)) => IpVerdict::Refused(Refusal::List(hit)),
            (Some(flag), _) => IpVerdict::Flagged(flag),
            (None, _) => IpVerdict::Pass,
        }
    }

    /// The block or flag in force for `subject` (`tenant/subject` outside the
    /// default tenant), if any.
    pub fn check_subject(&self, subject: &str) -> Option<Block> {
        self.0
            .blocks
            .table()
            .lookup_subject(subject, self.0.clock.now_unix_ms())
    }

    /// Blocks and flags in force, newest first.
    pub fn blocks(&self) -> Vec<Block> {
        self.0.blocks.table().list(self.0.clock.now_unix_ms())
    }

    /// Rate-limit tightenings in force, newest first (none without a rate limiter).
    pub fn tightenings(&self) -> Vec<Tightening> {
        self.0
            .tightenings
            .as_ref()
            .map(|t| t.set().list(self.0.clock.now_unix_ms()))
            .unwrap_or_default()
    }

    /// Makes a manual block of `target` for `ttl_ms` (replacing any block of
    /// it); returns the block.
    pub async fn block(
        &self,
        target: BlockTarget,
        ttl_ms: u64,
        reason: String,
        actor: String,
    ) -> Result<Block, GuardError> {
        if let BlockTarget::Subject(s) = &target
            && (s.is_empty() || s.len() > 512)
        {
            return Err(GuardError::invalid("subject", "must be 1 to 512 bytes"));
        }
        let now = self.0.clock.now_unix_ms();
        let block = Block {
            target,
            mode: BlockMode::Block,
            origin: BlockOrigin::Manual { actor },
            reason,
            created_at_ms: now,
            expires_at_ms: now.saturating_add(i64::try_from(ttl_ms).unwrap_or(i64::MAX / 4)),
            incident: None,
            offense: 1,
        };
        self.0.blocks.put(block.clone(), now).await?;
        Ok(block)
    }

    /// Lifts the block of `target`; the block lifted, if there was one.
    pub async fn unblock(&self, target: &BlockTarget) -> Result<Option<Block>, GuardError> {
        self.0.blocks.remove(target).await
    }

    /// Re-reads the shared blocks and rate-limit tightenings now (the
    /// started service does it on a timer).
    pub async fn sync_blocks(&self) -> Result<(), GuardError> {
        let now = self.0.clock.now_unix_ms();
        self.0.blocks.sync(now).await?;
        if let Some(tightenings) = &self.0.tightenings {
            tightenings.sync(now).await?;
        }
        Ok(())
    }

    /// The incidents (see [`Incidents::list`]), of every instance when
    /// shared through Redis.
    pub async fn incidents(
        &self,
        before: Option<&str>,
        limit: usize,
        open_only: bool,
    ) -> Vec<Incident> {
        self.0
            .incidents
            .list(self.0.clock.now_unix_ms(), before, limit, open_only)
            .await
    }

    /// One incident.
    pub async fn incident(&self, id: &str) -> Option<Incident> {
        self.0.incidents.get(self.0.clock.now_unix_ms(), id).await
    }

    /// Feeds one answered request into the traffic baselines of its client
    /// address and route (and API key, when known), reporting spikes.
    pub fn record_request(&self, ip: IpAddr, route: &str, api_key: Option<&str>, status: u16) {
        let now = self.0.clock.now_unix_ms();
        let outcome = Outcome::of_status(status);
        let mut keys = vec![
            AnomalyKey::new(
                KeyKind::Ip,
                IpNet::from(ip.to_canonical()).addr().to_string(),
            ),
            AnomalyKey::new(KeyKind::Route, route),
        ];
        if let Some(key) = api_key {
            keys.push(AnomalyKey::new(KeyKind::ApiKey, key));
        }
        for key in &keys {
            self.observe_anomaly(key, outcome, now);
        }
    }

    /// Feeds one answered request into the traffic baselines of its
    /// authenticated subject (`tenant/subject` outside the default tenant)
    /// and API key, when known, reporting spikes. The same bounded map holds
    /// them as the addresses and routes.
    pub fn record_principal(&self, subject: Option<&str>, api_key: Option<&str>, status: u16) {
        let now = self.0.clock.now_unix_ms();
        let outcome = Outcome::of_status(status);
        let keys = [
            subject.map(|s| AnomalyKey::new(KeyKind::Subject, s)),
            api_key.map(|k| AnomalyKey::new(KeyKind::ApiKey, k)),
        ];
        for key in keys.iter().flatten() {
            self.observe_anomaly(key, outcome, now);
        }
    }

    fn observe_anomaly(&self, key: &AnomalyKey, outcome: Outcome, now: i64) {
        for alert in self.0.anomaly.observe(key, outcome, now) {
            tracing::warn!(kind = ?alert.key.kind, key = %alert.key.value, metric = ?alert.metric, z = alert.z, "traffic anomaly");
            self.report(ThreatNotice::Anomaly(alert));
        }
    }

    /// The anomaly detector, for subjects and keys fed from elsewhere.
    pub fn anomaly(&self) -> &AnomalyDetector {
        &self.0.anomaly
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_core::{Clock, ManualClock, SecurityEventKind};
    use std::sync::Mutex;

    /// A defense on a manual clock whose notices are collected; shared with
    /// the other threat modules' tests.
    pub(super) struct Fixture {
        pub(super) clock: ManualClock,
        pub(super) threats: ThreatDefense,
        pub(super) notices: Arc<Mutex<Vec<ThreatNotice>>>,
    }

    /// `options` with a reporter that collects the notices, on a fresh
    /// manual clock, with room for `events` security events.
    pub(super) fn fixture_with(options: ThreatOptions, events: usize) -> Fixture {
        let clock = ManualClock::new();
        let notices = Arc::new(Mutex::new(Vec::new()));
        let sink = notices.clone();
        let threats = ThreatDefense::new(
            ThreatOptions {
                reporter: Some(Arc::new(move |n| sink.lock().unwrap().push(n))),
                ..options
            },
            SecurityEvents::new(events),
            Arc::new(clock.clone()),
        )
        .unwrap();
        Fixture {
            clock,
            threats,
            notices,
        }
    }

    fn fixture(settings: ThreatSettings, reputation: Reputation) -> Fixture {
        fixture_with(
            ThreatOptions {
                settings,
                reputation: Arc::new(reputation),
                ..ThreatOptions::default()
            },
            64,
        )
    }

    /// A defense whose anomaly detector learns in 3 intervals and alerts
    /// from 10 events an interval.
    fn anomaly_fixture() -> Fixture {
        fixture_with(
            ThreatOptions {
                anomaly: AnomalySettings {
                    warmup_intervals: 3,
                    min_count: 10,
                    ..AnomalySettings::default()
                },
                ..ThreatOptions::default()
            },
            8,
        )
    }

    pub(super) fn rule(threshold: u64, action: ResponseAction) -> DetectorRule {
        DetectorRule {
            threshold,
            window_ms: 60_000,
            action,
            block_ttl_ms: 60_000,
            escalation_factor: 2,
            max_block_ttl_ms: 3_600_000,
            ..DetectorRule::default()
        }
    }

    fn only(detector: DetectorKind, r: DetectorRule) -> ThreatSettings {
        let off = DetectorRule {
            enabled: false,
            ..DetectorRule::default()
        };
        let mut s = ThreatSettings {
            brute_force_account: off.clone(),
            brute_force_ip: off.clone(),
            credential_stuffing: off.clone(),
            password_spraying: off.clone(),
            token_reuse: off,
            ..ThreatSettings::default()
        };
        match detector {
            DetectorKind::BruteForceAccount => s.brute_force_account = r,
            DetectorKind::BruteForceIp => s.brute_force_ip = r,
            DetectorKind::CredentialStuffing => s.credential_stuffing = r,
            DetectorKind::PasswordSpraying => s.password_spraying = r,
            DetectorKind::TokenReuse => s.token_reuse = r,
            other => panic!("not an account detector: {other:?}"),
        }
        s
    }

    fn event(f: &Fixture, kind: SecurityEventKind, ip: &str, subject: &str) -> SecurityEvent {
        SecurityEvent::new(kind, f.clock.now_unix_ms())
            .ip(Some(ip.parse().unwrap()))
            .subject(subject)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    async fn fail_logins(f: &Fixture, from: &str, accounts: &[&str]) -> Vec<Detection> {
        let mut found = Vec::new();
        for account in accounts {
            found.extend(
                f.threats
                    .process(&event(f, SecurityEventKind::LoginFailure, from, account))
                    .await,
            );
            f.clock.advance(Duration::from_millis(100));
        }
        found
    }

    #[tokio::test]
    async fn brute_force_from_one_address_blocks_it_and_repeat_offences_block_longer() {
        let f = fixture(
            only(DetectorKind::BruteForceIp, rule(5, ResponseAction::BlockIp)),
            Reputation::empty(),
        );
        let found = fail_logins(&f, "198.51.100.7", &["a", "b", "a", "c"]).await;
        assert!(found.is_empty(), "4 failures are under the threshold");
        assert_eq!(f.threats.check_ip(ip("198.51.100.7")), IpVerdict::Pass);
        let found = fail_logins(&f, "198.51.100.7", &["d", "e", "f"]).await;
        assert_eq!(found.len(), 1, "one detection per attack and window");
        assert_eq!(found[0].detector, DetectorKind::BruteForceIp);
        assert_eq!(found[0].evidence["count"], 5);
        let IpVerdict::Refused(Refusal::Block(block)) = f.threats.check_ip(ip("198.51.100.7"))
        else {
            panic!("not blocked");
        };
        assert_eq!(block.expires_at_ms - block.created_at_ms, 60_000);
        assert_eq!(block.offense, 1);
        assert_eq!(f.threats.check_ip(ip("198.51.100.8")), IpVerdict::Pass);

        // The block ends with its TTL; the next attack is blocked twice as long.
        f.clock.advance(Duration::from_secs(61));
        assert_eq!(f.threats.check_ip(ip("198.51.100.7")), IpVerdict::Pass);
        let found = fail_logins(&f, "198.51.100.7", &["a"; 5]).await;
        assert_eq!(found.len(), 1);
        let IpVerdict::Refused(Refusal::Block(block)) = f.threats.check_ip(ip("198.51.100.7"))
        else {
            panic!("not blocked again");
        };
        assert_eq!(block.offense, 2);
        assert_eq!(block.expires_at_ms - block.created_at_ms, 120_000);

        let notices = f.notices.lock().unwrap();
        let kinds: Vec<&str> = notices
            .iter()
            .map(|n| match n {
                ThreatNotice::Detection { .. } => "detection",
                ThreatNotice::Action { .. } => "action",
                ThreatNotice::RateLimitTightened { .. } => "tightened",
                ThreatNotice::ActionSkipped { .. } => "skipped",
                ThreatNotice::Anomaly(_) => "anomaly",
            })
            .collect();
        assert_eq!(kinds, ["detection", "action", "detection", "action"]);
    }

    #[tokio::test]
    async fn failures_outside_the_window_do_not_add_up() {
        let f = fixture(
            only(
                DetectorKind::BruteForceAccount,
                rule(3, ResponseAction::Flag),
            ),
            Reputation::empty(),
        );
        for _ in 0..10 {
            assert!(
                fail_logins(&f, "192.0.2.1", &["alice", "alice"])
                    .await
                    .is_empty()
            );
            f.clock.advance(Duration::from_secs(61));
        }
        let found = fail_logins(&f, "192.0.2.1", &["alice", "alice", "alice"]).await;
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].subject.as_deref(), Some("alice"));
        // The account is flagged, not refused; the address is not concerned.
        let flag = f.threats.check_subject("alice").unwrap();
        assert_eq!(flag.mode, BlockMode::Flag);
        assert_eq!(f.threats.check_ip(ip("192.0.2.1")), IpVerdict::Pass);
    }

    #[tokio::test]
    async fn credential_stuffing_from_one_network_blocks_the_network() {
        let f = fixture(
            only(
                DetectorKind::CredentialStuffing,
                rule(10, ResponseAction::BlockIp),
            ),
            Reputation::empty(),
        );
        // Ten addresses of one /24, each trying two accounts; one login succeeds.
        let mut found = Vec::new();
        for host in 1..=10 {
            let from = format!("203.0.113.{host}");
            let a = format!("user{}", host * 2);
            let b = format!("user{}", host * 2 + 1);
            found.extend(fail_logins(&f, &from, &[&a, &b]).await);
        }
        found.extend(
            f.threats
                .process(&event(
                    &f,
                    SecurityEventKind::LoginSuccess,
                    "203.0.113.3",
                    "user7",
                ))
                .await,
        );
        assert_eq!(found.len(), 1, "{found:?}");
        let d = &found[0];
        assert_eq!(d.detector, DetectorKind::CredentialStuffing);
        assert_eq!(d.source, Some("203.0.113.0/24".parse().unwrap()));
        assert!(d.evidence["accounts"].as_u64().unwrap() >= 10);
        assert!(matches!(
            f.threats.check_ip(ip("203.0.113.200")),
            IpVerdict::Refused(_)
        ));
        assert_eq!(f.threats.check_ip(ip("203.0.114.1")), IpVerdict::Pass);
    }

    #[tokio::test]
    async fn many_accounts_with_mostly_successful_logins_is_not_stuffing() {
        let f = fixture(
            only(
                DetectorKind::CredentialStuffing,
                rule(10, ResponseAction::BlockIp),
            ),
            Reputation::empty(),
        );
        // A corporate NAT: 30 people log in, a few mistype once.
        let mut found = Vec::new();
        for i in 0..30 {
            let account = format!("employee{i}");
            if i % 5 == 0 {
                found.extend(fail_logins(&f, "192.0.2.50", &[&account]).await);
            }
            found.extend(
                f.threats
                    .process(&event(
                        &f,
                        SecurityEventKind::LoginSuccess,
                        "192.0.2.50",
                        &account,
                    ))
                    .await,
            );
        }
        assert!(found.is_empty(), "{found:?}");
    }

    #[tokio::test]
    async fn password_spraying_is_seen_through_the_fingerprint_across_addresses() {
        let f = fixture(
            only(DetectorKind::PasswordSpraying, rule(8, ResponseAction::Log)),
            Reputation::empty(),
        );
        let mut found = Vec::new();
        for i in 0..8 {
            let mut e = event(
                &f,
                SecurityEventKind::LoginFailure,
                &format!("198.51.100.{i}"),
                &format!("victim{i}"),
            );
            e.credential_fingerprint = Some("f1f1".into());
            found.extend(f.threats.process(&e).await);
            // Other passwords on the same accounts do not count.
            let mut other = e.clone();
            other.credential_fingerprint = Some(format!("other{i}"));
            found.extend(f.threats.process(&other).await);
        }
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].credential_fingerprint.as_deref(), Some("f1f1"));
        assert_eq!(found[0].evidence["accounts"], 8);
        assert!(f.threats.blocks().is_empty(), "the action is log");
    }

    #[tokio::test]
    async fn token_reuse_blocks_the_subject() {
        let f = fixture(
            only(
                DetectorKind::TokenReuse,
                rule(1, ResponseAction::BlockSubject),
            ),
            Reputation::empty(),
        );
        let found = f
            .threats
            .process(&event(
                &f,
                SecurityEventKind::RefreshTokenReuse,
                "192.0.2.9",
                "carol",
            ))
            .await;
        assert_eq!(found.len(), 1);
        assert!(f.threats.check_subject("carol").is_some());
        assert_eq!(f.threats.check_ip(ip("192.0.2.9")), IpVerdict::Pass);
    }

    #[tokio::test]
    async fn allow_lists_stop_automatic_blocks_but_not_manual_ones() {
        let f = fixture(
            only(DetectorKind::BruteForceIp, rule(2, ResponseAction::BlockIp)),
            Reputation::from_networks(
                vec![("office".into(), vec!["192.0.2.0/24".parse().unwrap()])],
                vec![("drop".into(), vec!["192.0.2.0/23".parse().unwrap()])],
            ),
        );
        assert_eq!(
            f.threats.check_ip(ip("192.0.2.5")),
            IpVerdict::Pass,
            "allow beats the block list"
        );
        assert!(matches!(
            f.threats.check_ip(ip("192.0.3.5")),
            IpVerdict::Refused(Refusal::List(_))
        ));
        assert_eq!(fail_logins(&f, "192.0.2.5", &["a", "b"]).await.len(), 1);
        assert_eq!(f.threats.check_ip(ip("192.0.2.5")), IpVerdict::Pass);
        assert!(matches!(
            f.notices.lock().unwrap().last(),
            Some(ThreatNotice::ActionSkipped {
                reason: "allowlisted",
                ..
            })
        ));
        f.threats
            .block(
                BlockTarget::ip("192.0.2.5/32".parse().unwrap()),
                10_000,
                "ops".into(),
                "key-1".into(),
            )
            .await
            .unwrap();
        assert!(
            matches!(f.threats.check_ip(ip("192.0.2.5")), IpVerdict::Refused(Refusal::Block(b)) if b.is_manual())
        );
        let lifted = f
            .threats
            .unblock(&BlockTarget::ip("192.0.2.5/32".parse().unwrap()))
            .await
            .unwrap();
        assert!(lifted.is_some());
        assert_eq!(f.threats.check_ip(ip("192.0.2.5")), IpVerdict::Pass);
    }

    #[tokio::test]
    async fn related_detections_share_an_incident_with_its_events() {
        let mut settings = only(DetectorKind::BruteForceIp, rule(3, ResponseAction::Log));
        settings.brute_force_account = rule(3, ResponseAction::Log);
        let f = fixture(settings, Reputation::empty());
        // Unrelated noise first.
        fail_logins(&f, "192.0.2.77", &["zed"]).await;
        let found = fail_logins(&f, "198.51.100.9", &["alice", "alice", "alice"]).await;
        assert_eq!(found.len(), 2, "both detectors fire on the third failure");
        fail_logins(&f, "198.51.100.9", &["bob"]).await;
        let incidents = f.threats.incidents(None, 10, false).await;
        assert_eq!(incidents.len(), 1);
        let incident = &incidents[0];
        assert_eq!(incident.detectors.len(), 2);
        assert!(incident.keys.contains("ip:198.51.100.9/32"));
        assert!(incident.keys.contains("subject:-/alice"));
        assert_eq!(incident.status, "open");
        assert_eq!(incident.event_count, 2, "the trigger and the later failure");
        f.clock.advance(Duration::from_secs(3 * 3600));
        assert_eq!(
            f.threats.incidents(None, 10, false).await[0].status,
            "closed"
        );
        assert!(f.threats.incidents(None, 10, true).await.is_empty());
    }

    #[tokio::test]
    async fn the_started_service_consumes_emitted_events() {
        let f = fixture(
            only(DetectorKind::BruteForceIp, rule(3, ResponseAction::BlockIp)),
            Reputation::empty(),
        );
        f.threats.start();
        for _ in 0..3 {
            f.threats.events().emit(event(
                &f,
                SecurityEventKind::LoginFailure,
                "198.51.100.1",
                "x",
            ));
        }
        for _ in 0..200 {
            if f.threats.processed() == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(f.threats.processed(), 3);
        assert!(matches!(
            f.threats.check_ip(ip("198.51.100.1")),
            IpVerdict::Refused(_)
        ));
    }

    #[tokio::test]
    async fn tightening_escalates_never_loosens_and_is_skipped_without_a_limiter() {
        let set = Arc::new(Tightenings::new(100));
        let mut r = rule(3, ResponseAction::TightenRateLimit);
        r.tighten_factor = 5;
        let f = fixture_with(
            ThreatOptions {
                settings: only(DetectorKind::BruteForceIp, r.clone()),
                tightenings: Some(set.clone()),
                ..ThreatOptions::default()
            },
            64,
        );
        let clock = f.clock.clone();
        assert_eq!(
            fail_logins(&f, "198.51.100.4", &["a", "b", "c"])
                .await
                .len(),
            1
        );
        let now = clock.now_unix_ms();
        assert_eq!(set.factor_for_ip(ip("198.51.100.4"), now), 5);
        assert_eq!(set.factor_for_ip(ip("198.51.100.5"), now), 1);
        assert_eq!(
            f.threats.check_ip(ip("198.51.100.4")),
            IpVerdict::Pass,
            "not a block"
        );
        let listed = f.threats.tightenings();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].expires_at_ms - listed[0].created_at_ms, 60_000);
        {
            let notices = f.notices.lock().unwrap();
            let Some(ThreatNotice::RateLimitTightened { tightening, .. }) = notices.last() else {
                panic!("no tightening notice: {notices:?}");
            };
            assert_eq!(tightening.factor, 5);
            assert_eq!(tightening.detector, "brute_force_ip");
        }
        let incidents = f.threats.incidents(None, 10, false).await;
        assert_eq!(incidents[0].rate_limits.len(), 1);
        // A repeat offence after expiry is tightened twice as long.
        clock.advance(Duration::from_secs(61));
        assert_eq!(
            set.factor_for_ip(ip("198.51.100.4"), clock.now_unix_ms()),
            1
        );
        fail_logins(&f, "198.51.100.4", &["a", "b", "c"]).await;
        let listed = f.threats.tightenings();
        assert_eq!(listed[0].offense, 2);
        assert_eq!(listed[0].expires_at_ms - listed[0].created_at_ms, 120_000);

        // Without the rate limiter's set, the action is reported as skipped.
        let g = fixture(only(DetectorKind::BruteForceIp, r), Reputation::empty());
        fail_logins(&g, "198.51.100.4", &["a", "b", "c"]).await;
        assert!(matches!(
            g.notices.lock().unwrap().last(),
            Some(ThreatNotice::ActionSkipped {
                reason: "no_rate_limiter",
                ..
            })
        ));
    }

    #[tokio::test]
    async fn subjects_and_api_keys_get_baselines_of_their_own() {
        let Fixture {
            clock,
            threats,
            notices,
        } = anomaly_fixture();
        for _ in 0..10 {
            for _ in 0..5 {
                threats.record_principal(Some("acme/alice"), Some("key-1"), 200);
                threats.record_principal(Some("acme/bob"), None, 200);
            }
            clock.advance(Duration::from_secs(10));
        }
        // Alice's denials spike; Bob keeps his pace.
        for _ in 0..100 {
            threats.record_principal(Some("acme/alice"), Some("key-1"), 403);
        }
        for _ in 0..5 {
            threats.record_principal(Some("acme/bob"), None, 200);
        }
        let notices = notices.lock().unwrap();
        let alerted: Vec<(KeyKind, String)> = notices
            .iter()
            .filter_map(|n| match n {
                ThreatNotice::Anomaly(a) => Some((a.key.kind, a.key.value.clone())),
                _ => None,
            })
            .collect();
        assert!(
            alerted.contains(&(KeyKind::Subject, "acme/alice".into())),
            "{alerted:?}"
        );
        assert!(
            alerted.contains(&(KeyKind::ApiKey, "key-1".into())),
            "{alerted:?}"
        );
        assert!(!alerted.iter().any(|(_, v)| v == "acme/bob"), "{alerted:?}");
        assert_eq!(threats.anomaly().tracked(), 3);
    }

    #[tokio::test]
    async fn request_spikes_are_reported_as_anomalies() {
        let Fixture {
            clock,
            threats,
            notices,
        } = anomaly_fixture();
        for _ in 0..10 {
            for _ in 0..5 {
                threats.record_request(ip("192.0.2.1"), "GET /v1/x", None, 200);
            }
            clock.advance(Duration::from_secs(10));
        }
        for _ in 0..200 {
            threats.record_request(ip("192.0.2.1"), "GET /v1/x", Some("key-1"), 200);
        }
        let notices = notices.lock().unwrap();
        let keys: Vec<KeyKind> = notices
            .iter()
            .filter_map(|n| match n {
                ThreatNotice::Anomaly(a) => Some(a.key.kind),
                _ => None,
            })
            .collect();
        assert_eq!(
            keys,
            [KeyKind::Ip, KeyKind::Route],
            "the new API key has no baseline yet"
        );
    }
}
