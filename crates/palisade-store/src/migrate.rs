//! The migrations embedded at build time from `migrations/{postgres,sqlite}/`.

use sqlx::migrate::{Migration, MigrationType, Migrator};
use std::borrow::Cow;

include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

fn migrator(files: &'static [(i64, &'static str, &'static str)]) -> Migrator {
    let migrations: Vec<Migration> = files
        .iter()
        .map(|&(version, description, sql)| {
            Migration::new(
                version,
                Cow::Borrowed(description),
                MigrationType::Simple,
                Cow::Borrowed(sql),
                false,
            )
        })
        .collect();
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

/// PostgreSQL migrations. `locking` (an advisory lock) keeps two instances that
/// start together from applying the same migration twice.
pub(crate) fn postgres() -> Migrator {
    migrator(POSTGRES)
}

/// SQLite migrations.
pub(crate) fn sqlite() -> Migrator {
    migrator(SQLITE)
}

/// The newest migration version this build knows for each backend.
pub fn latest_versions() -> (i64, i64) {
    let last = |files: &[(i64, &str, &str)]| files.last().map(|f| f.0).unwrap_or(0);
    (last(POSTGRES), last(SQLITE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_backends_have_the_same_migration_versions() {
        let versions = |files: &[(i64, &str, &str)]| files.iter().map(|f| f.0).collect::<Vec<_>>();
        assert!(!POSTGRES.is_empty());
        assert_eq!(versions(POSTGRES), versions(SQLITE));
    }

    /// Migration 0008 keeps every subtree hash stored before it, each as a run of one
    /// that reads back at its level and index.
    #[tokio::test]
    async fn hashes_stored_before_the_runs_become_runs_of_one() {
        use sqlx::sqlite::SqliteConnectOptions;
        use sqlx::{ConnectOptions, Connection};
        let dir = tempfile::tempdir().expect("temp dir");
        let mut conn = SqliteConnectOptions::new()
            .filename(dir.path().join("old.db"))
            .create_if_missing(true)
            .connect()
            .await
            .expect("open");
        let before: Vec<_> = SQLITE.iter().copied().filter(|m| m.0 < 8).collect();
        let before: &'static [(i64, &str, &str)] = Box::leak(before.into_boxed_slice());
        migrator(before)
            .run(&mut conn)
            .await
            .expect("migrations up to 0007");
        let stored = [(0i64, 0i64, [1u8; 32]), (0, 1, [2; 32]), (1, 0, [3; 32])];
        for (level, idx, hash) in stored {
            sqlx::query("INSERT INTO audit_hashes (level, idx, hash) VALUES (?, ?, ?)")
                .bind(level)
                .bind(idx)
                .bind(&hash[..])
                .execute(&mut conn)
                .await
                .expect("old hash row");
        }
        migrator(SQLITE)
            .run(&mut conn)
            .await
            .expect("all migrations");
        let runs: Vec<(i64, i64, Vec<u8>)> = sqlx::query_as(
            "SELECT level, first_idx, hashes FROM audit_hash_runs ORDER BY level, first_idx",
        )
        .fetch_all(&mut conn)
        .await
        .expect("runs");
        let expected: Vec<(i64, i64, Vec<u8>)> = stored
            .iter()
            .map(|(l, i, h)| (*l, *i, h.to_vec()))
            .collect();
        assert_eq!(runs, expected);
        let gone = sqlx::query("SELECT 1 FROM audit_hashes")
            .fetch_all(&mut conn)
            .await;
        assert!(gone.is_err(), "the old table is dropped");
        conn.close().await.expect("close");
    }
}
