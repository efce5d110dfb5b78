//! Incidents visible from every instance. Without Redis, the in-process
//! [`Incidents`] alone. With Redis, each instance still groups in process
//! and publishes what it changed:
//! - `<prefix>threats:{incidents}`: a hash of incident id → incident JSON;
//! - `<prefix>threats:{incidents}:ids`: the ids in a sorted set (all at score
//!   0, so ordered by id: UUIDv7, by opening time), trimmed to `max`;
//! - `<prefix>threats:{incidents}:key:<key>`: the open incident of a key
//!   (`ip:...`, `subject:...`), expiring after the incident gap, so a
//!   detection on another instance joins the incident opened here.
//!
//! Before filing a detection an instance reads the open incident of its keys
//! and takes in the current copy; it then writes the whole incident back. Two
//! instances updating one incident in the same instant may lose one's
//! addition (the last write wins); the next update of either brings the
//! counts together again only for what it saw. Listing reads Redis; when
//! Redis is unreachable, this instance's incidents answer.

use super::detect::Detection;
use super::incidents::{Incident, Incidents, keys_of};
use crate::GuardError;
use palisade_core::SecurityEvent;
use palisade_store::Redis;

/// Events joining an incident are published for the first ones and then
/// every this many, so a flood of events does not rewrite the incident in
/// Redis once per event; detections and actions always publish.
const PUBLISH_EVERY: u64 = 16;
/// Incidents read from Redis per round when listing.
const PAGE: usize = 100;

#[derive(Debug)]
pub(crate) struct SharedIncidents {
    local: Incidents,
    redis: Option<Redis>,
    max: usize,
}

impl SharedIncidents {
    pub(crate) fn new(local: Incidents, redis: Option<Redis>, max: usize) -> Self {
        Self {
            local,
            redis,
            max: max.max(1),
        }
    }

    pub(crate) fn local(&self) -> &Incidents {
        &self.local
    }

    fn hash_key(redis: &Redis) -> String {
        redis.key("threats:{incidents}")
    }

    fn ids_key(redis: &Redis) -> String {
        redis.key("threats:{incidents}:ids")
    }

    fn key_key(redis: &Redis, key: &str) -> String {
        redis.key(&format!("threats:{{incidents}}:key:{key}"))
    }

    /// Takes in the shared open incident of `detection`'s keys, if another
    /// instance opened one (or added to ours), before the detection is filed.
    pub(crate) async fn prepare(&self, detection: &Detection) {
        let Some(redis) = &self.redis else {
            return;
        };
        if let Err(error) = self.take_in(redis, detection).await {
            tracing::debug!(%error, "shared incidents not read; grouping on this instance only");
        }
    }

    async fn take_in(&self, redis: &Redis, detection: &Detection) -> Result<(), GuardError> {
        let keys = keys_of(detection);
        if keys.is_empty() {
            return Ok(());
        }
        let mut mget = redis::cmd("MGET");
        for key in &keys {
            mget.arg(Self::key_key(redis, key));
        }
        let ids: Vec<Option<String>> = redis
            .run_idempotent(&mget)
            .await
            .map_err(|e| GuardError::StoreUnavailable(e.to_string()))?;
        let Some(id) = ids.into_iter().flatten().next() else {
            return Ok(());
        };
        if let Some(incident) = self.fetch(redis, &id).await?
            && detection.at_ms - incident.last_seen_ms <= self.local.gap_ms()
        {
            self.local.adopt(incident);
        }
        Ok(())
    }

    async fn fetch(&self, redis: &Redis, id: &str) -> Result<Option<Incident>, GuardError> {
        let mut get = redis::cmd("HGET");
        get.arg(Self::hash_key(redis)).arg(id);
        let json: Option<String> = redis
            .run_idempotent(&get)
            .await
            .map_err(|e| GuardError::StoreUnavailable(e.to_string()))?;
        Ok(json.and_then(|json| parse(id, &json)))
    }

    /// Files `event` into its open incident here, publishing the incident
    /// for the first events and every [`PUBLISH_EVERY`]th.
    pub(crate) async fn record_event(&self, event: &SecurityEvent) {
        if let Some((id, count)) = self.local.record_event(event)
            && (count <= PUBLISH_EVERY || count.is_multiple_of(PUBLISH_EVERY))
        {
            self.publish(&id).await;
        }
    }

    /// Writes this instance's copy of incident `id` to Redis (no-op without).
    pub(crate) async fn publish(&self, id: &str) {
        let Some(redis) = &self.redis else {
            return;
        };
        let Some(incident) = self.local.get(id) else {
            return;
        };
        if let Err(error) = self.write(redis, &incident).await {
            tracing::warn!(%error, incident = %id, "incident not shared through Redis; listed on this instance only");
        }
    }

    async fn write(&self, redis: &Redis, incident: &Incident) -> Result<(), GuardError> {
        let unavailable =
            |e: palisade_store::RedisError| GuardError::StoreUnavailable(e.to_string());
        let json = serde_json::to_string(incident).map_err(|e| GuardError::Store(e.to_string()))?;
        let mut set = redis::cmd("HSET");
        set.arg(Self::hash_key(redis)).arg(&incident.id).arg(json);
        redis
            .run_idempotent::<i64>(&set)
            .await
            .map_err(unavailable)?;
        let mut add = redis::cmd("ZADD");
        add.arg(Self::ids_key(redis)).arg(0).arg(&incident.id);
        redis
            .run_idempotent::<i64>(&add)
            .await
            .map_err(unavailable)?;
        let gap = self.local.gap_ms().max(1);
        for key in &incident.keys {
            let mut map = redis::cmd("SET");
            map.arg(Self::key_key(redis, key))
                .arg(&incident.id)
                .arg("PX")
                .arg(gap);
            redis
                .run_idempotent::<()>(&map)
                .await
                .map_err(unavailable)?;
        }
        self.trim(redis).await
    }

    /// Drops the oldest incidents beyond `max`.
    async fn trim(&self, redis: &Redis) -> Result<(), GuardError> {
        let unavailable =
            |e: palisade_store::RedisError| GuardError::StoreUnavailable(e.to_string());
        let mut card = redis::cmd("ZCARD");
        card.arg(Self::ids_key(redis));
        let held: usize = redis.run_idempotent(&card).await.map_err(unavailable)?;
        if held <= self.max {
            return Ok(());
        }
        let excess = held - self.max;
        let mut oldest = redis::cmd("ZRANGE");
        oldest.arg(Self::ids_key(redis)).arg(0).arg(excess - 1);
        let ids: Vec<String> = redis.run_idempotent(&oldest).await.map_err(unavailable)?;
        if ids.is_empty() {
            return Ok(());
        }
        let mut rem = redis::cmd("ZREM");
        rem.arg(Self::ids_key(redis)).arg(&ids);
        redis
            .run_idempotent::<i64>(&rem)
            .await
            .map_err(unavailable)?;
        let mut del = redis::cmd("HDEL");
        del.arg(Self::hash_key(redis)).arg(&ids);
        redis
            .run_idempotent::<i64>(&del)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Incidents newest first (see [`Incidents::list`]), from every instance
    /// when shared.
    pub(crate) async fn list(
        &self,
        now_ms: i64,
        before: Option<&str>,
        limit: usize,
        open_only: bool,
    ) -> Vec<Incident> {
        let Some(redis) = &self.redis else {
            return self.local.list(now_ms, before, limit, open_only);
        };
        match self
            .list_shared(redis, now_ms, before, limit, open_only)
            .await
        {
            Ok(list) => list,
            Err(error) => {
                tracing::warn!(%error, "shared incidents unreachable; listing this instance's");
                self.local.list(now_ms, before, limit, open_only)
            }
        }
    }

    async fn list_shared(
        &self,
        redis: &Redis,
        now_ms: i64,
        before: Option<&str>,
        limit: usize,
        open_only: bool,
    ) -> Result<Vec<Incident>, GuardError> {
        let unavailable =
            |e: palisade_store::RedisError| GuardError::StoreUnavailable(e.to_string());
        let mut found = Vec::new();
        let mut upper = before.map_or_else(|| "+".to_owned(), |b| format!("({b}"));
        // Bounded: never more rounds than the set can hold pages.
        for _ in 0..=self.max.div_ceil(PAGE) {
            let mut range = redis::cmd("ZRANGE");
            range
                .arg(Self::ids_key(redis))
                .arg(&upper)
                .arg("-")
                .arg("BYLEX")
                .arg("REV")
                .arg("LIMIT")
                .arg(0)
                .arg(PAGE);
            let ids: Vec<String> = redis.run_idempotent(&range).await.map_err(unavailable)?;
            let Some(last) = ids.last() else {
                break;
            };
            upper = format!("({last}");
            let mut get = redis::cmd("HMGET");
            get.arg(Self::hash_key(redis)).arg(&ids);
            let jsons: Vec<Option<String>> =
                redis.run_idempotent(&get).await.map_err(unavailable)?;
            for (id, json) in ids.iter().zip(jsons) {
                let Some(incident) = json.and_then(|json| parse(id, &json)) else {
                    continue;
                };
                let incident = self.local.with_status(incident, now_ms);
                if open_only && incident.status != "open" {
                    continue;
                }
                found.push(incident);
                if found.len() >= limit {
                    return Ok(found);
                }
            }
            if ids.len() < PAGE {
                break;
            }
        }
        Ok(found)
    }

    /// One incident, from every instance when shared.
    pub(crate) async fn get(&self, now_ms: i64, id: &str) -> Option<Incident> {
        if let Some(redis) = &self.redis {
            match self.fetch(redis, id).await {
                Ok(Some(incident)) => return Some(self.local.with_status(incident, now_ms)),
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, "shared incidents unreachable; reading this instance's");
                }
            }
        }
        self.local
            .get(id)
            .map(|incident| self.local.with_status(incident, now_ms))
    }
}

fn parse(id: &str, json: &str) -> Option<Incident> {
    match serde_json::from_str::<Incident>(json) {
        Ok(incident) => Some(incident),
        Err(error) => {
            tracing::warn!(%error, incident = %id, "skipping a shared incident that does not parse");
            None
        }
    }
}
