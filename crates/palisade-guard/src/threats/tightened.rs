//! Tightened rate-limit keys shared by every instance, the way blocks are
//! (`shared.rs`): with Redis, a hash `<prefix>threats:{tightened}` of target
//! key → entry JSON is the truth, written through and re-read every
//! `block_sync_ms` into the [`Tightenings`] the rate limiter reads. Without
//! Redis, the set alone. When Redis is unreachable each instance keeps what
//! it has, and new entries still apply on the instance that made them.

use crate::GuardError;
use crate::ratelimit::{Tightening, Tightenings};
use palisade_store::Redis;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub(crate) struct SharedTightenings {
    set: Arc<Tightenings>,
    redis: Option<Redis>,
}

impl SharedTightenings {
    pub(crate) fn new(set: Arc<Tightenings>, redis: Option<Redis>) -> Self {
        Self { set, redis }
    }

    pub(crate) fn set(&self) -> &Arc<Tightenings> {
        &self.set
    }

    fn hash_key(redis: &Redis) -> String {
        redis.key("threats:{tightened}")
    }

    /// Adds or replaces an entry here and in Redis.
    pub(crate) async fn put(&self, entry: Tightening, now_ms: i64) -> Result<(), GuardError> {
        self.set.insert(entry.clone(), now_ms)?;
        if let Some(redis) = &self.redis {
            let json =
                serde_json::to_string(&entry).map_err(|e| GuardError::Store(e.to_string()))?;
            let mut cmd = redis::cmd("HSET");
            cmd.arg(Self::hash_key(redis))
                .arg(entry.target.key())
                .arg(json);
            if let Err(error) = redis.run_idempotent::<i64>(&cmd).await {
                tracing::warn!(%error, target = %entry.target.key(), "rate-limit tightening not shared through Redis; it applies on this instance only");
            }
        }
        Ok(())
    }

    /// Copies the shared entries into the local set and deletes expired ones
    /// from Redis. Without Redis, drops expired local entries.
    pub(crate) async fn sync(&self, now_ms: i64) -> Result<(), GuardError> {
        let Some(redis) = &self.redis else {
            self.set.purge_expired(now_ms);
            return Ok(());
        };
        let mut all = redis::cmd("HGETALL");
        all.arg(Self::hash_key(redis));
        let entries: HashMap<String, String> = redis
            .run_idempotent(&all)
            .await
            .map_err(|e| GuardError::StoreUnavailable(e.to_string()))?;
        let mut active = Vec::with_capacity(entries.len());
        let mut expired = Vec::new();
        for (field, json) in entries {
            match serde_json::from_str::<Tightening>(&json) {
                Ok(entry) if entry.is_active(now_ms) => active.push(entry),
                Ok(_) => expired.push(field),
                Err(error) => {
                    tracing::warn!(%error, %field, "dropping a shared rate-limit tightening that does not parse");
                    expired.push(field);
                }
            }
        }
        self.set.replace_all(active);
        if !expired.is_empty() {
            let mut del = redis::cmd("HDEL");
            del.arg(Self::hash_key(redis)).arg(expired);
            let _ = redis.run_idempotent::<i64>(&del).await;
        }
        Ok(())
    }
}
