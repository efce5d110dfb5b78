//! Incidents: detections, the actions taken on them, and the security events
//! around them, grouped by who they concern. A detection joins the open
//! incident sharing one of its keys (its source address or network, its
//! subject, its password fingerprint); an incident closes once nothing joined
//! it for `gap`. Kept in process and bounded: beyond `max` the oldest go.
//! With Redis, `shared_incidents.rs` publishes them for every instance.

use super::detect::Detection;
use crate::ratelimit::Tightening;
use crate::reputation::Block;
use palisade_core::SecurityEvent;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Mutex;

/// Detections and actions kept per incident; more are only counted.
const MAX_LISTED: usize = 50;
/// Related events kept per incident as a sample.
const MAX_SAMPLE: usize = 20;

/// A detection as an incident lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentDetection {
    /// The detection's id.
    pub id: String,
    /// The detector.
    pub detector: String,
    /// When (Unix ms).
    pub at_ms: i64,
    /// Its summary.
    pub summary: String,
}

/// Related detections, actions and events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Unique id (UUIDv7, so ids sort by opening time).
    pub id: String,
    /// `open` while events keep joining, `closed` after the gap.
    pub status: String,
    /// When it opened (Unix ms).
    pub opened_at_ms: i64,
    /// When something last joined (Unix ms).
    pub last_seen_ms: i64,
    /// What it concerns: `ip:...`, `subject:...`, `fingerprint:...`.
    pub keys: BTreeSet<String>,
    /// Detectors that fired.
    pub detectors: BTreeSet<String>,
    /// The first detections.
    pub detections: Vec<IncidentDetection>,
    /// All detections.
    pub detection_count: u64,
    /// Blocks and flags made (the first ones).
    pub actions: Vec<Block>,
    /// Rate-limit tightenings made (the first ones).
    #[serde(default)]
    pub rate_limits: Vec<Tightening>,
    /// Security events concerning its keys while it was open.
    pub event_count: u64,
    /// The latest of those events.
    pub events: VecDeque<SecurityEvent>,
}

#[derive(Debug, Default)]
struct Inner {
    incidents: BTreeMap<String, Incident>,
    by_key: HashMap<String, String>,
}

/// The incidents of this instance.
#[derive(Debug)]
pub struct Incidents {
    inner: Mutex<Inner>,
    gap_ms: i64,
    max: usize,
}

/// The keys a detection concerns.
pub(crate) fn keys_of(d: &Detection) -> Vec<String> {
    let mut keys = Vec::new();
    if let Some(net) = d.source {
        keys.push(format!("ip:{net}"));
    }
    if let Some(subject) = &d.subject {
        let tenant = d.tenant.as_ref().map_or("-", |t| t.as_str());
        keys.push(format!("subject:{tenant}/{subject}"));
    }
    if let Some(fp) = &d.credential_fingerprint {
        keys.push(format!("fingerprint:{fp}"));
    }
    keys
}

/// The keys an event could join an incident by.
fn event_keys(e: &SecurityEvent) -> Vec<String> {
    let mut keys = Vec::new();
    if let Some(ip) = e.ip {
        keys.push(format!("ip:{}", ipnet::IpNet::from(ip.to_canonical())));
    }
    if let Some(subject) = &e.subject {
        let tenant = e.tenant.as_ref().map_or("-", |t| t.as_str());
        keys.push(format!("subject:{tenant}/{subject}"));
    }
    if let Some(fp) = &e.credential_fingerprint {
        keys.push(format!("fingerprint:{fp}"));
    }
    keys
}

impl Incidents {
    /// Incidents closing after `gap_ms` of quiet, at most `max` kept.
    pub fn new(gap_ms: u64, max: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            gap_ms: i64::try_from(gap_ms).unwrap_or(i64::MAX / 4),
            max: max.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Files `detection` into its open incident, else into `joining` (the
    /// incident of another detection of the same event), else into a new one
    /// with id `new_id`; returns the incident's id.
    pub fn record_detection(
        &self,
        detection: &Detection,
        joining: Option<&str>,
        new_id: String,
    ) -> String {
        let keys = keys_of(detection);
        let at = detection.at_ms;
        let mut inner = self.lock();
        let gap = self.gap_ms;
        let open = keys.iter().find_map(|k| {
            let id = inner.by_key.get(k)?;
            let incident = inner.incidents.get(id)?;
            (at - incident.last_seen_ms <= gap).then(|| id.clone())
        });
        let joined = joining
            .filter(|id| inner.incidents.contains_key(*id))
            .map(str::to_owned);
        let id = match open.or(joined) {
            Some(id) => id,
            None => {
                inner.incidents.insert(
                    new_id.clone(),
                    Incident {
                        id: new_id.clone(),
                        status: "open".to_owned(),
                        opened_at_ms: at,
                        last_seen_ms: at,
                        keys: BTreeSet::new(),
                        detectors: BTreeSet::new(),
                        detections: Vec::new(),
                        detection_count: 0,
                        actions: Vec::new(),
                        rate_limits: Vec::new(),
                        event_count: 0,
                        events: VecDeque::new(),
                    },
                );
                new_id
            }
        };
        for key in &keys {
            inner.by_key.insert(key.clone(), id.clone());
        }
        if let Some(incident) = inner.incidents.get_mut(&id) {
            incident.last_seen_ms = incident.last_seen_ms.max(at);
            incident.keys.extend(keys);
            incident
                .detectors
                .insert(detection.detector.as_str().to_owned());
            incident.detection_count += 1;
            if incident.detections.len() < MAX_LISTED {
                incident.detections.push(IncidentDetection {
                    id: detection.id.clone(),
                    detector: detection.detector.as_str().to_owned(),
                    at_ms: at,
                    summary: detection.summary.clone(),
                });
            }
            push_event(incident, &detection.trigger);
        }
        self.trim(&mut inner);
        id
    }

    /// Records a block or flag made for incident `id`.
    pub fn record_action(&self, id: &str, block: &Block) {
        let mut inner = self.lock();
        if let Some(incident) = inner.incidents.get_mut(id)
            && incident.actions.len() < MAX_LISTED
        {
            incident.actions.push(block.clone());
        }
    }

    /// Records a rate-limit tightening made for incident `id`.
    pub fn record_tightening(&self, id: &str, tightening: &Tightening) {
        let mut inner = self.lock();
        if let Some(incident) = inner.incidents.get_mut(id)
            && incident.rate_limits.len() < MAX_LISTED
        {
            incident.rate_limits.push(tightening.clone());
        }
    }

    /// Adds `event` to the open incident concerning it, if any; that
    /// incident's id and its event count.
    pub fn record_event(&self, event: &SecurityEvent) -> Option<(String, u64)> {
        let keys = event_keys(event);
        if keys.is_empty() {
            return None;
        }
        let mut inner = self.lock();
        let gap = self.gap_ms;
        let id = keys.iter().find_map(|k| inner.by_key.get(k).cloned())?;
        let incident = inner.incidents.get_mut(&id)?;
        if event.at_ms - incident.last_seen_ms > gap {
            return None;
        }
        incident.last_seen_ms = incident.last_seen_ms.max(event.at_ms);
        push_event(incident, event);
        Some((id, incident.event_count))
    }

    /// Takes in `incident` as read from the shared store (another instance
    /// may have added to it), replacing this instance's copy, so the next
    /// detection concerning one of its keys joins it.
    pub fn adopt(&self, incident: Incident) {
        let mut inner = self.lock();
        for key in &incident.keys {
            inner.by_key.insert(key.clone(), incident.id.clone());
        }
        inner.incidents.insert(incident.id.clone(), incident);
        self.trim(&mut inner);
    }

    /// `incident` with its status as of `now_ms`.
    pub fn with_status(&self, mut incident: Incident, now_ms: i64) -> Incident {
        incident.status = if now_ms - incident.last_seen_ms > self.gap_ms {
            "closed"
        } else {
            "open"
        }
        .to_owned();
        incident
    }

    /// How long quiet keeps an incident open, ms.
    pub fn gap_ms(&self) -> i64 {
        self.gap_ms
    }

    /// Incidents newest first, those older than the id `before` when given,
    /// at most `limit`; `open_only` leaves closed ones out.
    pub fn list(
        &self,
        now_ms: i64,
        before: Option<&str>,
        limit: usize,
        open_only: bool,
    ) -> Vec<Incident> {
        let inner = self.lock();
        let range = match before {
            Some(before) => inner.incidents.range(..before.to_owned()),
            None => inner.incidents.range::<String, _>(..),
        };
        range
            .rev()
            .map(|(_, i)| self.with_status(i.clone(), now_ms))
            .filter(|i| !open_only || i.status == "open")
            .take(limit)
            .collect()
    }

    /// One incident.
    pub fn get(&self, id: &str) -> Option<Incident> {
        self.lock().incidents.get(id).cloned()
    }

    /// Incidents held.
    pub fn len(&self) -> usize {
        self.lock().incidents.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn trim(&self, inner: &mut Inner) {
        while inner.incidents.len() > self.max {
            let Some((oldest, _)) = inner.incidents.pop_first() else {
                break;
            };
            inner.by_key.retain(|_, id| *id != oldest);
        }
    }
}

fn push_event(incident: &mut Incident, event: &SecurityEvent) {
    // One event can trigger several detections; it counts once.
    if incident.events.back() == Some(event) {
        return;
    }
    incident.event_count += 1;
    if incident.events.len() >= MAX_SAMPLE {
        incident.events.pop_front();
    }
    incident.events.push_back(event.clone());
}
