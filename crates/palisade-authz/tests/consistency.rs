//! Random policies checked three ways: the engine's fast `check`, its
//! `explain`, and a naive reference written straight from the rule in
//! `decide.rs` (walk every binding, role and grant; any applicable deny wins).
//! All three must agree on every request.

use palisade_authz::{
    Attributes, Binding, Condition, Effect, Engine, Grant, Membership, PolicySet, Request, RoleDef,
};
use palisade_core::ManualClock;
use std::collections::BTreeSet;
use std::sync::Arc;

const ACTIONS: &[&str] = &[
    "doc:read",
    "doc:*",
    "*:read",
    "*",
    "doc:write",
    "img:read",
    "read",
];
const RESOURCES: &[&str] = &["*", "p/1", "p/1/*", "p/2/*", "p/1/a", "p/*"];
// Global bindings are the common case; weight them so allows are frequent.
const SCOPES: &[&str] = &["*", "*", "*", "p/1", "p/1/*", "p/*"];
const SUBJECTS: &[&str] = &["u0", "u1", "u2", "u3", "g0", "g1", "g2"];

fn pick<'a>(rng: &mut fastrand::Rng, items: &[&'a str]) -> &'a str {
    items[rng.usize(..items.len())]
}

fn random_policy(rng: &mut fastrand::Rng) -> PolicySet {
    let role_count = rng.usize(1..8);
    let roles = (0..role_count)
        .map(|i| RoleDef {
            name: format!("r{i}"),
            // Only towards higher indexes, so inheritance stays acyclic.
            inherits: (i + 1..role_count)
                .filter(|_| rng.u8(..4) == 0)
                .map(|j| format!("r{j}"))
                .collect(),
            grants: (0..rng.usize(0..4))
                .map(|_| Grant {
                    action: pick(rng, ACTIONS).into(),
                    resource: pick(rng, RESOURCES).into(),
                    effect: if rng.u8(..6) == 0 {
                        Effect::Deny
                    } else {
                        Effect::Allow
                    },
                })
                .collect(),
        })
        .collect();
    let mut memberships = Vec::new();
    for (i, member) in SUBJECTS.iter().enumerate() {
        for (j, group) in SUBJECTS.iter().enumerate().skip(4) {
            if j > i && rng.u8(..4) == 0 {
                memberships.push(Membership {
                    member: member.to_string(),
                    group: group.to_string(),
                });
            }
        }
    }
    let bindings = (0..rng.usize(0..14))
        .map(|i| {
            let mut b = Binding::new(
                format!("b{i}"),
                pick(rng, SUBJECTS),
                format!("r{}", rng.usize(..role_count)),
            )
            .on(pick(rng, SCOPES));
            if rng.u8(..5) == 0 {
                b = b.denying();
            }
            if rng.u8(..4) == 0 {
                b = b.when(Condition::Claim {
                    name: "mfa".into(),
                    equals: true.into(),
                });
            }
            b
        })
        .collect();
    PolicySet {
        tenant: "t".into(),
        roles,
        memberships,
        bindings,
    }
}

fn pattern_matches(pattern: &str, value: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if let Some(prefix) = pattern.strip_suffix("/*") {
        return value.len() > prefix.len() + 1 && value.starts_with(&format!("{prefix}/"));
    }
    pattern == value
}

fn action_matches(pattern: &str, action: &str) -> bool {
    match (pattern.split_once(':'), action.split_once(':')) {
        _ if pattern == "*" || pattern == "*:*" => true,
        (Some(("*", pv)), Some((_, av))) => pv == av,
        (Some((pt, "*")), Some((at, _))) => pt == at,
        _ => pattern == action,
    }
}

fn reachable(start: &str, edges: &dyn Fn(&str) -> Vec<String>) -> BTreeSet<String> {
    let mut seen = BTreeSet::from([start.to_owned()]);
    let mut todo = vec![start.to_owned()];
    while let Some(next) = todo.pop() {
        for to in edges(&next) {
            if seen.insert(to.clone()) {
                todo.push(to);
            }
        }
    }
    seen
}

fn reference(
    set: &PolicySet,
    subject: &str,
    action: &str,
    resource: &str,
    attrs: &Attributes,
) -> bool {
    let principals = reachable(subject, &|s| {
        set.memberships
            .iter()
            .filter(|m| m.member == s)
            .map(|m| m.group.clone())
            .collect()
    });
    let mfa = attrs.claims.get("mfa");
    let mut allow = false;
    for b in set
        .bindings
        .iter()
        .filter(|b| principals.contains(&b.subject))
    {
        if !pattern_matches(&b.scope, resource) {
            continue;
        }
        let holds = match (b.conditions.is_empty(), mfa) {
            (true, _) => Some(true),
            (false, None) => None,
            (false, Some(v)) => Some(*v == serde_json::Value::Bool(true)),
        };
        let applies = match b.effect {
            Effect::Allow => holds == Some(true),
            Effect::Deny => holds != Some(false),
        };
        if !applies {
            continue;
        }
        let roles = reachable(&b.role, &|r| {
            set.roles
                .iter()
                .filter(|d| d.name == r)
                .flat_map(|d| d.inherits.clone())
                .collect()
        });
        for role in set.roles.iter().filter(|r| roles.contains(&r.name)) {
            for g in &role.grants {
                if action_matches(&g.action, action) && pattern_matches(&g.resource, resource) {
                    if b.effect == Effect::Deny || g.effect == Effect::Deny {
                        return false;
                    }
                    allow = true;
                }
            }
        }
    }
    allow
}

#[test]
fn check_explain_and_a_naive_reference_agree_on_random_policies() {
    let mut rng = fastrand::Rng::with_seed(0x5eed_a117);
    let engine = Engine::new(Arc::new(ManualClock::new()));
    let request_subjects = ["u0", "u1", "u2", "u3", "g0", "g2", "nobody"];
    let request_actions = ["doc:read", "doc:write", "img:read", "read", "x:y"];
    let request_resources = ["p/1", "p/1/a", "p/1/a/b", "p/2/x", "p/2", "q"];
    let mut allows = 0;
    for _ in 0..300 {
        let set = random_policy(&mut rng);
        engine.put_policy(set.clone()).unwrap();
        for _ in 0..100 {
            let mut attrs = Attributes::default();
            match rng.u8(..3) {
                0 => {}
                1 => {
                    attrs.claims.insert("mfa".into(), true.into());
                }
                _ => {
                    attrs.claims.insert("mfa".into(), false.into());
                }
            }
            let (subject, action, resource) = (
                pick(&mut rng, &request_subjects),
                pick(&mut rng, &request_actions),
                pick(&mut rng, &request_resources),
            );
            let request = Request::new("t", subject, action, resource).with_attributes(&attrs);
            let fast = engine.check(&request).unwrap().allowed;
            let explained = engine.explain(&request).unwrap();
            let expected = reference(&set, subject, action, resource, &attrs);
            assert_eq!(
                fast, expected,
                "check vs reference for {request:?} in {set:#?}"
            );
            assert_eq!(
                explained.allowed, expected,
                "explain vs reference for {request:?} in {set:#?}"
            );
            allows += usize::from(expected);
        }
    }
    // The generator must exercise both outcomes to mean anything.
    assert!(
        allows > 2_000 && allows < 25_000,
        "{allows} allows of 30000"
    );
}
