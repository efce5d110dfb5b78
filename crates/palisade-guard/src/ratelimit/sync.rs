//! Keeps an instance's rules in step with configuration and the rule table,
//! so a rule created over the API on one instance reaches the others.

use super::{RateLimiter, Rule, RuleOrigin, RuleStore};
use crate::GuardError;

/// The rules of an instance: those of `palisade.toml`, plus those stored
/// over the API. A stored rule never replaces a configured one of the same
/// name (the API refuses to create one, but a row may predate the config).
#[derive(Debug, Clone)]
pub struct RuleSync {
    limiter: RateLimiter,
    store: RuleStore,
    configured: Vec<Rule>,
}

impl RuleSync {
    /// Syncs `limiter` from `configured` rules and `store`.
    pub fn new(limiter: RateLimiter, store: RuleStore, configured: Vec<Rule>) -> Self {
        Self {
            limiter,
            store,
            configured,
        }
    }

    /// Installs the configured rules alone, before the database is reachable.
    pub fn install_configured(&self) -> Result<(), GuardError> {
        self.limiter.replace_rules(self.configured.clone())
    }

    /// Reads the rule table and installs configured and stored rules. Rules
    /// that did not change keep their counts. On a database error the rules
    /// in force stay as they are.
    pub async fn reload(&self) -> Result<usize, GuardError> {
        let stored = self.store.list().await?;
        let mut rules = self.configured.clone();
        for spec in stored {
            if rules.iter().any(|r| r.name() == spec.name) {
                tracing::warn!(rule = %spec.name, "a stored rate-limit rule has the name of a configured one; the configured one wins");
                continue;
            }
            match Rule::new(spec, RuleOrigin::Api) {
                Ok(rule) => rules.push(rule),
                Err(error) => {
                    tracing::error!(%error, "skipping an invalid stored rate-limit rule");
                }
            }
        }
        let count = rules.len();
        self.limiter.replace_rules(rules)?;
        Ok(count)
    }
}
