//! TLS to PostgreSQL as a production deployment runs it: `sslmode=verify-full` with
//! a CA file accepts the server's certificate for its name, and refuses a wrong CA
//! or a name the certificate does not cover. Also the read-replica pool.

use palisade_store::{Database, DatabaseConfig};
use palisade_testkit::PostgresServer;
use std::path::{Path, PathBuf};

fn config(url: String, ca: PathBuf) -> DatabaseConfig {
    let mut config = DatabaseConfig::postgres(url);
    config.ssl_root_cert = Some(ca);
    config.acquire_timeout_ms = 3000;
    config
}

async fn connect(config: &DatabaseConfig) -> Result<Database, palisade_store::StoreError> {
    let db = Database::connect(config, Path::new(".")).await?;
    db.ping().await?;
    Ok(db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_connects_only_to_the_certified_name_with_the_right_ca() {
    let server = PostgresServer::start_with_tls().expect("TLS PostgreSQL");

    let good = config(
        server.url("localhost", "?sslmode=verify-full"),
        server.ca_file(),
    );
    let db = connect(&good)
        .await
        .expect("verify-full with the right CA and name");
    db.migrate().await.expect("migrations over TLS");
    if let Database::Postgres(pg) = &db {
        let encrypted: bool =
            sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .fetch_one(pg.primary())
                .await
                .expect("pg_stat_ssl");
        assert!(encrypted, "the session is encrypted");
    }
    // A CA file with no sslmode in the URL means verify-full too.
    let implied = config(server.url("localhost", ""), server.ca_file());
    connect(&implied)
        .await
        .expect("CA file alone implies verification");

    let wrong_ca = config(
        server.url("localhost", "?sslmode=verify-full"),
        server.other_ca_file(),
    );
    assert!(
        connect(&wrong_ca).await.is_err(),
        "a certificate from another CA is refused"
    );
    let wrong_name = config(
        server.url("127.0.0.1", "?sslmode=verify-full"),
        server.ca_file(),
    );
    assert!(
        connect(&wrong_name).await.is_err(),
        "a name the certificate does not cover is refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_queries_use_the_replica_pool() {
    let server = PostgresServer::start_with_tls().expect("TLS PostgreSQL");
    let mut config = config(
        server.url("localhost", "?sslmode=verify-full"),
        server.ca_file(),
    );
    config.replica_url = Some(palisade_core::Secret::new(
        server.url("localhost", "?sslmode=verify-full"),
    ));
    let db = connect(&config).await.expect("connect");
    let Database::Postgres(pg) = &db else {
        panic!("postgres")
    };
    assert!(pg.has_replica());
    let name: String = sqlx::query_scalar("SELECT current_setting('application_name')")
        .fetch_one(pg.reader())
        .await
        .expect("reader");
    let primary: String = sqlx::query_scalar("SELECT current_setting('application_name')")
        .fetch_one(pg.primary())
        .await
        .expect("primary");
    assert_eq!(
        (name.as_str(), primary.as_str()),
        ("palisade-replica", "palisade"),
        "reads and writes use different pools"
    );
}
