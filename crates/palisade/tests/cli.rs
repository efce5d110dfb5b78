//! The binary as an operator meets it: init, first start on embedded defaults,
//! bootstrap keys, configuration errors, graceful shutdown, audit verify.

mod support;

use std::collections::HashMap;
use std::time::Duration;
use support::{Client, Server, printed_key, run};

fn env() -> HashMap<String, String> {
    HashMap::new()
}

#[tokio::test]
async fn first_start_initialises_embedded_defaults_and_prints_the_key_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(dir.path(), env());
    server.wait_ready(200).await;
    let key = server
        .printed_key()
        .expect("the admin key is printed on first start");
    let config = dir.path().join("palisade-data/palisade.toml");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&config)
            .map(|m| m.permissions().mode() & 0o777)
            .ok();
        assert_eq!(mode, Some(0o600), "the config holds secrets");
    }
    assert!(dir.path().join("palisade-data/palisade.db").exists());
    let client = Client::new(&server.base, &key);
    let (status, body) = client.get("/v1/api-keys").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        !server.stderr().contains(&key),
        "the key never reaches the logs"
    );

    // SIGTERM: graceful exit with status 0.
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(15)).success());

    // A restart reuses the data and prints no key.
    let mut again = Server::start(dir.path(), env());
    again.wait_ready(200).await;
    assert_eq!(again.printed_key(), None);
    assert_eq!(
        Client::new(&again.base, &key).get("/v1/api-keys").await.0,
        200
    );
}

#[tokio::test]
async fn init_refuses_to_overwrite_and_honours_the_bootstrap_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let chosen = "bootstrap-key-for-automation-0123456789";
    let mut with_key = env();
    with_key.insert("PALISADE_BOOTSTRAP_ADMIN_KEY".into(), chosen.into());
    let (status, out, err) = run(dir.path(), &with_key, &["init", "--dir", "d"]);
    assert!(status.success(), "{err}");
    assert_eq!(printed_key(&out), None);
    assert!(
        !out.contains(chosen),
        "a key the operator chose is never echoed"
    );
    assert!(
        out.contains("installed from PALISADE_BOOTSTRAP_ADMIN_KEY"),
        "{out}"
    );
    let (status, _, err) = run(dir.path(), &env(), &["init", "--dir", "d"]);
    assert!(!status.success());
    assert!(err.contains("refusing to overwrite"), "{err}");

    let mut config_env = env();
    config_env.insert("PALISADE_CONFIG".into(), "d/palisade.toml".into());
    let mut server = Server::start(dir.path(), config_env);
    server.wait_ready(200).await;
    assert_eq!(
        Client::new(&server.base, chosen)
            .get("/v1/api-keys")
            .await
            .0,
        200
    );
    assert_eq!(
        Client::new(&server.base, "bootstrap-key-for-automation-0123456780")
            .get("/v1/api-keys")
            .await
            .0,
        401
    );

    let short = tempfile::tempdir().expect("temp dir");
    let mut too_short = env();
    too_short.insert("PALISADE_BOOTSTRAP_ADMIN_KEY".into(), "short".into());
    let (status, _, err) = run(short.path(), &too_short, &["init"]);
    assert!(!status.success());
    assert!(err.contains("PALISADE_BOOTSTRAP_ADMIN_KEY"), "{err}");
}

#[tokio::test]
async fn invalid_configuration_stops_start_up_naming_the_key_without_secrets() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (status, _, _) = run(dir.path(), &env(), &["init"]);
    assert!(status.success());
    for (key, value, named) in [
        ("PALISADE_SERVER__LISTEN", "nowhere", "server.listen"),
        (
            "PALISADE_DATABASE__URL",
            "mysql://admin:hunter2secret@db/x",
            "database.url",
        ),
        (
            "PALISADE_DATABASE__MAX_CONNECTIONS",
            "0",
            "database.max_connections",
        ),
        ("PALISADE_SERVER__LISTN", "127.0.0.1:1", "listn"),
    ] {
        let mut bad = env();
        bad.insert(key.into(), value.into());
        let (status, out, err) = run(dir.path(), &bad, &["serve"]);
        assert!(!status.success(), "{key} accepted");
        assert!(err.contains(named), "{key}: {err}");
        assert!(!err.contains("hunter2secret") && !out.contains("hunter2secret"));
    }
}

#[tokio::test]
async fn help_explains_every_command() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (status, out, _) = run(dir.path(), &env(), &["--help"]);
    assert!(status.success());
    for word in ["init", "serve", "migrate", "audit"] {
        assert!(out.contains(word), "{out}");
    }
    let (status, out, _) = run(dir.path(), &env(), &["audit", "verify", "--help"]);
    assert!(status.success());
    assert!(out.contains("--checkpoint"), "{out}");
}
