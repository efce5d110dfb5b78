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
}
