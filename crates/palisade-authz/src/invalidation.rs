//! Telling other instances that a tenant's policy changed.
//!
//! Policies live in the database, so the database carries the news too: on
//! PostgreSQL a change sends `NOTIFY palisade_authz, '<tenant>'` and every
//! instance LISTENs, re-reading that tenant at once. Notifications can be
//! lost (a dropped connection, a restart between the change and the listen),
//! so they only make propagation fast; the version poll of
//! [`Authz::refresh`](crate::Authz::refresh) is what makes it certain, and a
//! lost listener never means a stale allow for longer than the poll interval.
//! The embedded SQLite store serves a single instance and needs neither.

use crate::Authz;
use palisade_store::{Database, StoreError};
use std::time::Duration;

/// The PostgreSQL channel of policy changes.
pub const CHANNEL: &str = "palisade_authz";

/// Longest wait between attempts to re-establish the listener.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Announces that `tenant`'s policy changed. A no-op on SQLite.
pub async fn announce(db: &Database, tenant: &str) -> Result<(), StoreError> {
    if let Database::Postgres(pg) = db {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(tenant)
            .execute(pg.primary())
            .await?;
    }
    Ok(())
}

/// Listens for changes announced by other instances and refreshes the tenants
/// they name, until the process ends. After every (re)connection it refreshes
/// every tenant, since announcements made while it was away are gone. Returns
/// at once on SQLite.
pub async fn listen(authz: Authz, db: Database) {
    let Database::Postgres(pg) = db else {
        return;
    };
    let mut backoff = Duration::from_millis(100);
    loop {
        match sqlx::postgres::PgListener::connect_with(pg.primary()).await {
            Ok(mut listener) => match listener.listen(CHANNEL).await {
                Ok(()) => {
                    backoff = Duration::from_millis(100);
                    if let Err(error) = authz.refresh().await {
                        tracing::debug!(%error, "policy refresh after (re)listening failed; the poll will retry");
                    }
                    loop {
                        match listener.recv().await {
                            Ok(notification) => {
                                metrics::counter!("palisade_authz_notifications_total")
                                    .increment(1);
                                if let Err(error) =
                                    authz.refresh_tenant(notification.payload()).await
                                {
                                    tracing::debug!(%error, "policy refresh on notification failed; the poll will retry");
                                }
                            }
                            Err(error) => {
                                tracing::warn!(%error, "policy change listener lost; falling back to version polling until it is back");
                                break;
                            }
                        }
                    }
                }
                Err(error) => tracing::debug!(%error, "LISTEN failed"),
            },
            Err(error) => tracing::debug!(%error, "policy change listener cannot connect"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
