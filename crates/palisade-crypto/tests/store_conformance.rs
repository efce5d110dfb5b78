//! One suite for every `KeyringStore` backend: in memory, SQLite and
//! PostgreSQL must behave the same, down to races between two instances.

#[macro_use]
mod common;

use common::Backend;
use palisade_crypto::VersionState;
use palisade_crypto::store::{
    IndexKeyRecord, Reservation, RewrapJob, RewrapPhase, RewrapState, SubjectKeyRecord,
};

on_every_backend!(
    keys_and_versions_round_trip_and_only_the_newest_is_active,
    inserting_an_existing_key_changes_nothing,
    usage_is_reserved_up_to_the_limit_and_only_on_the_active_version,
    racing_rotations_leave_one_active_version,
    subject_keys_keep_generations_and_destruction_erases_all_of_them,
    index_keys_are_written_once,
    rewrap_pages_walk_old_wraps_in_key_order_and_replace_by_compare_and_set,
    rewrap_jobs_round_trip_and_running_ones_are_listed,
);

async fn keys_and_versions_round_trip_and_only_the_newest_is_active(b: Backend) {
    let store = &b.store;
    assert_eq!(store.load_keys().await, Ok(vec![]));
    store.insert_key("default", 1, 1_000).await.expect("insert");
    store.insert_key("other", 3, 2_000).await.expect("insert");
    store.add_version("default", 2, 3_000).await.expect("add");
    let keys = store.load_keys().await.expect("load");
    assert_eq!(keys.len(), 2, "{}", b.name);
    assert_eq!(keys[0].name, "default");
    let states: Vec<(u32, VersionState, i64)> = keys[0]
        .versions
        .iter()
        .map(|v| (v.version, v.state, v.created_at_ms))
        .collect();
    assert_eq!(
        states,
        vec![
            (1, VersionState::Retired, 1_000),
            (2, VersionState::Active, 3_000)
        ]
    );
    assert_eq!(keys[0].current().map(|v| v.version), Some(2));
    assert_eq!(keys[1].name, "other");
    assert_eq!(keys[1].current().map(|v| v.version), Some(3));
    // Recording a version twice is harmless.
    store
        .add_version("default", 2, 9_999)
        .await
        .expect("add again");
    let keys = store.load_keys().await.expect("load");
    assert_eq!(keys[0].versions.len(), 2);
    assert_eq!(keys[0].versions[1].created_at_ms, 3_000);
}

async fn inserting_an_existing_key_changes_nothing(b: Backend) {
    let store = &b.store;
    store.insert_key("k", 1, 1).await.expect("insert");
    store.add_version("k", 2, 2).await.expect("add");
    store.insert_key("k", 1, 5).await.expect("insert again");
    store
        .insert_key("k", 7, 5)
        .await
        .expect("insert another version");
    let keys = store.load_keys().await.expect("load");
    let versions: Vec<u32> = keys[0].versions.iter().map(|v| v.version).collect();
    assert_eq!(versions, vec![1, 2], "{}", b.name);
}

async fn usage_is_reserved_up_to_the_limit_and_only_on_the_active_version(b: Backend) {
    let store = &b.store;
    store.insert_key("k", 1, 0).await.expect("insert");
    for _ in 0..3 {
        assert_eq!(
            store.reserve_use("k", 1, 3).await,
            Ok(Reservation::Reserved)
        );
    }
    assert_eq!(store.reserve_use("k", 1, 3).await, Ok(Reservation::Refused));
    assert_eq!(
        store.reserve_use("k", 1, 10).await,
        Ok(Reservation::Reserved)
    );
    store.add_version("k", 2, 0).await.expect("add");
    assert_eq!(
        store.reserve_use("k", 1, 10).await,
        Ok(Reservation::Refused),
        "retired"
    );
    assert_eq!(
        store.reserve_use("k", 2, 10).await,
        Ok(Reservation::Reserved)
    );
    assert_eq!(
        store.reserve_use("k", 9, 10).await,
        Ok(Reservation::Refused),
        "no such version"
    );
    assert_eq!(
        store.reserve_use("nope", 1, 10).await,
        Ok(Reservation::Refused)
    );
    let keys = store.load_keys().await.expect("load");
    let usage: Vec<u64> = keys[0].versions.iter().map(|v| v.usage).collect();
    assert_eq!(usage, vec![4, 1], "{}", b.name);

    // Concurrent reservations from two instances never pass the limit together.
    store.insert_key("race", 1, 0).await.expect("insert");
    let other = b.store();
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = if i % 2 == 0 { b.store() } else { other.clone() };
            tokio::spawn(async move { store.reserve_use("race", 1, 25).await })
        })
        .collect();
    let mut reserved = 0;
    for task in tasks {
        if task.await.expect("task") == Ok(Reservation::Reserved) {
            reserved += 1;
        }
    }
    assert_eq!(reserved, 25, "{}", b.name);
}

async fn racing_rotations_leave_one_active_version(b: Backend) {
    let store = &b.store;
    store.insert_key("k", 1, 0).await.expect("insert");
    // Version 3 is recorded before version 2 (two instances rotating at once).
    store.add_version("k", 3, 0).await.expect("add 3");
    store.add_version("k", 2, 0).await.expect("add 2");
    let keys = store.load_keys().await.expect("load");
    let active: Vec<u32> = keys[0]
        .versions
        .iter()
        .filter(|v| v.state == VersionState::Active)
        .map(|v| v.version)
        .collect();
    assert_eq!(active, vec![3], "{}", b.name);
}

fn subject_record(subject: &str, generation: u32, wrapped: &[u8]) -> SubjectKeyRecord {
    SubjectKeyRecord {
        subject: subject.into(),
        generation,
        kek_name: "palisade-subjects".into(),
        kek_version: 1,
        wrapped: Some(wrapped.to_vec()),
        created_at_ms: 42,
    }
}

async fn subject_keys_keep_generations_and_destruction_erases_all_of_them(b: Backend) {
    let store = &b.store;
    assert_eq!(store.subject_key("alice", None).await, Ok(None));
    let first = subject_record("alice", 1, b"wrapped-1");
    assert_eq!(store.insert_subject_key(&first).await, Ok(true));
    assert_eq!(
        store
            .insert_subject_key(&subject_record("alice", 1, b"other"))
            .await,
        Ok(false)
    );
    assert_eq!(
        store.subject_key("alice", Some(1)).await,
        Ok(Some(first.clone()))
    );
    assert_eq!(
        store
            .insert_subject_key(&subject_record("alice", 2, b"wrapped-2"))
            .await,
        Ok(true)
    );
    assert_eq!(
        store
            .insert_subject_key(&subject_record("bob", 1, b"bob"))
            .await,
        Ok(true)
    );
    let newest = store.subject_key("alice", None).await.expect("read");
    assert_eq!(newest.map(|r| r.generation), Some(2));

    assert_eq!(
        store.destroy_subject("alice", 100).await,
        Ok(true),
        "{}",
        b.name
    );
    assert_eq!(store.destroy_subject("alice", 101).await, Ok(false));
    for generation in [1, 2] {
        let record = store
            .subject_key("alice", Some(generation))
            .await
            .expect("read");
        assert_eq!(
            record.map(|r| r.wrapped),
            Some(None),
            "generation {generation}"
        );
    }
    let bob = store.subject_key("bob", None).await.expect("read");
    assert_eq!(bob.and_then(|r| r.wrapped), Some(b"bob".to_vec()));
    // Subject ids are opaque: no pattern matching.
    assert_eq!(store.destroy_subject("%", 1).await, Ok(false));
    assert_eq!(store.subject_key("ali%", None).await, Ok(None));
}

async fn index_keys_are_written_once(b: Backend) {
    let store = &b.store;
    let record = IndexKeyRecord {
        name: "email".into(),
        kek_name: "palisade-index".into(),
        kek_version: 2,
        wrapped: vec![1, 2, 3],
        settings: r#"{"length":8}"#.into(),
        created_at_ms: 7,
    };
    assert_eq!(store.index_key("email").await, Ok(None));
    assert_eq!(store.insert_index_key(&record).await, Ok(true));
    let mut other = record.clone();
    other.wrapped = vec![9];
    assert_eq!(store.insert_index_key(&other).await, Ok(false));
    assert_eq!(
        store.index_key("email").await,
        Ok(Some(record)),
        "{}",
        b.name
    );
}

async fn rewrap_pages_walk_old_wraps_in_key_order_and_replace_by_compare_and_set(b: Backend) {
    let store = &b.store;
    for (subject, generation, version) in [
        ("b", 1, 1),
        ("a", 2, 1),
        ("a", 1, 1),
        ("c", 1, 2),
        ("d", 1, 1),
    ] {
        let mut record = subject_record(subject, generation, b"old");
        record.kek_version = version;
        assert_eq!(store.insert_subject_key(&record).await, Ok(true));
    }
    store.destroy_subject("d", 1).await.expect("destroy");
    assert_eq!(
        store.count_wrapped_below("palisade-subjects", 2).await,
        Ok(3),
        "{}",
        b.name
    );
    let page = |after: (&'static str, u32)| async move {
        store
            .subject_keys_below("palisade-subjects", 2, after, 2)
            .await
            .expect("page")
            .into_iter()
            .map(|r| (r.subject, r.generation))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        page(("", 0)).await,
        vec![("a".to_owned(), 1), ("a".to_owned(), 2)]
    );
    assert_eq!(
        page(("a", 2)).await,
        vec![("b".to_owned(), 1)],
        "{}",
        b.name
    );
    assert_eq!(page(("b", 1)).await, Vec::<(String, u32)>::new());

    assert_eq!(
        store.replace_subject_wrap("a", 1, 1, 2, b"new").await,
        Ok(true)
    );
    assert_eq!(
        store.replace_subject_wrap("a", 1, 1, 3, b"newer").await,
        Ok(false),
        "old version gone"
    );
    assert_eq!(
        store.replace_subject_wrap("d", 1, 1, 2, b"revived").await,
        Ok(false),
        "shredded stays shredded"
    );
    let a1 = store
        .subject_key("a", Some(1))
        .await
        .expect("read")
        .expect("a1");
    assert_eq!((a1.kek_version, a1.wrapped), (2, Some(b"new".to_vec())));
    assert_eq!(
        store
            .subject_key("d", Some(1))
            .await
            .expect("read")
            .and_then(|r| r.wrapped),
        None
    );

    for (name, version) in [("y", 1), ("x", 1), ("z", 3)] {
        let record = IndexKeyRecord {
            name: name.into(),
            kek_name: "palisade-index".into(),
            kek_version: version,
            wrapped: vec![1],
            settings: "{}".into(),
            created_at_ms: 0,
        };
        assert_eq!(store.insert_index_key(&record).await, Ok(true));
    }
    let names = |after: &'static str| async move {
        store
            .index_keys_below("palisade-index", 3, after, 10)
            .await
            .expect("page")
            .into_iter()
            .map(|r| r.name)
            .collect::<Vec<_>>()
    };
    assert_eq!(names("").await, vec!["x", "y"]);
    assert_eq!(names("x").await, vec!["y"]);
    assert_eq!(store.replace_index_wrap("x", 1, 3, &[9]).await, Ok(true));
    assert_eq!(store.replace_index_wrap("x", 1, 4, &[8]).await, Ok(false));
    assert_eq!(
        store
            .index_key("x")
            .await
            .expect("read")
            .map(|r| (r.kek_version, r.wrapped)),
        Some((3, vec![9]))
    );
}

async fn rewrap_jobs_round_trip_and_running_ones_are_listed(b: Backend) {
    let store = &b.store;
    let mut job = RewrapJob {
        id: "0190-job-1".into(),
        kek_name: "palisade-subjects".into(),
        target_version: 2,
        state: RewrapState::Running,
        phase: RewrapPhase::Subjects,
        cursor_key: String::new(),
        cursor_generation: 0,
        total: 10,
        rewrapped: 0,
        started_at_ms: 5,
        updated_at_ms: 5,
        error: None,
    };
    store.insert_rewrap_job(&job).await.expect("insert");
    assert_eq!(store.rewrap_job("0190-job-1").await, Ok(Some(job.clone())));
    assert_eq!(store.running_rewrap_jobs().await, Ok(vec![job.clone()]));
    job.phase = RewrapPhase::Indexes;
    job.cursor_key = "user-9".into();
    job.cursor_generation = 3;
    job.rewrapped = 7;
    job.updated_at_ms = 9;
    store.update_rewrap_job(&job).await.expect("update");
    assert_eq!(
        store.rewrap_job("0190-job-1").await,
        Ok(Some(job.clone())),
        "{}",
        b.name
    );
    job.state = RewrapState::Failed;
    job.error = Some("kms unavailable".into());
    store.update_rewrap_job(&job).await.expect("update");
    assert_eq!(store.running_rewrap_jobs().await, Ok(vec![]));
    assert_eq!(store.rewrap_job("0190-job-1").await, Ok(Some(job)));
    assert_eq!(store.rewrap_job("other").await, Ok(None));
}
