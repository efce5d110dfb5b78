//! Tightened rate-limit keys shared by every instance, the way blocks are
//! (`shared.rs`): with Redis, a hash `<prefix>threats:{tightened}` of target
//! key → entry JSON is the truth, written through and re-read every
//! `block_sync_ms` into the [`Tightenings`] the rate limiter reads. Without
//! Redis, the set alone. When Redis is unreachable each instance keeps what
//! it has, and new entries still apply on the instance that made them.

use super::shared::{put_shared, sync_shared};
use crate::GuardError;
use crate::ratelimit::{Tightening, Tightenings};
use palisade_store::Redis;
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
            put_shared(
                redis,
                Self::hash_key(redis),
                entry.target.key(),
                &entry,
                "rate-limit tightening",
            )
            .await?;
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
        sync_shared(
            redis,
            Self::hash_key(redis),
            now_ms,
            "rate-limit tightening",
            Tightening::is_active,
            |active| self.set.replace_all(active),
        )
        .await
    }
}
