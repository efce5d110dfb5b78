//! [`RateLimiter`]: the rules of one Palisade instance, checked in process or
//! on Redis, with the fallback that keeps requests flowing when Redis is not.
//!
//! With Redis, every instance shares one count per key. When Redis is slow or
//! down (the connection's circuit breaker is open, a call timed out), each
//! instance enforces its share of every limit on its own:
//! `ceil(limit / instances)`. So the fleet stays close to the global limit
//! without any request failing because Redis did. The answer says it was
//! `degraded`, and the breaker closes again on its own once Redis answers.

use super::outcomes::Tallies;
use super::redis::RedisLimiter;
use super::rules::{KeySource, Rule, RuleSpec};
use super::tighten::Tightenings;
use super::{Decision, Limit, LimitSpec, LocalLimiter};
use crate::GuardError;
use arc_swap::ArcSwap;
use dashmap::DashMap;
use palisade_core::SharedClock;
use palisade_store::Redis;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Longest key accepted, in bytes. Keys are client IPs, ids and short
/// strings; anything longer is a mistake or an attempt to bloat Redis.
pub const MAX_KEY_BYTES: usize = 512;

/// Most distinct inline limits (`POST /v1/ratelimit/check` with `"limit"`)
/// tracked at once, so callers cannot grow the table without bound.
pub const MAX_INLINE_LIMITS: usize = 1024;

/// How blocks are tallied for reports: per key per minute.
const BLOCK_REPORT_WINDOW: Duration = Duration::from_secs(60);

/// Settings of a [`RateLimiter`] (`[ratelimit]` in `palisade.toml`).
#[derive(Debug, Clone)]
pub struct RateLimiterSettings {
    /// How many instances share the limits. While Redis is unreachable each
    /// instance enforces `1 / instances` of every limit.
    pub instances: u32,
    /// Most keys each in-process limiter tracks (per rule and tier).
    pub max_keys: usize,
    /// Blocks of one key within a minute after which a [`BlockReport`] is
    /// sent (once per key and minute); 0 turns reports off.
    pub block_report_threshold: u64,
}

impl Default for RateLimiterSettings {
    fn default() -> Self {
        Self {
            instances: 1,
            max_keys: 1_000_000,
            block_report_threshold: 100,
        }
    }
}

/// The answer to one check, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The decision.
    pub decision: Decision,
    /// The policy's name for the `RateLimit-Policy` header: the rule, with
    /// `/tier` when a tier's limit applied, or `inline` for inline limits.
    pub policy: Arc<str>,
    /// The period of the limit that applied.
    pub period: Duration,
    /// Whether Redis was unreachable and the local share decided.
    pub degraded: bool,
}

impl Checked {
    /// The strictest of several answers: a denial (the one with the longest
    /// wait) over any allowance, otherwise the allowance with the fewest
    /// units remaining.
    pub fn strictest(answers: impl IntoIterator<Item = Self>) -> Option<Self> {
        answers.into_iter().reduce(|a, b| {
            let key = |c: &Self| {
                (
                    c.decision.allowed,
                    std::cmp::Reverse(c.decision.retry_after),
                    c.decision.remaining,
                )
            };
            if key(&b) < key(&a) { b } else { a }
        })
    }
}

/// A key that kept being limited, reported once per minute past the threshold
/// (for the audit log and threat detection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockReport {
    /// The rule (or `inline`).
    pub policy: String,
    /// The limited key.
    pub key: String,
    /// Blocks of this key in the current minute.
    pub blocks: u64,
}

/// Where block reports go.
pub type BlockReporter = Arc<dyn Fn(BlockReport) + Send + Sync>;

/// One limit of a rule (its own, or a tier's) with its in-process state.
struct LimitState {
    /// `rule` or `rule/tier`: the policy name and the Redis namespace.
    policy: Arc<str>,
    /// Without Redis it enforces the whole limit; with Redis, the instance's
    /// share while Redis is unreachable.
    local: LocalLimiter,
}

/// A rule with the in-process state of each of its limits.
struct ActiveRule {
    rule: Rule,
    /// The rule's own limit.
    own: LimitState,
    /// The limit of each tier.
    tiers: BTreeMap<String, LimitState>,
    /// Recent outcomes per key, when the rule is adaptive.
    outcomes: Option<Tallies>,
}

/// The rules of an instance and the limiters enforcing them. Cheap to clone.
#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    clock: SharedClock,
    settings: RateLimiterSettings,
    shared: Option<RedisLimiter>,
    rules: ArcSwap<BTreeMap<String, Arc<ActiveRule>>>,
    inline: DashMap<Limit, Arc<LocalLimiter>, foldhash::fast::RandomState>,
    blocks: Tallies,
    reporter: Option<BlockReporter>,
    inline_policy: Arc<str>,
    tightenings: Arc<Tightenings>,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("shared", &self.inner.shared.is_some())
            .field("rules", &self.inner.rules.load().len())
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// A limiter with no rules yet; shared through `redis` when given.
    pub fn new(
        settings: RateLimiterSettings,
        clock: SharedClock,
        redis: Option<Redis>,
        reporter: Option<BlockReporter>,
    ) -> Self {
        let blocks = Tallies::new(BLOCK_REPORT_WINDOW, settings.max_keys);
        Self {
            inner: Arc::new(Inner {
                clock,
                shared: redis.map(RedisLimiter::new),
                rules: ArcSwap::from_pointee(BTreeMap::new()),
                inline: DashMap::default(),
                blocks,
                reporter,
                settings,
                inline_policy: Arc::from("inline"),
                tightenings: Arc::new(Tightenings::default()),
            }),
        }
    }

    /// The keys paying more per request for a while (threat detection's
    /// `tighten_rate_limit` response fills it; see [`Tightenings`]).
    pub fn tightenings(&self) -> &Arc<Tightenings> {
        &self.inner.tightenings
    }

    /// Whether limits are shared through Redis.
    pub fn is_shared(&self) -> bool {
        self.inner.shared.is_some()
    }

    /// Replaces every rule. A rule whose spec did not change keeps its
    /// in-process counts, so reloading the same rules resets nothing.
    pub fn replace_rules(&self, rules: Vec<Rule>) -> Result<(), GuardError> {
        let current = self.inner.rules.load();
        let mut table = BTreeMap::new();
        for rule in rules {
            let name = rule.name().to_owned();
            let active = match current.get(&name) {
                Some(existing)
                    if existing.rule.spec() == rule.spec()
                        && existing.rule.origin() == rule.origin() =>
                {
                    Arc::clone(existing)
                }
                _ => Arc::new(self.activate(rule)),
            };
            if table.insert(name.clone(), active).is_some() {
                return Err(GuardError::invalid(
                    "name",
                    format!("two rules are named {name:?}"),
                ));
            }
        }
        self.inner.rules.store(Arc::new(table));
        Ok(())
    }

    /// Adds or replaces one rule.
    pub fn upsert_rule(&self, rule: Rule) {
        let active = Arc::new(self.activate(rule));
        self.inner.rules.rcu(|table| {
            let mut table = BTreeMap::clone(table);
            table.insert(active.rule.name().to_owned(), Arc::clone(&active));
            table
        });
    }

    /// Removes a rule; returns whether it existed.
    pub fn remove_rule(&self, name: &str) -> bool {
        let mut removed = false;
        self.inner.rules.rcu(|table| {
            let mut table = BTreeMap::clone(table);
            removed = table.remove(name).is_some();
            table
        });
        removed
    }

    /// A rule by name.
    pub fn rule(&self, name: &str) -> Option<Rule> {
        self.inner.rules.load().get(name).map(|a| a.rule.clone())
    }

    /// Every rule, by name.
    pub fn rules(&self) -> Vec<Rule> {
        self.inner
            .rules
            .load()
            .values()
            .map(|a| a.rule.clone())
            .collect()
    }

    /// The names of the rules the tower layer applies to `path`.
    pub fn rules_for_path(&self, path: &str) -> Vec<Rule> {
        self.inner
            .rules
            .load()
            .values()
            .filter(|a| a.rule.applies_to(path))
            .map(|a| a.rule.clone())
            .collect()
    }

    /// Takes `cost` units for `key` under the rule `rule_name`, with the
    /// limit of `tier` when the rule has one for it.
    pub async fn check(
        &self,
        rule_name: &str,
        key: &str,
        cost: u64,
        tier: Option<&str>,
    ) -> Result<Checked, GuardError> {
        validate_key(key)?;
        let active = self
            .inner
            .rules
            .load()
            .get(rule_name)
            .cloned()
            .ok_or_else(|| GuardError::UnknownRule(rule_name.to_owned()))?;
        let (tier, limit) = active.rule.limit_for(tier);
        limit.check_cost(cost)?;
        let cost = self.adaptive_cost(&active, key, cost, limit);
        let cost = self.tightened_cost(&active, key, cost, limit);
        let state = tier
            .and_then(|tier| active.tiers.get(tier))
            .unwrap_or(&active.own);
        self.decide(&state.policy, key, limit, &state.local, cost)
            .await
    }

    /// Takes `cost` units for `key` under an inline limit (not a named rule).
    /// Keys of different inline limits never share counts.
    pub async fn check_limit(
        &self,
        spec: &LimitSpec,
        key: &str,
        cost: u64,
    ) -> Result<Checked, GuardError> {
        validate_key(key)?;
        let limit = spec.to_limit()?;
        limit.check_cost(cost)?;
        let local = match self.inner.inline.get(&limit) {
            Some(local) => Arc::clone(&local),
            None => {
                if self.inner.inline.len() >= MAX_INLINE_LIMITS {
                    return Err(GuardError::invalid(
                        "limit",
                        format!(
                            "more than {MAX_INLINE_LIMITS} distinct inline limits are in use; define a rule instead"
                        ),
                    ));
                }
                Arc::clone(
                    &self
                        .inner
                        .inline
                        .entry(limit)
                        .or_insert_with(|| Arc::new(self.local_limiter(limit))),
                )
            }
        };
        let namespace: Arc<str> = inline_namespace(&limit).into();
        let mut checked = self.decide(&namespace, key, &limit, &local, cost).await?;
        checked.policy = Arc::clone(&self.inner.inline_policy);
        Ok(checked)
    }

    /// Records the outcome of a request limited by `rule_name` for `key`, for
    /// adaptive rules: `failed` for 4xx/5xx answers and denials.
    pub fn record_outcome(&self, rule_name: &str, key: &str, failed: bool) {
        let rules = self.inner.rules.load();
        if let Some(outcomes) = rules.get(rule_name).and_then(|a| a.outcomes.as_ref()) {
            outcomes.record(key, failed, self.inner.clock.monotonic());
        }
    }

    /// Drops in-process state that no longer affects any answer. Call it
    /// periodically; returns how many keys were dropped.
    pub fn evict_idle(&self) -> usize {
        let now = self.inner.clock.monotonic();
        let rules = self.inner.rules.load();
        let mut evicted = 0;
        for active in rules.values() {
            evicted += std::iter::once(&active.own)
                .chain(active.tiers.values())
                .map(|state| state.local.evict_idle())
                .sum::<usize>();
            if let Some(outcomes) = &active.outcomes {
                evicted += outcomes.evict_idle(now);
            }
        }
        for local in self.inner.inline.iter() {
            evicted += local.evict_idle();
        }
        evicted + self.inner.blocks.evict_idle(now)
    }

    fn activate(&self, rule: Rule) -> ActiveRule {
        let state = |policy: String, limit: &Limit| LimitState {
            policy: policy.into(),
            local: self.local_limiter(*limit),
        };
        let (_, own_limit) = rule.limit_for(None);
        let own = state(rule.name().to_owned(), own_limit);
        let tiers = rule
            .limits()
            .filter_map(|(tier, limit)| {
                let tier = tier?;
                Some((
                    tier.to_owned(),
                    state(format!("{}/{tier}", rule.name()), limit),
                ))
            })
            .collect();
        let outcomes = rule.adaptive().map(|adaptive| {
            Tallies::new(
                Duration::from_millis(adaptive.window_ms),
                self.inner.settings.max_keys,
            )
        });
        ActiveRule {
            rule,
            own,
            tiers,
            outcomes,
        }
    }

    /// The in-process limiter for `limit`: the whole limit without Redis, the
    /// instance's share with it.
    fn local_limiter(&self, limit: Limit) -> LocalLimiter {
        let enforced = if self.inner.shared.is_some() {
            limit.share(self.inner.settings.instances)
        } else {
            limit
        };
        LocalLimiter::new(
            enforced,
            self.inner.clock.clone(),
            self.inner.settings.max_keys,
        )
    }

    /// The cost of a check after adaptive tightening: multiplied by the rule's
    /// factor while most of the key's recent requests failed, capped at the
    /// limit's capacity so the check can still pass once the key recovers.
    fn adaptive_cost(&self, active: &ActiveRule, key: &str, cost: u64, limit: &Limit) -> u64 {
        let (Some(adaptive), Some(outcomes)) = (active.rule.adaptive(), &active.outcomes) else {
            return cost;
        };
        let (total, failed) = outcomes.recent(key, self.inner.clock.monotonic());
        if total >= f64::from(adaptive.min_requests) && failed >= total * adaptive.error_ratio {
            metrics::counter!("palisade_ratelimit_tightened_total", "rule" => active.rule.name().to_owned())
                .increment(1);
            cost.saturating_mul(u64::from(adaptive.factor))
                .min(limit.capacity())
        } else {
            cost
        }
    }

    /// The cost of a check for a tightened key: multiplied by its factor,
    /// capped at the limit's capacity so the key still gets a request through
    /// now and then rather than being blocked by a rate limit.
    fn tightened_cost(&self, active: &ActiveRule, key: &str, cost: u64, limit: &Limit) -> u64 {
        let tightenings = &self.inner.tightenings;
        if tightenings.is_empty() {
            return cost;
        }
        let now = self.inner.clock.now_unix_ms();
        let factor = match active.rule.key_source() {
            KeySource::Ip => key
                .parse::<std::net::IpAddr>()
                .map_or(1, |ip| tightenings.factor_for_ip(ip, now)),
            KeySource::Subject | KeySource::ApiKey => tightenings.factor_for_subject(key, now),
            _ => 1,
        };
        if factor <= 1 {
            return cost;
        }
        metrics::counter!("palisade_ratelimit_threat_tightened_total", "rule" => active.rule.name().to_owned())
            .increment(1);
        cost.saturating_mul(u64::from(factor))
            .min(limit.capacity())
            .max(cost)
    }

    async fn decide(
        &self,
        namespace: &Arc<str>,
        key: &str,
        limit: &Limit,
        local: &LocalLimiter,
        cost: u64,
    ) -> Result<Checked, GuardError> {
        let (decision, degraded) = match &self.inner.shared {
            None => (local.check(key, cost)?, false),
            Some(shared) => match shared.check(namespace, key, limit, cost).await {
                Ok(decision) => (decision, false),
                Err(error) => {
                    if !error.is_unavailable() {
                        // A script or reply error is a bug, not an outage; it
                        // is still no reason to fail the caller's request.
                        tracing::error!(%error, "rate-limit script failed; using the local share");
                    }
                    metrics::counter!("palisade_ratelimit_fallback_total").increment(1);
                    (local.check(key, cost)?, true)
                }
            },
        };
        let checked = Checked {
            decision,
            policy: Arc::clone(namespace),
            period: limit.period(),
            degraded,
        };
        if !decision.allowed {
            self.report_block(namespace, key);
        }
        Ok(checked)
    }

    fn report_block(&self, policy: &str, key: &str) {
        metrics::counter!("palisade_ratelimit_blocked_total", "policy" => policy.to_owned())
            .increment(1);
        let threshold = self.inner.settings.block_report_threshold;
        let Some(reporter) = self.inner.reporter.as_ref().filter(|_| threshold > 0) else {
            return;
        };
        let tally_key = format!("{policy}\u{0}{key}");
        let blocks = self
            .inner
            .blocks
            .record(&tally_key, true, self.inner.clock.monotonic());
        if blocks == threshold {
            reporter(BlockReport {
                policy: policy.to_owned(),
                key: key.to_owned(),
                blocks,
            });
        }
    }
}

/// The Redis namespace of an inline limit: its canonical form, so equal
/// inline limits share counts across instances and different ones never do.
fn inline_namespace(limit: &Limit) -> String {
    format!(
        "inline:{}:{}:{}:{}",
        limit.algorithm().as_str(),
        limit.limit(),
        limit.period().as_millis(),
        limit.capacity()
    )
}

/// Rejects empty keys and keys over [`MAX_KEY_BYTES`].
fn validate_key(key: &str) -> Result<(), GuardError> {
    if key.is_empty() {
        return Err(GuardError::invalid("key", "must not be empty"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(GuardError::invalid(
            "key",
            format!("must be at most {MAX_KEY_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Builds [`Rule`]s from specs of one origin, naming the first bad one.
pub fn rules_from_specs(
    specs: impl IntoIterator<Item = RuleSpec>,
    origin: super::RuleOrigin,
) -> Result<Vec<Rule>, GuardError> {
    specs
        .into_iter()
        .map(|spec| Rule::new(spec, origin))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::{AdaptiveSpec, Algorithm, KeySource, RuleOrigin};
    use palisade_core::ManualClock;
    use std::sync::Mutex;

    fn spec(name: &str, limit: u64) -> RuleSpec {
        RuleSpec {
            name: name.into(),
            key: KeySource::Custom,
            algorithm: Algorithm::FixedWindow,
            limit,
            period_ms: 60_000,
            burst: None,
            tiers: BTreeMap::new(),
            routes: Vec::new(),
            adaptive: None,
        }
    }

    fn rule(spec: RuleSpec) -> Rule {
        Rule::new(spec, RuleOrigin::Config).unwrap()
    }

    fn local(clock: &ManualClock, reporter: Option<BlockReporter>, threshold: u64) -> RateLimiter {
        RateLimiter::new(
            RateLimiterSettings {
                block_report_threshold: threshold,
                ..RateLimiterSettings::default()
            },
            Arc::new(clock.clone()),
            None,
            reporter,
        )
    }

    async fn allowed(
        limiter: &RateLimiter,
        rule: &str,
        key: &str,
        tier: Option<&str>,
        n: usize,
    ) -> usize {
        let mut allowed = 0;
        for _ in 0..n {
            allowed += usize::from(
                limiter
                    .check(rule, key, 1, tier)
                    .await
                    .unwrap()
                    .decision
                    .allowed,
            );
        }
        allowed
    }

    #[tokio::test]
    async fn tightened_keys_get_a_fraction_of_their_quota_until_the_entry_expires() {
        use crate::ratelimit::Tightening;
        use crate::reputation::BlockTarget;
        let clock = ManualClock::new();
        let limiter = local(&clock, None, 0);
        let by_ip = RuleSpec {
            key: KeySource::Ip,
            ..spec("per-ip", 20)
        };
        let by_subject = RuleSpec {
            key: KeySource::Subject,
            ..spec("per-subject", 20)
        };
        limiter
            .replace_rules(vec![rule(by_ip), rule(by_subject)])
            .unwrap();
        let now = palisade_core::Clock::now_unix_ms(&clock);
        let entry = |target, factor| Tightening {
            target,
            factor,
            detector: "brute_force_ip".into(),
            reason: "test".into(),
            created_at_ms: now,
            expires_at_ms: now + 30_000,
            incident: None,
            offense: 1,
        };
        let set = limiter.tightenings();
        set.insert(
            entry(BlockTarget::ip("198.51.100.0/24".parse().unwrap()), 4),
            now,
        )
        .unwrap();
        set.insert(entry(BlockTarget::Subject("mallory".into()), 10), now)
            .unwrap();
        assert_eq!(
            allowed(&limiter, "per-ip", "198.51.100.9", None, 30).await,
            5
        );
        assert_eq!(allowed(&limiter, "per-ip", "192.0.2.1", None, 30).await, 20);
        assert_eq!(
            allowed(&limiter, "per-subject", "mallory", None, 30).await,
            2
        );
        assert_eq!(
            allowed(&limiter, "per-subject", "alice", None, 30).await,
            20
        );
        // The same subject value under an ip rule is not an address: untouched.
        assert_eq!(allowed(&limiter, "per-ip", "mallory", None, 30).await, 20);
        // Once the entry has expired (and a new window begun), the full quota.
        clock.advance(Duration::from_secs(61));
        assert_eq!(
            allowed(&limiter, "per-ip", "198.51.100.9", None, 30).await,
            20
        );
        assert_eq!(
            allowed(&limiter, "per-subject", "mallory", None, 30).await,
            20
        );
    }

    #[tokio::test]
    async fn a_tier_gets_its_own_limit_and_an_unknown_tier_the_rules() {
        let clock = ManualClock::new();
        let limiter = local(&clock, None, 0);
        let mut with_tiers = spec("api", 2);
        with_tiers.tiers.insert(
            "pro".into(),
            LimitSpec {
                algorithm: Algorithm::FixedWindow,
                limit: 5,
                period_ms: 60_000,
                burst: None,
            },
        );
        limiter.replace_rules(vec![rule(with_tiers)]).unwrap();
        assert_eq!(allowed(&limiter, "api", "a", Some("pro"), 10).await, 5);
        assert_eq!(allowed(&limiter, "api", "b", Some("gold"), 10).await, 2);
        assert_eq!(allowed(&limiter, "api", "c", None, 10).await, 2);
        let checked = limiter.check("api", "d", 1, Some("pro")).await.unwrap();
        assert_eq!(&*checked.policy, "api/pro");
    }

    #[tokio::test]
    async fn adaptive_rules_tighten_for_keys_whose_requests_mostly_fail() {
        let clock = ManualClock::new();
        let limiter = local(&clock, None, 0);
        let mut adaptive = spec("api", 40);
        adaptive.adaptive = Some(AdaptiveSpec {
            error_ratio: 0.5,
            min_requests: 10,
            factor: 4,
            window_ms: 60_000,
        });
        limiter.replace_rules(vec![rule(adaptive)]).unwrap();
        for _ in 0..10 {
            limiter.record_outcome("api", "bad", true);
            limiter.record_outcome("api", "good", false);
        }
        // 40 units: a failing key pays 4 per request, a healthy one 1.
        assert_eq!(allowed(&limiter, "api", "bad", None, 40).await, 10);
        assert_eq!(allowed(&limiter, "api", "good", None, 40).await, 40);
    }

    #[tokio::test]
    async fn reports_a_key_once_per_minute_when_its_blocks_reach_the_threshold() {
        let clock = ManualClock::new();
        let reports = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&reports);
        let reporter: BlockReporter = Arc::new(move |r| sink.lock().unwrap().push(r));
        let limiter = local(&clock, Some(reporter), 3);
        limiter.replace_rules(vec![rule(spec("login", 1))]).unwrap();
        assert_eq!(allowed(&limiter, "login", "mallory", None, 10).await, 1);
        assert_eq!(
            *reports.lock().unwrap(),
            vec![BlockReport {
                policy: "login".into(),
                key: "mallory".into(),
                blocks: 3
            }],
            "nine blocks, one report"
        );
        clock.advance(Duration::from_secs(60));
        assert_eq!(allowed(&limiter, "login", "mallory", None, 10).await, 1);
        assert_eq!(
            reports.lock().unwrap().len(),
            2,
            "a new minute, a new report"
        );
    }

    #[tokio::test]
    async fn reloading_unchanged_rules_keeps_counts_and_changed_ones_start_afresh() {
        let clock = ManualClock::new();
        let limiter = local(&clock, None, 0);
        limiter.replace_rules(vec![rule(spec("api", 3))]).unwrap();
        assert_eq!(allowed(&limiter, "api", "k", None, 2).await, 2);
        limiter.replace_rules(vec![rule(spec("api", 3))]).unwrap();
        assert_eq!(
            allowed(&limiter, "api", "k", None, 5).await,
            1,
            "the count survived the reload"
        );
        limiter.replace_rules(vec![rule(spec("api", 4))]).unwrap();
        assert_eq!(allowed(&limiter, "api", "k", None, 5).await, 4);
        assert!(limiter.remove_rule("api"));
        assert!(matches!(
            limiter.check("api", "k", 1, None).await,
            Err(GuardError::UnknownRule(_))
        ));
        let twice = limiter.replace_rules(vec![rule(spec("a", 1)), rule(spec("a", 2))]);
        assert!(matches!(
            twice,
            Err(GuardError::Invalid { field: "name", .. })
        ));
    }

    #[tokio::test]
    async fn keys_are_bounded_and_the_strictest_answer_wins() {
        let clock = ManualClock::new();
        let limiter = local(&clock, None, 0);
        limiter.replace_rules(vec![rule(spec("api", 3))]).unwrap();
        assert!(matches!(
            limiter.check("api", "", 1, None).await,
            Err(GuardError::Invalid { field: "key", .. })
        ));
        let long = "k".repeat(MAX_KEY_BYTES + 1);
        assert!(matches!(
            limiter.check("api", &long, 1, None).await,
            Err(GuardError::Invalid { field: "key", .. })
        ));

        let loose = limiter.check("api", "a", 1, None).await.unwrap();
        let tight = limiter.check("api", "b", 3, None).await.unwrap();
        let denied = limiter.check("api", "b", 1, None).await.unwrap();
        assert_eq!(
            Checked::strictest([loose.clone(), tight.clone()]),
            Some(tight.clone())
        );
        assert_eq!(
            Checked::strictest([tight, denied.clone(), loose]),
            Some(denied)
        );
    }

    #[tokio::test]
    async fn inline_limits_are_capped_in_number() {
        let clock = ManualClock::new();
        let limiter = local(&clock, None, 0);
        for n in 1..=MAX_INLINE_LIMITS as u64 {
            let spec = LimitSpec {
                algorithm: Algorithm::Gcra,
                limit: n,
                period_ms: 1_000,
                burst: None,
            };
            limiter.check_limit(&spec, "k", 1).await.unwrap();
        }
        let one_more = LimitSpec {
            algorithm: Algorithm::Gcra,
            limit: 5_000,
            period_ms: 1_000,
            burst: None,
        };
        assert!(matches!(
            limiter.check_limit(&one_more, "k", 1).await,
            Err(GuardError::Invalid { field: "limit", .. })
        ));
    }
}
