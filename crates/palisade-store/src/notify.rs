//! Change notices between instances through PostgreSQL `NOTIFY`/`LISTEN`.
//!
//! Notices only make propagation fast: they are lost when a connection drops
//! or an instance restarts, so every user of this module also polls, and the
//! listener calls `on_connect` after every (re)connection to catch up on what
//! was announced while it was away. The embedded SQLite store serves a single
//! instance and needs neither: both functions return at once there.

use crate::{Database, StoreError};
use std::future::Future;
use std::time::Duration;

/// Longest wait between attempts to re-establish the listener.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Sends `payload` on `channel`. A no-op on SQLite.
pub async fn announce(db: &Database, channel: &str, payload: &str) -> Result<(), StoreError> {
    if let Database::Postgres(pg) = db {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(pg.primary())
            .await?;
    }
    Ok(())
}

/// Listens on `channel` until the process ends, calling `on_notice` with each
/// payload and `on_connect` after every (re)connection, reconnecting with
/// backoff when the connection is lost. Returns at once on SQLite.
pub async fn listen<C, CF, N, NF>(db: Database, channel: &'static str, on_connect: C, on_notice: N)
where
    C: Fn() -> CF,
    CF: Future<Output = ()>,
    N: Fn(String) -> NF,
    NF: Future<Output = ()>,
{
    let Database::Postgres(pg) = db else {
        return;
    };
    let mut backoff = Duration::from_millis(100);
    loop {
        match sqlx::postgres::PgListener::connect_with(pg.primary()).await {
            Ok(mut listener) => match listener.listen(channel).await {
                Ok(()) => {
                    backoff = Duration::from_millis(100);
                    on_connect().await;
                    loop {
                        match listener.recv().await {
                            Ok(notification) => {
                                metrics::counter!("palisade_notifications_total", "channel" => channel)
                                    .increment(1);
                                on_notice(notification.payload().to_owned()).await;
                            }
                            Err(error) => {
                                tracing::warn!(%error, channel, "change listener lost; polling alone until it is back");
                                break;
                            }
                        }
                    }
                }
                Err(error) => tracing::debug!(%error, channel, "LISTEN failed"),
            },
            Err(error) => tracing::debug!(%error, channel, "change listener cannot connect"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
