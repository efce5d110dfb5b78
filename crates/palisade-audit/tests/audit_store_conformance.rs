//! One suite, every backend: what any `AuditStore` must do.

#[macro_use]
mod common;

use common::{Backend, ORIGIN, event, fill, signer};
use palisade_audit::checkpoint::Checkpoint;
use palisade_audit::merkle::{self, MemoryTree, NodeId, leaf_hash};
use palisade_audit::store::{AuditStore, EventFilter, Page, PageAfter};

async fn appends_contiguous_indexes_and_signs_each_tree_head(b: Backend) {
    let signer = signer();
    let first: Vec<_> = (0..3).map(|n| event("default", n)).collect();
    let appended = b
        .store
        .append(&first, &signer, ORIGIN, 1)
        .await
        .expect("append");
    assert_eq!(
        appended.entries.iter().map(|e| e.1).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert_eq!(appended.tree_size, 3);
    let second: Vec<_> = (3..10).map(|n| event("default", n)).collect();
    let appended = b
        .store
        .append(&second, &signer, ORIGIN, 2)
        .await
        .expect("append");
    assert_eq!(appended.entries.first().map(|e| e.1), Some(3));
    assert_eq!(b.store.tree_size().await.expect("size"), 10);

    let latest = b
        .store
        .latest_checkpoint()
        .await
        .expect("read")
        .expect("a checkpoint");
    let opened = Checkpoint::open(&latest.note, &signer.verifier()).expect("signature verifies");
    let leaves: Vec<_> = first
        .iter()
        .chain(&second)
        .map(|e| leaf_hash(&e.leaf))
        .collect();
    let reference = MemoryTree::from_leaf_hashes(&leaves);
    assert_eq!(
        (opened.size, opened.root),
        (10, reference.root(10).expect("root"))
    );
    assert_eq!(
        b.store.checkpoints().await.expect("all").len(),
        2,
        "{}",
        b.name
    );
}

async fn resubmitted_ids_keep_their_first_index(b: Backend) {
    let signer = signer();
    let events: Vec<_> = (0..4).map(|n| event("default", n)).collect();
    b.store
        .append(&events, &signer, ORIGIN, 1)
        .await
        .expect("append");
    // The same ids again, one repeated inside the batch, plus one new event.
    let mut again = vec![events[2].clone(), events[2].clone(), event("default", 9)];
    again.push(events[0].clone());
    let appended = b
        .store
        .append(&again, &signer, ORIGIN, 2)
        .await
        .expect("append");
    let indexes: Vec<u64> = appended.entries.iter().map(|e| e.1).collect();
    assert_eq!(indexes, vec![2, 2, 4, 0]);
    assert_eq!(b.store.tree_size().await.expect("size"), 5);
}

async fn a_replayed_batch_changes_nothing(b: Backend) {
    let signer = signer();
    let events: Vec<_> = (0..50).map(|n| event("default", n)).collect();
    let first = b
        .store
        .append(&events, &signer, ORIGIN, 1)
        .await
        .expect("append");
    let again = b
        .store
        .append(&events, &signer, ORIGIN, 2)
        .await
        .expect("replay");
    assert_eq!(again, first);
    assert_eq!(b.store.tree_size().await.expect("size"), 50);
    assert_eq!(b.store.checkpoints().await.expect("all").len(), 1);
}

/// One large batch that repeats ids inside itself and resubmits stored ones between
/// new ones: the new ones get contiguous indexes in batch order, the others keep
/// theirs, and the stored tree is the tree of the new leaves in that order.
async fn a_batch_mixing_stored_repeated_and_new_ids(b: Backend) {
    let signer = signer();
    let stored: Vec<_> = (0..200).map(|n| event("default", n)).collect();
    b.store
        .append(&stored, &signer, ORIGIN, 1)
        .await
        .expect("append");
    let new: Vec<_> = (200..500).map(|n| event("default", n)).collect();
    let mut batch = Vec::new();
    let mut expected = Vec::new();
    for (i, e) in new.iter().enumerate() {
        batch.push(e.clone());
        expected.push(200 + i as u64);
        if i % 3 == 0 {
            batch.push(stored[i % 200].clone());
            expected.push((i % 200) as u64);
        }
        if i % 7 == 0 {
            batch.push(e.clone());
            expected.push(200 + i as u64);
        }
    }
    let appended = b
        .store
        .append(&batch, &signer, ORIGIN, 2)
        .await
        .expect("append");
    assert_eq!(
        appended.entries.iter().map(|e| e.1).collect::<Vec<_>>(),
        expected
    );
    assert_eq!(
        appended.entries.iter().map(|e| e.0).collect::<Vec<_>>(),
        batch.iter().map(|e| e.id).collect::<Vec<_>>()
    );
    assert_eq!(appended.tree_size, 500);
    let events = b.store.events_range(0, 600).await.expect("events");
    let all: Vec<_> = stored.iter().chain(&new).collect();
    assert_eq!(
        events.iter().map(|e| (e.index, e.id)).collect::<Vec<_>>(),
        all.iter()
            .enumerate()
            .map(|(i, e)| (i as u64, e.id))
            .collect::<Vec<_>>()
    );
    let leaves: Vec<_> = all.iter().map(|e| leaf_hash(&e.leaf)).collect();
    let reference = MemoryTree::from_leaf_hashes(&leaves);
    assert_eq!(
        b.store.hash_range(0, 0, 500).await.expect("level 0"),
        leaves
    );
    for level in 1..9u8 {
        let count = 500u64 >> level;
        let stored = b.store.hash_range(level, 0, count).await.expect("level");
        assert_eq!(stored.len() as u64, count, "level {level}");
    }
    let latest = b
        .store
        .latest_checkpoint()
        .await
        .expect("read")
        .expect("a checkpoint");
    assert_eq!(latest.root, reference.root(500).expect("root"));
}

async fn proofs_from_stored_hashes_match_a_recomputed_tree(b: Backend) {
    fill(&b.store, 133, 17).await;
    let events = b.store.events_range(0, 133).await.expect("events");
    let leaves: Vec<_> = events.iter().map(|e| leaf_hash(&e.leaf)).collect();
    let reference = MemoryTree::from_leaf_hashes(&leaves);
    for (index, size) in [(0u64, 1u64), (5, 8), (100, 133), (132, 133), (64, 65)] {
        let ids = merkle::inclusion_proof_nodes(index, size).expect("plan");
        let hashes = b.store.read_hashes(&ids).await.expect("hashes");
        let proof = merkle::assemble_inclusion_proof(index, size, &hashes).expect("proof");
        assert_eq!(
            proof,
            reference.inclusion_proof(index, size).expect("reference"),
            "{index}/{size}"
        );
    }
    for (m, n) in [(1u64, 133u64), (17, 34), (100, 133), (133, 133)] {
        let ids = merkle::consistency_proof_nodes(m, n).expect("plan");
        let hashes = b.store.read_hashes(&ids).await.expect("hashes");
        let proof = merkle::assemble_consistency_proof(m, n, &hashes).expect("proof");
        assert_eq!(
            proof,
            reference.consistency_proof(m, n).expect("reference"),
            "{m}/{n}"
        );
    }
    let tile = b.store.hash_range(0, 0, 133).await.expect("level 0");
    assert_eq!(tile, leaves);
}

/// Hashes stored as runs (`store/hash_runs.rs`) read back node by node wherever the
/// runs begin and end: at batch edges, at every 256th node, and in one read of more
/// nodes than SQLite lets one compound `SELECT` have arms.
async fn nodes_read_back_from_their_runs(b: Backend) {
    // Batches of 100 put run edges off the 256-node tile edges.
    fill(&b.store, 700, 100).await;
    let events = b.store.events_range(0, 700).await.expect("events");
    let leaves: Vec<_> = events.iter().map(|e| leaf_hash(&e.leaf)).collect();
    let reference = MemoryTree::from_leaf_hashes(&leaves);
    let ids: Vec<NodeId> = (0..700).map(|i| NodeId::new(0, i)).collect();
    assert_eq!(
        b.store.read_hashes(&ids).await.expect("leaf hashes"),
        leaves
    );
    // Level 1 node i is the root of leaves 2i and 2i + 1.
    for level1 in [0u64, 49, 50, 127, 128, 349] {
        let stored = b
            .store
            .read_hashes(&[NodeId::new(1, level1)])
            .await
            .expect("level 1");
        let root =
            MemoryTree::from_leaf_hashes(&leaves[2 * level1 as usize..2 * level1 as usize + 2])
                .root(2)
                .expect("root");
        assert_eq!(stored, vec![root], "level 1 node {level1}");
    }
    assert_eq!(
        b.store
            .hash_range_indexed(0, 250, 260)
            .await
            .expect("across a tile edge"),
        (250..260)
            .map(|i| (i, leaves[i as usize]))
            .collect::<Vec<_>>()
    );
    let missing = b.store.read_hashes(&[NodeId::new(0, 700)]).await;
    assert!(missing.is_err(), "a node not yet stored is an error");
    assert_eq!(
        reference.root(700).ok(),
        b.store
            .latest_checkpoint()
            .await
            .expect("cp")
            .map(|c| c.root)
    );
}

async fn queries_filter_within_one_tenant(b: Backend) {
    let signer = signer();
    let mine: Vec<_> = (0..30).map(|n| event("acme", n)).collect();
    let theirs: Vec<_> = (0..30).map(|n| event("globex", n)).collect();
    b.store
        .append(&mine, &signer, ORIGIN, 1)
        .await
        .expect("append");
    b.store
        .append(&theirs, &signer, ORIGIN, 1)
        .await
        .expect("append");
    let filter = |f: EventFilter| EventFilter {
        tenant: "acme".into(),
        ..f
    };
    let page = Page {
        before: None,
        limit: 100,
    };
    let all = b
        .store
        .query(&filter(EventFilter::default()), page)
        .await
        .expect("query");
    assert_eq!(all.len(), 30);
    assert!(all.iter().all(|e| e.tenant == "acme"));
    let logins = b
        .store
        .query(
            &filter(EventFilter {
                action_prefix: Some("auth".into()),
                ..Default::default()
            }),
            page,
        )
        .await
        .expect("query");
    assert_eq!(logins.len(), 15);
    let none = b
        .store
        .query(
            &filter(EventFilter {
                action_prefix: Some("aut".into()),
                ..Default::default()
            }),
            page,
        )
        .await
        .expect("query");
    assert!(none.is_empty(), "prefixes match whole segments only");
    let wildcard = b
        .store
        .query(
            &filter(EventFilter {
                action_prefix: Some("%".into()),
                ..Default::default()
            }),
            page,
        )
        .await
        .expect("query");
    assert!(wildcard.is_empty(), "LIKE wildcards are escaped");
    let actor = b
        .store
        .query(
            &filter(EventFilter {
                actor_id: Some("user-3".into()),
                ..Default::default()
            }),
            page,
        )
        .await
        .expect("query");
    assert_eq!(actor.len(), (0..30).filter(|n| n % 7 == 3).count());
    let window = b
        .store
        .query(
            &filter(EventFilter {
                from_ms: Some(1_767_225_610_000),
                to_ms: Some(1_767_225_620_000),
                ..Default::default()
            }),
            page,
        )
        .await
        .expect("query");
    assert_eq!(window.len(), 10);
    let paged = b
        .store
        .query(
            &filter(EventFilter::default()),
            Page {
                before: Some(all[9].index),
                limit: 5,
            },
        )
        .await
        .expect("query");
    assert_eq!(
        paged.iter().map(|e| e.index).collect::<Vec<_>>(),
        all[10..15].iter().map(|e| e.index).collect::<Vec<_>>()
    );
}

async fn stored_rows_cannot_be_changed_or_deleted(b: Backend) {
    fill(&b.store, 5, 5).await;
    let attempts = [
        "UPDATE audit_entries SET action = 'x' WHERE idx = 1",
        "DELETE FROM audit_entries WHERE idx = 1",
        "UPDATE audit_hash_runs SET hashes = hashes WHERE first_idx = 0",
        "DELETE FROM audit_hash_runs",
        "DELETE FROM audit_checkpoints",
    ];
    for sql in attempts {
        let result = match &b.db {
            palisade_store::Database::Sqlite(db) => {
                sqlx::query(sql).execute(db.writer()).await.map(|_| ())
            }
            palisade_store::Database::Postgres(db) => {
                sqlx::query(sql).execute(db.primary()).await.map(|_| ())
            }
        };
        assert!(result.is_err(), "{} allowed: {sql}", b.name);
    }
    if let palisade_store::Database::Postgres(db) = &b.db {
        let truncate = sqlx::query("TRUNCATE audit_entries")
            .execute(db.primary())
            .await;
        assert!(truncate.is_err(), "TRUNCATE allowed");
    }
    assert_eq!(b.store.tree_size().await.expect("size"), 5);
}

async fn concurrent_appenders_never_share_an_index(b: Backend) {
    // Two stores on one database stand for two Palisade instances.
    let other = AuditStore::new(b.db.clone());
    let run = |store: AuditStore, tenant: &'static str| async move {
        let signer = signer();
        for round in 0..10 {
            let events: Vec<_> = (0..20).map(|n| event(tenant, round * 20 + n)).collect();
            store
                .append(&events, &signer, ORIGIN, 1)
                .await
                .expect("append");
        }
    };
    tokio::join!(run(b.store.clone(), "one"), run(other, "two"));
    let events = b.store.events_range(0, 1000).await.expect("events");
    assert_eq!(events.len(), 400);
    assert!(
        events.iter().enumerate().all(|(i, e)| e.index == i as u64),
        "contiguous"
    );
    let latest = b
        .store
        .latest_checkpoint()
        .await
        .expect("read")
        .expect("checkpoint");
    let leaves: Vec<_> = events.iter().map(|e| leaf_hash(&e.leaf)).collect();
    assert_eq!(
        latest.root,
        MemoryTree::from_leaf_hashes(&leaves)
            .root(400)
            .expect("root")
    );
}

/// Actor and resource filters walk the log in buckets of 16,384 events: pages read
/// across a bucket boundary, newest first and oldest first, miss and repeat nothing.
async fn filtered_pages_cross_bucket_boundaries(b: Backend) {
    const EVENTS: u64 = (1 << 14) + 700;
    fill(&b.store, EVENTS, 1000).await;
    // Event n is at index n (see `fill`) with actor `user-{n % 7}`, resource `doc/{n % 5}`.
    let actor = EventFilter {
        tenant: "default".into(),
        actor_id: Some("user-3".into()),
        ..Default::default()
    };
    let mut newest_first = Vec::new();
    let mut before = None;
    loop {
        let page = b
            .store
            .query(&actor, Page { before, limit: 400 })
            .await
            .expect("query");
        let Some(last) = page.last() else { break };
        before = Some(last.index);
        newest_first.extend(page.iter().map(|e| e.index));
    }
    let expected: Vec<u64> = (0..EVENTS).rev().filter(|n| n % 7 == 3).collect();
    assert_eq!(newest_first, expected, "{}", b.name);

    let resource = EventFilter {
        tenant: "default".into(),
        resource_type: Some("doc".into()),
        resource_id: Some("2".into()),
        ..Default::default()
    };
    let mut oldest_first = Vec::new();
    let mut after = Some(9000);
    loop {
        let page = b
            .store
            .query_after(
                &resource,
                PageAfter {
                    after,
                    before: None,
                    limit: 300,
                },
            )
            .await
            .expect("query");
        oldest_first.extend(page.events.iter().map(|e| e.index));
        if page.events.is_empty() {
            assert_eq!(page.through, Some(EVENTS - 1), "{}", b.name);
            break;
        }
        after = page.through;
    }
    let expected: Vec<u64> = (9001..EVENTS).filter(|n| n % 5 == 2).collect();
    assert_eq!(oldest_first, expected, "{}", b.name);
}

on_both_backends!(
    appends_contiguous_indexes_and_signs_each_tree_head,
    resubmitted_ids_keep_their_first_index,
    a_replayed_batch_changes_nothing,
    a_batch_mixing_stored_repeated_and_new_ids,
    proofs_from_stored_hashes_match_a_recomputed_tree,
    nodes_read_back_from_their_runs,
    queries_filter_within_one_tenant,
    stored_rows_cannot_be_changed_or_deleted,
    concurrent_appenders_never_share_an_index,
    filtered_pages_cross_bucket_boundaries,
);

/// Appends reach PostgreSQL as a binary COPY: every column arrives as given, absent
/// optional ones as NULL (not as empty text).
#[tokio::test]
async fn postgres_rows_keep_every_column() {
    let b = common::postgres().await;
    let mut plain = event("acme", 1);
    plain.actor_type = Some("user".into());
    plain.resource_type = Some("doc".into());
    plain.resource_id = Some("d-\u{e9}t\u{e9} \"quoted\", tab\t\\".into());
    let mut bare = event("acme", 2);
    bare.actor_type = None;
    bare.resource_type = None;
    bare.resource_id = None;
    bare.received_at_ms = -5;
    let events = [plain, bare];
    b.store
        .append(&events, &signer(), ORIGIN, 1)
        .await
        .expect("append");
    let Some(pg) = &b.pg else {
        panic!("no PostgreSQL")
    };
    let pool = pg.pool().await.expect("pool");
    type Columns = (
        i64,
        uuid::Uuid,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        String,
        i64,
        Vec<u8>,
    );
    let rows: Vec<Columns> = sqlx::query_as(
        "SELECT idx, id, tenant, action, actor_id, actor_type, resource_type, resource_id, outcome, received_at_ms, leaf \
         FROM audit_entries ORDER BY idx",
    )
    .fetch_all(&pool)
    .await
    .expect("rows");
    let expected: Vec<Columns> = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            (
                i as i64,
                e.id,
                e.tenant.as_str().to_owned(),
                e.action.clone(),
                e.actor_id.clone(),
                e.actor_type.clone(),
                e.resource_type.clone(),
                e.resource_id.clone(),
                e.outcome.as_str().to_owned(),
                e.received_at_ms,
                e.leaf.clone(),
            )
        })
        .collect();
    assert_eq!(rows, expected);
    let runs: Vec<(i16, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT level, first_idx, hashes FROM audit_hash_runs ORDER BY level, first_idx",
    )
    .fetch_all(&pool)
    .await
    .expect("hash runs");
    let leaves: Vec<_> = events.iter().map(|e| leaf_hash(&e.leaf)).collect();
    let root = MemoryTree::from_leaf_hashes(&leaves).root(2).expect("root");
    assert_eq!(runs, vec![(0, 0, leaves.concat()), (1, 0, root.to_vec())]);
}

/// Two processes on one SQLite file (the server and `palisade keys rotate`): appends
/// from both interleave without an error. With deferred transactions, an append that
/// read the tree size before the other committed failed with SQLITE_BUSY_SNAPSHOT.
#[tokio::test]
async fn two_writers_on_one_sqlite_file_both_append() {
    let dir = tempfile::tempdir().expect("temp dir");
    let open = || async {
        let config = palisade_store::DatabaseConfig::default();
        let db = palisade_store::Database::connect(&config, dir.path())
            .await
            .expect("sqlite");
        db.migrate().await.expect("migrate");
        AuditStore::new(db)
    };
    let (a, b) = (open().await, open().await);
    let writer = |store: AuditStore, first: u64| async move {
        let signer = signer();
        for n in (first..first + 200).step_by(2) {
            store
                .append(&[event("default", n)], &signer, ORIGIN, 1)
                .await
                .map_err(|e| format!("event {n}: {e}"))?;
        }
        Ok::<_, String>(())
    };
    let (ra, rb) = tokio::join!(
        tokio::spawn(writer(a.clone(), 0)),
        tokio::spawn(writer(b, 1))
    );
    ra.expect("task").expect("first writer");
    rb.expect("task").expect("second writer");
    assert_eq!(a.tree_size().await.expect("size"), 200);
}
