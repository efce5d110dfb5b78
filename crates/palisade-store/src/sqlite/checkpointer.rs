//! Folds the WAL back into the database file from a connection of its own.
//!
//! Left to itself, SQLite checkpoints inside the commit that crosses the WAL
//! threshold: one append in a few hundred then waits while tens of MiB are copied
//! into the database file and synced. Here a task runs a `PASSIVE` checkpoint every
//! [`INTERVAL`] on its own connection, on whichever core is free; a passive
//! checkpoint neither waits for the writer nor blocks it.
//!
//! Under a steady load the writer commits while this task copies, so the WAL is
//! never entirely copied at a moment the writer could start it over, and would grow.
//! The writer therefore keeps SQLite's own checkpoint as a backstop at
//! [`super::WRITER_CHECKPOINT_PAGES`]: when it runs, this task has already copied
//! nearly everything, and the WAL starts over from its beginning.

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use std::time::Duration;
use tokio::sync::watch;

/// How often the WAL is folded back.
const INTERVAL: Duration = Duration::from_millis(100);

/// Stops the checkpoint task when told to or when dropped.
#[derive(Debug)]
pub(super) struct Checkpointer {
    stop: watch::Sender<bool>,
}

impl Checkpointer {
    /// Opens the task's connection and starts the task on the current runtime.
    pub(super) async fn start(options: SqliteConnectOptions) -> Result<Self, sqlx::Error> {
        let mut conn = options.connect().await?;
        let (stop, mut stopped) = watch::channel(false);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(INTERVAL);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // Said once when checkpoints start failing and once when they work
            // again, not ten times a second (a full disk, say).
            let mut failing = false;
            loop {
                tokio::select! {
                    // Told to stop, or every sender dropped.
                    _ = stopped.wait_for(|stop| *stop) => break,
                    _ = ticks.tick() => {}
                }
                match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&mut conn)
                    .await
                {
                    Err(error) if !failing => {
                        failing = true;
                        tracing::warn!(%error, "WAL checkpoints failing; the writer's own checkpoint stands in");
                    }
                    Ok(_) if failing => {
                        failing = false;
                        tracing::info!("WAL checkpoints work again");
                    }
                    _ => {}
                }
            }
            if let Err(error) = conn.close().await {
                tracing::debug!(%error, "closing the checkpoint connection");
            }
        });
        Ok(Self { stop })
    }

    /// Stops the task after its current checkpoint.
    pub(super) fn stop(&self) {
        self.stop.send_replace(true);
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}
