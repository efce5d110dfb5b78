//! The `Authz` service on each backend: writes go through the store and into
//! the engine, rejected changes store nothing, and instances sharing one
//! database converge through `refresh`.

mod common;

use common::{Backend, editors, empty_role};
use palisade_authz::{AuthzError, Binding, CycleKind, Grant, PolicySet, Request, RoleDef};

fn allowed(authz: &palisade_authz::Authz, subject: &str, action: &str) -> bool {
    authz
        .engine()
        .check(&Request::new("acme", subject, action, "doc/1"))
        .expect("valid request")
        .allowed
}

async fn modified_policy_is_stored_and_decides_checks(b: Backend) {
    let authz = b.instance();
    assert!(
        !allowed(&authz, "alice", "doc:write"),
        "unknown tenant denies"
    );
    let version = authz
        .modify("acme", |set| {
            *set = editors("acme");
            Ok(())
        })
        .await
        .expect("modify");
    assert_eq!(version, 1);
    assert!(allowed(&authz, "alice", "doc:write"), "{}", b.name);
    assert!(allowed(&authz, "bob", "doc:read"));
    assert!(!allowed(&authz, "bob", "doc:write"));
    assert_eq!(authz.engine().version("acme"), 1);

    let version = authz
        .modify("acme", |set| {
            set.bindings
                .push(Binding::new("b-carol", "carol", "editor"));
            Ok(())
        })
        .await
        .expect("modify");
    assert_eq!(version, 2);
    assert!(allowed(&authz, "carol", "doc:write"));
    let (stored, stored_version) = authz.policy("acme").await.expect("read").expect("stored");
    assert_eq!(stored_version, 2);
    assert_eq!(stored.bindings.len(), 3);
    assert_eq!(authz.policy("globex").await.expect("read"), None);
}

async fn rejected_change_stores_nothing_and_keeps_old_decisions(b: Backend) {
    let authz = b.instance();
    authz.replace(editors("acme")).await.expect("replace");
    let cycle = authz
        .modify("acme", |set| {
            // viewer -> editor -> viewer
            if let Some(viewer) = set.roles.iter_mut().find(|r| r.name == "viewer") {
                viewer.inherits.push("editor".into());
            }
            Ok(())
        })
        .await;
    assert!(
        matches!(
            &cycle,
            Err(AuthzError::Cycle {
                kind: CycleKind::Role,
                ..
            })
        ),
        "{}: {cycle:?}",
        b.name
    );
    let unknown_role = authz
        .modify("acme", |set| {
            set.bindings.push(Binding::new("b-eve", "eve", "root"));
            Ok(())
        })
        .await;
    assert!(matches!(unknown_role, Err(AuthzError::UnknownRole { .. })));
    let refused = authz
        .modify("acme", |_| Err(AuthzError::VersionConflict))
        .await;
    assert_eq!(
        refused,
        Err(AuthzError::VersionConflict),
        "the change's own error"
    );

    assert_eq!(
        authz.policy("acme").await.expect("read"),
        Some((editors("acme"), 1)),
        "nothing stored"
    );
    assert_eq!(authz.engine().version("acme"), 1);
    assert!(allowed(&authz, "alice", "doc:write"));
    assert!(!allowed(&authz, "eve", "doc:read"));

    // A policy rejected as a whole is not stored either, for a new tenant too.
    let mut bad = editors("globex");
    bad.bindings.push(Binding::new("b-x", "x", "missing"));
    assert!(authz.replace(bad).await.is_err());
    assert_eq!(authz.policy("globex").await.expect("read"), None);
}

async fn removed_binding_is_granted_by_another_instance_until_it_refreshes(b: Backend) {
    let one = b.instance();
    let two = b.instance();
    one.replace(editors("acme")).await.expect("replace");
    assert_eq!(two.load_all().await, Ok(1));
    assert!(allowed(&two, "alice", "doc:write"));
    // Warm the second instance's decision cache with the soon-stale decision.
    let request = Request::new("acme", "alice", "doc:write", "doc/1");
    assert!(
        two.cache()
            .check(two.engine(), &request)
            .expect("check")
            .allowed
    );
    assert!(
        two.cache()
            .check(two.engine(), &request)
            .expect("check")
            .hit
    );

    one.modify("acme", |set| {
        set.bindings.retain(|b| b.id != "b-alice");
        Ok(())
    })
    .await
    .expect("revoke");
    assert!(!allowed(&one, "alice", "doc:write"));
    // Until it hears of the change, the other instance still holds version 1
    // and still grants: this is why instances poll versions and listen for
    // change notifications.
    assert_eq!(two.engine().version("acme"), 1);
    assert!(allowed(&two, "alice", "doc:write"), "{}", b.name);

    assert_eq!(two.refresh().await, Ok(1));
    assert_eq!(two.engine().version("acme"), 2);
    assert!(!allowed(&two, "alice", "doc:write"));
    let cached = two.cache().check(two.engine(), &request).expect("check");
    assert!(
        !cached.allowed && !cached.hit,
        "stale cached decision unreachable"
    );
    assert_eq!(two.refresh().await, Ok(0), "nothing more to do");
}

async fn refresh_tenant_applies_one_named_tenant(b: Backend) {
    let one = b.instance();
    let two = b.instance();
    one.replace(editors("acme")).await.expect("replace");
    one.replace(editors("globex")).await.expect("replace");
    assert_eq!(two.refresh_tenant("acme").await, Ok(true));
    assert_eq!(
        two.refresh_tenant("acme").await,
        Ok(false),
        "already current"
    );
    assert_eq!(two.engine().tenants(), vec!["acme".to_owned()]);
    assert!(allowed(&two, "alice", "doc:write"));

    one.delete("acme").await.expect("delete");
    assert!(!allowed(&one, "alice", "doc:write"));
    assert_eq!(two.refresh_tenant("acme").await, Ok(true), "{}", b.name);
    assert!(!allowed(&two, "alice", "doc:write"));
}

async fn refresh_drops_deleted_tenants_and_notices_them_recreated(b: Backend) {
    let one = b.instance();
    let two = b.instance();
    one.replace(editors("acme")).await.expect("replace");
    one.replace(editors("globex")).await.expect("replace");
    assert_eq!(two.load_all().await, Ok(2));

    // Deleted and created again between two polls, with alice no longer bound.
    let now = 0;
    assert_eq!(b.store.delete("acme", now).await, Ok(true));
    let mut again = editors("acme");
    again.bindings.retain(|b| b.id != "b-alice");
    one.replace(again).await.expect("recreate");
    b.store.delete("globex", now).await.expect("delete");

    assert_eq!(two.refresh().await, Ok(2), "{}", b.name);
    assert!(
        !allowed(&two, "alice", "doc:write"),
        "recreated tenant was picked up"
    );
    assert!(allowed(&two, "bob", "doc:read"));
    assert_eq!(two.engine().tenants(), vec!["acme".to_owned()]);
}

async fn concurrent_modifies_from_two_instances_lose_no_update(b: Backend) {
    const PER_TASK: usize = 8;
    let instances = [b.instance(), b.instance()];
    let mut tasks = Vec::new();
    for (i, authz) in instances.iter().enumerate() {
        for t in 0..2 {
            let authz = authz.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0..PER_TASK {
                    let name = format!("i{i}-t{t}-{n}");
                    authz
                        .modify("acme", |set| {
                            set.roles.push(empty_role(&name));
                            Ok(())
                        })
                        .await
                        .expect("modify retries until it lands");
                }
            }));
        }
    }
    for task in tasks {
        task.await.expect("task");
    }
    let (set, version) = instances[0]
        .policy("acme")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(set.roles.len(), 4 * PER_TASK, "{}", b.name);
    assert_eq!(version, 4 * PER_TASK as u64);
    for authz in &instances {
        authz.refresh().await.expect("refresh");
        assert_eq!(authz.engine().version("acme"), version);
    }
}

async fn load_all_warms_every_tenant_and_reports_an_unusable_row(b: Backend) {
    let writer = b.instance();
    writer.replace(editors("acme")).await.expect("replace");
    writer.replace(editors("initech")).await.expect("replace");
    b.write_raw_row("broken", 1, "{not json").await;
    // Parses, but names a role it does not define: cannot be compiled.
    let dangling = PolicySet {
        tenant: "dangling".into(),
        roles: vec![RoleDef {
            name: "viewer".into(),
            inherits: vec![],
            grants: vec![Grant::allow("doc:read")],
        }],
        memberships: vec![],
        bindings: vec![Binding::new("b", "alice", "ghost")],
    };
    b.write_raw_row(
        "dangling",
        1,
        &serde_json::to_string(&dangling).expect("json"),
    )
    .await;

    let fresh = b.instance();
    let loaded = fresh.load_all().await;
    assert!(
        matches!(&loaded, Err(AuthzError::CorruptPolicy { tenant, .. }) if tenant == "broken"),
        "{}: {loaded:?}",
        b.name
    );
    assert_eq!(
        fresh.engine().tenants(),
        vec!["acme".to_owned(), "initech".to_owned()],
        "the usable tenants are loaded regardless"
    );
    assert!(allowed(&fresh, "alice", "doc:write"));

    // Replacing the bad policy repairs the tenant, and the next poll is clean.
    writer.replace(editors("broken")).await.expect("repair");
    writer.replace(editors("dangling")).await.expect("repair");
    assert_eq!(fresh.refresh().await, Ok(2));
    assert_eq!(fresh.engine().version("broken"), 2);
}

macro_rules! both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { super::$case(super::common::sqlite().await).await } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { super::$case(super::common::postgres().await).await } )*
        }
    };
}

both_backends!(
    modified_policy_is_stored_and_decides_checks,
    rejected_change_stores_nothing_and_keeps_old_decisions,
    removed_binding_is_granted_by_another_instance_until_it_refreshes,
    refresh_tenant_applies_one_named_tenant,
    refresh_drops_deleted_tenants_and_notices_them_recreated,
    concurrent_modifies_from_two_instances_lose_no_update,
    load_all_warms_every_tenant_and_reports_an_unusable_row,
);
