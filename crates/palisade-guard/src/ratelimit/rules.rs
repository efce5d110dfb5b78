//! Named rate-limit rules: what they limit by, their limit per tier, and
//! adaptive tightening. Specs come from `palisade.toml` or the API; a spec is
//! validated once into a [`Rule`].

use super::{Algorithm, Limit};
use crate::GuardError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Longest rule or tier name.
const MAX_NAME_LEN: usize = 64;

/// Most tiers a rule may have.
const MAX_TIERS: usize = 64;

/// Most route prefixes a rule may apply to.
const MAX_ROUTES: usize = 64;

/// What a rule counts requests by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeySource {
    /// The client IP (the socket peer, or the right-most untrusted hop when
    /// the request came through a trusted proxy).
    Ip,
    /// The authenticated subject (a token's `sub`).
    Subject,
    /// The API key's id.
    ApiKey,
    /// The caller's tenant.
    Tenant,
    /// The matched route (method and path template): one budget per endpoint.
    Route,
    /// The value of a request header, e.g. `header:x-device-id`.
    Header(String),
    /// A key the caller supplies itself (`POST /v1/ratelimit/check`).
    Custom,
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip => f.write_str("ip"),
            Self::Subject => f.write_str("subject"),
            Self::ApiKey => f.write_str("api_key"),
            Self::Tenant => f.write_str("tenant"),
            Self::Route => f.write_str("route"),
            Self::Header(name) => write!(f, "header:{name}"),
            Self::Custom => f.write_str("custom"),
        }
    }
}

impl FromStr for KeySource {
    type Err = GuardError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "ip" => Self::Ip,
            "subject" => Self::Subject,
            "api_key" => Self::ApiKey,
            "tenant" => Self::Tenant,
            "route" => Self::Route,
            "custom" => Self::Custom,
            other => match other.strip_prefix("header:") {
                Some(name) if is_header_name(name) => Self::Header(name.to_ascii_lowercase()),
                _ => {
                    return Err(GuardError::invalid(
                        "key",
                        "must be ip, subject, api_key, tenant, route, custom or header:<name>",
                    ));
                }
            },
        })
    }
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Serialize for KeySource {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KeySource {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A limit as written in configuration and JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSpec {
    /// How to count; GCRA unless given.
    #[serde(default = "default_algorithm")]
    pub algorithm: Algorithm,
    /// Units per period.
    pub limit: u64,
    /// The period in milliseconds.
    pub period_ms: u64,
    /// GCRA only: the most units at once (default: `limit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
}

fn default_algorithm() -> Algorithm {
    Algorithm::Gcra
}

impl LimitSpec {
    /// Validates the spec into a [`Limit`].
    pub fn to_limit(&self) -> Result<Limit, GuardError> {
        let limit = Limit::new(
            self.algorithm,
            self.limit,
            Duration::from_millis(self.period_ms),
        )?;
        match self.burst {
            Some(burst) => limit.with_burst(burst),
            None => Ok(limit),
        }
    }
}

impl From<&Limit> for LimitSpec {
    fn from(limit: &Limit) -> Self {
        let burst = (limit.algorithm() == Algorithm::Gcra && limit.capacity() != limit.limit())
            .then(|| limit.capacity());
        Self {
            algorithm: limit.algorithm(),
            limit: limit.limit(),
            period_ms: u64::try_from(limit.period().as_millis()).unwrap_or(u64::MAX),
            burst,
        }
    }
}

/// Tightening for keys whose recent requests mostly fail: when at least
/// `min_requests` outcomes were seen in the last `window_ms` and the share of
/// errors (4xx/5xx, denials) reaches `error_ratio`, each request of that key
/// costs `factor` times as much, i.e. its limit is divided by `factor`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptiveSpec {
    /// Share of errors (0 < r <= 1) that triggers tightening.
    #[serde(default = "default_error_ratio")]
    pub error_ratio: f64,
    /// Fewest outcomes in the window before tightening can start.
    #[serde(default = "default_min_requests")]
    pub min_requests: u32,
    /// How many times a request costs while tightened (2..=1000).
    #[serde(default = "default_factor")]
    pub factor: u32,
    /// The window outcomes are counted over, in milliseconds.
    #[serde(default = "default_adaptive_window_ms")]
    pub window_ms: u64,
}

fn default_error_ratio() -> f64 {
    0.5
}
fn default_min_requests() -> u32 {
    20
}
fn default_factor() -> u32 {
    4
}
fn default_adaptive_window_ms() -> u64 {
    60_000
}

impl AdaptiveSpec {
    fn validate(&self) -> Result<(), GuardError> {
        if !(self.error_ratio > 0.0 && self.error_ratio <= 1.0) {
            return Err(GuardError::invalid(
                "adaptive.error_ratio",
                "must be greater than 0 and at most 1",
            ));
        }
        if !(2..=1000).contains(&self.factor) {
            return Err(GuardError::invalid(
                "adaptive.factor",
                "must be between 2 and 1000",
            ));
        }
        if self.min_requests == 0 {
            return Err(GuardError::invalid(
                "adaptive.min_requests",
                "must be at least 1",
            ));
        }
        if Duration::from_millis(self.window_ms) < super::MIN_PERIOD
            || Duration::from_millis(self.window_ms) > super::MAX_PERIOD
        {
            return Err(GuardError::invalid(
                "adaptive.window_ms",
                "must be between 1 ms and 366 days",
            ));
        }
        Ok(())
    }
}

/// A named rule as written in `[[ratelimit.rules]]` or sent to
/// `PUT /v1/ratelimit/rules/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// The rule's name: lowercase letters, digits, `_`, `-` and `.`.
    pub name: String,
    /// What to count by (default `ip`).
    #[serde(default = "default_key")]
    pub key: KeySource,
    /// How to count; GCRA unless given.
    #[serde(default = "default_algorithm")]
    pub algorithm: Algorithm,
    /// Units per period, for callers without a tier or with a tier not listed.
    pub limit: u64,
    /// The period in milliseconds.
    pub period_ms: u64,
    /// GCRA only: the most units at once (default: `limit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
    /// Limits by plan: the tier comes from a claim or API-key attribute.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tiers: BTreeMap<String, LimitSpec>,
    /// Path prefixes the tower layer applies this rule to (all when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,
    /// Optional tightening for keys whose requests mostly fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<AdaptiveSpec>,
}

impl RuleSpec {
    /// The rule's own limit (without tiers) as a [`LimitSpec`].
    pub fn limit_spec(&self) -> LimitSpec {
        LimitSpec {
            algorithm: self.algorithm,
            limit: self.limit,
            period_ms: self.period_ms,
            burst: self.burst,
        }
    }
}

fn default_key() -> KeySource {
    KeySource::Ip
}

/// Where a rule came from; configuration rules cannot be changed over the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleOrigin {
    /// `palisade.toml`.
    Config,
    /// The rules API (stored in the database).
    Api,
}

/// A validated rule.
#[derive(Debug, Clone)]
pub struct Rule(Arc<RuleData>);

/// What a [`Rule`] shares between its clones: the tower layer clones the
/// rules that apply to every request, so a clone must cost one increment.
#[derive(Debug)]
struct RuleData {
    spec: RuleSpec,
    origin: RuleOrigin,
    limit: Limit,
    tiers: BTreeMap<String, Limit>,
}

impl Rule {
    /// Validates `spec`: name, key, every limit, routes and adaptive settings.
    pub fn new(spec: RuleSpec, origin: RuleOrigin) -> Result<Self, GuardError> {
        validate_name("name", &spec.name)?;
        let limit = spec.limit_spec().to_limit()?;
        if spec.tiers.len() > MAX_TIERS {
            return Err(GuardError::invalid(
                "tiers",
                format!("at most {MAX_TIERS} tiers"),
            ));
        }
        let mut tiers = BTreeMap::new();
        for (tier, tier_spec) in &spec.tiers {
            validate_name("tiers", tier)?;
            tiers.insert(tier.clone(), tier_spec.to_limit()?);
        }
        if spec.routes.len() > MAX_ROUTES {
            return Err(GuardError::invalid(
                "routes",
                format!("at most {MAX_ROUTES} route prefixes"),
            ));
        }
        if let Some(route) = spec
            .routes
            .iter()
            .find(|r| !r.starts_with('/') || r.len() > 256)
        {
            return Err(GuardError::invalid(
                "routes",
                format!("{route:?} is not a path prefix starting with '/'"),
            ));
        }
        if let Some(adaptive) = &spec.adaptive {
            adaptive.validate()?;
        }
        Ok(Self(Arc::new(RuleData {
            spec,
            origin,
            limit,
            tiers,
        })))
    }

    /// The rule's name.
    pub fn name(&self) -> &str {
        &self.0.spec.name
    }

    /// The spec it was built from, for listing.
    pub fn spec(&self) -> &RuleSpec {
        &self.0.spec
    }

    /// Where it came from.
    pub fn origin(&self) -> RuleOrigin {
        self.0.origin
    }

    /// What it counts by.
    pub fn key_source(&self) -> &KeySource {
        &self.0.spec.key
    }

    /// The limit for `tier`, falling back to the rule's own limit for no tier
    /// or a tier the rule does not list (so an unknown plan never escapes the
    /// limit). Returns the tier name actually used.
    pub fn limit_for(&self, tier: Option<&str>) -> (Option<&str>, &Limit) {
        match tier.and_then(|t| self.0.tiers.get_key_value(t)) {
            Some((name, limit)) => (Some(name.as_str()), limit),
            None => (None, &self.0.limit),
        }
    }

    /// Every (tier, limit) of the rule, the rule's own first (tier `None`).
    pub fn limits(&self) -> impl Iterator<Item = (Option<&str>, &Limit)> {
        std::iter::once((None, &self.0.limit))
            .chain(self.0.tiers.iter().map(|(t, l)| (Some(t.as_str()), l)))
    }

    /// Whether the tower layer applies this rule to `path`.
    pub fn applies_to(&self, path: &str) -> bool {
        self.0.spec.routes.is_empty() || self.0.spec.routes.iter().any(|r| path.starts_with(r))
    }

    /// The adaptive settings, when the rule tightens for failing keys.
    pub fn adaptive(&self) -> Option<&AdaptiveSpec> {
        self.0.spec.adaptive.as_ref()
    }
}

/// Checks a rule or tier name: 1 to 64 of `a-z 0-9 _ - .`.
pub(crate) fn validate_name(field: &'static str, name: &str) -> Result<(), GuardError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
        });
    if valid {
        Ok(())
    } else {
        Err(GuardError::invalid(
            field,
            format!("must be 1 to {MAX_NAME_LEN} of a-z, 0-9, '_', '-' and '.'"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Result<Rule, GuardError> {
        let spec: RuleSpec =
            serde_json::from_str(json).map_err(|e| GuardError::invalid("spec", e.to_string()))?;
        Rule::new(spec, RuleOrigin::Api)
    }

    #[test]
    fn parses_a_rule_with_tiers_and_defaults() {
        let rule = spec(
            r#"{"name":"api","limit":100,"period_ms":60000,
                "tiers":{"pro":{"limit":1000,"period_ms":60000,"algorithm":"sliding_window"}}}"#,
        )
        .unwrap();
        assert_eq!(rule.key_source(), &KeySource::Ip);
        assert_eq!(rule.limit_for(None).1.algorithm(), Algorithm::Gcra);
        let (tier, pro) = rule.limit_for(Some("pro"));
        assert_eq!(tier, Some("pro"));
        assert_eq!(pro.limit(), 1000);
        let (tier, fallback) = rule.limit_for(Some("enterprise"));
        assert_eq!(tier, None, "an unknown tier gets the rule's own limit");
        assert_eq!(fallback.limit(), 100);
    }

    #[test]
    fn key_sources_round_trip_and_bad_ones_name_the_field() {
        for text in [
            "ip",
            "subject",
            "api_key",
            "tenant",
            "route",
            "custom",
            "header:x-device-id",
        ] {
            let source: KeySource = text.parse().unwrap();
            assert_eq!(source.to_string(), text);
        }
        assert_eq!(
            "header:X-Device".parse::<KeySource>().unwrap(),
            KeySource::Header("x-device".into())
        );
        for bad in ["", "ips", "header:", "header:a b"] {
            assert!(matches!(
                bad.parse::<KeySource>(),
                Err(GuardError::Invalid { field: "key", .. })
            ));
        }
    }

    #[test]
    fn rejects_bad_names_limits_routes_and_adaptive_settings() {
        let cases = [
            (r#"{"name":"Bad Name","limit":1,"period_ms":1000}"#, "name"),
            (r#"{"name":"a","limit":0,"period_ms":1000}"#, "limit"),
            (r#"{"name":"a","limit":1,"period_ms":0}"#, "period_ms"),
            (
                r#"{"name":"a","limit":5,"period_ms":1000,"algorithm":"fixed_window","burst":9}"#,
                "burst",
            ),
            (
                r#"{"name":"a","limit":1,"period_ms":1000,"routes":["v1"]}"#,
                "routes",
            ),
            (
                r#"{"name":"a","limit":1,"period_ms":1000,"adaptive":{"factor":1}}"#,
                "adaptive.factor",
            ),
            (
                r#"{"name":"a","limit":1,"period_ms":1000,"adaptive":{"error_ratio":1.5}}"#,
                "adaptive.error_ratio",
            ),
        ];
        for (json, field) in cases {
            match spec(json) {
                Err(GuardError::Invalid { field: f, .. }) => assert_eq!(f, field, "{json}"),
                other => panic!("{json}: expected an error naming {field}, got {other:?}"),
            }
        }
    }

    #[test]
    fn routes_select_where_the_layer_applies_a_rule() {
        let rule =
            spec(r#"{"name":"login","limit":5,"period_ms":60000,"routes":["/login","/v1/auth/"]}"#)
                .unwrap();
        assert!(rule.applies_to("/login"));
        assert!(rule.applies_to("/v1/auth/tokens"));
        assert!(!rule.applies_to("/v1/audit/events"));
        let everywhere = spec(r#"{"name":"all","limit":5,"period_ms":60000}"#).unwrap();
        assert!(everywhere.applies_to("/anything"));
    }

    #[test]
    fn limit_spec_round_trips_through_limit() {
        let spec = LimitSpec {
            algorithm: Algorithm::Gcra,
            limit: 10,
            period_ms: 1000,
            burst: Some(3),
        };
        assert_eq!(LimitSpec::from(&spec.to_limit().unwrap()), spec);
    }
}
