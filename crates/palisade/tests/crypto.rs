//! Encryption in the binary as an operator meets it: zero-setup first start
//! (a private master key made in the data directory, with a warning),
//! ciphertexts that survive a restart, `palisade keys rotate` reaching a
//! running server and the audit log, a master key from the environment, and
//! a wrong master key that stops the start instead of making new keys.

mod support;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;
use support::{Client, Server, run};

async fn encrypt_when_ready(client: &Client, plaintext: &[u8]) -> String {
    let body = json!({"plaintext": STANDARD.encode(plaintext), "aad": STANDARD.encode(b"ctx")});
    let mut last = (0, Value::Null);
    for _ in 0..200 {
        last = client.post("/v1/crypto/encrypt", &body).await;
        if last.0 == 200 {
            return last.1["ciphertext"]
                .as_str()
                .expect("ciphertext")
                .to_owned();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("encryption never became ready: {last:?}");
}

async fn decrypt(client: &Client, ciphertext: &str) -> (u16, Value) {
    client
        .post(
            "/v1/crypto/decrypt",
            &json!({"ciphertext": ciphertext, "aad": STANDARD.encode(b"ctx")}),
        )
        .await
}

async fn current_version(client: &Client, key: &str) -> Option<u64> {
    let (status, keys) = client.get("/v1/crypto/keys").await;
    assert_eq!(status, 200, "{keys}");
    keys["keys"].as_array()?.iter().find(|k| k["name"] == key)?["current_version"].as_u64()
}

#[tokio::test]
async fn zero_setup_start_makes_a_private_master_key_and_keys_rotate_reaches_the_server() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = HashMap::from([("PALISADE_CRYPTO__REFRESH_MS".to_owned(), "200".to_owned())]);
    let mut server = Server::start(dir.path(), env.clone());
    server.wait_ready(200).await;
    let admin = server.printed_key().expect("admin key");
    let client = Client::new(&server.base, &admin);
    let ciphertext = encrypt_when_ready(&client, b"hello").await;

    let data = dir.path().join("palisade-data");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for file in ["master.key", "keys.sealed"] {
            let mode = std::fs::metadata(data.join(file))
                .map(|m| m.permissions().mode() & 0o777)
                .ok();
            assert_eq!(mode, Some(0o600), "{file}");
        }
    }
    let stderr = server.stderr();
    assert!(stderr.contains("generated a crypto master key"), "{stderr}");
    let master = std::fs::read_to_string(data.join("master.key")).expect("master key");
    assert!(
        !stderr.contains(master.trim()),
        "the master key never reaches the logs"
    );
    assert_eq!(current_version(&client, "default").await, Some(1));

    // The CLI rotates while the server runs; the server adopts the version.
    let config_env = HashMap::from([(
        "PALISADE_CONFIG".to_owned(),
        "palisade-data/palisade.toml".to_owned(),
    )]);
    let (status, _, err) = run(dir.path(), &config_env, &["keys", "rotate", "default"]);
    assert!(status.success(), "{err}");
    assert!(err.contains("version 2 is now active"), "{err}");
    let (status, _, err) = run(dir.path(), &config_env, &["keys", "rotate", "missing"]);
    assert!(!status.success());
    assert!(err.contains("unknown key"), "{err}");
    palisade_testkit::eventually(
        Duration::from_secs(10),
        "the server adopts version 2",
        || async { current_version(&client, "default").await == Some(2) },
    )
    .await;
    let newer = encrypt_when_ready(&client, b"after").await;
    let (_, events) = client
        .get("/v1/audit/events?action=crypto.key.rotated")
        .await;
    let actors: Vec<&str> = events["events"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(|e| e["event"]["actor"]["id"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(actors, vec!["palisade-cli"], "{events}");

    // A restart opens both, with the same master key file.
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(15)).success());
    let mut again = Server::start(dir.path(), env);
    again.wait_ready(200).await;
    let client = Client::new(&again.base, &admin);
    encrypt_when_ready(&client, b"ready").await;
    for (ct, plain) in [(&ciphertext, &b"hello"[..]), (&newer, b"after")] {
        let (status, body) = decrypt(&client, ct).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["plaintext"], STANDARD.encode(plain));
    }
    assert!(!again.stderr().contains("generated a crypto master key"));
}

#[tokio::test]
async fn a_master_key_from_the_environment_is_used_and_a_wrong_one_stops_the_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let right = STANDARD.encode([7u8; 32]);
    let env = |key: &str| HashMap::from([("PALISADE_MASTER_KEY".to_owned(), key.to_owned())]);
    // `palisade init` makes the key `default` at once.
    let (status, out, err) = run(dir.path(), &env(&right), &["init", "--dir", "d"]);
    assert!(status.success(), "{err}");
    let admin = support::printed_key(&out).expect("admin key");
    assert!(dir.path().join("d/keys.sealed").exists());
    assert!(
        !dir.path().join("d/master.key").exists(),
        "the key came from the environment"
    );

    let with_config = |key: &str| {
        let mut env = env(key);
        env.insert("PALISADE_CONFIG".into(), "d/palisade.toml".into());
        env
    };
    let mut server = Server::start(dir.path(), with_config(&right));
    server.wait_ready(200).await;
    let client = Client::new(&server.base, &admin);
    let ciphertext = encrypt_when_ready(&client, b"secret").await;
    assert!(!server.stderr().contains(&right));
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(15)).success());

    // Another master key: the key file does not open, so nothing starts and
    // nothing is overwritten.
    let sealed_before = std::fs::read(dir.path().join("d/keys.sealed")).expect("key file");
    let mut wrong = Server::start(dir.path(), with_config(&STANDARD.encode([8u8; 32])));
    let status = wrong.wait_exit(Duration::from_secs(20));
    assert!(!status.success());
    let stderr = wrong.stderr();
    assert!(
        stderr.contains("does not open with this master key"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("d/keys.sealed")).ok(),
        Some(sealed_before)
    );
    // Not base64 of 32 bytes: a clear error naming the variable.
    let mut malformed = Server::start(dir.path(), with_config("short"));
    assert!(!malformed.wait_exit(Duration::from_secs(20)).success());
    assert!(
        malformed.stderr().contains("PALISADE_MASTER_KEY"),
        "{}",
        malformed.stderr()
    );

    let mut back = Server::start(dir.path(), with_config(&right));
    back.wait_ready(200).await;
    let client = Client::new(&back.base, &admin);
    encrypt_when_ready(&client, b"x").await;
    let (status, body) = decrypt(&client, &ciphertext).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["plaintext"], STANDARD.encode(b"secret"));
}
