//! One suite, every backend: what any `PolicyStore` must do.

mod common;

use common::{Backend, editors, empty_role};
use palisade_authz::{AuthzError, PolicySet, PolicyStore};

async fn round_trips_a_policy_with_its_version(b: Backend) {
    assert_eq!(b.store.get("acme").await.expect("get"), None, "{}", b.name);
    let set = editors("acme");
    let version = b.store.put_if_version(&set, 0, 1_000).await.expect("put");
    assert_eq!(version, 1);
    assert_eq!(
        b.store.get("acme").await.expect("get"),
        Some((set, 1)),
        "{}",
        b.name
    );
    assert_eq!(b.store.version("acme").await.expect("version"), 1);
    assert_eq!(b.store.version("globex").await.expect("version"), 0);
}

async fn versions_grow_by_one_on_every_write(b: Backend) {
    let mut set = editors("acme");
    let mut version = 0;
    for n in 0..5 {
        set.roles.push(empty_role(&format!("extra-{n}")));
        let next = b
            .store
            .put_if_version(&set, version, 1_000 + n)
            .await
            .expect("put");
        assert_eq!(next, version + 1, "{}", b.name);
        version = next;
    }
    let (stored, stored_version) = b.store.get("acme").await.expect("get").expect("stored");
    assert_eq!((stored, stored_version), (set, 5));
}

async fn rejects_a_write_based_on_a_stale_version(b: Backend) {
    let first = editors("acme");
    b.store.put_if_version(&first, 0, 1).await.expect("create");
    let mut second = first.clone();
    second.roles.push(empty_role("second"));
    assert_eq!(b.store.put_if_version(&second, 1, 2).await, Ok(2));

    // A writer that read version 1 loses instead of overwriting version 2.
    let mut stale = first.clone();
    stale.roles.push(empty_role("stale"));
    assert_eq!(
        b.store.put_if_version(&stale, 1, 3).await,
        Err(AuthzError::VersionConflict),
        "{}",
        b.name
    );
    // So does one that believes the tenant does not exist yet, and one from the future.
    assert_eq!(
        b.store.put_if_version(&stale, 0, 3).await,
        Err(AuthzError::VersionConflict)
    );
    assert_eq!(
        b.store.put_if_version(&stale, 9, 3).await,
        Err(AuthzError::VersionConflict)
    );
    assert_eq!(
        b.store.put_if_version(&stale, u64::MAX, 3).await,
        Err(AuthzError::VersionConflict)
    );
    // Nor can a tenant that does not exist be updated as if it did.
    assert_eq!(
        b.store.put_if_version(&editors("globex"), 1, 3).await,
        Err(AuthzError::VersionConflict)
    );
    assert_eq!(b.store.get("acme").await.expect("get"), Some((second, 2)));
    assert_eq!(b.store.get("globex").await.expect("get"), None);
}

/// The loop `Authz::modify` runs: read, change, write if unchanged, else retry.
async fn add_role_with_retries(store: &PolicyStore, role: String) -> u32 {
    let mut conflicts = 0;
    loop {
        let (mut set, version) = store.get("acme").await.expect("get").unwrap_or_else(|| {
            (
                PolicySet {
                    tenant: "acme".into(),
                    ..PolicySet::default()
                },
                0,
            )
        });
        set.roles.push(empty_role(&role));
        match store.put_if_version(&set, version, 1).await {
            Ok(_) => return conflicts,
            Err(AuthzError::VersionConflict) => {
                conflicts += 1;
                tokio::task::yield_now().await;
            }
            Err(e) => panic!("unexpected store error: {e}"),
        }
    }
}

async fn concurrent_writers_retrying_on_conflict_never_lose_an_update(b: Backend) {
    const PER_WRITER: usize = 15;
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let store = b.store.clone();
            tokio::spawn(async move {
                let mut conflicts = 0;
                for n in 0..PER_WRITER {
                    conflicts += add_role_with_retries(&store, format!("w{w}-{n}")).await;
                }
                conflicts
            })
        })
        .collect();
    let mut conflicts = 0;
    for writer in writers {
        conflicts += writer.await.expect("writer task");
    }
    eprintln!("{}: {conflicts} conflicts retried", b.name);
    let (set, version) = b.store.get("acme").await.expect("get").expect("stored");
    assert_eq!(set.roles.len(), 2 * PER_WRITER, "{}", b.name);
    assert_eq!(
        version,
        2 * PER_WRITER as u64,
        "one version per applied write"
    );
    for w in 0..2 {
        for n in 0..PER_WRITER {
            let name = format!("w{w}-{n}");
            assert!(set.roles.iter().any(|r| r.name == name), "lost {name}");
        }
    }
}

async fn deleted_tenant_is_gone_and_its_versions_are_never_reused(b: Backend) {
    b.store
        .put_if_version(&editors("acme"), 0, 1)
        .await
        .expect("create");
    b.store
        .put_if_version(&editors("acme"), 1, 2)
        .await
        .expect("update");
    assert_eq!(b.store.delete("acme", 3).await, Ok(true));
    assert_eq!(b.store.delete("acme", 4).await, Ok(false), "already gone");
    assert_eq!(b.store.delete("globex", 4).await, Ok(false));
    assert_eq!(b.store.get("acme").await.expect("get"), None);
    assert_eq!(b.store.version("acme").await.expect("version"), 0);
    assert!(b.store.versions().await.expect("versions").is_empty());
    assert!(b.store.list().await.expect("list").is_empty());
    // Updating the deleted policy by its old version is a conflict, not a resurrection.
    assert_eq!(
        b.store.put_if_version(&editors("acme"), 2, 5).await,
        Err(AuthzError::VersionConflict)
    );

    // Created again, the tenant continues past every version it had, so an
    // instance still holding version 1 or 2 sees that it is stale.
    let mut again = editors("acme");
    again.bindings.clear();
    let version = b
        .store
        .put_if_version(&again, 0, 6)
        .await
        .expect("recreate");
    assert!(version > 2, "{}: version {version} reused", b.name);
    assert_eq!(
        b.store.get("acme").await.expect("get"),
        Some((again, version))
    );
}

async fn lists_and_versions_every_tenant_in_order(b: Backend) {
    for tenant in ["globex", "acme", "initech"] {
        b.store
            .put_if_version(&editors(tenant), 0, 1)
            .await
            .expect("create");
    }
    b.store
        .put_if_version(&editors("acme"), 1, 2)
        .await
        .expect("update");
    b.store.delete("initech", 3).await.expect("delete");
    assert_eq!(
        b.store.versions().await.expect("versions"),
        vec![("acme".to_owned(), 2), ("globex".to_owned(), 1)],
        "{}",
        b.name
    );
    let listed = b.store.list().await.expect("list");
    assert_eq!(listed, vec![(editors("acme"), 2), (editors("globex"), 1)]);
}

async fn reports_a_row_that_does_not_parse_instead_of_panicking(b: Backend) {
    b.store
        .put_if_version(&editors("acme"), 0, 1)
        .await
        .expect("create");
    b.write_raw_row("broken", 3, "{not json").await;
    b.write_raw_row("impostor", 1, r#"{"tenant":"acme"}"#).await;

    for tenant in ["broken", "impostor"] {
        let got = b.store.get(tenant).await;
        assert!(
            matches!(&got, Err(AuthzError::CorruptPolicy { tenant: t, .. }) if t == tenant),
            "{}: {tenant}: {got:?}",
            b.name
        );
    }
    assert!(matches!(
        b.store.list().await,
        Err(AuthzError::CorruptPolicy { .. })
    ));
    // What does not read the policy text still works: polling, and the
    // version a repair (`Authz::replace`) writes over.
    assert_eq!(
        b.store.versions().await.expect("versions"),
        vec![
            ("acme".to_owned(), 1),
            ("broken".to_owned(), 3),
            ("impostor".to_owned(), 1)
        ]
    );
    assert_eq!(b.store.version("broken").await, Ok(3));
    assert!(
        b.store
            .put_if_version(&editors("broken"), 3, 2)
            .await
            .is_ok()
    );
    assert_eq!(
        b.store.get("acme").await.expect("good rows still read"),
        Some((editors("acme"), 1))
    );
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { super::$case(super::common::sqlite().await).await } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { super::$case(super::common::postgres().await).await } )*
        }
    };
}

conformance!(
    round_trips_a_policy_with_its_version,
    versions_grow_by_one_on_every_write,
    rejects_a_write_based_on_a_stale_version,
    concurrent_writers_retrying_on_conflict_never_lose_an_update,
    deleted_tenant_is_gone_and_its_versions_are_never_reused,
    lists_and_versions_every_tenant_in_order,
    reports_a_row_that_does_not_parse_instead_of_panicking,
);
