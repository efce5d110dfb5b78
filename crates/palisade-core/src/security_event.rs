//! Security events: the one typed stream that the capabilities which see attacks
//! (authentication, rate limiting, inspection, authorization) feed, and that
//! threat detection consumes.
//!
//! Emitting never blocks and never fails the request that caused it: a sink is
//! a bounded broadcast, and a slow consumer loses the oldest events (and sees
//! how many it lost) instead of slowing logins down.

use crate::principal::TenantId;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::sync::Arc;
use tokio::sync::broadcast;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityEventKind {
    /// A password (or other credential) check failed.
    LoginFailure,
    /// A password (or other credential) check succeeded.
    LoginSuccess,
    /// An account or client was locked out after repeated failures.
    Lockout,
    /// A refresh token was presented again after it had been rotated: its whole
    /// family was revoked.
    RefreshTokenReuse,
    /// A bearer token was refused (bad signature, expired, revoked, ...).
    TokenRejected,
    /// A request was refused by a rate limit.
    RateLimitBlock,
    /// Request inspection found an attack pattern.
    InspectionFinding,
    /// An authorization check denied an action.
    AuthorizationDeny,
}

impl SecurityEventKind {
    /// The stable snake_case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoginFailure => "login_failure",
            Self::LoginSuccess => "login_success",
            Self::Lockout => "lockout",
            Self::RefreshTokenReuse => "refresh_token_reuse",
            Self::TokenRejected => "token_rejected",
            Self::RateLimitBlock => "rate_limit_block",
            Self::InspectionFinding => "inspection_finding",
            Self::AuthorizationDeny => "authorization_deny",
        }
    }
}

/// One security event. Carries identifiers, never secrets: a password attempt is
/// represented only by `credential_fingerprint`, a keyed hash that lets spraying
/// (one password tried on many accounts) be seen without the password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecurityEvent {
    /// What happened.
    pub kind: SecurityEventKind,
    /// When (Unix ms).
    pub at_ms: i64,
    /// The tenant it happened in, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<TenantId>,
    /// The account or token subject concerned, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The client address, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// Keyed hash of the credential tried (hex), for spraying detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_fingerprint: Option<String>,
    /// A short machine-readable reason (`expired`, `bad_password`, a rule id, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Anything else worth keeping as evidence (never secrets).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub detail: serde_json::Map<String, serde_json::Value>,
}

impl SecurityEvent {
    /// An event of `kind` at `at_ms` with nothing else filled in.
    pub fn new(kind: SecurityEventKind, at_ms: i64) -> Self {
        Self {
            kind,
            at_ms,
            tenant: None,
            subject: None,
            ip: None,
            credential_fingerprint: None,
            reason: None,
            detail: serde_json::Map::new(),
        }
    }

    /// Sets the tenant.
    pub fn tenant(mut self, tenant: TenantId) -> Self {
        self.tenant = Some(tenant);
        self
    }

    /// Sets the subject.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Sets the client address.
    pub fn ip(mut self, ip: Option<IpAddr>) -> Self {
        self.ip = ip;
        self
    }

    /// Sets the reason code.
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}

/// Where security events go: a bounded broadcast every detector can subscribe to.
/// Cheap to clone; emitting with no subscriber drops the event.
#[derive(Debug, Clone)]
pub struct SecurityEvents {
    sender: Arc<broadcast::Sender<SecurityEvent>>,
}

impl SecurityEvents {
    /// Events kept for a subscriber that has fallen behind before it starts losing them.
    pub const DEFAULT_CAPACITY: usize = 16 * 1024;

    /// A sink keeping up to `capacity` events per lagging subscriber.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self {
            sender: Arc::new(sender),
        }
    }

    /// Publishes `event` to every current subscriber. Never blocks.
    pub fn emit(&self, event: SecurityEvent) {
        metrics::counter!("palisade_security_events_total", "kind" => event.kind.as_str())
            .increment(1);
        // An error only means nobody is subscribed, which is allowed.
        let _ = self.sender.send(event);
    }

    /// A new subscription, receiving events emitted from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<SecurityEvent> {
        self.sender.subscribe()
    }
}

impl Default for SecurityEvents {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_receive_what_is_emitted_after_they_subscribe() {
        let events = SecurityEvents::new(8);
        events.emit(SecurityEvent::new(SecurityEventKind::LoginFailure, 1));
        let mut rx = events.subscribe();
        let sent = SecurityEvent::new(SecurityEventKind::Lockout, 2)
            .subject("alice")
            .reason("too_many_failures");
        events.emit(sent.clone());
        assert_eq!(rx.recv().await.ok(), Some(sent));
    }

    #[test]
    fn serializes_with_snake_case_kinds_and_without_empty_fields() {
        let event = SecurityEvent::new(SecurityEventKind::RefreshTokenReuse, 5).subject("bob");
        let json = serde_json::to_value(&event).unwrap_or_default();
        assert_eq!(
            json,
            serde_json::json!({"kind": "refresh_token_reuse", "at_ms": 5, "subject": "bob"})
        );
        let back: SecurityEvent = serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, event);
    }

    #[test]
    fn a_slow_subscriber_loses_the_oldest_events_not_the_emitter() {
        let events = SecurityEvents::new(2);
        let mut rx = events.subscribe();
        for at in 0..5 {
            events.emit(SecurityEvent::new(SecurityEventKind::LoginFailure, at));
        }
        assert!(matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(3))
        ));
        assert_eq!(rx.try_recv().map(|e| e.at_ms).ok(), Some(3));
    }
}
