//! The shared test Redis and per-test key prefixes.
//!
//! Tests share one Redis (CI's, or the throwaway one `scripts/test` starts) and
//! run in parallel, so each test puts its keys under its own prefix and can
//! delete exactly those keys when it is done.

use ::redis::aio::ConnectionLike;

/// Environment variable naming the Redis server tests use.
pub const REDIS_URL_VAR: &str = "PALISADE_TEST_REDIS_URL";

/// The server tests use when [`REDIS_URL_VAR`] is unset: the CI service and the
/// developer default.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The Redis URL tests connect to: `PALISADE_TEST_REDIS_URL`, or
/// [`DEFAULT_REDIS_URL`] when it is unset or empty.
pub fn redis_url() -> String {
    std::env::var(REDIS_URL_VAR)
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned())
}

/// A key prefix no other test (or run) uses: `t:<test_name>:<uuid>:`.
///
/// The test name is kept (sanitised) so leftover keys can be traced to their
/// test. Characters other than ASCII letters, digits, `_`, `-` and `.` become
/// `_`: braces in particular must not appear, because Redis Cluster hashes only
/// the first `{...}` of a key and a brace in the prefix would override the hash
/// tags the code under test puts in its keys. The result is also safe to use in
/// a `SCAN MATCH` pattern without escaping.
pub fn unique_prefix(test_name: &str) -> String {
    let name: String = test_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("t:{name}:{}:", uuid::Uuid::now_v7().simple())
}

/// Deletes every key starting with `prefix` (as made by [`unique_prefix`]) and
/// returns how many were deleted, so a test leaves the shared Redis as it
/// found it.
///
/// Uses `SCAN`, which visits one node only: on a cluster connection, call it
/// per node or use keys that share one hash tag.
pub async fn delete_prefix<C>(connection: &mut C, prefix: &str) -> ::redis::RedisResult<usize>
where
    C: ConnectionLike + Send,
{
    let pattern = format!("{prefix}*");
    let mut cursor: u64 = 0;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = ::redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(connection)
            .await?;
        if !keys.is_empty() {
            // UNLINK frees memory off the main thread and, like DEL, counts
            // only keys that still existed.
            let removed: usize = ::redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(connection)
                .await?;
            deleted += removed;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}
