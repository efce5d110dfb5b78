//! Blocks shared by every instance: with Redis, a hash
//! `<prefix>threats:{blocks}` of target key → block JSON is the truth, each
//! instance writes through it and re-reads it every `block_sync_ms` into its
//! own [`BlockTable`], which requests are checked against. Without Redis, the
//! table alone. When Redis is unreachable the local table keeps enforcing
//! what it has, and new blocks still apply on the instance that made them.

use crate::GuardError;
use crate::reputation::{Block, BlockTable, BlockTarget};
use palisade_store::Redis;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub(crate) struct SharedBlocks {
    table: Arc<BlockTable>,
    redis: Option<Redis>,
}

impl SharedBlocks {
    pub(crate) fn new(table: Arc<BlockTable>, redis: Option<Redis>) -> Self {
        Self { table, redis }
    }

    pub(crate) fn table(&self) -> &Arc<BlockTable> {
        &self.table
    }

    fn hash_key(redis: &Redis) -> String {
        redis.key("threats:{blocks}")
    }

    /// Adds or replaces a block here and in Redis.
    pub(crate) async fn put(&self, block: Block, now_ms: i64) -> Result<(), GuardError> {
        self.table.insert(block.clone(), now_ms)?;
        if let Some(redis) = &self.redis {
            put_shared(
                redis,
                Self::hash_key(redis),
                block.target.key(),
                &block,
                "block",
            )
            .await?;
        }
        Ok(())
    }

    /// Removes a block here and in Redis; the removed block, if there was one.
    pub(crate) async fn remove(&self, target: &BlockTarget) -> Result<Option<Block>, GuardError> {
        let local = self.table.remove(target);
        if let Some(redis) = &self.redis {
            let mut get = redis::cmd("HGET");
            get.arg(Self::hash_key(redis)).arg(target.key());
            let shared: Option<String> = redis
                .run_idempotent(&get)
                .await
                .map_err(|e| GuardError::StoreUnavailable(e.to_string()))?;
            let mut del = redis::cmd("HDEL");
            del.arg(Self::hash_key(redis)).arg(target.key());
            redis
                .run_idempotent::<i64>(&del)
                .await
                .map_err(|e| GuardError::StoreUnavailable(e.to_string()))?;
            let shared = shared.and_then(|json| serde_json::from_str::<Block>(&json).ok());
            return Ok(local.or(shared));
        }
        Ok(local)
    }

    /// Copies the shared blocks into the local table and deletes expired
    /// ones from Redis. Without Redis, drops expired local blocks.
    pub(crate) async fn sync(&self, now_ms: i64) -> Result<(), GuardError> {
        let Some(redis) = &self.redis else {
            self.table.purge_expired(now_ms);
            return Ok(());
        };
        sync_shared(
            redis,
            Self::hash_key(redis),
            now_ms,
            "block",
            Block::is_active,
            |active| self.table.replace_all(active),
        )
        .await
    }
}

/// Writes `entry` as JSON under `field` of the shared hash `key`. Failing to
/// reach Redis is only logged: the caller has already applied the entry
/// locally, so it still holds on this instance. `what` names the entry in
/// the log.
pub(super) async fn put_shared<T: Serialize>(
    redis: &Redis,
    key: String,
    field: String,
    entry: &T,
    what: &str,
) -> Result<(), GuardError> {
    let json = serde_json::to_string(entry).map_err(|e| GuardError::Store(e.to_string()))?;
    let mut cmd = redis::cmd("HSET");
    cmd.arg(key).arg(&field).arg(json);
    if let Err(error) = redis.run_idempotent::<i64>(&cmd).await {
        tracing::warn!(%error, target = %field, "{what} not shared through Redis; it applies on this instance only");
    }
    Ok(())
}

/// Reads every entry of the shared hash `key`, hands the active ones to
/// `apply` (which replaces the local copy) and deletes the expired and the
/// unparsable ones from Redis. Shared by blocks and tightenings, which keep
/// the same layout: target key → entry JSON. `what` names the entry in the
/// log.
pub(super) async fn sync_shared<T: DeserializeOwned>(
    redis: &Redis,
    key: String,
    now_ms: i64,
    what: &str,
    is_active: impl Fn(&T, i64) -> bool,
    apply: impl FnOnce(Vec<T>),
) -> Result<(), GuardError> {
    let mut all = redis::cmd("HGETALL");
    all.arg(&key);
    let entries: HashMap<String, String> = redis
        .run_idempotent(&all)
        .await
        .map_err(|e| GuardError::StoreUnavailable(e.to_string()))?;
    let mut active = Vec::with_capacity(entries.len());
    let mut expired = Vec::new();
    for (field, json) in entries {
        match serde_json::from_str::<T>(&json) {
            Ok(entry) if is_active(&entry, now_ms) => active.push(entry),
            Ok(_) => expired.push(field),
            Err(error) => {
                tracing::warn!(%error, %field, "dropping a shared {what} that does not parse");
                expired.push(field);
            }
        }
    }
    apply(active);
    if !expired.is_empty() {
        let mut del = redis::cmd("HDEL");
        del.arg(key).arg(expired);
        let _ = redis.run_idempotent::<i64>(&del).await;
    }
    Ok(())
}
