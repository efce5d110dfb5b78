//! `palisade audit verify`: the library `Verifier` with progress on stderr.

use crate::config::Config;
use anyhow::bail;
use palisade_audit::checkpoint::NoteSigner;
use palisade_audit::store::AuditStore;
use palisade_audit::verify::{Verifier, VerifyError};
use palisade_store::Database;
use std::time::{Duration, Instant};

/// Verifies the log; an error names the first index that does not match.
pub async fn run(config: &Config, db: &Database, saved: Option<&str>) -> anyhow::Result<()> {
    let signer = NoteSigner::from_signer_key(config.secrets.audit_signing_key.expose())
        .map_err(|e| anyhow::anyhow!("secrets.audit_signing_key: {e}"))?;
    let key = signer.verifier();
    let store = AuditStore::new(db.clone());
    let started = Instant::now();
    let mut last_report = Instant::now();
    let outcome = Verifier::new(&store, &key)
        .verify(saved, |done, total| {
            if last_report.elapsed() >= Duration::from_secs(1) {
                last_report = Instant::now();
                let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
                eprintln!("verified {done}/{total} leaves ({rate:.0} leaves/s)");
            }
        })
        .await;
    match outcome {
        Ok(verified) => {
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "ok: {} leaves verified in {seconds:.2}s; every stored hash and checkpoint signature matches",
                verified.tree_size
            );
            Ok(())
        }
        Err(VerifyError::Tampered(finding)) => {
            bail!(
                "audit log verification FAILED at index {}: {finding}",
                finding.index()
            )
        }
        Err(e) => bail!("audit log verification could not complete: {e}"),
    }
}
