//! Append throughput, batches of 1000, on each backend, beside the ceiling a user
//! would compare against: the same rows written raw into a plain table (a multi-row
//! INSERT on SQLite, COPY on PostgreSQL), with no hashing, no sequencing lock, no
//! checkpoint. Run: `cargo bench -p palisade-audit --bench audit_append`.
//!
//! On PostgreSQL two more rows show what the indexes cost. `palisade_postgres_no_query_indexes`
//! is the complete append into a store without the five indexes behind filtered
//! queries (tenant, actor, action, resource, time). `raw_copy_postgres_indexed` is the
//! ceiling's raw COPY into a table with the same seven indexes as `audit_entries`
//! (those five, the primary key and the unique id): no hashing, no tree, no
//! checkpoint, only the rows and their index entries. Both are measurements only; the
//! log needs those indexes.

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use palisade_audit::checkpoint::NoteSigner;
use palisade_audit::event::{EventLimits, NewEvent, PreparedEvent};
use palisade_audit::store::AuditStore;
use palisade_core::principal::TenantId;
use palisade_store::{Database, DatabaseConfig};
use palisade_testkit::postgres::TestDatabase;
use serde_json::json;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::runtime::Runtime;
use uuid::Uuid;

const BATCH: usize = 1000;

fn events(n: usize) -> Vec<PreparedEvent> {
    let now = OffsetDateTime::now_utc();
    (0..n)
        .map(|i| {
            let event: NewEvent = serde_json::from_value(json!({
                "action": "auth.login",
                "actor": {"id": format!("user-{}", i % 977), "type": "user", "ip": "203.0.113.7"},
                "resource": {"type": "session", "id": format!("s-{i}")},
                "outcome": "success",
                "request_id": "req-0123456789",
                "metadata": {"mfa": true, "method": "password"},
            }))
            .unwrap_or_else(|e| panic!("{e}"));
            event
                .prepare(
                    TenantId::default_tenant(),
                    Uuid::now_v7(),
                    now,
                    &EventLimits::default(),
                )
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

/// Times only the write: events are built outside the measured span.
fn timed<F: FnMut(Vec<PreparedEvent>) -> Duration>(iters: u64, mut write: F) -> Duration {
    (0..iters).map(|_| write(events(BATCH))).sum()
}

fn append(c: &mut Criterion) {
    let rt = Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    let signer = NoteSigner::generate("bench").unwrap_or_else(|e| panic!("{e}"));
    let mut group = c.benchmark_group("audit_append_batch_1000");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(8));

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let sqlite = rt.block_on(async {
        let db = Database::connect(&DatabaseConfig::default(), dir.path()).await?;
        db.migrate().await?;
        sqlx::query("CREATE TABLE plain_entries (idx INTEGER, id BLOB, tenant TEXT, action TEXT, actor_id TEXT, outcome TEXT, received_at_ms INTEGER, leaf BLOB)")
            .execute(match &db { Database::Sqlite(s) => s.writer(), Database::Postgres(_) => unreachable!() })
            .await?;
        Ok::<_, Box<dyn std::error::Error>>(db)
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let store = AuditStore::new(sqlite.clone());
    bench_store_append(&mut group, "palisade_sqlite", &rt, &store, &signer);
    group.bench_function("raw_insert_sqlite", |b| {
        let Database::Sqlite(db) = &sqlite else { return };
        b.iter_custom(|iters| {
            timed(iters, |batch| {
                let start = Instant::now();
                rt.block_on(async {
                    let mut tx = db.writer().begin().await?;
                    for chunk in batch.chunks(900) {
                        let mut q = sqlx::QueryBuilder::new("INSERT INTO plain_entries (idx, id, tenant, action, actor_id, outcome, received_at_ms, leaf) ");
                        q.push_values(chunk, |mut row, e| {
                            row.push_bind(0i64).push_bind(e.id).push_bind(e.tenant.as_str()).push_bind(e.action.as_str())
                                .push_bind(e.actor_id.as_str()).push_bind(e.outcome.as_str()).push_bind(e.received_at_ms).push_bind(e.leaf.as_slice());
                        });
                        q.build().execute(&mut *tx).await?;
                    }
                    tx.commit().await
                })
                .unwrap_or_else(|e| panic!("{e}"));
                start.elapsed()
            })
        })
    });

    let pg = rt.block_on(migrated_postgres(&[
        "CREATE UNLOGGED TABLE IF NOT EXISTS plain_entries (LIKE audit_entries)",
        "ALTER TABLE plain_entries SET LOGGED",
        "CREATE TABLE indexed_entries (LIKE audit_entries INCLUDING INDEXES)",
    ]));
    let Ok((_schema, pg)) = pg else {
        eprintln!("PostgreSQL not reachable: skipping its benchmarks");
        return;
    };
    let store = AuditStore::new(pg.clone());
    bench_store_append(&mut group, "palisade_postgres", &rt, &store, &signer);
    let bare = rt.block_on(migrated_postgres(&[
        "DROP INDEX audit_entries_tenant, audit_entries_actor_bucketed, audit_entries_action_bucketed, audit_entries_resource_bucketed, audit_entries_time",
    ]));
    let (_bare_schema, bare) = bare.unwrap_or_else(|e| panic!("{e}"));
    let bare = AuditStore::new(bare);
    bench_store_append(
        &mut group,
        "palisade_postgres_no_query_indexes",
        &rt,
        &bare,
        &signer,
    );
    for (name, table) in [
        ("raw_copy_postgres", "plain_entries"),
        ("raw_copy_postgres_indexed", "indexed_entries"),
    ] {
        // Criterion calls the routine again for each sample: the indexes go on from
        // where the last one stopped (the indexed table's primary key needs them new).
        let mut next_idx = 0i64;
        group.bench_function(name, |b| {
            let Database::Postgres(db) = &pg else { return };
            b.iter_custom(|iters| {
                timed(iters, |batch| {
                    let csv = to_csv(&batch, &mut next_idx);
                    let start = Instant::now();
                    rt.block_on(async {
                        let mut conn = db.primary().acquire().await?;
                        let mut copy = conn
                            .copy_in_raw(&format!("COPY {table} (idx, id, tenant, action, actor_id, actor_type, resource_type, resource_id, outcome, received_at_ms, leaf) FROM STDIN (FORMAT csv)"))
                            .await?;
                        copy.send(csv.as_bytes()).await?;
                        copy.finish().await
                    })
                    .unwrap_or_else(|e| panic!("{e}"));
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
}

/// Times `store.append` of one batch per iteration as benchmark `name`.
fn bench_store_append(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    rt: &Runtime,
    store: &AuditStore,
    signer: &NoteSigner,
) {
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            timed(iters, |batch| {
                let start = Instant::now();
                rt.block_on(store.append(&batch, signer, "bench", 0))
                    .unwrap_or_else(|e| panic!("{e}"));
                start.elapsed()
            })
        })
    });
}

/// A migrated store in a fresh PostgreSQL schema, after running `setup` in it.
async fn migrated_postgres(
    setup: &[&str],
) -> Result<(TestDatabase, Database), Box<dyn std::error::Error>> {
    let schema = TestDatabase::create().await?;
    let db = Database::connect(
        &DatabaseConfig::postgres(schema.url()),
        std::path::Path::new("."),
    )
    .await?;
    db.migrate().await?;
    if let Database::Postgres(p) = &db {
        for statement in setup {
            sqlx::query(statement).execute(p.primary()).await?;
        }
    }
    Ok((schema, db))
}

fn to_csv(batch: &[PreparedEvent], next_idx: &mut i64) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let opt = |s: &Option<String>| s.as_deref().map(quote).unwrap_or_default();
    let mut out = String::with_capacity(batch.len() * 400);
    for e in batch {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},\\x{}\n",
            next_idx,
            e.id,
            quote(e.tenant.as_str()),
            quote(&e.action),
            quote(&e.actor_id),
            opt(&e.actor_type),
            opt(&e.resource_type),
            opt(&e.resource_id),
            e.outcome.as_str(),
            e.received_at_ms,
            hex::encode(&e.leaf)
        ));
        *next_idx += 1;
    }
    out
}

criterion_group!(benches, append);
criterion_main!(benches);
