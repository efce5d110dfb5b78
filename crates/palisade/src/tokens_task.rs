//! Runs the token service of `palisade serve`: opens it once the schema exists
//! and the keyring is there (its signing keys live in the database, sealed by
//! the keyring), then keeps it in step with the other instances.

use crate::tokens_config::TokensConfig;
use palisade_auth::tokens::Tokens;
use palisade_crypto::SecretSealer;
use palisade_http::AppState;
use palisade_store::Database;
use std::time::{Duration, Instant};

/// How often keys are re-read (adopting rotations of other instances,
/// rotating on schedule) and expired rows deleted.
const KEY_MAINTENANCE: Duration = Duration::from_secs(30);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Opens the service (retrying until the database and keyring are ready),
/// installs it in `state`, then polls revocations and maintains the keys
/// until the process ends. Revocations also arrive by PostgreSQL
/// notification, within milliseconds; the poll is the guarantee.
pub async fn run(state: AppState, db: Database, config: TokensConfig) {
    let Ok(service) = config.service() else {
        // Checked when the configuration was loaded; unreachable in practice.
        tracing::error!("invalid [tokens] configuration; the token service is off");
        return;
    };
    let poll = Duration::from_millis(config.revocation_poll_ms);
    let mut retry = Duration::from_millis(250);
    let tokens = loop {
        if state.is_migrated()
            && let Ok(keyring) = state.crypto()
        {
            match Tokens::open(
                service.clone(),
                db.clone(),
                SecretSealer::new(keyring.clone()),
                state.security_events.clone(),
                state.clock.clone(),
            )
            .await
            {
                Ok(tokens) => break tokens,
                Err(error) => {
                    // A key that cannot be opened means this instance has
                    // another master key or key file than the one that sealed it.
                    tracing::warn!(%error, "token service not started yet; retrying");
                    retry = (retry * 2).min(Duration::from_secs(10));
                }
            }
        }
        tokio::time::sleep(retry).await;
    };
    if let Err(error) = tokens
        .revocations()
        .refresh(state.clock.now_unix_ms())
        .await
    {
        tracing::warn!(%error, "revocations not loaded yet; the poll will retry");
    }
    let state = state.with_tokens(tokens.clone());
    tracing::info!(keys = tokens.signing_keys().len(), "token service started");
    tokio::spawn(tokens.revocations().clone().listen(state.clock.clone()));

    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut last_maintenance, mut last_prune) = (Instant::now(), Instant::now());
    loop {
        tick.tick().await;
        if let Err(error) = tokens
            .revocations()
            .refresh(state.clock.now_unix_ms())
            .await
        {
            tracing::debug!(%error, "revocation poll failed; retrying");
        }
        if last_maintenance.elapsed() >= KEY_MAINTENANCE {
            last_maintenance = Instant::now();
            match tokens.maintain_keys().await {
                Ok(true) => tracing::info!("signing keys changed"),
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "signing-key maintenance failed; retrying"),
            }
        }
        if last_prune.elapsed() >= PRUNE_EVERY {
            last_prune = Instant::now();
            if let Err(error) = tokens.prune().await {
                tracing::debug!(%error, "expired sessions and revocations not pruned");
            }
        }
    }
}
