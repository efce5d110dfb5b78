//! [`on_primary!`](crate::on_primary): one statement, written in each SQL dialect, run on
//! the primary of whichever backend is configured.

/// Runs one query on the primary (PostgreSQL) or the writer (SQLite) of a
/// [`Database`](crate::Database), through PostgreSQL's circuit breaker.
///
/// The two backends differ only in placeholder syntax and row type, so a
/// store method is one query in each dialect, bound once (`|q| q.bind(..)`),
/// executed with `$exec` (`execute`, `fetch_optional`, `fetch_all`, ...), and
/// decoded by `$post`, which is expanded in both arms so generic decoding
/// resolves to each backend's row type. Never a replica: a row written a
/// moment ago must be seen at once. Evaluates to `Result<_, StoreError>`
/// (the `?` inside converts sqlx errors).
#[macro_export]
macro_rules! on_primary {
    ($db:expr, $sql_pg:expr, $sql_lite:expr, |$q:ident| $bind:expr, $exec:ident, |$r:ident| $post:expr) => {
        match $db {
            $crate::Database::Postgres(db) => {
                let $q = $crate::sqlx::query($sql_pg);
                let $r = db
                    .guard($crate::StoreError::is_unavailable, async {
                        Ok::<_, $crate::StoreError>($bind.$exec(db.primary()).await?)
                    })
                    .await?;
                $post
            }
            $crate::Database::Sqlite(db) => {
                let $q = $crate::sqlx::query($sql_lite);
                let $r = $bind.$exec(db.writer()).await?;
                $post
            }
        }
    };
}
