//! The decision semantics of the engine: hierarchy, wildcards, scopes, deny
//! precedence, conditions, tenant isolation, cycle rejection, explanations,
//! listings, the decision cache and typed errors for bad input.

use palisade_authz::{
    Attributes, AuthzError, Binding, Condition, CycleKind, DecisionCache, DefaultDenyReason,
    Effect, Engine, Explanation, Grant, Limits, Membership, PolicySet, Request, RoleDef,
    SkipReason,
};
use palisade_core::{Clock, ManualClock};
use std::sync::Arc;
use std::time::Duration;

fn engine() -> (Engine, ManualClock) {
    let clock = ManualClock::new();
    (Engine::new(Arc::new(clock.clone())), clock)
}

fn role(name: &str, inherits: &[&str], grants: Vec<Grant>) -> RoleDef {
    RoleDef {
        name: name.into(),
        inherits: inherits.iter().map(|s| s.to_string()).collect(),
        grants,
    }
}

fn allowed(engine: &Engine, tenant: &str, subject: &str, action: &str, resource: &str) -> bool {
    engine
        .check(&Request::new(tenant, subject, action, resource))
        .expect("valid request")
        .allowed
}

fn allowed_with(
    engine: &Engine,
    subject: &str,
    action: &str,
    resource: &str,
    attributes: &Attributes,
) -> bool {
    engine
        .check(&Request::new("acme", subject, action, resource).with_attributes(attributes))
        .expect("valid request")
        .allowed
}

fn chain_policy(depth: usize) -> PolicySet {
    let mut roles = Vec::new();
    for level in 0..depth {
        let inherits: Vec<String> = if level + 1 < depth {
            vec![format!("r{}", level + 1)]
        } else {
            Vec::new()
        };
        roles.push(RoleDef {
            name: format!("r{level}"),
            inherits,
            grants: vec![Grant::allow(format!("doc:level{level}"))],
        });
    }
    PolicySet {
        tenant: "acme".into(),
        roles,
        memberships: vec![],
        bindings: vec![Binding::new("b1", "user:alice", "r0")],
    }
}

#[test]
fn deep_hierarchy_grants_every_inherited_permission_and_explains_the_chain() {
    let (engine, _) = engine();
    engine.put_policy(chain_policy(8)).unwrap();
    for level in 0..8 {
        assert!(allowed(
            &engine,
            "acme",
            "user:alice",
            &format!("doc:level{level}"),
            "doc/1"
        ));
    }
    assert!(!allowed(
        &engine,
        "acme",
        "user:alice",
        "doc:level8",
        "doc/1"
    ));
    let decision = engine
        .explain(&Request::new("acme", "user:alice", "doc:level7", "doc/1"))
        .unwrap();
    let Some(Explanation::Allowed(path)) = decision.explanation else {
        panic!("expected an allow path");
    };
    assert_eq!(path.roles, ["r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7"]);
    assert_eq!(path.binding_id, "b1");
}

#[test]
fn diamond_inheritance_counts_the_shared_role_once() {
    let (engine, _) = engine();
    engine
        .put_policy(PolicySet {
            tenant: "acme".into(),
            roles: vec![
                role("top", &["left", "right"], vec![]),
                role("left", &["base"], vec![Grant::allow("doc:edit")]),
                role("right", &["base"], vec![Grant::allow("doc:share")]),
                role("base", &[], vec![Grant::allow("doc:read")]),
            ],
            memberships: vec![],
            bindings: vec![Binding::new("b", "alice", "top")],
        })
        .unwrap();
    for action in ["doc:edit", "doc:share", "doc:read"] {
        assert!(
            allowed(&engine, "acme", "alice", action, "doc/1"),
            "{action}"
        );
    }
    let perms = engine.effective_permissions("acme", "alice");
    assert_eq!(perms.iter().filter(|p| p.action == "doc:read").count(), 1);
    assert_eq!(perms.len(), 3);
}

#[test]
fn action_wildcards_match_by_type_verb_or_everything() {
    let (engine, _) = engine();
    engine
        .put_policy(PolicySet {
            tenant: "acme".into(),
            roles: vec![
                role("doc-admin", &[], vec![Grant::allow("document:*")]),
                role("reader", &[], vec![Grant::allow("*:read")]),
                role("root", &[], vec![Grant::allow("*")]),
            ],
            memberships: vec![],
            bindings: vec![
                Binding::new("1", "ann", "doc-admin"),
                Binding::new("2", "rob", "reader"),
                Binding::new("3", "sue", "root"),
            ],
        })
        .unwrap();
    assert!(allowed(
        &engine,
        "acme",
        "ann",
        "document:delete",
        "document/1"
    ));
    assert!(!allowed(
        &engine,
        "acme",
        "ann",
        "project:read",
        "project/1"
    ));
    assert!(allowed(&engine, "acme", "rob", "project:read", "project/1"));
    assert!(!allowed(
        &engine,
        "acme",
        "rob",
        "project:write",
        "project/1"
    ));
    assert!(!allowed(&engine, "acme", "rob", "read", "project/1"));
    assert!(allowed(&engine, "acme", "sue", "anything:at-all", "x"));
    assert!(allowed(&engine, "acme", "sue", "plain", "x"));
}

#[test]
fn binding_scope_and_grant_resource_both_limit_where_a_role_applies() {
    let (engine, _) = engine();
    engine
        .put_policy(PolicySet {
            tenant: "acme".into(),
            roles: vec![
                role("editor", &[], vec![Grant::allow("doc:edit")]),
                role(
                    "auditor",
                    &[],
                    vec![Grant::allow("doc:read").on("project/7/audit/*")],
                ),
            ],
            memberships: vec![],
            bindings: vec![
                Binding::new("tree", "alice", "editor").on("project/42/*"),
                Binding::new("exact", "bob", "editor").on("project/42"),
                Binding::new("aud", "carol", "auditor"),
            ],
        })
        .unwrap();
    assert!(allowed(
        &engine,
        "acme",
        "alice",
        "doc:edit",
        "project/42/doc/1"
    ));
    assert!(!allowed(&engine, "acme", "alice", "doc:edit", "project/42"));
    assert!(!allowed(
        &engine,
        "acme",
        "alice",
        "doc:edit",
        "project/43/doc/1"
    ));
    assert!(!allowed(
        &engine,
        "acme",
        "alice",
        "doc:edit",
        "project/420/doc"
    ));
    assert!(allowed(&engine, "acme", "bob", "doc:edit", "project/42"));
    assert!(!allowed(
        &engine,
        "acme",
        "bob",
        "doc:edit",
        "project/42/doc/1"
    ));
    assert!(allowed(
        &engine,
        "acme",
        "carol",
        "doc:read",
        "project/7/audit/2026"
    ));
    assert!(!allowed(
        &engine,
        "acme",
        "carol",
        "doc:read",
        "project/7/secret"
    ));
}

fn deny_policy() -> PolicySet {
    PolicySet {
        tenant: "acme".into(),
        roles: vec![
            role("editor", &["no-delete"], vec![Grant::allow("doc:*")]),
            role(
                "no-delete",
                &[],
                vec![Grant::deny("doc:delete").on("legal/*")],
            ),
            role("viewer", &[], vec![Grant::allow("doc:read")]),
        ],
        memberships: vec![Membership {
            member: "alice".into(),
            group: "contractors".into(),
        }],
        bindings: vec![
            Binding::new("ed", "alice", "editor"),
            Binding::new("no-view-hr", "contractors", "viewer")
                .on("hr/*")
                .denying(),
        ],
    }
}

#[test]
fn explicit_deny_overrides_allow_from_any_path() {
    let (engine, _) = engine();
    engine.put_policy(deny_policy()).unwrap();
    assert!(allowed(&engine, "acme", "alice", "doc:delete", "eng/doc"));
    // A deny grant inherited by the same role wins over its allow.
    assert!(!allowed(
        &engine,
        "acme",
        "alice",
        "doc:delete",
        "legal/contract"
    ));
    // A deny binding on a group wins over the member's own allow binding.
    assert!(!allowed(
        &engine,
        "acme",
        "alice",
        "doc:read",
        "hr/salaries"
    ));
    assert!(allowed(&engine, "acme", "alice", "doc:read", "eng/doc"));
    let decision = engine
        .explain(&Request::new("acme", "alice", "doc:read", "hr/salaries"))
        .unwrap();
    let Some(Explanation::ExplicitDeny(path)) = &decision.explanation else {
        panic!("expected an explicit deny");
    };
    assert_eq!(path.binding_id, "no-view-hr");
    assert_eq!(path.via_groups, ["contractors"]);
    assert_eq!(path.binding_effect, Effect::Deny);
    let sentence = decision
        .explanation
        .as_ref()
        .map(Explanation::sentence)
        .unwrap_or_default();
    assert_eq!(
        sentence,
        "Denied by an explicit deny: alice is a member of contractors; binding no-view-hr denies contractors \
         role viewer on hr/*; viewer allows doc:read on *."
    );
}

#[test]
fn allow_explanation_reads_as_a_sentence() {
    let (engine, _) = engine();
    engine.put_policy(deny_policy()).unwrap();
    let decision = engine
        .explain(&Request::new("acme", "alice", "doc:delete", "eng/doc"))
        .unwrap();
    assert!(decision.allowed);
    assert_eq!(
        decision
            .explanation
            .map(|e| e.sentence())
            .unwrap_or_default(),
        "Allowed: binding ed gives alice role editor everywhere in the tenant; editor allows doc:* on *."
    );
}

fn conditional_policy() -> PolicySet {
    PolicySet {
        tenant: "acme".into(),
        roles: vec![
            role("ops", &[], vec![Grant::allow("server:restart")]),
            role("ops-write", &[], vec![Grant::allow("server:delete")]),
        ],
        memberships: vec![],
        bindings: vec![
            Binding::new("office", "alice", "ops")
                .when(Condition::IpIn {
                    cidrs: vec!["10.0.0.0/8".into()],
                })
                .when(Condition::Claim {
                    name: "mfa".into(),
                    equals: serde_json::Value::Bool(true),
                }),
            Binding::new("hours", "bob", "ops").when(Condition::DailyWindow {
                start_minute_utc: 9 * 60,
                end_minute_utc: 17 * 60,
            }),
            Binding::new("ops-write", "carol", "ops-write"),
            Binding::new("no-write-offsite", "carol", "ops-write")
                .denying()
                .when(Condition::IpIn {
                    cidrs: vec!["192.0.2.0/24".into()],
                }),
        ],
    }
}

#[test]
fn conditions_gate_bindings_and_missing_attributes_fail_closed() {
    let (engine, clock) = engine();
    engine.put_policy(conditional_policy()).unwrap();
    let mut attrs = Attributes {
        ip: Some("10.1.2.3".parse().unwrap()),
        ..Default::default()
    };
    attrs
        .claims
        .insert("mfa".into(), serde_json::Value::Bool(true));
    assert!(allowed_with(
        &engine,
        "alice",
        "server:restart",
        "srv/1",
        &attrs
    ));
    attrs
        .claims
        .insert("mfa".into(), serde_json::Value::Bool(false));
    assert!(!allowed_with(
        &engine,
        "alice",
        "server:restart",
        "srv/1",
        &attrs
    ));
    attrs.claims.clear();
    assert!(!allowed_with(
        &engine,
        "alice",
        "server:restart",
        "srv/1",
        &attrs
    ));
    let explained = engine
        .explain(&Request::new("acme", "alice", "server:restart", "srv/1").with_attributes(&attrs))
        .unwrap();
    let Some(Explanation::DefaultDeny(deny)) = explained.explanation else {
        panic!("expected a default deny");
    };
    assert_eq!(deny.skipped.len(), 1);
    assert_eq!(deny.skipped[0].reason, SkipReason::AttributeMissing);

    // Time windows use the engine's clock unless the request carries a time.
    let day_start = clock.now_unix_ms() - clock.now_unix_ms().rem_euclid(86_400_000);
    clock.advance(Duration::from_millis(
        (day_start + 10 * 3_600_000 - clock.now_unix_ms()) as u64,
    ));
    assert!(allowed(&engine, "acme", "bob", "server:restart", "srv/1"));
    let night = Attributes {
        time_unix_ms: Some(day_start + 20 * 3_600_000),
        ..Default::default()
    };
    assert!(!allowed_with(
        &engine,
        "bob",
        "server:restart",
        "srv/1",
        &night
    ));

    // A deny binding whose IP condition cannot be evaluated applies.
    assert!(!allowed_with(
        &engine,
        "carol",
        "server:delete",
        "srv/1",
        Attributes::none()
    ));
    let office = Attributes {
        ip: Some("10.0.0.1".parse().unwrap()),
        ..Default::default()
    };
    assert!(allowed_with(
        &engine,
        "carol",
        "server:delete",
        "srv/1",
        &office
    ));
    let offsite = Attributes {
        ip: Some("192.0.2.9".parse().unwrap()),
        ..Default::default()
    };
    assert!(!allowed_with(
        &engine,
        "carol",
        "server:delete",
        "srv/1",
        &offsite
    ));
}

#[test]
fn a_role_in_one_tenant_never_grants_in_another() {
    let (engine, _) = engine();
    for tenant in ["a", "b"] {
        engine
            .put_policy(PolicySet {
                tenant: tenant.into(),
                roles: vec![role("admin", &[], vec![Grant::allow("*")])],
                memberships: vec![],
                bindings: if tenant == "a" {
                    vec![Binding::new("1", "alice", "admin")]
                } else {
                    vec![]
                },
            })
            .unwrap();
    }
    assert!(allowed(&engine, "a", "alice", "doc:read", "x"));
    assert!(!allowed(&engine, "b", "alice", "doc:read", "x"));
    assert!(!allowed(&engine, "c", "alice", "doc:read", "x"));
    // Asking tenant a's compiled policy about tenant b also denies.
    let policy = engine.tenant("a").unwrap().policy;
    assert!(
        !policy
            .is_allowed(&Request::new("b", "alice", "doc:read", "x"), 0)
            .unwrap()
    );
}

#[test]
fn unknown_tenant_subject_and_action_are_denies_not_errors() {
    let (engine, _) = engine();
    engine.put_policy(deny_policy()).unwrap();
    let decision = engine
        .explain(&Request::new("nope", "alice", "doc:read", "x"))
        .unwrap();
    assert!(!decision.allowed);
    assert_eq!(decision.policy_version, 0);
    assert!(matches!(
        decision.explanation,
        Some(Explanation::DefaultDeny(ref d)) if d.reason == DefaultDenyReason::UnknownTenant
    ));
    let decision = engine
        .explain(&Request::new("acme", "mallory", "doc:read", "x"))
        .unwrap();
    assert!(matches!(
        decision.explanation,
        Some(Explanation::DefaultDeny(ref d)) if d.reason == DefaultDenyReason::UnknownSubject
    ));
    assert!(!allowed(&engine, "acme", "alice", "unheard:of", "x"));
}

#[test]
fn rejects_a_change_that_would_make_a_role_cycle_and_keeps_the_old_policy() {
    let (engine, _) = engine();
    let v1 = engine.put_policy(chain_policy(3)).unwrap();
    let err = engine
        .update_policy("acme", |set| {
            set.roles[2].inherits.push("r0".into());
            Ok(())
        })
        .unwrap_err();
    assert_eq!(
        err,
        AuthzError::Cycle {
            kind: CycleKind::Role,
            path: vec!["r0".into(), "r1".into(), "r2".into(), "r0".into()],
        }
    );
    assert_eq!(engine.version("acme"), v1);
    assert!(allowed(&engine, "acme", "user:alice", "doc:level2", "x"));
    let self_loop = engine.update_policy("acme", |set| {
        set.roles[1].inherits.push("r1".into());
        Ok(())
    });
    assert!(matches!(self_loop, Err(AuthzError::Cycle { .. })));
}

#[test]
fn rejects_group_membership_cycles() {
    let (engine, _) = engine();
    let err = engine
        .put_policy(PolicySet {
            tenant: "acme".into(),
            roles: vec![],
            memberships: vec![
                Membership {
                    member: "g1".into(),
                    group: "g2".into(),
                },
                Membership {
                    member: "g2".into(),
                    group: "g1".into(),
                },
            ],
            bindings: vec![],
        })
        .unwrap_err();
    assert!(matches!(
        err,
        AuthzError::Cycle {
            kind: CycleKind::Group,
            ..
        }
    ));
}

#[test]
fn update_policy_bumps_the_version_and_applies_at_once() {
    let (engine, _) = engine();
    assert_eq!(engine.put_policy(chain_policy(2)).unwrap(), 1);
    assert!(!allowed(&engine, "acme", "bob", "doc:level0", "x"));
    let v = engine
        .update_policy("acme", |set| {
            set.bindings.push(Binding::new("b2", "bob", "r0"));
            Ok(())
        })
        .unwrap();
    assert_eq!(v, 2);
    assert!(allowed(&engine, "acme", "bob", "doc:level0", "x"));
    assert!(engine.remove_tenant("acme"));
    assert!(!allowed(&engine, "acme", "bob", "doc:level0", "x"));
}

#[test]
fn install_ignores_stale_versions() {
    let (engine, _) = engine();
    let policy = |depth| {
        Arc::new(
            palisade_authz::CompiledPolicy::compile(chain_policy(depth), Limits::default())
                .unwrap(),
        )
    };
    assert!(engine.install(policy(3), 7));
    assert!(!engine.install(policy(1), 6));
    assert_eq!(engine.version("acme"), 7);
    assert!(allowed(&engine, "acme", "user:alice", "doc:level2", "x"));
}

#[test]
fn malformed_policies_are_typed_errors() {
    let (engine, _) = engine();
    let base = deny_policy();
    type Expect = fn(&AuthzError) -> bool;
    let cases: Vec<(PolicySet, Expect)> = vec![
        (
            PolicySet {
                tenant: "".into(),
                ..base.clone()
            },
            |e| matches!(e, AuthzError::EmptyName { what: "tenant" }),
        ),
        (
            {
                let mut p = base.clone();
                p.roles[0].grants.push(Grant::allow("doc:re*d"));
                p
            },
            |e| matches!(e, AuthzError::MalformedPattern { what: "action", .. }),
        ),
        (
            {
                let mut p = base.clone();
                p.bindings[0].scope = "project/*/docs".into();
                p
            },
            |e| {
                matches!(
                    e,
                    AuthzError::MalformedPattern {
                        what: "resource",
                        ..
                    }
                )
            },
        ),
        (
            {
                let mut p = base.clone();
                p.bindings[0].role = "ghost".into();
                p
            },
            |e| matches!(e, AuthzError::UnknownRole { .. }),
        ),
        (
            {
                let mut p = base.clone();
                p.roles.push(p.roles[0].clone());
                p
            },
            |e| matches!(e, AuthzError::DuplicateRole { .. }),
        ),
        (
            {
                let mut p = base.clone();
                p.bindings.push(p.bindings[0].clone());
                p
            },
            |e| matches!(e, AuthzError::DuplicateBinding { .. }),
        ),
        (
            {
                let mut p = base.clone();
                p.bindings[0].subject = "x".repeat(5000);
                p
            },
            |e| {
                matches!(
                    e,
                    AuthzError::InvalidName {
                        what: "subject",
                        ..
                    }
                )
            },
        ),
        (
            {
                let mut p = base.clone();
                p.bindings[0].conditions = vec![Condition::IpIn {
                    cidrs: vec!["not-an-ip".into()],
                }];
                p
            },
            |e| matches!(e, AuthzError::InvalidCondition { .. }),
        ),
        (
            {
                let mut p = base.clone();
                p.bindings[0].conditions = vec![
                    Condition::Claim {
                        name: "mfa".into(),
                        equals: true.into()
                    };
                    17
                ];
                p
            },
            |e| matches!(e, AuthzError::TooLarge { .. }),
        ),
    ];
    for (policy, expected) in cases {
        let err = engine.put_policy(policy).unwrap_err();
        assert!(expected(&err), "unexpected error {err}");
    }
    assert_eq!(engine.version("acme"), 0);
}

#[test]
fn huge_policies_are_rejected_by_limits() {
    let clock = ManualClock::new();
    let engine = Engine::with_limits(
        Arc::new(clock),
        Limits {
            max_roles: 10,
            max_depth: 4,
            ..Limits::default()
        },
    );
    let mut many = chain_policy(1);
    many.roles
        .extend((0..10).map(|i| role(&format!("x{i}"), &[], vec![])));
    assert_eq!(
        engine.put_policy(many),
        Err(AuthzError::TooLarge {
            what: "roles",
            limit: 10
        })
    );
    assert!(matches!(
        engine.put_policy(chain_policy(6)),
        Err(AuthzError::TooLarge {
            what: "role inheritance depth",
            ..
        })
    ));
}

#[test]
fn malformed_requests_are_invalid_request_errors() {
    let (engine, _) = engine();
    engine.put_policy(deny_policy()).unwrap();
    for request in [
        Request::new("acme", "", "doc:read", "x"),
        Request::new("acme", "alice", "doc:*", "x"),
        Request::new("acme", "alice", "doc:read", "*"),
        Request::new("acme", "alice", "doc:read", ""),
    ] {
        assert!(
            matches!(engine.check(&request), Err(AuthzError::InvalidRequest(_))),
            "{request:?}"
        );
    }
    let long = "r".repeat(2000);
    assert!(matches!(
        engine.check(&Request::new("acme", "alice", "doc:read", &long)),
        Err(AuthzError::InvalidRequest(_))
    ));
}

#[test]
fn batch_check_answers_each_request() {
    let (engine, _) = engine();
    engine.put_policy(deny_policy()).unwrap();
    let answers = engine.check_batch(&[
        Request::new("acme", "alice", "doc:read", "eng/x"),
        Request::new("acme", "alice", "doc:read", "hr/x"),
        Request::new("acme", "alice", "doc:*", "hr/x"),
    ]);
    assert!(answers[0].as_ref().unwrap().allowed);
    assert!(!answers[1].as_ref().unwrap().allowed);
    assert!(answers[2].is_err());
    assert_ne!(
        answers[0].as_ref().unwrap().id,
        answers[1].as_ref().unwrap().id
    );
}

#[test]
fn lists_subjects_allowed_including_group_members_and_excluding_denied() {
    let (engine, _) = engine();
    engine
        .put_policy(PolicySet {
            tenant: "acme".into(),
            roles: vec![role("viewer", &[], vec![Grant::allow("doc:read")])],
            memberships: vec![
                Membership {
                    member: "alice".into(),
                    group: "eng".into(),
                },
                Membership {
                    member: "bob".into(),
                    group: "eng".into(),
                },
            ],
            bindings: vec![
                Binding::new("1", "eng", "viewer").on("eng/*"),
                Binding::new("2", "bob", "viewer")
                    .on("eng/secret")
                    .denying(),
                Binding::new("3", "carol", "viewer").on("hr/*"),
            ],
        })
        .unwrap();
    let none = Attributes::none();
    assert_eq!(
        engine
            .subjects_allowed("acme", "doc:read", "eng/doc", none)
            .unwrap(),
        ["alice", "bob", "eng"]
    );
    assert_eq!(
        engine
            .subjects_allowed("acme", "doc:read", "eng/secret", none)
            .unwrap(),
        ["alice", "eng"]
    );
    assert_eq!(
        engine
            .subjects_allowed("acme", "doc:read", "hr/x", none)
            .unwrap(),
        ["carol"]
    );
    assert!(
        engine
            .subjects_allowed("other", "doc:read", "hr/x", none)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn effective_permissions_flatten_scope_and_grant_resource() {
    let (engine, _) = engine();
    engine.put_policy(deny_policy()).unwrap();
    let perms = engine.effective_permissions("acme", "alice");
    let delete = perms.iter().find(|p| p.action == "doc:delete").unwrap();
    assert_eq!(
        (delete.resource.as_str(), delete.effect),
        ("legal/*", Effect::Deny)
    );
    assert_eq!(delete.granting_role, "no-delete");
    let hr = perms.iter().find(|p| p.binding_id == "no-view-hr").unwrap();
    assert_eq!(
        (hr.resource.as_str(), hr.effect, hr.bound_subject.as_str()),
        ("hr/*", Effect::Deny, "contractors")
    );
    assert!(engine.effective_permissions("acme", "nobody").is_empty());
}

#[test]
fn decision_cache_hits_until_the_policy_version_changes() {
    let (engine, _) = engine();
    engine.put_policy(chain_policy(2)).unwrap();
    let cache = DecisionCache::new(1000, Duration::from_secs(60));
    let request = Request::new("acme", "bob", "doc:level0", "x");
    let first = cache.check(&engine, &request).unwrap();
    assert!(!first.allowed && !first.hit);
    assert!(cache.check(&engine, &request).unwrap().hit);
    engine
        .update_policy("acme", |set| {
            set.bindings.push(Binding::new("b2", "bob", "r0"));
            Ok(())
        })
        .unwrap();
    let after = cache.check(&engine, &request).unwrap();
    assert!(after.allowed && !after.hit);
    assert_eq!(after.policy_version, 2);
}

#[test]
fn decision_cache_keys_on_the_attributes_conditions_read() {
    let (engine, _) = engine();
    engine.put_policy(conditional_policy()).unwrap();
    let cache = DecisionCache::new(1000, Duration::from_secs(60));
    let mut attrs = Attributes {
        ip: Some("10.1.2.3".parse().unwrap()),
        ..Default::default()
    };
    attrs.claims.insert("mfa".into(), true.into());
    let request = Request::new("acme", "alice", "server:restart", "srv/1");
    assert!(
        cache
            .check(&engine, &request.with_attributes(&attrs))
            .unwrap()
            .allowed
    );
    attrs.claims.insert("mfa".into(), false.into());
    assert!(
        !cache
            .check(&engine, &request.with_attributes(&attrs))
            .unwrap()
            .allowed
    );
    attrs.claims.insert("mfa".into(), true.into());
    attrs.ip = Some("8.8.8.8".parse().unwrap());
    assert!(
        !cache
            .check(&engine, &request.with_attributes(&attrs))
            .unwrap()
            .allowed
    );
}

#[test]
fn policy_sets_round_trip_through_json_with_defaults() {
    let json = r#"{
        "tenant": "acme",
        "roles": [{"name": "viewer", "grants": [{"action": "doc:read"}]}],
        "bindings": [{"id": "1", "subject": "alice", "role": "viewer",
                      "conditions": [{"kind": "claim", "name": "mfa", "equals": true}]}]
    }"#;
    let set: PolicySet = serde_json::from_str(json).unwrap();
    assert_eq!(set.roles[0].grants[0].resource, "*");
    assert_eq!(set.bindings[0].scope, "*");
    assert_eq!(set.bindings[0].effect, Effect::Allow);
    let back: PolicySet = serde_json::from_str(&serde_json::to_string(&set).unwrap()).unwrap();
    assert_eq!(back, set);
}
