//! An outside issuer's JWKS URL, served by a real HTTP server: fetched once and
//! cached, re-fetched when the issuer rotates, never more than once per
//! interval however many unknown `kid`s arrive, and kept when the issuer is down.

use super::*;
use palisade_auth::jwt::{JwtError, RemoteJwks, RemoteJwksConfig};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Issuer {
    jwks: Arc<Mutex<String>>,
    hits: Arc<AtomicUsize>,
    url: String,
    server: tokio::task::JoinHandle<()>,
}

async fn serve(jwks: String) -> Issuer {
    let jwks = Arc::new(Mutex::new(jwks));
    let hits = Arc::new(AtomicUsize::new(0));
    let app = {
        let (jwks, hits) = (Arc::clone(&jwks), Arc::clone(&hits));
        axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                hits.fetch_add(1, Ordering::SeqCst);
                let body = jwks.lock().unwrap().clone();
                async move { body }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Issuer {
        jwks,
        hits,
        url,
        server,
    }
}

fn jwks_of(f: &Fixture) -> String {
    f.ring.read().unwrap().jwks(f.clock.now_unix_ms()).json
}

#[tokio::test]
async fn caches_refetches_on_rotation_at_most_once_per_interval_and_survives_an_outage() {
    let first = Fixture::new(Algorithm::EdDSA);
    let issuer = serve(jwks_of(&first)).await;
    let mut config = RemoteJwksConfig::new(&issuer.url);
    config.min_refresh_interval = Duration::from_millis(300);
    let remote = RemoteJwks::new(config).expect("remote");
    let verifier = &first.verifier;

    for _ in 0..3 {
        let claims = remote.verify(verifier, &first.issue(300), AUDIENCE).await;
        assert_eq!(
            claims.map(|c| c.sub).ok().flatten().as_deref(),
            Some("user-42")
        );
    }
    assert_eq!(
        issuer.hits.load(Ordering::SeqCst),
        1,
        "cached after the first fetch"
    );

    // The issuer rotates to a new key: one re-fetch, then it verifies.
    let rotated = Fixture::new(Algorithm::EdDSA);
    *issuer.jwks.lock().unwrap() = jwks_of(&rotated);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(
        remote
            .verify(verifier, &rotated.issue(300), AUDIENCE)
            .await
            .is_ok()
    );
    assert_eq!(issuer.hits.load(Ordering::SeqCst), 2);

    // A flood of tokens naming keys nobody published: at most one fetch per interval.
    let stranger = Fixture::new(Algorithm::EdDSA);
    for _ in 0..50 {
        assert_eq!(
            remote
                .verify(verifier, &stranger.issue(300), AUDIENCE)
                .await
                .err(),
            Some(JwtError::UnknownKid)
        );
    }
    assert!(
        issuer.hits.load(Ordering::SeqCst) <= 3,
        "{} fetches",
        issuer.hits.load(Ordering::SeqCst)
    );

    // The issuer goes away: the keys held keep working.
    issuer.server.abort();
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(
        remote
            .verify(verifier, &rotated.issue(300), AUDIENCE)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_bad_document_or_an_unreachable_issuer_is_an_error_not_an_acceptance() {
    let f = Fixture::new(Algorithm::EdDSA);
    let issuer = serve("{\"keys\": \"nope\"}".to_owned()).await;
    let remote = RemoteJwks::new(RemoteJwksConfig::new(&issuer.url)).expect("remote");
    assert!(matches!(
        remote.verify(&f.verifier, &f.issue(300), AUDIENCE).await,
        Err(JwtError::InvalidJwks(_))
    ));
    let nowhere =
        RemoteJwks::new(RemoteJwksConfig::new("http://127.0.0.1:9/jwks")).expect("remote");
    assert!(
        nowhere
            .verify(&f.verifier, &f.issue(300), AUDIENCE)
            .await
            .is_err()
    );
    assert!(RemoteJwks::new(RemoteJwksConfig::new("file:///etc/passwd")).is_err());
}
