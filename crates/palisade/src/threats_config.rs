//! `[threats]` in `palisade.toml`: the IP reputation lists and their reload,
//! the account-attack and request-inspection detectors
//! (`[threats.detectors.<name>]`; one `inspection_<category>` per finding
//! category: `sqli`, `xss`, `path_traversal`, `cmdi`, `protocol`) and traffic
//! anomaly detection (`[threats.anomaly]`). On by default with no lists;
//! detector state, blocks, rate-limit tightenings and incidents are shared
//! through Redis when `[redis]` is set.
//!
//! ```toml
//! [threats]
//! reload_interval_ms = 300000
//!
//! [[threats.lists]]
//! name = "spamhaus_drop"
//! kind = "block"
//! url = "https://www.spamhaus.org/drop/drop_v4.json"
//!
//! [[threats.lists]]
//! name = "office"
//! kind = "allow"
//! path = "/etc/palisade/office.txt"
//!
//! [threats.detectors.brute_force_ip]
//! threshold = 30
//! window_ms = 300000
//! action = "block_ip"
//! block_ttl_ms = 900000
//!
//! # A quarter of the usual rate limit for an hour, instead of a block.
//! [threats.detectors.password_spraying]
//! threshold = 10
//! window_ms = 1800000
//! action = "tighten_rate_limit"
//! tighten_factor = 4
//! block_ttl_ms = 3600000
//!
//! # Five requests with SQL injection findings from one address within ten
//! # minutes: blocked for an hour, doubling for repeat offenders up to a day.
//! [threats.detectors.inspection_sqli]
//! threshold = 5
//! window_ms = 600000
//! action = "block_ip"
//! block_ttl_ms = 3600000
//! escalation_factor = 2
//! max_block_ttl_ms = 86400000
//!
//! [threats.detectors.inspection_xss]
//! action = "log"
//! ```

use crate::config::ConfigError;
use anyhow::Context;
use palisade_guard::anomaly::AnomalySettings;
use palisade_guard::reputation::{ListSource, Reputation, ReputationSettings};
use palisade_guard::threats::{ThreatDefense, ThreatOptions, ThreatSettings};
use palisade_http::AppState;
use palisade_store::Redis;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// `[threats]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThreatsConfig {
    /// Whether threat detection runs at all (routes answer 503 when off).
    pub enabled: bool,
    /// Allow and block lists, `[[threats.lists]]` with `name`, `kind`
    /// (`allow` or `block`) and one of `path` and `url`.
    pub lists: Vec<ListSource>,
    /// How often every list is checked for changes (files by modification
    /// time, URLs by a conditional request), ms.
    pub reload_interval_ms: u64,
    /// Largest list file or download, bytes.
    pub max_list_bytes: u64,
    /// Most networks kept from one list.
    pub max_entries_per_list: usize,
    /// Longest a list download may take, ms.
    pub fetch_timeout_ms: u64,
    /// `[threats.detectors]`: thresholds, windows and responses.
    pub detectors: ThreatSettings,
    /// `[threats.anomaly]`: traffic baselines.
    pub anomaly: AnomalySettings,
}

impl Default for ThreatsConfig {
    fn default() -> Self {
        let lists = ReputationSettings::default();
        Self {
            enabled: true,
            lists: Vec::new(),
            reload_interval_ms: 300_000,
            max_list_bytes: lists.max_list_bytes,
            max_entries_per_list: lists.max_entries_per_list,
            fetch_timeout_ms: u64::try_from(lists.fetch_timeout.as_millis()).unwrap_or(30_000),
            detectors: ThreatSettings::default(),
            anomaly: AnomalySettings::default(),
        }
    }
}

impl ThreatsConfig {
    /// Checks every setting; errors name the key (`threats.lists[1]`,
    /// `threats.detectors.brute_force_ip`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: String, message: String| ConfigError::Invalid { key, message };
        let mut names = std::collections::BTreeSet::new();
        for (i, list) in self.lists.iter().enumerate() {
            list.validate()
                .map_err(|e| invalid(format!("threats.lists[{i}]"), e))?;
            if !names.insert(list.name.as_str()) {
                return Err(invalid(
                    format!("threats.lists[{i}].name"),
                    "two lists have this name".into(),
                ));
            }
        }
        if self.reload_interval_ms < 1_000 {
            return Err(invalid(
                "threats.reload_interval_ms".into(),
                "must be at least 1000".into(),
            ));
        }
        if self.max_list_bytes == 0 || self.max_entries_per_list == 0 {
            return Err(invalid(
                "threats.max_list_bytes".into(),
                "max_list_bytes and max_entries_per_list must be at least 1".into(),
            ));
        }
        if !(1_000..=600_000).contains(&self.fetch_timeout_ms) {
            return Err(invalid(
                "threats.fetch_timeout_ms".into(),
                "must be between 1000 and 600000".into(),
            ));
        }
        let field_error = |section: &str, e: palisade_guard::GuardError| match e {
            palisade_guard::GuardError::Invalid { field, reason } => {
                invalid(format!("threats.{section}.{field}"), reason)
            }
            other => invalid(format!("threats.{section}"), other.to_string()),
        };
        self.detectors
            .validate()
            .map_err(|e| field_error("detectors", e))?;
        self.anomaly
            .validate()
            .map_err(|e| field_error("anomaly", e))?;
        Ok(())
    }

    /// Builds threat detection on `state`'s security events and audit log,
    /// loads the lists in the background (and then every
    /// `reload_interval_ms`) and starts consuming events. `None` when off.
    /// Call it before anything replaces the state's `security_events`.
    pub fn start(
        &self,
        state: &AppState,
        redis: Option<Redis>,
    ) -> anyhow::Result<Option<ThreatDefense>> {
        if !self.enabled {
            return Ok(None);
        }
        let reputation = Arc::new(
            Reputation::new(
                self.lists.clone(),
                ReputationSettings {
                    max_list_bytes: self.max_list_bytes,
                    max_entries_per_list: self.max_entries_per_list,
                    fetch_timeout: Duration::from_millis(self.fetch_timeout_ms),
                },
            )
            .map_err(|e| anyhow::anyhow!("threats.lists: {e}"))?,
        );
        if !self.lists.is_empty() {
            // The reloader's first tick loads every list at once; the
            // server starts serving meanwhile.
            reputation.spawn_reloader(
                Duration::from_millis(self.reload_interval_ms),
                state.clock.clone(),
            );
        }
        let threats = ThreatDefense::new(
            ThreatOptions {
                settings: self.detectors.clone(),
                anomaly: self.anomaly.clone(),
                redis,
                reputation,
                reporter: Some(palisade_http::routes::threats::audit_reporter(
                    state.audit.clone(),
                )),
                // `tighten_rate_limit` responses go to the server's limiter.
                tightenings: Some(state.ratelimit.tightenings().clone()),
            },
            state.security_events.clone(),
            state.clock.clone(),
        )
        .context("starting threat detection ([threats])")?;
        threats.start();
        Ok(Some(threats))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lists_detectors_and_anomaly_settings() {
        let config: ThreatsConfig = toml::from_str(
            r#"
            reload_interval_ms = 60000
            [[lists]]
            name = "drop"
            kind = "block"
            url = "https://lists.example/drop.txt"
            [[lists]]
            name = "office"
            kind = "allow"
            path = "/etc/palisade/office.txt"
            [detectors.brute_force_ip]
            threshold = 30
            action = "block_ip"
            [detectors.password_spraying]
            action = "tighten_rate_limit"
            tighten_factor = 4
            [detectors.inspection_sqli]
            threshold = 4
            action = "block_ip"
            block_ttl_ms = 3600000
            [detectors.inspection_xss]
            action = "log"
            [anomaly]
            z_threshold = 8.0
            "#,
        )
        .unwrap();
        config.validate().unwrap();
        assert_eq!(config.lists.len(), 2);
        assert_eq!(config.detectors.brute_force_ip.threshold, 30);
        assert_eq!(
            config.detectors.password_spraying.action,
            palisade_guard::threats::ResponseAction::TightenRateLimit
        );
        assert_eq!(config.detectors.password_spraying.tighten_factor, 4);
        assert_eq!(config.anomaly.z_threshold, 8.0);
        assert!(config.enabled);
        let sqli = &config.detectors.inspection_sqli;
        assert_eq!(
            (sqli.threshold, sqli.action, sqli.block_ttl_ms),
            (
                4,
                palisade_guard::threats::ResponseAction::BlockIp,
                3_600_000
            )
        );
        assert_eq!(
            config.detectors.inspection_xss.action,
            palisade_guard::threats::ResponseAction::Log
        );
        assert_eq!(
            config.detectors.inspection_cmdi,
            ThreatSettings::default().inspection_cmdi,
            "categories not configured keep their defaults"
        );
    }

    #[test]
    fn bad_settings_name_their_key() {
        let error = |text: &str| {
            toml::from_str::<ThreatsConfig>(text)
                .map_err(|e| e.to_string())
                .and_then(|c| c.validate().map_err(|e| e.to_string()))
                .unwrap_err()
        };
        assert!(error("[[lists]]\nname = \"x\"\nkind = \"block\"\n").contains("threats.lists[0]"));
        assert!(
            error("[detectors.credential_stuffing]\nmax_success_ratio = 2.0\n")
                .contains("threats.detectors.credential_stuffing")
        );
        assert!(error("reload_interval_ms = 5\n").contains("threats.reload_interval_ms"));
        assert!(error("[anomaly]\nalpha = 0.0\n").contains("threats.anomaly.alpha"));
        assert!(error("unknown = 1\n").contains("unknown"));
        assert!(
            error(
                "[detectors.brute_force_ip]\naction = \"tighten_rate_limit\"\ntighten_factor = 1\n"
            )
            .contains("threats.detectors.brute_force_ip")
        );
        assert!(
            error("[detectors.brute_force_ip]\naction = \"tighten\"\n").contains("action"),
            "an unknown action is refused"
        );
        assert!(
            error("[detectors.inspection_sqli]\nthreshold = 0\n")
                .contains("threats.detectors.inspection_sqli")
        );
        assert!(
            error("[detectors.inspection_path_traversal]\nescalation_factor = 0\n")
                .contains("threats.detectors.inspection_path_traversal")
        );
        assert!(
            error("[detectors.inspection_ldap]\naction = \"log\"\n").contains("inspection_ldap"),
            "an unknown category is refused"
        );
        let dup = "[[lists]]\nname = \"a\"\nkind = \"block\"\npath = \"/x\"\n[[lists]]\nname = \"a\"\nkind = \"allow\"\npath = \"/y\"\n";
        assert!(error(dup).contains("threats.lists[1].name"));
    }
}
