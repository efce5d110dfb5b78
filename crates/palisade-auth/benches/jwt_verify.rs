//! Token verification throughput: Palisade's verifier (every check of issue 6:
//! size, raw-header checks, kid, algorithm binding, signature, claims with leeway,
//! lifetime, issuer, audience, `typ`) against the bare `jsonwebtoken` crate
//! decoding the same token into the same claims type with issuer, audience and
//! expiry validation, per algorithm.
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
use palisade_core::{Clock, ManualClock, SharedClock};
use std::hint::black_box;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

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
    Case {
        token,
        verifier,
        key,
        validation,
    }
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
    targets = jwt_verify
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
