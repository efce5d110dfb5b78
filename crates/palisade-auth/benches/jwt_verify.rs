//! Token verification throughput: Palisade's verifier (every check of issue 6:
//! size, raw-header checks, kid, algorithm binding, signature, claims with leeway,
//! lifetime, issuer, audience, `typ`) against the bare `jsonwebtoken` crate
//! decoding the same token into the same claims type with issuer, audience and
//! expiry validation, per algorithm.
//!
//! Group `tokens_verify`: the token service's `Tokens::verify` on a token it
//! has not seen (cache of verified tokens disabled: every check plus the
//! revocation lookup, with 10,000 live revocations loaded) against
//! jsonwebtoken decoding the same token, and the repeat verify served from the
//! cache. Its database is SQLite in a temporary directory; revocations are
//! checked in memory, so the database is not on the measured path.
//!
//! `cargo bench -p palisade-auth --bench jwt_verify`
//!
//! jsonwebtoken gets its key the way a relying party would: `DecodingKey::from_jwk`
//! on Palisade's published JWKS (HS256: `from_secret`).

use criterion::{Criterion, criterion_group};
use jsonwebtoken::{DecodingKey, Validation, decode, jwk::JwkSet};
use palisade_auth::jwt::{
    Algorithm, Claims, Issuer, IssuerConfig, KeyRing, NewClaims, RotationPolicy, Verifier,
    VerifierConfig,
};
use palisade_auth::tokens::{IssueRequest, Tokens, TokensConfig};
use palisade_core::{Clock, ManualClock, SecurityEvents, SharedClock};
use palisade_store::{Database, DatabaseConfig};
use std::hint::black_box;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

const ISSUER: &str = "https://auth.palisade.test";
const AUDIENCE: &str = "orders-api";

struct Case {
    token: String,
    verifier: Verifier,
    key: DecodingKey,
    validation: Validation,
}

fn case(alg: Algorithm) -> Case {
    // jsonwebtoken reads the system clock, so the manual clock starts at real time.
    let clock = ManualClock::starting_at(SystemTime::now());
    let shared: SharedClock = Arc::new(clock.clone());
    let now = clock.now_unix_ms();
    let mut ring = KeyRing::new(RotationPolicy {
        algorithm: alg,
        ..RotationPolicy::default()
    });
    ring.rotate(now).unwrap_or_else(|e| panic!("{e}"));
    let mut config = VerifierConfig::new(ISSUER, vec![AUDIENCE.to_owned()]);
    if alg == Algorithm::HS256 {
        config.allowed_algorithms.push(Algorithm::HS256);
    }
    let verifier =
        Verifier::new(config, ring.key_set(now), shared.clone()).unwrap_or_else(|e| panic!("{e}"));
    let key = if alg == Algorithm::HS256 {
        let signer = ring.current_signer(now).unwrap_or_else(|e| panic!("{e}"));
        DecodingKey::from_secret(signer.record().material.expose())
    } else {
        let set: JwkSet =
            serde_json::from_str(&ring.jwks(now).json).unwrap_or_else(|e| panic!("{e}"));
        DecodingKey::from_jwk(&set.keys[0]).unwrap_or_else(|e| panic!("{e}"))
    };
    let ring = Arc::new(RwLock::new(ring));
    let issuer_config = IssuerConfig {
        issuer: ISSUER.to_owned(),
        typ: Some("at+jwt".to_owned()),
        max_ttl: Duration::from_secs(3600),
    };
    let issuer = Issuer::new(issuer_config, ring, shared).unwrap_or_else(|e| panic!("{e}"));
    let claims = NewClaims {
        sub: "user-42".to_owned(),
        aud: vec![AUDIENCE.to_owned()],
        extra: serde_json::Map::from_iter([(
            "scope".to_owned(),
            serde_json::json!("orders:read orders:write"),
        )]),
    };
    let token = issuer
        .issue(claims, Duration::from_secs(3600))
        .unwrap_or_else(|e| panic!("{e}"));

    Case {
        token,
        verifier,
        key,
        validation: validation(alg),
    }
}

fn validation(alg: Algorithm) -> Validation {
    let mut validation = Validation::new(match alg {
        Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
        Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
        Algorithm::HS256 => jsonwebtoken::Algorithm::HS256,
    });
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.leeway = 60;
    validation.validate_nbf = true;
    validation
}

/// Live revocations loaded before measuring: jti, session and subject ones, so
/// each of the three lookups runs against a populated map.
const REVOCATIONS: (usize, usize, usize) = (9_000, 900, 100);

/// Two token services on one SQLite database holding the same signing key: one
/// without the cache of verified tokens, one with it.
struct TokensCase {
    token: String,
    uncached: Tokens,
    cached: Tokens,
    key: DecodingKey,
    validation: Validation,
    // Kept alive while measuring; dropped after.
    _runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

fn tokens_case(alg: Algorithm) -> TokensCase {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let clock = ManualClock::starting_at(SystemTime::now());
    let shared: SharedClock = Arc::new(clock.clone());
    let now = clock.now_unix_ms();
    let mut config = TokensConfig::new(ISSUER, vec![AUDIENCE.to_owned()]);
    config.rotation.algorithm = alg;
    let db = runtime.block_on(async {
        let db = Database::connect(&DatabaseConfig::default(), dir.path()).await?;
        db.migrate().await?;
        Ok::<_, palisade_store::StoreError>(db)
    });
    let db = db.unwrap_or_else(|e| panic!("{e}"));
    let service = |cache_entries: u64, ring: KeyRing| {
        let mut config = config.clone();
        config.verified_cache_entries = cache_entries;
        Tokens::new(
            config,
            ring,
            db.clone(),
            SecurityEvents::new(16),
            shared.clone(),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let uncached = service(0, KeyRing::new(config.rotation.clone()));
    let records: Vec<_> = uncached.with_keys(|ring, _| ring.records().cloned().collect());
    let ring =
        KeyRing::from_records(config.rotation.clone(), records).unwrap_or_else(|e| panic!("{e}"));
    let cached = service(config.verified_cache_entries, ring);

    let token = runtime.block_on(async {
        load_revocations(&db, now).await;
        for tokens in [&uncached, &cached] {
            tokens
                .revocations()
                .refresh(now)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let request = IssueRequest {
            subject: "user-42".to_owned(),
            audience: AUDIENCE.to_owned(),
            claims: serde_json::Map::from_iter([(
                "scope".to_owned(),
                serde_json::json!("orders:read orders:write"),
            )]),
            ttl: None,
        };
        uncached
            .issue("tenant-1", request)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .access_token
    });
    let (jti, sessions, subjects) = REVOCATIONS;
    assert_eq!(uncached.revocations().len(), jti + sessions + subjects);
    let set: JwkSet = serde_json::from_str(&uncached.jwks().json).unwrap_or_else(|e| panic!("{e}"));
    let key = DecodingKey::from_jwk(&set.keys[0]).unwrap_or_else(|e| panic!("{e}"));
    TokensCase {
        token,
        uncached,
        cached,
        key,
        validation: validation(alg),
        _runtime: runtime,
        _dir: dir,
    }
}

/// Writes the revocations in one transaction (one by one through
/// `Tokens::revoke_*`, each a durable commit, would take minutes).
async fn load_revocations(db: &Database, now_ms: i64) {
    let Database::Sqlite(sqlite) = db else {
        panic!("the benchmark runs on SQLite");
    };
    let keep = now_ms + 3_600_000;
    let (jti, sessions, subjects) = REVOCATIONS;
    let rows = (0..jti)
        .map(|i| ("jti", format!("revoked-jti-{i}"), 0))
        .chain((0..sessions).map(|i| ("session", format!("revoked-session-{i}"), 0)))
        .chain((0..subjects).map(|i| ("subject", format!("revoked-user-{i}"), now_ms)));
    let mut tx = sqlite
        .writer()
        .begin()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for (kind, value, cutoff) in rows {
        sqlx::query(
            "INSERT INTO auth_revocations (kind, tenant, value, cutoff_ms, keep_until_ms) \
             VALUES (?, 'tenant-1', ?, ?, ?)",
        )
        .bind(kind)
        .bind(value)
        .bind(cutoff)
        .bind(keep)
        .execute(&mut *tx)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
}

fn tokens_verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("tokens_verify");
    for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
        let case = tokens_case(alg);
        case.uncached
            .verify(&case.token, AUDIENCE)
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        case.cached
            .verify(&case.token, AUDIENCE)
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        decode::<Claims>(&case.token, &case.key, &case.validation)
            .unwrap_or_else(|e| panic!("{alg}: {e}"));

        group.bench_function(format!("first_sight/{alg}"), |b| {
            b.iter(|| case.uncached.verify(black_box(&case.token), AUDIENCE))
        });
        group.bench_function(format!("jsonwebtoken/{alg}"), |b| {
            b.iter(|| decode::<Claims>(black_box(&case.token), &case.key, &case.validation))
        });
        group.bench_function(format!("cached/{alg}"), |b| {
            b.iter(|| case.cached.verify(black_box(&case.token), AUDIENCE))
        });
        if std::env::args().any(|a| a == "--bench") {
            let ratio = interleaved_ratio(
                || {
                    drop(black_box(
                        case.uncached.verify(black_box(&case.token), AUDIENCE),
                    ))
                },
                || {
                    let decoded =
                        decode::<Claims>(black_box(&case.token), &case.key, &case.validation);
                    drop(black_box(decoded));
                },
            );
            println!(
                "tokens_verify/{alg}: first_sight / jsonwebtoken throughput, interleaved: {ratio:.3}"
            );
        }
    }
    group.finish();
}

/// Throughput of `ours` relative to `peer`, measured interleaved: short
/// alternating batches, each round's ratio taken from two adjacent batches,
/// and the median over rounds. Criterion measures one benchmark after the
/// other, and on a shared two-core machine the load changes between the two
/// by more than the difference being measured; adjacent batches see the same.
fn interleaved_ratio(mut ours: impl FnMut(), mut peer: impl FnMut()) -> f64 {
    const BATCH: u32 = 16;
    const ROUNDS: usize = 1_000;
    let batch = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        for _ in 0..BATCH {
            f();
        }
        start.elapsed().as_secs_f64()
    };
    let mut ratios: Vec<f64> = (0..ROUNDS)
        .map(|round| {
            // Alternate which goes first, so neither always follows the other.
            if round % 2 == 0 {
                let t_ours = batch(&mut ours);
                batch(&mut peer) / t_ours
            } else {
                let t_peer = batch(&mut peer);
                t_peer / batch(&mut ours)
            }
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    ratios[ROUNDS / 2]
}

fn jwt_verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("jwt_verify");
    for alg in [
        Algorithm::EdDSA,
        Algorithm::ES256,
        Algorithm::HS256,
        Algorithm::RS256,
    ] {
        let case = case(alg);
        // Both sides must accept the token, or the comparison means nothing.
        case.verifier
            .verify(&case.token, AUDIENCE)
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        decode::<Claims>(&case.token, &case.key, &case.validation)
            .unwrap_or_else(|e| panic!("{alg}: {e}"));

        group.bench_function(format!("palisade/{alg}"), |b| {
            b.iter(|| case.verifier.verify(black_box(&case.token), AUDIENCE))
        });
        group.bench_function(format!("jsonwebtoken/{alg}"), |b| {
            b.iter(|| decode::<Claims>(black_box(&case.token), &case.key, &case.validation))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = jwt_verify, tokens_verify
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
