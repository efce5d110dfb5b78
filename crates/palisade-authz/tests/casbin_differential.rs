//! Casbin import, checked against casbin-rs itself: random RBAC policies
//! (with and without domains, with and without deny) and random requests must
//! get the same answer from Palisade (after `import_casbin`) and from Casbin.
//! Plus the models and lines the importer must refuse rather than guess at.

use casbin::{CoreApi, DefaultModel, Enforcer, StringAdapter};
use palisade_authz::{AuthzError, CasbinOptions, Engine, Request, import_casbin};
use palisade_core::ManualClock;
use std::sync::Arc;

const RBAC_DOMAINS: &str = "
[request_definition]
r = sub, dom, obj, act

[policy_definition]
p = sub, dom, obj, act

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub, r.dom) && r.dom == p.dom && r.obj == p.obj && r.act == p.act
";

const RBAC_DOMAINS_DENY: &str = "
[request_definition]
r = sub, dom, obj, act

[policy_definition]
p = sub, dom, obj, act, eft

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = g(r.sub, p.sub, r.dom) && r.dom == p.dom && r.obj == p.obj && r.act == p.act
";

const RBAC: &str = "
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act
";

const RBAC_DENY: &str = "
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act, eft

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act
";

const USERS: &[&str] = &["alice", "bob", "carol", "dave", "erin"];
const ROLES: &[&str] = &["admin", "editor", "viewer", "auditor", "ops", "root"];
const DOMAINS: &[&str] = &["d0", "d1", "d2"];
const OBJECTS: &[&str] = &["data1", "data2", "/files/a", "report"];
const ACTIONS: &[&str] = &["read", "write", "delete"];

fn pick<'a>(rng: &mut fastrand::Rng, items: &[&'a str]) -> &'a str {
    items[rng.usize(..items.len())]
}

/// A random policy in Casbin CSV. `g` links only go forward in the order
/// users-then-roles, so there are no cycles (which Palisade rejects).
/// Also returns the `(dom, obj, act)` of each `p` line, so requests can aim
/// at what the policy talks about.
fn random_csv(
    rng: &mut fastrand::Rng,
    domains: bool,
    deny: bool,
) -> (String, Vec<[&'static str; 3]>) {
    let mut targets = Vec::new();
    let names: Vec<&str> = USERS.iter().chain(ROLES).copied().collect();
    let mut csv = String::new();
    for _ in 0..rng.usize(0..14) {
        let a = rng.usize(..names.len() - 1);
        let b = rng.usize(a + 1..names.len());
        if domains {
            csv += &format!("g, {}, {}, {}\n", names[a], names[b], pick(rng, DOMAINS));
        } else {
            csv += &format!("g, {}, {}\n", names[a], names[b]);
        }
    }
    for _ in 0..rng.usize(1..16) {
        // Subjects are mostly roles, sometimes users directly.
        let sub = if rng.u8(..4) == 0 {
            pick(rng, USERS)
        } else {
            pick(rng, ROLES)
        };
        let mut line = format!("p, {sub}");
        let dom = pick(rng, DOMAINS);
        if domains {
            line += &format!(", {dom}");
        }
        let (obj, act) = (pick(rng, OBJECTS), pick(rng, ACTIONS));
        targets.push([dom, obj, act]);
        line += &format!(", {obj}, {act}");
        if deny {
            line += if rng.u8(..4) == 0 {
                ", deny"
            } else {
                ", allow"
            };
        }
        csv += &line;
        csv.push('\n');
    }
    (csv, targets)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

async fn casbin_enforcer(model: &str, csv: &str) -> Enforcer {
    let model = DefaultModel::from_str(model)
        .await
        .expect("casbin reads the model");
    Enforcer::new(model, StringAdapter::new(csv))
        .await
        .expect("casbin loads the policy")
}

fn palisade_engine(model: &str, csv: &str) -> Engine {
    let engine = Engine::new(Arc::new(ManualClock::new()));
    for set in import_casbin(model, csv, &CasbinOptions::default()).expect("import succeeds") {
        engine.put_policy(set).expect("imported policy compiles");
    }
    engine
}

fn differential(model: &str, domains: bool, deny: bool, seed: u64) -> (usize, usize) {
    let rt = runtime();
    let mut rng = fastrand::Rng::with_seed(seed);
    let request_subjects: Vec<&str> = USERS.iter().chain(ROLES).chain(&["zed"]).copied().collect();
    let request_domains = ["d0", "d1", "d2", "dx"];
    let request_objects = ["data1", "data2", "/files/a", "report", "other"];
    let request_actions = ["read", "write", "delete", "exec"];
    let (mut checked, mut allowed) = (0, 0);
    for _ in 0..150 {
        let (csv, targets) = random_csv(&mut rng, domains, deny);
        let enforcer = rt.block_on(casbin_enforcer(model, &csv));
        let engine = palisade_engine(model, &csv);
        for _ in 0..60 {
            let sub = pick(&mut rng, &request_subjects);
            // Half the requests aim at a line of the policy, the rest anywhere.
            let [mut dom, mut obj, mut act] = targets[rng.usize(..targets.len())];
            if rng.bool() {
                dom = pick(&mut rng, &request_domains);
                obj = pick(&mut rng, &request_objects);
                act = pick(&mut rng, &request_actions);
            }
            if !domains {
                dom = "default";
            }
            let expected = if domains {
                enforcer.enforce((sub, dom, obj, act))
            } else {
                enforcer.enforce((sub, obj, act))
            }
            .expect("casbin enforces");
            let got = engine
                .check(&Request::new(dom, sub, act, obj))
                .expect("valid request")
                .allowed;
            assert_eq!(
                got, expected,
                "request ({sub}, {dom}, {obj}, {act}) on policy:\n{csv}"
            );
            checked += 1;
            allowed += usize::from(expected);
        }
    }
    (checked, allowed)
}

fn assert_meaningful((checked, allowed): (usize, usize)) {
    eprintln!("{allowed} of {checked} requests allowed by both");
    assert!(
        allowed * 20 > checked,
        "only {allowed} of {checked} requests allowed"
    );
    assert!(
        allowed * 20 < checked * 19,
        "{allowed} of {checked} requests allowed"
    );
}

#[test]
fn agrees_with_casbin_on_random_rbac_with_domains() {
    assert_meaningful(differential(RBAC_DOMAINS, true, false, 1));
}

#[test]
fn agrees_with_casbin_on_random_rbac_with_domains_and_deny() {
    assert_meaningful(differential(RBAC_DOMAINS_DENY, true, true, 2));
}

#[test]
fn agrees_with_casbin_on_random_rbac_without_domains() {
    assert_meaningful(differential(RBAC, false, false, 3));
}

#[test]
fn agrees_with_casbin_on_random_rbac_without_domains_with_deny() {
    assert_meaningful(differential(RBAC_DENY, false, true, 4));
}

#[test]
fn follows_a_chain_of_nine_links_like_casbin_and_refuses_ten() {
    let chain = |links: usize| {
        let mut csv = String::from("p, n0, data, read\n");
        for i in (0..links).rev() {
            csv += &format!("g, n{}, n{}\n", i + 1, i);
        }
        csv
    };
    let nine = chain(9);
    let enforcer = runtime().block_on(casbin_enforcer(RBAC, &nine));
    assert!(enforcer.enforce(("n9", "data", "read")).unwrap());
    let engine = palisade_engine(RBAC, &nine);
    assert!(
        engine
            .check(&Request::new("default", "n9", "read", "data"))
            .unwrap()
            .allowed
    );

    // Casbin's role manager stops after 10 levels: the tenth link is not followed.
    let ten = chain(10);
    let enforcer = runtime().block_on(casbin_enforcer(RBAC, &ten));
    assert!(!enforcer.enforce(("n10", "data", "read")).unwrap());
    assert!(matches!(
        import_casbin(RBAC, &ten, &CasbinOptions::default()),
        Err(AuthzError::CasbinModel(_))
    ));
}

#[test]
fn imports_the_casbin_rbac_with_domains_example() {
    let csv = "
p, admin, domain1, data1, read
p, admin, domain1, data1, write
p, admin, domain2, data2, read
p, admin, domain2, data2, write
g, alice, admin, domain1
g, bob, admin, domain2
";
    let sets = import_casbin(RBAC_DOMAINS, csv, &CasbinOptions::default()).unwrap();
    assert_eq!(
        sets.iter().map(|s| s.tenant.as_str()).collect::<Vec<_>>(),
        ["domain1", "domain2"]
    );
    let engine = palisade_engine(RBAC_DOMAINS, csv);
    let allowed = |sub, dom, obj, act| {
        engine
            .check(&Request::new(dom, sub, act, obj))
            .unwrap()
            .allowed
    };
    assert!(allowed("alice", "domain1", "data1", "read"));
    assert!(!allowed("alice", "domain2", "data2", "read"));
    assert!(allowed("bob", "domain2", "data2", "write"));
    assert!(!allowed("bob", "domain1", "data1", "write"));
    let explained = engine
        .explain(&Request::new("domain1", "alice", "write", "data1"))
        .unwrap();
    assert_eq!(
        explained
            .explanation
            .map(|e| e.sentence())
            .unwrap_or_default(),
        "Allowed: binding casbin:\"alice\"->\"admin\" gives alice role admin everywhere in the tenant; \
         admin allows write on data1."
    );
}

fn model_with_matcher(matcher: &str) -> String {
    RBAC.replace(
        "m = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act",
        &format!("m = {matcher}"),
    )
}

#[test]
fn refuses_models_it_cannot_represent_faithfully() {
    let options = CasbinOptions::default();
    let unsupported = [
        model_with_matcher("g(r.sub, p.sub) && keyMatch(r.obj, p.obj) && r.act == p.act"),
        model_with_matcher("g(r.sub, p.sub) && regexMatch(r.obj, p.obj) && r.act == p.act"),
        model_with_matcher(
            "g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act || r.sub == \"root\"",
        ),
        model_with_matcher("r.sub.Age > 18 && r.obj == p.obj && r.act == p.act"),
        model_with_matcher("g(r.sub, p.sub) && r.obj == p.obj"),
        RBAC.replace(
            "e = some(where (p.eft == allow))",
            "e = priority(p.eft) || deny",
        ),
        RBAC.replace(
            "e = some(where (p.eft == allow))",
            "e = !some(where (p.eft == deny))",
        ),
        RBAC.replace("g = _, _", "g = _, _\ng2 = _, _"),
        RBAC_DOMAINS.replace(
            "g(r.sub, p.sub, r.dom) && r.dom == p.dom",
            "g(r.sub, p.sub, r.dom)",
        ),
        RBAC.replace("r = sub, obj, act", "r = sub, obj, act, env"),
    ];
    for model in unsupported {
        assert!(
            matches!(
                import_casbin(&model, "", &options),
                Err(AuthzError::CasbinModel(_))
            ),
            "accepted:\n{model}"
        );
    }
}

#[test]
fn refuses_policy_lines_it_cannot_import() {
    let options = CasbinOptions::default();
    let bad = [
        "p, admin, data/*, read",
        "p, admin, data1, *",
        "p, admin, data1",
        "p, admin, , read",
        "p2, admin, data1, read",
        "g, alice",
    ];
    for csv in bad {
        assert!(
            matches!(
                import_casbin(RBAC, csv, &options),
                Err(AuthzError::CasbinPolicy { line: 1, .. })
            ),
            "accepted {csv:?}"
        );
    }
    assert!(matches!(
        import_casbin(RBAC_DENY, "p, admin, data1, read, maybe", &options),
        Err(AuthzError::CasbinPolicy { .. })
    ));
    assert!(matches!(
        import_casbin(RBAC, "g, a, b\ng, b, a", &options),
        Err(AuthzError::Cycle { .. })
    ));
}

#[test]
fn acl_model_without_roles_imports_subjects_directly() {
    let acl = "
[request_definition]
r = sub, obj, act
[policy_definition]
p = sub, obj, act
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = r.sub == p.sub && r.obj == p.obj && r.act == p.act
";
    let csv = "p, alice, data1, read\np, bob, data2, write\n";
    let enforcer = runtime().block_on(casbin_enforcer(acl, csv));
    let engine = palisade_engine(acl, csv);
    for (sub, obj, act) in [
        ("alice", "data1", "read"),
        ("alice", "data2", "write"),
        ("bob", "data2", "write"),
    ] {
        assert_eq!(
            engine
                .check(&Request::new("default", sub, act, obj))
                .unwrap()
                .allowed,
            enforcer.enforce((sub, obj, act)).unwrap()
        );
    }
}
