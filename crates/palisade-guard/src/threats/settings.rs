//! What each detector looks for and what it does when it finds it.

use crate::GuardError;
use serde::{Deserialize, Serialize};

/// What a detector does on a detection. Every detection is also recorded in
/// the audit log and its incident, whatever the action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseAction {
    /// Record it, nothing more.
    Log,
    /// Mark the client address (or subject) as suspicious for the TTL:
    /// requests pass, carrying the mark.
    Flag,
    /// Refuse the client address, or the network for network-wide
    /// detections, for the TTL.
    BlockIp,
    /// Refuse the subject (account) for the TTL.
    BlockSubject,
    /// Make the client address (or network, or else the subject) pay
    /// `tighten_factor` units per request under the rate-limit rules keyed
    /// by it, for the TTL: its quota shrinks to `1 / tighten_factor`.
    TightenRateLimit,
}

/// One detector's thresholds and response.
///
/// Fields not given take the generic defaults below, not the detector's own
/// defaults: give a detector's whole table when changing one of its fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorRule {
    /// Whether the detector runs.
    pub enabled: bool,
    /// Events (or, for stuffing and spraying, distinct accounts) within the
    /// window that make a detection.
    pub threshold: u64,
    /// The sliding window, ms.
    pub window_ms: u64,
    /// Credential stuffing only: the largest share of successful logins
    /// (successes / attempts) that still counts as stuffing.
    pub max_success_ratio: f64,
    /// Credential stuffing only: the IPv4 network size an attacker is
    /// grouped by (24 groups a /24).
    pub ipv4_prefix: u8,
    /// Credential stuffing only: the IPv6 network size (64 groups a /64).
    pub ipv6_prefix: u8,
    /// What to do.
    pub action: ResponseAction,
    /// How long a block or flag lasts on a first offence, ms.
    pub block_ttl_ms: u64,
    /// Each repeat offence within `escalation_window_ms` multiplies the TTL
    /// by this (1 = no escalation).
    pub escalation_factor: u32,
    /// The longest a block or flag lasts, however often the target offended.
    pub max_block_ttl_ms: u64,
    /// How far back offences count for escalation, ms.
    pub escalation_window_ms: u64,
    /// `tighten_rate_limit` only: each request of the target costs this many
    /// units (2 to 1000), so it gets `1 / tighten_factor` of its quota.
    pub tighten_factor: u32,
}

impl Default for DetectorRule {
    fn default() -> Self {
        Self {
            enabled: true,
            threshold: 10,
            window_ms: 5 * 60_000,
            max_success_ratio: 0.1,
            ipv4_prefix: 24,
            ipv6_prefix: 64,
            action: ResponseAction::Log,
            block_ttl_ms: 15 * 60_000,
            escalation_factor: 2,
            max_block_ttl_ms: 24 * 3_600_000,
            escalation_window_ms: 24 * 3_600_000,
            tighten_factor: 10,
        }
    }
}

impl DetectorRule {
    fn with(threshold: u64, window_ms: u64, action: ResponseAction) -> Self {
        Self {
            threshold,
            window_ms,
            action,
            ..Self::default()
        }
    }

    /// The TTL of the `offense`-th offence (1-based), escalated and capped.
    pub fn ttl_ms(&self, offense: u32) -> u64 {
        let factor = u64::from(self.escalation_factor.max(1));
        let mut ttl = self.block_ttl_ms;
        for _ in 1..offense {
            ttl = ttl.saturating_mul(factor);
            if ttl >= self.max_block_ttl_ms {
                break;
            }
        }
        ttl.min(self.max_block_ttl_ms)
    }

    fn validate(&self, name: &'static str) -> Result<(), GuardError> {
        let bad = |why: &str| GuardError::invalid(name, why.to_owned());
        if self.threshold == 0 || self.threshold > 1_000_000 {
            return Err(bad("threshold must be between 1 and 1000000"));
        }
        if self.window_ms < 1_000 || self.window_ms > 7 * 24 * 3_600_000 {
            return Err(bad("window_ms must be between 1000 and 604800000"));
        }
        if !(0.0..=1.0).contains(&self.max_success_ratio) {
            return Err(bad("max_success_ratio must be between 0 and 1"));
        }
        if self.ipv4_prefix > 32 || self.ipv6_prefix > 128 {
            return Err(bad(
                "ipv4_prefix must be at most 32 and ipv6_prefix at most 128",
            ));
        }
        if self.block_ttl_ms < 1_000 || self.max_block_ttl_ms < self.block_ttl_ms {
            return Err(bad(
                "block_ttl_ms must be at least 1000 and at most max_block_ttl_ms",
            ));
        }
        if self.escalation_factor == 0 || self.escalation_factor > 100 {
            return Err(bad("escalation_factor must be between 1 and 100"));
        }
        if !(2..=crate::ratelimit::MAX_TIGHTEN_FACTOR).contains(&self.tighten_factor) {
            return Err(bad("tighten_factor must be between 2 and 1000"));
        }
        Ok(())
    }
}

/// All detectors and the limits of their state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThreatSettings {
    /// Failed logins of one account (from anywhere) within the window.
    pub brute_force_account: DetectorRule,
    /// Failed logins from one client address (on any account) within the window.
    pub brute_force_ip: DetectorRule,
    /// One address, or one network (`ipv4_prefix` / `ipv6_prefix`), trying
    /// `threshold` distinct accounts within the window with at most
    /// `max_success_ratio` of its attempts succeeding.
    pub credential_stuffing: DetectorRule,
    /// One `credential_fingerprint` (one password, seen as a keyed hash)
    /// failing on `threshold` distinct accounts within the window.
    pub password_spraying: DetectorRule,
    /// Refresh-token reuse: `threshold` reuses of one subject's tokens.
    pub token_reuse: DetectorRule,
    /// Request-inspection findings of SQL injection: `threshold` inspected
    /// requests with such a finding from one client address (or, without
    /// one, one subject) within the window.
    pub inspection_sqli: DetectorRule,
    /// The same for cross-site scripting findings.
    pub inspection_xss: DetectorRule,
    /// The same for path traversal findings.
    pub inspection_path_traversal: DetectorRule,
    /// The same for OS command injection findings.
    pub inspection_cmdi: DetectorRule,
    /// The same for protocol findings (bodies too large or too deeply
    /// nested to inspect whole).
    pub inspection_protocol: DetectorRule,
    /// Whether requests that inspection only flagged (let through) count
    /// toward the `inspection_*` thresholds; by default only blocked ones do.
    pub inspection_count_flagged: bool,
    /// Events more than this far apart do not join the same incident, ms.
    pub incident_gap_ms: u64,
    /// Incidents kept; the oldest are dropped beyond it.
    pub max_incidents: usize,
    /// Keys (accounts, addresses, networks, fingerprints) tracked in
    /// process; the least recently seen are dropped beyond it.
    pub max_tracked_keys: usize,
    /// Blocks and flags held at once.
    pub max_blocks: usize,
    /// How often an instance re-reads the blocks shared through Redis, ms.
    pub block_sync_ms: u64,
}

impl Default for ThreatSettings {
    fn default() -> Self {
        Self {
            brute_force_account: DetectorRule::with(10, 5 * 60_000, ResponseAction::Flag),
            brute_force_ip: DetectorRule::with(50, 5 * 60_000, ResponseAction::BlockIp),
            credential_stuffing: DetectorRule::with(20, 10 * 60_000, ResponseAction::BlockIp),
            password_spraying: DetectorRule::with(10, 30 * 60_000, ResponseAction::Log),
            token_reuse: DetectorRule::with(1, 60 * 60_000, ResponseAction::BlockSubject),
            inspection_sqli: DetectorRule::with(5, 10 * 60_000, ResponseAction::BlockIp),
            inspection_xss: DetectorRule::with(5, 10 * 60_000, ResponseAction::Flag),
            inspection_path_traversal: DetectorRule::with(5, 10 * 60_000, ResponseAction::BlockIp),
            inspection_cmdi: DetectorRule::with(5, 10 * 60_000, ResponseAction::BlockIp),
            inspection_protocol: DetectorRule::with(20, 10 * 60_000, ResponseAction::Log),
            inspection_count_flagged: false,
            incident_gap_ms: 30 * 60_000,
            max_incidents: 10_000,
            max_tracked_keys: 200_000,
            max_blocks: 1_000_000,
            block_sync_ms: 1_000,
        }
    }
}

impl ThreatSettings {
    /// Checks every field; the error names the detector.
    pub fn validate(&self) -> Result<(), GuardError> {
        self.brute_force_account.validate("brute_force_account")?;
        self.brute_force_ip.validate("brute_force_ip")?;
        self.credential_stuffing.validate("credential_stuffing")?;
        self.password_spraying.validate("password_spraying")?;
        self.token_reuse.validate("token_reuse")?;
        self.inspection_sqli.validate("inspection_sqli")?;
        self.inspection_xss.validate("inspection_xss")?;
        self.inspection_path_traversal
            .validate("inspection_path_traversal")?;
        self.inspection_cmdi.validate("inspection_cmdi")?;
        self.inspection_protocol.validate("inspection_protocol")?;
        if self.incident_gap_ms < 1_000 {
            return Err(GuardError::invalid(
                "incident_gap_ms",
                "must be at least 1000",
            ));
        }
        if self.max_incidents == 0 || self.max_tracked_keys == 0 || self.max_blocks == 0 {
            return Err(GuardError::invalid(
                "max_incidents",
                "max_incidents, max_tracked_keys and max_blocks must be at least 1",
            ));
        }
        if self.block_sync_ms < 100 {
            return Err(GuardError::invalid("block_sync_ms", "must be at least 100"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_escalates_per_offence_up_to_the_cap() {
        let rule = DetectorRule {
            block_ttl_ms: 60_000,
            escalation_factor: 3,
            max_block_ttl_ms: 600_000,
            ..DetectorRule::default()
        };
        assert_eq!(rule.ttl_ms(1), 60_000);
        assert_eq!(rule.ttl_ms(2), 180_000);
        assert_eq!(rule.ttl_ms(3), 540_000);
        assert_eq!(rule.ttl_ms(4), 600_000);
        assert_eq!(rule.ttl_ms(u32::MAX), 600_000);
    }

    #[test]
    fn defaults_are_valid_and_bad_values_name_the_detector() {
        assert!(ThreatSettings::default().validate().is_ok());
        let mut bad = ThreatSettings::default();
        bad.credential_stuffing.max_success_ratio = 1.5;
        assert!(matches!(
            bad.validate(),
            Err(GuardError::Invalid {
                field: "credential_stuffing",
                ..
            })
        ));
        let parsed: ThreatSettings =
            serde_json::from_str(r#"{"brute_force_ip": {"threshold": 5, "action": "block_ip"}}"#)
                .unwrap();
        assert_eq!(parsed.brute_force_ip.threshold, 5);
        let mut bad = ThreatSettings::default();
        bad.brute_force_ip.tighten_factor = 1;
        assert!(matches!(
            bad.validate(),
            Err(GuardError::Invalid {
                field: "brute_force_ip",
                reason,
            }) if reason.contains("tighten_factor")
        ));
        let parsed: ThreatSettings = serde_json::from_str(
            r#"{"token_reuse": {"action": "tighten_rate_limit", "tighten_factor": 4}}"#,
        )
        .unwrap();
        assert_eq!(parsed.token_reuse.action, ResponseAction::TightenRateLimit);
        assert_eq!(parsed.token_reuse.tighten_factor, 4);
        assert_eq!(
            parsed.brute_force_account,
            ThreatSettings::default().brute_force_account
        );
    }
}
