//! `/v1/auth/passwords` driven as a client would: hash, verify, bcrypt
//! import with rehash, and bad input that gets a 4xx naming the field.

mod common;

use axum::http::StatusCode;
use palisade_http::api_router;
use serde_json::{Value, json};

async fn post(app: &axum::Router, key: &str, uri: &str, body: Value) -> (StatusCode, Value) {
    let answer = common::send(app, common::request("POST", uri, key, Some(body))).await;
    (answer.status, answer.body)
}

#[tokio::test]
async fn hashes_verifies_and_migrates_bcrypt_hashes() {
    let backend = common::sqlite(palisade_http::HttpSettings::default()).await;
    let app = api_router(backend.state.clone());
    let key = &backend.admin;

    let (status, hashed) = post(
        &app,
        key,
        "/v1/auth/passwords/hash",
        json!({"password": "correct horse battery"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{hashed}");
    let hash = hashed["hash"].as_str().expect("hash").to_owned();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );

    let (_, ok) = post(
        &app,
        key,
        "/v1/auth/passwords/verify",
        json!({"password": "correct horse battery", "hash": hash}),
    )
    .await;
    assert_eq!(ok, json!({"valid": true}));
    let (_, wrong) = post(
        &app,
        key,
        "/v1/auth/passwords/verify",
        json!({"password": "incorrect horse", "hash": hash}),
    )
    .await;
    assert_eq!(wrong, json!({"valid": false}));

    // A bcrypt hash from a NestJS app (cost 4 to keep the test fast).
    let bcrypt = bcrypt::hash("hunter2hunter2", 4).expect("bcrypt");
    let (status, migrated) = post(
        &app,
        key,
        "/v1/auth/passwords/verify",
        json!({"password": "hunter2hunter2", "hash": bcrypt}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(migrated["valid"], true);
    assert!(
        migrated["rehash"]
            .as_str()
            .is_some_and(|h| h.starts_with("$argon2id$")),
        "{migrated}"
    );
}

#[tokio::test]
async fn bad_input_names_the_field_and_the_scope_is_required() {
    let backend = common::sqlite(palisade_http::HttpSettings::default()).await;
    let app = api_router(backend.state.clone());
    let key = &backend.admin;
    let cases = [
        (
            "/v1/auth/passwords/hash",
            json!({"password": "short"}),
            "password",
        ),
        (
            "/v1/auth/passwords/hash",
            json!({"password": "x".repeat(65)}),
            "password",
        ),
        (
            "/v1/auth/passwords/hash",
            json!({"password": "long enough", "extra": 1}),
            "extra",
        ),
        (
            "/v1/auth/passwords/verify",
            json!({"password": "long enough", "hash": "$argon2id$garbage"}),
            "hash",
        ),
        (
            "/v1/auth/passwords/verify",
            json!({"password": "long enough", "hash": "$scrypt$ln=16,r=8,p=1$aaaa$bbbb"}),
            "hash",
        ),
    ];
    for (uri, body, field) in cases {
        let (status, problem) = post(&app, key, uri, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
        assert!(problem.to_string().contains(field), "{body}: {problem}");
        assert!(
            !problem.to_string().contains("long enough"),
            "a password is never echoed: {problem}"
        );
    }
    let (_, created) = post(
        &app,
        key,
        "/v1/api-keys",
        json!({"name": "reader", "scopes": ["audit:read"]}),
    )
    .await;
    let reader = created["secret"].as_str().expect("secret");
    let (status, _) = post(
        &app,
        reader,
        "/v1/auth/passwords/hash",
        json!({"password": "long enough"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
