//! The token service against real databases: sessions, rotation with replay
//! detection, revocation (also seen by a second instance), key rotation.

use palisade_auth::jwt::{JwtError, KeyRing, RotationPolicy};
use palisade_auth::tokens::{
    IssueRequest, KeyState, SigningKeyStore, TokenError, Tokens, TokensConfig,
};
use palisade_core::{ManualClock, SecurityEventKind, SecurityEvents, SharedClock};
use palisade_crypto::{Keyring, SecretSealer};
use palisade_store::{Database, DatabaseConfig};
use palisade_testkit::postgres::TestDatabase;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const TENANT: &str = "t1";
const AUD: &str = "api";

struct Backend {
    db: Database,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<TestDatabase>,
}

async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let db = Database::connect(&DatabaseConfig::default(), dir.path())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    db.migrate().await.unwrap_or_else(|e| panic!("{e}"));
    Backend {
        db,
        _dir: Some(dir),
        _pg: None,
    }
}

async fn postgres() -> Backend {
    let pg = TestDatabase::create()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let db = Database::connect(
        &DatabaseConfig::postgres(pg.url()),
        std::path::Path::new("."),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    db.migrate().await.unwrap_or_else(|e| panic!("{e}"));
    Backend {
        db,
        _dir: None,
        _pg: Some(pg),
    }
}

/// Runs each named `async fn(Backend)` once on SQLite and once on PostgreSQL.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::sqlite().await).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::postgres().await).await;
                }
            )*
        }
    };
}

on_both_backends!(
    issued_tokens_verify_with_tenant_and_session,
    refresh_rotates_and_a_replay_revokes_the_whole_session,
    concurrent_uses_of_one_refresh_token_let_exactly_one_win,
    refresh_tokens_are_bound_to_their_tenant_and_expire,
    sessions_end_at_their_absolute_lifetime,
    revocation_by_token_by_session_and_by_subject,
    a_second_instance_learns_revocations_from_the_database,
    signing_keys_are_stored_sealed_and_shared_by_instances,
);

fn config() -> TokensConfig {
    let mut config = TokensConfig::new("https://palisade.test", vec![AUD.into()]);
    config.refresh_ttl = Duration::from_secs(3600);
    config.session_lifetime = Duration::from_secs(4 * 3600);
    config.rotation = RotationPolicy {
        publish_ahead: Duration::from_secs(600),
        ..RotationPolicy::default()
    };
    config
}

struct Instance {
    tokens: Tokens,
    clock: ManualClock,
    events: SecurityEvents,
}

impl Instance {
    /// A new session of `subject` in [`TENANT`].
    async fn login(&self, subject: &str) -> palisade_auth::tokens::TokenPair {
        self.tokens
            .issue(TENANT, login(subject))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

fn instance(db: &Database) -> Instance {
    instance_with_ring(db, KeyRing::new(config().rotation), ManualClock::new())
}

fn instance_with_ring(db: &Database, ring: KeyRing, clock: ManualClock) -> Instance {
    let events = SecurityEvents::new(64);
    let shared: SharedClock = Arc::new(clock.clone());
    let tokens = Tokens::new(config(), ring, db.clone(), events.clone(), shared)
        .unwrap_or_else(|e| panic!("{e}"));
    Instance {
        tokens,
        clock,
        events,
    }
}

fn login(subject: &str) -> IssueRequest {
    IssueRequest {
        subject: subject.into(),
        audience: AUD.into(),
        claims: json!({"role": "admin"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        ttl: None,
    }
}

fn code<T>(result: Result<T, TokenError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

async fn issued_tokens_verify_with_tenant_and_session(b: Backend) {
    let i = instance(&b.db);
    let pair = i.login("alice").await;
    for _ in 0..2 {
        // The second call is served from the cache of verified tokens.
        let claims = i
            .tokens
            .verify(&pair.access_token, AUD)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(claims.sub.as_deref(), Some("alice"));
        assert_eq!(claims.extra.get("tenant"), Some(&json!(TENANT)));
        assert_eq!(claims.extra.get("sid"), Some(&json!(pair.session_id)));
        assert_eq!(claims.extra.get("role"), Some(&json!("admin")));
    }
    assert_eq!(pair.expires_in, 900);
    let shown = format!("{pair:?}");
    assert!(!shown.contains(&pair.access_token) && !shown.contains(pair.refresh_token.expose()));
    assert_eq!(
        code(i.tokens.verify(&pair.access_token, "other")),
        "bad_audience"
    );
    // Cached or not, an expired token is expired.
    i.clock.advance(Duration::from_secs(900 + 61));
    assert_eq!(code(i.tokens.verify(&pair.access_token, AUD)), "expired");
}

async fn refresh_rotates_and_a_replay_revokes_the_whole_session(b: Backend) {
    let i = instance(&b.db);
    let mut events = i.events.subscribe();
    let first = i.login("alice").await;
    let second = i
        .tokens
        .refresh(TENANT, first.refresh_token.expose())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(second.refresh_token.expose(), first.refresh_token.expose());
    assert_eq!(second.session_id, first.session_id);
    let claims = i
        .tokens
        .verify(&second.access_token, AUD)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(claims.extra.get("role"), Some(&json!("admin")));

    // The thief (or the victim) presents the rotated token again.
    match i.tokens.refresh(TENANT, first.refresh_token.expose()).await {
        Err(TokenError::RefreshReused { session, subject }) => {
            assert_eq!(
                (session.as_str(), subject.as_str()),
                (first.session_id.as_str(), "alice")
            );
        }
        other => panic!("expected a replay, got {:?}", other.map(|p| p.session_id)),
    }
    let event = events.recv().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(event.kind, SecurityEventKind::RefreshTokenReuse);
    assert_eq!(event.subject.as_deref(), Some("alice"));

    // Everything of the session is dead: the newest refresh token and every access token.
    assert_eq!(
        code(
            i.tokens
                .refresh(TENANT, second.refresh_token.expose())
                .await
        ),
        "session_revoked"
    );
    assert_eq!(code(i.tokens.verify(&second.access_token, AUD)), "revoked");
    assert_eq!(code(i.tokens.verify(&first.access_token, AUD)), "revoked");
    // Another session of the same subject is untouched.
    let other = i.login("alice").await;
    assert_eq!(code(i.tokens.verify(&other.access_token, AUD)), "ok");
}

async fn concurrent_uses_of_one_refresh_token_let_exactly_one_win(b: Backend) {
    let i = instance(&b.db);
    let pair = i.login("alice").await;
    let (a, b2) = tokio::join!(
        i.tokens.refresh(TENANT, pair.refresh_token.expose()),
        i.tokens.refresh(TENANT, pair.refresh_token.expose())
    );
    let mut codes = [code(a), code(b2)];
    codes.sort_unstable();
    assert_eq!(codes, ["ok", "refresh_reused"]);
}

async fn refresh_tokens_are_bound_to_their_tenant_and_expire(b: Backend) {
    let i = instance(&b.db);
    let pair = i.login("alice").await;
    // Another tenant's caller can neither use it up nor trigger the replay alarm.
    assert_eq!(
        code(i.tokens.refresh("t2", pair.refresh_token.expose()).await),
        "wrong_tenant"
    );
    assert_eq!(
        code(i.tokens.refresh("t2", pair.refresh_token.expose()).await),
        "wrong_tenant"
    );
    assert_eq!(
        code(
            i.tokens
                .revoke_refresh_token("t2", pair.refresh_token.expose())
                .await
        ),
        "wrong_tenant"
    );
    let next = i
        .tokens
        .refresh(TENANT, pair.refresh_token.expose())
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(
        code(i.tokens.refresh(TENANT, "prt_nonsense").await),
        "unknown_refresh_token"
    );
    let unknown = format!("prt_{}", "A".repeat(43));
    assert_eq!(
        code(i.tokens.refresh(TENANT, &unknown).await),
        "unknown_refresh_token"
    );

    // Idle timeout: an hour without use.
    i.clock.advance(Duration::from_secs(3601));
    assert_eq!(
        code(i.tokens.refresh(TENANT, next.refresh_token.expose()).await),
        "refresh_expired"
    );
}

async fn sessions_end_at_their_absolute_lifetime(b: Backend) {
    let i = instance(&b.db);
    let mut pair = i.login("alice").await;
    for _ in 0..4 {
        i.clock.advance(Duration::from_secs(3000));
        pair = i
            .tokens
            .refresh(TENANT, pair.refresh_token.expose())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    i.clock.advance(Duration::from_secs(3000)); // 15,000 s > 4 h, each refresh within the idle hour
    assert_eq!(
        code(i.tokens.refresh(TENANT, pair.refresh_token.expose()).await),
        "refresh_expired"
    );
}

async fn revocation_by_token_by_session_and_by_subject(b: Backend) {
    let i = instance(&b.db);
    let a = i.login("alice").await;
    let b2 = i.login("alice").await;
    let bob = i.login("bob").await;

    let jti = i
        .tokens
        .revoke_access_token(TENANT, &a.access_token)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(jti.is_some());
    assert_eq!(code(i.tokens.verify(&a.access_token, AUD)), "revoked");
    assert_eq!(code(i.tokens.verify(&b2.access_token, AUD)), "ok");
    assert_eq!(
        code(i.tokens.revoke_access_token("t2", &b2.access_token).await),
        "wrong_tenant"
    );

    // Logout: the refresh token's session ends with its access tokens.
    i.tokens
        .revoke_refresh_token(TENANT, b2.refresh_token.expose())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(code(i.tokens.verify(&b2.access_token, AUD)), "revoked");
    assert_eq!(
        code(i.tokens.refresh(TENANT, b2.refresh_token.expose()).await),
        "session_revoked"
    );

    // Everything of bob issued until now; a token issued later is fine.
    i.clock.advance(Duration::from_secs(5));
    let (_, sessions) = i
        .tokens
        .revoke_subject(TENANT, "bob", None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sessions, 1);
    assert_eq!(code(i.tokens.verify(&bob.access_token, AUD)), "revoked");
    assert_eq!(
        code(i.tokens.refresh(TENANT, bob.refresh_token.expose()).await),
        "session_revoked"
    );
    i.clock.advance(Duration::from_secs(2));
    let later = i.login("bob").await;
    assert_eq!(code(i.tokens.verify(&later.access_token, AUD)), "ok");

    // An expired token needs no revocation.
    i.clock.advance(Duration::from_secs(3600));
    assert_eq!(
        i.tokens
            .revoke_access_token(TENANT, &later.access_token)
            .await
            .ok(),
        Some(None)
    );
}

async fn a_second_instance_learns_revocations_from_the_database(b: Backend) {
    let clock = ManualClock::new();
    let mut ring = KeyRing::new(config().rotation);
    ring.rotate(clock_ms(&clock))
        .unwrap_or_else(|e| panic!("{e}"));
    let records: Vec<_> = ring.records().cloned().collect();
    let a = instance_with_ring(&b.db, ring, clock.clone());
    let again = KeyRing::from_records(config().rotation, records).unwrap_or_else(|e| panic!("{e}"));
    let b2 = instance_with_ring(&b.db, again, clock.clone());

    let pair = a.login("alice").await;
    assert_eq!(code(b2.tokens.verify(&pair.access_token, AUD)), "ok");
    a.tokens
        .revoke_access_token(TENANT, &pair.access_token)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Not yet seen by the other instance (no listener in this test) ...
    assert_eq!(code(b2.tokens.verify(&pair.access_token, AUD)), "ok");
    // ... until its poll.
    let read = b2
        .tokens
        .revocations()
        .refresh(clock_ms(&clock))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(read >= 1);
    assert_eq!(code(b2.tokens.verify(&pair.access_token, AUD)), "revoked");

    // Once every token it can affect has expired, the revocation is forgotten and pruned.
    clock.advance(Duration::from_secs(3700));
    b2.tokens
        .revocations()
        .refresh(clock_ms(&clock))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(b2.tokens.revocations().is_empty());
    let (_, pruned) = a.tokens.prune().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pruned, 1);
}

fn clock_ms(clock: &ManualClock) -> i64 {
    use palisade_core::Clock as _;
    clock.now_unix_ms()
}

#[tokio::test]
async fn tokens_of_a_key_past_its_grace_period_are_refused() {
    let b = sqlite().await;
    let i = instance(&b.db);
    let old = i.login("alice").await;
    i.tokens
        .change_keys(|ring, now| ring.rotate(now).map(|_| ()))
        .unwrap_or_else(|e| panic!("{e}"));
    // The new key is published ahead; the old one still signs and verifies.
    assert_eq!(code(i.tokens.verify(&old.access_token, AUD)), "ok");
    let jwks: serde_json::Value = serde_json::from_str(&i.tokens.jwks().json).unwrap_or_default();
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(2));

    // The new key signs after 10 minutes; the old one is retired then and
    // published for one more token lifetime plus leeway (1 h + 60 s).
    i.clock.advance(Duration::from_secs(600));
    let new = i.login("alice").await;
    assert_ne!(kid(&new.access_token), kid(&old.access_token));
    i.clock.advance(Duration::from_secs(3661));
    let pruned = i.tokens.change_keys(|ring, now| ring.prune(now));
    assert_eq!(pruned, vec![kid(&old.access_token)]);
    // Refused as signed by an unknown key, even though it was cached as verified.
    assert!(matches!(
        i.tokens.verify(&old.access_token, AUD),
        Err(TokenError::Jwt(JwtError::UnknownKid | JwtError::Expired))
    ));
    let jwks: serde_json::Value = serde_json::from_str(&i.tokens.jwks().json).unwrap_or_default();
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(1));
}

fn kid(token: &str) -> String {
    use base64::Engine as _;
    let header = token.split('.').next().unwrap_or_default();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap_or_default();
    let header: serde_json::Value = serde_json::from_slice(&header).unwrap_or_default();
    header["kid"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn issuing_refuses_what_it_must_not_sign() {
    let b = sqlite().await;
    let i = instance(&b.db);
    let mut req = login("alice");
    req.audience = "unknown".into();
    assert_eq!(code(i.tokens.issue(TENANT, req).await), "invalid_request");
    let mut req = login("alice");
    req.claims.insert("sid".into(), json!("forged"));
    assert_eq!(code(i.tokens.issue(TENANT, req).await), "invalid_request");
    let mut req = login("alice");
    req.claims.insert("exp".into(), json!(1));
    assert_eq!(code(i.tokens.issue(TENANT, req).await), "invalid_request");
    let mut req = login("");
    req.ttl = Some(Duration::from_secs(60));
    assert_eq!(code(i.tokens.issue(TENANT, req).await), "invalid_request");
    let mut req = login("alice");
    req.ttl = Some(Duration::from_secs(7200));
    assert_eq!(code(i.tokens.issue(TENANT, req).await), "invalid_request");
}

async fn open(db: &Database, sealer: &SecretSealer, clock: &ManualClock) -> Tokens {
    let mut config = config();
    config.rotate_every = Duration::from_secs(24 * 3600);
    Tokens::open(
        config,
        db.clone(),
        sealer.clone(),
        SecurityEvents::new(8),
        Arc::new(clock.clone()),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

async fn signing_keys_are_stored_sealed_and_shared_by_instances(b: Backend) {
    let sealer = SecretSealer::new(Keyring::ephemeral());
    let clock = ManualClock::new();
    let a = open(&b.db, &sealer, &clock).await;
    let other = open(&b.db, &sealer, &clock).await;
    let kids = |t: &Tokens| {
        t.signing_keys()
            .into_iter()
            .map(|k| k.kid)
            .collect::<Vec<_>>()
    };
    assert_eq!(kids(&a).len(), 1);
    assert_eq!(
        kids(&a),
        kids(&other),
        "the second instance adopts the first key"
    );
    let pair = a
        .issue(TENANT, login("alice"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(code(other.verify(&pair.access_token, AUD)), "ok");

    // At rest the private key is sealed: the stored bytes do not contain it.
    let private =
        a.with_keys(|ring, _| ring.records().next().map(|r| r.material.expose().to_vec()));
    let stored = SigningKeyStore::new(b.db.clone(), sealer.clone())
        .load()
        .await;
    assert_eq!(stored.map(|r| r.len()).ok(), Some(1));
    let raw: Vec<Vec<u8>> = raw_materials(&b.db).await;
    let private = private.unwrap_or_default();
    assert!(!private.is_empty());
    assert!(
        raw.iter()
            .all(|m| !m.windows(private.len()).any(|w| w == private.as_slice()))
    );

    // A rotation on one instance reaches the other at its next maintenance.
    let new = a
        .rotate_signing_key()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(new.state, KeyState::Pending);
    assert!(
        other
            .maintain_keys()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    );
    assert_eq!(kids(&a), kids(&other));
    assert!(
        !other
            .maintain_keys()
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        "nothing new"
    );

    // The schedule: a day after the newest key the next one is made, and keys
    // past their grace period are deleted (v1 retired 10 min after the start,
    // so it left the JWKS 1 h 1 min later).
    clock.advance(Duration::from_secs(24 * 3600));
    assert!(
        other
            .maintain_keys()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    );
    let states = |t: &Tokens| {
        t.signing_keys()
            .into_iter()
            .map(|k| (k.version, k.state))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        states(&other),
        [(2, KeyState::Active), (3, KeyState::Pending)]
    );
    // Two hours on, v3 signs and v2 is past its grace period too; the first
    // instance catches up without rotating again (v3 is only two hours old).
    clock.advance(Duration::from_secs(2 * 3600));
    assert!(a.maintain_keys().await.unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(states(&a), [(3, KeyState::Active)]);
    assert_eq!(
        SigningKeyStore::new(b.db.clone(), sealer.clone())
            .load()
            .await
            .map(|r| r.len())
            .ok(),
        Some(1)
    );

    // Another deployment's master key cannot open them: start-up fails, loudly.
    let stranger = SecretSealer::new(Keyring::ephemeral());
    let refused = Tokens::open(
        config(),
        b.db.clone(),
        stranger,
        SecurityEvents::new(8),
        Arc::new(clock.clone()),
    )
    .await;
    assert_eq!(refused.err().map(|e| e.code()), Some("corrupt"));
}

async fn raw_materials(db: &Database) -> Vec<Vec<u8>> {
    use palisade_store::sqlx::Row as _;
    async fn read(db: &Database) -> Result<Vec<Vec<u8>>, palisade_store::StoreError> {
        let sql = "SELECT material FROM auth_signing_keys";
        palisade_store::on_primary!(db, sql, sql, |q| q, fetch_all, |rows| rows
            .iter()
            .map(|r| r.try_get::<Vec<u8>, _>("material"))
            .collect::<Result<Vec<_>, _>>()
            .map_err(palisade_store::StoreError::from))
    }
    read(db).await.unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn tokens_of_a_trusted_outside_issuer_verify_against_its_jwks_url() {
    use palisade_auth::jwt::{Algorithm, Issuer, IssuerConfig, NewClaims};
    use palisade_auth::tokens::TrustedIssuer;
    use std::sync::RwLock;

    // The outside issuer: its own ring, its JWKS served over HTTP.
    let clock = ManualClock::new();
    let shared: SharedClock = Arc::new(clock.clone());
    let mut ring = KeyRing::new(RotationPolicy::default());
    ring.rotate(clock_ms(&clock))
        .unwrap_or_else(|e| panic!("{e}"));
    let jwks = ring.jwks(clock_ms(&clock)).json;
    let ring = Arc::new(RwLock::new(ring));
    let idp = Issuer::new(
        IssuerConfig {
            issuer: "https://idp.test".into(),
            typ: Some("JWT".into()),
            max_ttl: Duration::from_secs(3600),
        },
        ring,
        shared.clone(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let app = axum::Router::new().route("/jwks", axum::routing::get(move || async move { jwks }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let url = format!(
        "http://{}/jwks",
        listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let b = sqlite().await;
    let mut config = config();
    config.trusted_issuers = vec![TrustedIssuer {
        issuer: "https://idp.test".into(),
        jwks_url: url,
        audiences: vec![AUD.into()],
        algorithms: vec![Algorithm::EdDSA],
        required_typ: None,
        max_lifetime: Duration::from_secs(3600),
    }];
    let tokens = Tokens::new(
        config,
        KeyRing::new(RotationPolicy::default()),
        b.db.clone(),
        SecurityEvents::new(8),
        shared,
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let outside = idp
        .issue(
            NewClaims {
                sub: "carol".into(),
                aud: vec![AUD.into()],
                extra: serde_json::Map::new(),
            },
            Duration::from_secs(300),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let claims = tokens
        .verify_in(TENANT, &outside, AUD)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(claims.sub.as_deref(), Some("carol"));
    assert_eq!(
        code(tokens.verify_in(TENANT, &outside, "elsewhere").await),
        "bad_audience"
    );
    // Signed by a key the outside issuer never published: refused.
    let impostor = instance(&b.db);
    let own = impostor.login("mallory").await;
    assert_ne!(
        code(tokens.verify_in(TENANT, &own.access_token, AUD).await),
        "ok"
    );
    // Palisade's own tokens still verify, in their tenant only.
    let mine = tokens
        .issue(TENANT, login("dave"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        code(tokens.verify_in(TENANT, &mine.access_token, AUD).await),
        "ok"
    );
    assert_eq!(
        code(tokens.verify_in("t2", &mine.access_token, AUD).await),
        "wrong_tenant"
    );
}
