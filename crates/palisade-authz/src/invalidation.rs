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
use palisade_store::{Database, StoreError, notify};

/// The PostgreSQL channel of policy changes.
pub const CHANNEL: &str = "palisade_authz";

/// Announces that `tenant`'s policy changed. A no-op on SQLite.
pub async fn announce(db: &Database, tenant: &str) -> Result<(), StoreError> {
    notify::announce(db, CHANNEL, tenant).await
}

/// Listens for changes announced by other instances and refreshes the tenants
/// they name, until the process ends. After every (re)connection it refreshes
/// every tenant, since announcements made while it was away are gone. Returns
/// at once on SQLite.
pub async fn listen(authz: Authz, db: Database) {
    notify::listen(
        db,
        CHANNEL,
        || async {
            if let Err(error) = authz.refresh().await {
                tracing::debug!(%error, "policy refresh after (re)listening failed; the poll will retry");
            }
        },
        |tenant| {
            let authz = &authz;
            async move {
                if let Err(error) = authz.refresh_tenant(&tenant).await {
                    tracing::debug!(%error, "policy refresh on notification failed; the poll will retry");
                }
            }
        },
    )
    .await;
}
