//! `[ratelimit]` in `palisade.toml`: how the limiter runs and the rules it
//! starts with.

use crate::config::ConfigError;
use palisade_guard::ratelimit::{
    RateLimiterSettings, Rule, RuleOrigin, RuleSpec, rules_from_specs,
};
use palisade_http::layers::rate_limit::RateLimitHeaders;
use serde::Deserialize;
use std::time::Duration;

/// `[ratelimit]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Instances sharing the limits through Redis. While Redis is unreachable
    /// each enforces `1 / instances` of every limit on its own.
    pub instances: u32,
    /// Most keys tracked in process per rule and tier.
    pub max_keys: usize,
    /// Blocks of one key within a minute that make an audit event
    /// (`security.ratelimit.blocked`, once per key and minute); 0 = never.
    pub block_report_threshold: u64,
    /// How often rules created over the API are re-read from the database,
    /// so they reach every instance.
    pub rules_refresh_ms: u64,
    /// Send the IETF `RateLimit-Policy` / `RateLimit` headers.
    pub ietf_headers: bool,
    /// Also send `X-RateLimit-Limit`, `-Remaining` and `-Reset`.
    pub x_ratelimit_headers: bool,
    /// The rules, as `[[ratelimit.rules]]` tables.
    pub rules: Vec<RuleSpec>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            instances: 1,
            max_keys: 1_000_000,
            block_report_threshold: 100,
            rules_refresh_ms: 2_000,
            ietf_headers: true,
            x_ratelimit_headers: false,
            rules: Vec::new(),
        }
    }
}

impl RateLimitConfig {
    /// Checks every setting and rule; errors name the key (`ratelimit.rules[1].limit`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: String, message: String| ConfigError::Invalid { key, message };
        if self.instances == 0 {
            return Err(invalid(
                "ratelimit.instances".into(),
                "must be at least 1".into(),
            ));
        }
        if self.max_keys == 0 {
            return Err(invalid(
                "ratelimit.max_keys".into(),
                "must be at least 1".into(),
            ));
        }
        if self.rules_refresh_ms < 100 {
            return Err(invalid(
                "ratelimit.rules_refresh_ms".into(),
                "must be at least 100".into(),
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for (index, spec) in self.rules.iter().enumerate() {
            if let Err(palisade_guard::GuardError::Invalid { field, reason }) =
                Rule::new(spec.clone(), RuleOrigin::Config)
            {
                return Err(invalid(format!("ratelimit.rules[{index}].{field}"), reason));
            }
            if !names.insert(spec.name.as_str()) {
                return Err(invalid(
                    format!("ratelimit.rules[{index}].name"),
                    format!("another rule is already named {:?}", spec.name),
                ));
            }
        }
        Ok(())
    }

    /// The limiter's settings.
    pub fn settings(&self) -> RateLimiterSettings {
        RateLimiterSettings {
            instances: self.instances,
            max_keys: self.max_keys,
            block_report_threshold: self.block_report_threshold,
        }
    }

    /// The configured rules, validated.
    pub fn rules(&self) -> Result<Vec<Rule>, ConfigError> {
        rules_from_specs(self.rules.clone(), RuleOrigin::Config).map_err(|e| ConfigError::Invalid {
            key: "ratelimit.rules".into(),
            message: e.to_string(),
        })
    }

    /// Which headers responses carry.
    pub fn headers(&self) -> RateLimitHeaders {
        RateLimitHeaders {
            ietf: self.ietf_headers,
            x_ratelimit: self.x_ratelimit_headers,
        }
    }

    /// How often stored rules are re-read.
    pub fn rules_refresh(&self) -> Duration {
        Duration::from_millis(self.rules_refresh_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RateLimitConfig, String> {
        let config: RateLimitConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    #[test]
    fn reads_rules_with_tiers() {
        let config = parse(
            r#"
            instances = 3
            [[rules]]
            name = "per-ip"
            limit = 100
            period_ms = 60000
            routes = ["/v1/"]
            [[rules]]
            name = "per-tenant"
            key = "tenant"
            algorithm = "sliding_window"
            limit = 10000
            period_ms = 86400000
            tiers.pro = { limit = 100000, period_ms = 86400000 }
            "#,
        )
        .unwrap();
        assert_eq!(config.settings().instances, 3);
        let rules = config.rules().unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[1].limit_for(Some("pro")).1.limit(), 100_000);
    }

    #[test]
    fn invalid_rules_name_the_key() {
        let bad_limit =
            parse("[[rules]]\nname = \"a\"\nlimit = 0\nperiod_ms = 1000\n").unwrap_err();
        assert!(
            bad_limit.contains("ratelimit.rules[0].limit"),
            "{bad_limit}"
        );
        let twice = parse(
            "[[rules]]\nname = \"a\"\nlimit = 1\nperiod_ms = 1000\n[[rules]]\nname = \"a\"\nlimit = 2\nperiod_ms = 1000\n",
        )
        .unwrap_err();
        assert!(twice.contains("ratelimit.rules[1].name"), "{twice}");
        let zero = parse("instances = 0").unwrap_err();
        assert!(zero.contains("ratelimit.instances"), "{zero}");
    }
}
