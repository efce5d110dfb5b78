//! The Redis connection against a single real server: commands, scripts, bad
//! commands and the breaker, and TLS with a private CA.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use palisade_core::SystemClock;
use palisade_core::resilience::{BreakerConfig, BreakerState};
use palisade_store::{Redis, RedisConfig, RedisError};
use palisade_testkit::redis::{redis_url, unique_prefix};
use palisade_testkit::{RedisServer, within};

/// Bound on any single step that talks to a server.
const PROMPT: Duration = Duration::from_secs(5);

fn connect(config: &RedisConfig, prefix: &str) -> Redis {
    let config = RedisConfig {
        key_prefix: prefix.to_owned(),
        ..config.clone()
    };
    Redis::new(&config, SystemClock::shared()).expect("valid redis config")
}

fn shared(test: &str) -> Redis {
    connect(&RedisConfig::single(redis_url()), &unique_prefix(test))
}

async fn cleanup(redis: &Redis, keys: &[String]) {
    let mut del = redis::cmd("DEL");
    del.arg(keys);
    let _: i64 = within(PROMPT, "delete test keys", redis.run(&del))
        .await
        .expect("delete test keys");
}

#[tokio::test]
async fn set_and_get_round_trip_with_the_key_prefix() {
    let redis = shared("set_and_get_round_trip");
    let key = redis.key("greeting");
    assert!(key.starts_with("t:set_and_get_round_trip:"), "{key}");

    let mut set = redis::cmd("SET");
    set.arg(&key).arg("hello").arg("EX").arg(60);
    let () = within(PROMPT, "SET", redis.run(&set)).await.expect("SET");
    let mut get = redis::cmd("GET");
    get.arg(&key);
    let value: Option<String> = within(PROMPT, "GET", redis.run_idempotent(&get))
        .await
        .expect("GET");
    assert_eq!(value.as_deref(), Some("hello"));

    let mut missing = redis::cmd("GET");
    missing.arg(redis.key("missing"));
    let none: Option<String> = within(PROMPT, "GET missing", redis.run(&missing))
        .await
        .expect("GET missing");
    assert_eq!(none, None);
    cleanup(&redis, &[key]).await;
}

/// One field of `INFO commandstats`, e.g. `calls` of `cmdstat_script|load`.
fn command_calls(info: &str, command: &str) -> u64 {
    let prefix = format!("cmdstat_{command}:");
    info.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|stats| {
            stats
                .split(',')
                .find_map(|field| field.strip_prefix("calls="))
        })
        .and_then(|calls| calls.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn scripts_run_by_sha_and_are_loaded_only_once() {
    // A private server, so INFO commandstats counts only this test's commands.
    let server = within(PROMPT, "start redis-server", RedisServer::start())
        .await
        .expect("start redis-server");
    let redis = connect(&RedisConfig::single(server.url()), "palisade:");
    let script = redis::Script::new(
        "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('INCRBY', KEYS[2], ARGV[2])",
    );
    let keys = [redis.key("script:value"), redis.key("script:counter")];

    let first: i64 = within(
        PROMPT,
        "first script run",
        redis.invoke_script(&script, &keys, &["a", "5"]),
    )
    .await
    .expect("first script run");
    assert_eq!(first, 5);
    let stats: String = redis
        .run(redis::cmd("INFO").arg("commandstats"))
        .await
        .expect("INFO");
    assert_eq!(command_calls(&stats, "script|load"), 1, "{stats}");

    let second: i64 = within(
        PROMPT,
        "second script run",
        redis.invoke_script(&script, &keys, &["b", "5"]),
    )
    .await
    .expect("second script run");
    assert_eq!(second, 10);
    let stats: String = redis
        .run(redis::cmd("INFO").arg("commandstats"))
        .await
        .expect("INFO");
    assert_eq!(
        command_calls(&stats, "script|load"),
        1,
        "the second run must hit the script cache: {stats}"
    );
    assert_eq!(
        command_calls(&stats, "eval"),
        0,
        "never the full script text"
    );
    // One EVALSHA answered NOSCRIPT, then one per successful run.
    assert_eq!(command_calls(&stats, "evalsha"), 3, "{stats}");
}

#[tokio::test]
async fn bad_commands_are_command_errors_and_do_not_open_the_breaker() {
    let config = RedisConfig {
        breaker: BreakerConfig {
            minimum_calls: 5,
            ..BreakerConfig::default()
        },
        ..RedisConfig::single(redis_url())
    };
    let redis = connect(&config, &unique_prefix("bad_commands"));
    let key = redis.key("list");
    let mut set = redis::cmd("SET");
    set.arg(&key).arg("not a list").arg("EX").arg(60);
    let () = within(PROMPT, "SET", redis.run(&set)).await.expect("SET");

    let unknown = redis::cmd("PALISADE-NO-SUCH-COMMAND");
    let mut wrong_type = redis::cmd("LPUSH");
    wrong_type.arg(&key).arg("x");
    let mut get = redis::cmd("GET");
    get.arg(&key);
    let broken_script = redis::Script::new("return redis.call('NO-SUCH-COMMAND')");
    for _ in 0..10 {
        let error = within(PROMPT, "unknown command", redis.run::<()>(&unknown))
            .await
            .expect_err("unknown command");
        assert!(matches!(error, RedisError::Command(_)), "{error:?}");
        let error = within(PROMPT, "WRONGTYPE", redis.run::<i64>(&wrong_type))
            .await
            .expect_err("LPUSH on a string");
        assert!(
            matches!(&error, RedisError::Command(m) if m.contains("WRONGTYPE")),
            "{error:?}"
        );
        // The reply is fine; it just is not an integer.
        let error = within(PROMPT, "typed GET", redis.run_idempotent::<i64>(&get))
            .await
            .expect_err("a string is not an i64");
        assert!(matches!(error, RedisError::Command(_)), "{error:?}");
        let error = within(
            PROMPT,
            "failing script",
            redis.invoke_script::<(), &str, &str>(&broken_script, &[], &[]),
        )
        .await
        .expect_err("script error");
        assert!(matches!(error, RedisError::Command(_)), "{error:?}");
    }
    let snapshot = redis.breaker_snapshot();
    assert_eq!(snapshot.state, BreakerState::Closed, "{snapshot:?}");
    assert_eq!(snapshot.failures_in_window, 0, "{snapshot:?}");
    assert!(snapshot.calls_in_window >= 40, "{snapshot:?}");
    cleanup(&redis, &[key]).await;
}

/// A CA and a server certificate for 127.0.0.1 signed by it, made with the
/// `openssl` CLI in `dir`.
fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl (is it installed?)");
        assert!(
            output.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &["-keyout", "ca.key", "-out", "ca.crt", "-days", "1"],
        &["-subj", "/CN=palisade test CA"],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &["-keyout", "server.key", "-out", "server.csr"],
        &["-subj", "/CN=127.0.0.1"],
    ]
    .concat());
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write extensions");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "1",
        "-extfile",
        "server.ext",
    ]);
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

#[tokio::test]
async fn tls_with_a_private_ca_works_and_an_untrusted_server_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    make_certificates(dir.path());
    let file = |name: &str| dir.path().join(name).display().to_string();
    // The plain port stays open: the fixture's readiness check speaks plain text.
    let tls_port = free_port();
    let _server = within(
        Duration::from_secs(20),
        "start redis-server with TLS",
        RedisServer::start_with_config(&format!(
            "tls-port {tls_port}\n\
             tls-cert-file \"{}\"\n\
             tls-key-file \"{}\"\n\
             tls-ca-cert-file \"{}\"\n\
             tls-auth-clients no\n",
            file("server.crt"),
            file("server.key"),
            file("ca.crt"),
        )),
    )
    .await
    .expect("start redis-server with TLS");
    let url = format!("rediss://127.0.0.1:{tls_port}");

    let trusted = RedisConfig {
        ca_file: Some(dir.path().join("ca.crt")),
        connect_timeout_ms: 2_000,
        command_timeout_ms: 2_000,
        ..RedisConfig::single(&url)
    };
    let redis = connect(&trusted, "palisade:");
    let mut set = redis::cmd("SET");
    set.arg(redis.key("tls")).arg("over tls");
    let () = within(PROMPT, "SET over TLS", redis.run(&set))
        .await
        .expect("SET over TLS");
    let mut get = redis::cmd("GET");
    get.arg(redis.key("tls"));
    let value: String = within(PROMPT, "GET over TLS", redis.run(&get))
        .await
        .expect("GET over TLS");
    assert_eq!(value, "over tls");
    // The connection really is TLS: the server counts it on its TLS listener.
    let clients: String = redis
        .run(redis::cmd("CLIENT").arg("INFO"))
        .await
        .expect("CLIENT INFO");
    assert!(
        clients.contains(&format!("laddr=127.0.0.1:{tls_port}")),
        "{clients}"
    );

    // Without the CA the server's certificate cannot be verified.
    let untrusted = RedisConfig {
        ca_file: None,
        ..trusted
    };
    let redis = connect(&untrusted, "palisade:");
    let error = within(
        PROMPT,
        "GET without the CA",
        redis.run::<Option<String>>(&get),
    )
    .await
    .expect_err("an unverifiable certificate must be refused");
    assert!(error.is_unavailable(), "{error:?}");
    assert!(
        error.to_string().contains("certificate"),
        "refused for its certificate, not for being down: {error}"
    );
}
