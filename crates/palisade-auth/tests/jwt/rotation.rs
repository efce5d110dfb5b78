//! Signing-key rotation and the JWKS document.

use super::*;
use palisade_auth::jwt::{JwtError, KeyRecord, KeySet};

const DAY_MS: i64 = 24 * 3600 * 1000;

fn kids_in(jwks: &str) -> Vec<String> {
    let doc: Value = serde_json::from_str(jwks).unwrap();
    doc["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn publishes_a_new_key_before_it_signs() {
    let mut ring = KeyRing::new(RotationPolicy::default());
    let t0 = 1_767_225_600_000;
    let first = ring.rotate(t0).unwrap().kid().to_owned();
    assert_eq!(
        ring.current_signer(t0).unwrap().kid(),
        first,
        "the first key signs at once"
    );

    let second = ring.rotate(t0 + 1000).unwrap().kid().to_owned();
    assert!(second.starts_with("v2-"));
    assert_eq!(
        kids_in(&ring.jwks(t0 + 1000).json),
        [first.clone(), second.clone()]
    );
    assert_eq!(
        ring.current_signer(t0 + 1000 + DAY_MS - 1).unwrap().kid(),
        first
    );
    assert_eq!(
        ring.current_signer(t0 + 1000 + DAY_MS).unwrap().kid(),
        second
    );
}

#[test]
fn keeps_an_old_key_published_until_every_token_it_signed_has_expired() {
    let mut ring = KeyRing::new(RotationPolicy::default());
    let t0 = 1_767_225_600_000;
    let first = ring.rotate(t0).unwrap().kid().to_owned();
    ring.rotate(t0).unwrap();
    let retired = t0 + DAY_MS;
    let grace = 3600 * 1000 + 60 * 1000;
    assert!(kids_in(&ring.jwks(retired + grace - 1).json).contains(&first));
    assert!(!kids_in(&ring.jwks(retired + grace).json).contains(&first));
    assert_eq!(ring.prune(retired + grace - 1), Vec::<String>::new());
    assert_eq!(ring.prune(retired + grace), vec![first]);
    assert_eq!(ring.records().count(), 1);
}

#[test]
fn jwks_cache_hint_is_half_the_publish_ahead_time_capped() {
    let mut ring = KeyRing::new(RotationPolicy {
        publish_ahead: Duration::from_secs(600),
        ..RotationPolicy::default()
    });
    ring.rotate(0).unwrap();
    assert_eq!(ring.jwks(0).max_age, Duration::from_secs(300));
    let ring = KeyRing::new(RotationPolicy::default());
    assert_eq!(
        ring.jwks(0).max_age,
        Duration::from_secs(3600),
        "capped at jwks_max_age"
    );
    assert_eq!(ring.jwks(0).json, r#"{"keys":[]}"#);
}

#[test]
fn jwks_lists_public_keys_only_and_never_hmac_secrets() {
    for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
        let mut ring = KeyRing::new(RotationPolicy {
            algorithm: alg,
            ..Default::default()
        });
        ring.rotate(0).unwrap();
        let doc: Value = serde_json::from_str(&ring.jwks(0).json).unwrap();
        let key = &doc["keys"][0];
        assert_eq!(key["alg"], alg.as_str());
        assert_eq!(key["use"], "sig");
        assert!(key.get("d").is_none() && key.get("p").is_none(), "{key}");
        // The document round-trips into a key set that verifies.
        assert_eq!(KeySet::from_jwks_json(&ring.jwks(0).json).unwrap().len(), 1);
    }
    let mut ring = KeyRing::new(RotationPolicy {
        algorithm: Algorithm::HS256,
        ..Default::default()
    });
    ring.rotate(0).unwrap();
    assert_eq!(ring.jwks(0).json, r#"{"keys":[]}"#);
}

#[test]
fn key_records_round_trip_through_storage_and_never_print_material() {
    let f = Fixture::new(Algorithm::ES256);
    let token = f.issue(60);
    let records: Vec<KeyRecord> = f.ring.read().unwrap().records().cloned().collect();
    assert!(format!("{records:?}").contains("[redacted]"));
    let stored = serde_json::to_string(&records).unwrap();
    let loaded: Vec<KeyRecord> = serde_json::from_str(&stored).unwrap();
    let ring = KeyRing::from_records(RotationPolicy::default(), loaded).unwrap();
    f.verifier.replace_keys(ring.key_set(f.clock.now_unix_ms()));
    assert!(f.verifier.verify(&token, AUDIENCE).is_ok());
}

#[test]
fn refuses_key_records_whose_material_does_not_fit_the_algorithm() {
    let mut ring = KeyRing::new(RotationPolicy::default());
    let mut record = ring.rotate(0).unwrap().record().clone();
    record.alg = Algorithm::ES256;
    let err = KeyRing::from_records(RotationPolicy::default(), [record]).unwrap_err();
    assert_eq!(err.code(), "invalid_key");
}

#[test]
fn issuing_needs_a_key_and_a_ttl_within_bounds() {
    let clock: SharedClock = Arc::new(ManualClock::new());
    let ring = Arc::new(RwLock::new(KeyRing::new(RotationPolicy::default())));
    let config = IssuerConfig {
        issuer: ISSUER.to_owned(),
        typ: None,
        max_ttl: Duration::from_secs(600),
    };
    let issuer = Issuer::new(config.clone(), Arc::clone(&ring), clock.clone()).unwrap();
    let claims = NewClaims {
        sub: "s".into(),
        aud: vec![AUDIENCE.into()],
        ..Default::default()
    };
    assert_eq!(
        issuer.issue(claims.clone(), Duration::from_secs(60)),
        Err(JwtError::NoSigningKey)
    );
    ring.write().unwrap().rotate(clock.now_unix_ms()).unwrap();
    assert!(
        issuer
            .issue(claims.clone(), Duration::from_secs(60))
            .is_ok()
    );
    let too_long = issuer
        .issue(claims.clone(), Duration::from_secs(601))
        .unwrap_err();
    assert_eq!(too_long.code(), "invalid_config");
    let mut sneaky = claims;
    sneaky.extra.insert("exp".into(), json!(9_999_999_999_i64));
    assert_eq!(
        issuer
            .issue(sneaky, Duration::from_secs(60))
            .unwrap_err()
            .code(),
        "invalid_config"
    );
    let over_ring = IssuerConfig {
        max_ttl: Duration::from_secs(7200),
        ..config
    };
    assert!(Issuer::new(over_ring, ring, clock).is_err());
}
