//! The account-attack detectors: each security event is counted into a few
//! sliding windows, and a window reaching its threshold makes a detection
//! (once per attack and window, see `window.rs`).
//!
//! | detector | counts | within the window of |
//! |---|---|---|
//! | `brute_force_account` | failed logins of one account | that account |
//! | `brute_force_ip` | failed logins from one address | that address |
//! | `credential_stuffing` | distinct accounts tried, and the share of successes | one address, and its /24 (IPv4) or /64 (IPv6) |
//! | `password_spraying` | distinct accounts failing with one `credential_fingerprint` | that fingerprint |
//! | `token_reuse` | refresh-token reuses | one subject |
//! | `inspection_<category>` | inspected requests with a finding of the category | one address, else one subject (`inspection.rs`) |
//!
//! Accounts are counted per tenant: `alice` of two tenants is two accounts.

use super::settings::{DetectorRule, ThreatSettings};
use super::window::Windows;
use ipnet::IpNet;
use palisade_core::principal::TenantId;
use palisade_core::{SecurityEvent, SecurityEventKind};
use serde::Serialize;
use std::net::IpAddr;

/// Which detector found something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorKind {
    /// Many failed logins of one account.
    BruteForceAccount,
    /// Many failed logins from one address.
    BruteForceIp,
    /// One address or network trying many accounts, rarely succeeding.
    CredentialStuffing,
    /// One password tried on many accounts.
    PasswordSpraying,
    /// A rotated refresh token presented again.
    TokenReuse,
    /// Repeated SQL injection findings of request inspection.
    InspectionSqli,
    /// Repeated cross-site scripting findings.
    InspectionXss,
    /// Repeated path traversal findings.
    InspectionPathTraversal,
    /// Repeated OS command injection findings.
    InspectionCmdi,
    /// Repeated protocol findings (uninspectable requests).
    InspectionProtocol,
}

impl DetectorKind {
    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BruteForceAccount => "brute_force_account",
            Self::BruteForceIp => "brute_force_ip",
            Self::CredentialStuffing => "credential_stuffing",
            Self::PasswordSpraying => "password_spraying",
            Self::TokenReuse => "token_reuse",
            Self::InspectionSqli => "inspection_sqli",
            Self::InspectionXss => "inspection_xss",
            Self::InspectionPathTraversal => "inspection_path_traversal",
            Self::InspectionCmdi => "inspection_cmdi",
            Self::InspectionProtocol => "inspection_protocol",
        }
    }

    /// The rule of this detector in `settings`.
    pub fn rule(self, settings: &ThreatSettings) -> &DetectorRule {
        match self {
            Self::BruteForceAccount => &settings.brute_force_account,
            Self::BruteForceIp => &settings.brute_force_ip,
            Self::CredentialStuffing => &settings.credential_stuffing,
            Self::PasswordSpraying => &settings.password_spraying,
            Self::TokenReuse => &settings.token_reuse,
            Self::InspectionSqli => &settings.inspection_sqli,
            Self::InspectionXss => &settings.inspection_xss,
            Self::InspectionPathTraversal => &settings.inspection_path_traversal,
            Self::InspectionCmdi => &settings.inspection_cmdi,
            Self::InspectionProtocol => &settings.inspection_protocol,
        }
    }
}

/// One detection, with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    /// Unique id (UUIDv7).
    pub id: String,
    /// The detector.
    pub detector: DetectorKind,
    /// When (the triggering event's time, Unix ms).
    pub at_ms: i64,
    /// The tenant of the triggering event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<TenantId>,
    /// The address or network the attack came from, when one is to blame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<IpNet>,
    /// The account attacked or misused, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The password fingerprint, for spraying.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_fingerprint: Option<String>,
    /// One line for people.
    pub summary: String,
    /// The numbers behind it: counts, threshold, window, ratio.
    pub evidence: serde_json::Map<String, serde_json::Value>,
    /// The event that crossed the threshold.
    pub trigger: SecurityEvent,
}

/// Runs the detectors over events.
#[derive(Debug)]
pub(crate) struct Detectors {
    settings: ThreatSettings,
    windows: Windows,
    clock: palisade_core::SharedClock,
}

impl Detectors {
    pub(crate) fn new(
        settings: ThreatSettings,
        windows: Windows,
        clock: palisade_core::SharedClock,
    ) -> Self {
        Self {
            settings,
            windows,
            clock,
        }
    }

    pub(super) fn new_id(&self) -> String {
        palisade_core::new_id(&*self.clock).to_string()
    }

    pub(crate) fn windows(&self) -> &Windows {
        &self.windows
    }

    pub(crate) fn settings(&self) -> &ThreatSettings {
        &self.settings
    }

    /// Counts `event` and returns what it made cross a threshold.
    pub(crate) async fn observe(&self, event: &SecurityEvent) -> Vec<Detection> {
        let mut found = Vec::new();
        let tenant = event.tenant.as_ref().map_or("-", |t| t.as_str());
        let account = event.subject.as_deref().map(|s| format!("{tenant}/{s}"));
        let ip = event.ip.map(|ip| ip.to_canonical());
        let id = self.new_id();
        match event.kind {
            SecurityEventKind::LoginFailure => {
                if let Some(account) = &account {
                    let rule = &self.settings.brute_force_account;
                    if let Some(d) = self
                        .count(
                            DetectorKind::BruteForceAccount,
                            rule,
                            &format!("bfa:{account}"),
                            &id,
                            event,
                        )
                        .await
                    {
                        found.push(d.subject(event).summary(format!(
                            "{} failed logins of one account within {} s",
                            rule.threshold,
                            rule.window_ms / 1000
                        )));
                    }
                }
                if let Some(ip) = ip {
                    let rule = &self.settings.brute_force_ip;
                    if let Some(d) = self
                        .count(
                            DetectorKind::BruteForceIp,
                            rule,
                            &format!("bfi:{ip}"),
                            &id,
                            event,
                        )
                        .await
                    {
                        found.push(d.source(IpNet::from(ip)).summary(format!(
                            "{} failed logins from one address within {} s",
                            rule.threshold,
                            rule.window_ms / 1000
                        )));
                    }
                    if let Some(account) = &account {
                        found.extend(self.stuffing(ip, Some(account), &id, event, false).await);
                    }
                }
                if let (Some(fingerprint), Some(account)) =
                    (&event.credential_fingerprint, &account)
                {
                    found.extend(self.spraying(fingerprint, account, event).await);
                }
            }
            SecurityEventKind::LoginSuccess => {
                if let Some(ip) = ip {
                    found.extend(self.stuffing(ip, account.as_ref(), &id, event, true).await);
                }
            }
            SecurityEventKind::RefreshTokenReuse => {
                if let Some(account) = &account {
                    let rule = &self.settings.token_reuse;
                    if let Some(d) = self
                        .count(
                            DetectorKind::TokenReuse,
                            rule,
                            &format!("tr:{account}"),
                            &id,
                            event,
                        )
                        .await
                    {
                        let mut d = d.subject(event).summary(
                            "a rotated refresh token was presented again: its family is revoked"
                                .into(),
                        );
                        if let Some(ip) = ip {
                            d.source = Some(IpNet::from(ip));
                        }
                        found.push(d);
                    }
                }
            }
            SecurityEventKind::InspectionFinding => {
                found.extend(self.inspection(event, ip, account.as_deref()).await);
            }
            _ => {}
        }
        found
    }

    /// Adds one occurrence to `key`; a detection if it reached the threshold
    /// and nobody claimed this attack yet.
    pub(super) async fn count(
        &self,
        detector: DetectorKind,
        rule: &DetectorRule,
        key: &str,
        member: &str,
        event: &SecurityEvent,
    ) -> Option<Detection> {
        if !rule.enabled {
            return None;
        }
        let n = self
            .windows
            .add(key, member, event.at_ms, rule.window_ms, rule.threshold)
            .await;
        if n < rule.threshold || !self.windows.claim(key, event.at_ms, rule.window_ms).await {
            return None;
        }
        let mut d = Detection::new(detector, event, self.new_id());
        d.evidence.insert("count".into(), n.into());
        d.evidence.insert("threshold".into(), rule.threshold.into());
        d.evidence.insert("window_ms".into(), rule.window_ms.into());
        Some(d)
    }

    /// Credential stuffing at the address and at its network.
    async fn stuffing(
        &self,
        ip: IpAddr,
        account: Option<&String>,
        id: &str,
        event: &SecurityEvent,
        success: bool,
    ) -> Option<Detection> {
        let rule = &self.settings.credential_stuffing;
        if !rule.enabled {
            return None;
        }
        let prefix = match ip {
            IpAddr::V4(_) => rule.ipv4_prefix,
            IpAddr::V6(_) => rule.ipv6_prefix,
        };
        let network = IpNet::new(ip, prefix)
            .map(|n| n.trunc())
            .unwrap_or(IpNet::from(ip));
        let mut levels = vec![IpNet::from(ip)];
        if network != IpNet::from(ip) {
            levels.push(network);
        }
        // Attempts are capped well above what the ratio needs to be exact
        // at the threshold.
        let cap = rule.threshold.saturating_mul(20).max(1_000);
        let window = rule.window_ms;
        let mut detection = None;
        for level in levels {
            let (ok_key, fail_key, acct_key) = (
                format!("cs:ok:{level}"),
                format!("cs:fail:{level}"),
                format!("cs:acct:{level}"),
            );
            let (successes, failures, accounts) = if success {
                let s = self
                    .windows
                    .add(&ok_key, id, event.at_ms, window, cap)
                    .await;
                let f = self
                    .windows
                    .add(&fail_key, "", event.at_ms, window, cap)
                    .await;
                let a = match account {
                    Some(a) => {
                        self.windows
                            .add(&acct_key, a, event.at_ms, window, cap)
                            .await
                    }
                    None => {
                        self.windows
                            .add(&acct_key, "", event.at_ms, window, cap)
                            .await
                    }
                };
                (s, f, a)
            } else {
                let f = self
                    .windows
                    .add(&fail_key, id, event.at_ms, window, cap)
                    .await;
                let a = self
                    .windows
                    .add(
                        &acct_key,
                        account.map_or("", String::as_str),
                        event.at_ms,
                        window,
                        cap,
                    )
                    .await;
                let s = self
                    .windows
                    .add(&ok_key, "", event.at_ms, window, cap)
                    .await;
                (s, f, a)
            };
            // A network counts as the attacker only when several of its
            // addresses take part; one address alone is the address's case.
            let addresses = if level.prefix_len() == level.max_prefix_len() {
                1
            } else {
                self.windows
                    .add(
                        &format!("cs:ips:{level}"),
                        &ip.to_string(),
                        event.at_ms,
                        window,
                        2,
                    )
                    .await
            };
            let attempts = successes + failures;
            let ratio = if attempts == 0 {
                0.0
            } else {
                successes as f64 / attempts as f64
            };
            let single = level.prefix_len() == level.max_prefix_len();
            if detection.is_none()
                && (single || addresses >= 2)
                && accounts >= rule.threshold
                && ratio <= rule.max_success_ratio
                && self.windows.claim(&acct_key, event.at_ms, window).await
            {
                let mut d = Detection::new(DetectorKind::CredentialStuffing, event, self.new_id())
                    .source(level)
                    .summary(format!(
                        "{accounts} accounts tried from {level} within {} s, {:.0}% succeeding",
                        window / 1000,
                        ratio * 100.0
                    ));
                d.evidence.insert("accounts".into(), accounts.into());
                d.evidence.insert("failures".into(), failures.into());
                d.evidence.insert("successes".into(), successes.into());
                d.evidence.insert("success_ratio".into(), ratio.into());
                d.evidence.insert("threshold".into(), rule.threshold.into());
                d.evidence.insert("window_ms".into(), window.into());
                detection = Some(d);
            }
        }
        detection
    }

    async fn spraying(
        &self,
        fingerprint: &str,
        account: &str,
        event: &SecurityEvent,
    ) -> Option<Detection> {
        let rule = &self.settings.password_spraying;
        if !rule.enabled {
            return None;
        }
        let key = format!("ps:{fingerprint}");
        let accounts = self
            .windows
            .add(&key, account, event.at_ms, rule.window_ms, rule.threshold)
            .await;
        if accounts < rule.threshold || !self.windows.claim(&key, event.at_ms, rule.window_ms).await
        {
            return None;
        }
        let mut d =
            Detection::new(DetectorKind::PasswordSpraying, event, self.new_id()).summary(format!(
                "one password failed on {accounts} accounts within {} s",
                rule.window_ms / 1000
            ));
        d.credential_fingerprint = Some(fingerprint.to_owned());
        if let Some(ip) = event.ip {
            d.source = Some(IpNet::from(ip.to_canonical()));
        }
        d.evidence.insert("accounts".into(), accounts.into());
        d.evidence.insert("threshold".into(), rule.threshold.into());
        d.evidence.insert("window_ms".into(), rule.window_ms.into());
        Some(d)
    }
}

impl Detection {
    pub(super) fn new(detector: DetectorKind, event: &SecurityEvent, id: String) -> Self {
        Self {
            id,
            detector,
            at_ms: event.at_ms,
            tenant: event.tenant.clone(),
            source: None,
            subject: None,
            credential_fingerprint: None,
            summary: String::new(),
            evidence: serde_json::Map::new(),
            trigger: event.clone(),
        }
    }

    pub(super) fn subject(mut self, event: &SecurityEvent) -> Self {
        self.subject = event.subject.clone();
        self
    }

    pub(super) fn source(mut self, net: IpNet) -> Self {
        self.source = Some(net);
        self
    }

    pub(super) fn summary(mut self, summary: String) -> Self {
        self.summary = summary;
        self
    }
}
