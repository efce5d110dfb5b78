//! `TestDatabase` against the real test PostgreSQL.

use std::collections::HashSet;
use std::time::Duration;

use palisade_testkit::postgres::{TestDatabase, database_url};
use palisade_testkit::within;
use sqlx::{Connection, PgConnection};

const PROMPT: Duration = Duration::from_secs(20);

async fn create() -> TestDatabase {
    within(PROMPT, "create a test schema", TestDatabase::create())
        .await
        .expect("create a test schema (is PostgreSQL running? see scripts/test)")
}

/// Whether `schema` exists, asked on a connection of its own.
async fn schema_exists(schema: &str) -> bool {
    within(PROMPT, "look up a schema", async {
        let mut connection = PgConnection::connect(&database_url())
            .await
            .expect("connect to the test server");
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM information_schema.schemata WHERE schema_name = $1)",
        )
        .bind(schema)
        .fetch_one(&mut connection)
        .await
        .expect("query schemata");
        let _ = connection.close().await;
        exists
    })
    .await
}

#[tokio::test]
async fn pool_uses_the_fresh_schema_for_unqualified_names() {
    let db = create().await;
    assert!(db.schema().starts_with("t_"), "schema {}", db.schema());
    assert_eq!(db.schema().len(), 34, "t_ plus 32 hex digits");
    let pool = db.pool().await.expect("pool");

    let current: String = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(&pool)
        .await
        .expect("current_schema");
    assert_eq!(current, db.schema());

    sqlx::query("CREATE TABLE widgets (id int PRIMARY KEY)")
        .execute(&pool)
        .await
        .expect("create table");
    let schema: String = sqlx::query_scalar(
        "SELECT table_schema FROM information_schema.tables WHERE table_name = 'widgets' AND table_schema = $1",
    )
    .bind(db.schema())
    .fetch_one(&pool)
    .await
    .expect("the table is in the test schema");
    assert_eq!(schema, db.schema());
    pool.close().await;
}

#[tokio::test]
async fn url_selects_the_schema_too() {
    let db = create().await;
    let mut connection = within(PROMPT, "connect by URL", PgConnection::connect(&db.url()))
        .await
        .expect("connect with the schema URL");
    let current: String = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(&mut connection)
        .await
        .expect("current_schema");
    assert_eq!(current, db.schema());
    let _ = connection.close().await;
}

#[tokio::test]
async fn parallel_databases_get_distinct_schemas_with_isolated_tables() {
    let databases = within(PROMPT, "create eight schemas at once", async {
        let mut creating = Vec::new();
        for _ in 0..8 {
            creating.push(tokio::spawn(TestDatabase::create()));
        }
        let mut databases = Vec::new();
        for handle in creating {
            databases.push(handle.await.expect("task").expect("create schema"));
        }
        databases
    })
    .await;
    let names: HashSet<&str> = databases.iter().map(TestDatabase::schema).collect();
    assert_eq!(
        names.len(),
        databases.len(),
        "schema names collided: {names:?}"
    );

    // The same unqualified table name in two schemas holds different rows.
    for (index, db) in databases.iter().take(2).enumerate() {
        let pool = db.pool().await.expect("pool");
        sqlx::query("CREATE TABLE items (n int)")
            .execute(&pool)
            .await
            .expect("create table");
        sqlx::query("INSERT INTO items VALUES ($1)")
            .bind(index as i32)
            .execute(&pool)
            .await
            .expect("insert");
        pool.close().await;
    }
    for (index, db) in databases.iter().take(2).enumerate() {
        let pool = db.pool().await.expect("pool");
        let rows: Vec<i32> = sqlx::query_scalar("SELECT n FROM items")
            .fetch_all(&pool)
            .await
            .expect("select");
        assert_eq!(rows, vec![index as i32], "schema {}", db.schema());
        pool.close().await;
    }
}

#[tokio::test]
async fn dropping_removes_the_schema_and_its_tables() {
    let db = create().await;
    let schema = db.schema().to_owned();
    let pool = db.pool().await.expect("pool");
    sqlx::query("CREATE TABLE leftovers (n int)")
        .execute(&pool)
        .await
        .expect("create table");
    pool.close().await;
    assert!(
        schema_exists(&schema).await,
        "schema {schema} was not created"
    );

    drop(db);
    assert!(
        !schema_exists(&schema).await,
        "schema {schema} survived drop"
    );
}

#[tokio::test]
async fn cleanup_removes_the_schema_and_reports_success() {
    let db = create().await;
    let schema = db.schema().to_owned();
    within(PROMPT, "cleanup", db.cleanup())
        .await
        .expect("cleanup succeeds");
    assert!(
        !schema_exists(&schema).await,
        "schema {schema} survived cleanup"
    );
}

#[tokio::test]
async fn unreachable_server_fails_promptly_with_its_url_in_the_error() {
    // Port 1 on loopback: nothing listens, so the connection is refused.
    let url = "postgres://postgres@127.0.0.1:1/test";
    let error = within(
        PROMPT,
        "create on an unreachable server",
        TestDatabase::create_on(url),
    )
    .await
    .expect_err("no server listens on port 1");
    assert!(
        error.to_string().contains(url),
        "error does not name the server: {error}"
    );
}
