//! `/v1/authz` driven as a client would, on both backends: policy changes,
//! decisions and explanations, Casbin import, audit, and bad input that gets a
//! clear 4xx and leaves the policy unchanged.

#[macro_use]
mod common;

use axum::Router;
use axum::http::StatusCode;
use palisade_http::api_router;
use serde_json::{Value, json};

struct Client {
    app: Router,
    key: String,
}

impl Client {
    async fn send(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let answer = common::send(&self.app, common::request(method, uri, &self.key, body)).await;
        (answer.status, answer.body)
    }

    async fn allowed(&self, subject: &str, action: &str, resource: &str) -> bool {
        let (status, body) = self
            .send(
                "POST",
                "/v1/authz/check",
                Some(json!({"subject": subject, "action": action, "resource": resource})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["allowed"].as_bool().expect("allowed")
    }
}

async fn client(backend: &common::Backend) -> Client {
    Client {
        app: api_router(backend.state.clone()),
        key: backend.admin.clone(),
    }
}

/// Editors may read and write documents; viewers read; alice is an editor of
/// project 42 only, bob a viewer everywhere, and the interns group may not
/// delete anything.
async fn seed(c: &Client) {
    let viewer = json!({"permissions": [{"action": "document:read"}]});
    let editor = json!({"inherits": ["viewer"], "permissions": [{"action": "document:*"}]});
    assert_eq!(
        c.send("PUT", "/v1/authz/roles/viewer", Some(viewer))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        c.send("PUT", "/v1/authz/roles/editor", Some(editor))
            .await
            .0,
        StatusCode::OK
    );
    let bindings = [
        json!({"id": "alice-p42", "subject": "user:alice", "role": "editor", "scope": "project/42/*"}),
        json!({"id": "bob", "subject": "user:bob", "role": "viewer"}),
        json!({"id": "interns-no-delete", "subject": "group:interns", "role": "editor", "effect": "deny"}),
    ];
    for binding in bindings {
        let (status, body) = c.send("POST", "/v1/authz/bindings", Some(binding)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
}

on_both_backends!(
    decisions_follow_roles_inheritance_scopes_and_deny,
    a_removed_binding_stops_granting_and_every_change_is_audited,
    cycles_and_bad_input_get_a_clear_4xx_and_change_nothing,
);

async fn decisions_follow_roles_inheritance_scopes_and_deny(backend: common::Backend) {
    let c = client(&backend).await;
    seed(&c).await;
    assert!(
        c.allowed("user:alice", "document:write", "project/42/doc-1")
            .await
    );
    assert!(
        c.allowed("user:alice", "document:read", "project/42/doc-1")
            .await,
        "inherited from viewer"
    );
    assert!(
        !c.allowed("user:alice", "document:write", "project/7/doc-1")
            .await,
        "scoped to project 42"
    );
    assert!(
        c.allowed("user:bob", "document:read", "project/7/doc-1")
            .await
    );
    assert!(
        !c.allowed("user:bob", "document:write", "project/7/doc-1")
            .await
    );
    assert!(
        !c.allowed("user:mallory", "document:read", "project/7/doc-1")
            .await,
        "unknown subject: deny"
    );

    // A group member gets the group's deny, whatever else grants.
    let member = json!({"member": "user:alice", "group": "group:interns"});
    assert_eq!(
        c.send("POST", "/v1/authz/memberships", Some(member.clone()))
            .await
            .0,
        StatusCode::OK
    );
    assert!(
        !c.allowed("user:alice", "document:write", "project/42/doc-1")
            .await,
        "deny overrides allow"
    );
    assert_eq!(
        c.send("DELETE", "/v1/authz/memberships", Some(member))
            .await
            .0,
        StatusCode::OK
    );
    assert!(
        c.allowed("user:alice", "document:write", "project/42/doc-1")
            .await
    );

    let (status, explained) = c
        .send(
            "POST",
            "/v1/authz/explain",
            Some(json!({"subject": "user:alice", "action": "document:read", "resource": "project/42/doc-1"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(explained["allowed"], true);
    let sentence = explained["sentence"].as_str().expect("sentence");
    assert!(
        sentence.contains("alice-p42") && sentence.contains("editor"),
        "{sentence}"
    );

    let (status, batch) = c
        .send(
            "POST",
            "/v1/authz/check:batch",
            Some(json!({"checks": [
                {"subject": "user:bob", "action": "document:read", "resource": "x/1"},
                {"subject": "user:bob", "action": "document:delete", "resource": "x/1"}
            ]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{batch}");
    assert_eq!(batch["results"][0]["allowed"], true);
    assert_eq!(batch["results"][1]["allowed"], false);

    let (status, permissions) = c
        .send("GET", "/v1/authz/subjects/user:bob/permissions", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        permissions["permissions"]
            .to_string()
            .contains("document:read"),
        "{permissions}"
    );
}

async fn a_removed_binding_stops_granting_and_every_change_is_audited(backend: common::Backend) {
    let c = client(&backend).await;
    seed(&c).await;
    assert!(c.allowed("user:bob", "document:read", "a/1").await);
    let (status, _) = c.send("DELETE", "/v1/authz/bindings/bob", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!c.allowed("user:bob", "document:read", "a/1").await);
    assert_eq!(
        c.send("DELETE", "/v1/authz/bindings/bob", None).await.0,
        StatusCode::NOT_FOUND
    );

    // Policy changes are in the log at once; denied decisions arrive in the
    // background.
    let (_, changes) = c
        .send("GET", "/v1/audit/events?action=authz.binding", None)
        .await;
    let actions: Vec<&str> = changes["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["event"]["action"].as_str())
        .collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "authz.binding.put")
            .count(),
        3,
        "{actions:?}"
    );
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "authz.binding.delete")
            .count(),
        1,
        "{actions:?}"
    );
    palisade_testkit::eventually(
        std::time::Duration::from_secs(5),
        "denial audited",
        || async {
            let (_, denied) = c
                .send("GET", "/v1/audit/events?action=authz.decision.denied", None)
                .await;
            denied["events"].as_array().is_some_and(|e| !e.is_empty())
        },
    )
    .await;
}

async fn cycles_and_bad_input_get_a_clear_4xx_and_change_nothing(backend: common::Backend) {
    let c = client(&backend).await;
    seed(&c).await;
    let (_, before) = c.send("GET", "/v1/authz/policy", None).await;

    let cycle = json!({"inherits": ["editor"], "permissions": []});
    let (status, body) = c.send("PUT", "/v1/authz/roles/viewer", Some(cycle)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("cycle"),
        "{body}"
    );

    let bad = [
        (
            "PUT",
            "/v1/authz/roles/r",
            json!({"permissions": [{"action": "doc:*:x"}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "PUT",
            "/v1/authz/roles/r",
            json!({"permissions": [{"action": "doc:read", "colour": 1}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "PUT",
            "/v1/authz/roles/r",
            json!({"inherit": ["viewer"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "POST",
            "/v1/authz/bindings",
            json!({"subject": "user:x", "role": "nope"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "POST",
            "/v1/authz/bindings",
            json!({"subject": "user:x", "role": "viewer", "scope": "a/*/b"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "POST",
            "/v1/authz/bindings",
            json!({"subject": "user:x", "role": "viewer", "conditions": [{"kind": "ip_in", "cidrs": ["999.1.1.1/8"]}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "POST",
            "/v1/authz/check",
            json!({"subject": "user:x", "action": "*", "resource": "a"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/v1/authz/check",
            json!({"subject": "user:x", "action": "a:b", "resource": "a", "extra": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "POST",
            "/v1/authz/check:batch",
            json!({"checks": []}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "DELETE",
            "/v1/authz/roles/ghost",
            json!(null),
            StatusCode::NOT_FOUND,
        ),
        (
            "POST",
            "/v1/authz/import/casbin",
            json!({"model": "[request_definition]\nr = sub, obj, act\n[matchers]\nm = keyMatch(r.obj, p.obj)", "policy": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (method, uri, body, status) in bad {
        let body = (!body.is_null()).then_some(body);
        let (got, answer) = c.send(method, uri, body.clone()).await;
        assert_eq!(got, status, "{method} {uri} {body:?}: {answer}");
    }
    let huge: Vec<Value> = (0..1001)
        .map(|_| json!({"subject": "user:x", "action": "a:b", "resource": "r"}))
        .collect();
    let (status, _) = c
        .send(
            "POST",
            "/v1/authz/check:batch",
            Some(json!({"checks": huge})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (_, after) = c.send("GET", "/v1/authz/policy", None).await;
    assert_eq!(before, after, "no bad request changed the policy");
}

#[tokio::test]
async fn casbin_import_gives_the_same_decisions_and_keys_stay_in_their_tenant() {
    let backend = common::sqlite(palisade_http::HttpSettings::default()).await;
    let c = client(&backend).await;
    let model = "[request_definition]\nr = sub, dom, obj, act\n\n[policy_definition]\np = sub, dom, obj, act\n\n\
                 [role_definition]\ng = _, _, _\n\n[policy_effect]\ne = some(where (p.eft == allow))\n\n\
                 [matchers]\nm = g(r.sub, p.sub, r.dom) && r.dom == p.dom && r.obj == p.obj && r.act == p.act\n";
    let policy = "p, admin, acme, data1, read\np, admin, acme, data1, write\np, admin, globex, data2, read\n\
                  g, alice, admin, acme\ng, bob, admin, globex\n";
    let (status, body) = c
        .send(
            "POST",
            "/v1/authz/import/casbin",
            Some(json!({"model": model, "policy": policy})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tenants"].as_array().map(Vec::len), Some(2));
    let check = |tenant: &str, subject: &str, resource: &str, action: &str| json!({"tenant": tenant, "subject": subject, "resource": resource, "action": action});
    let cases = [
        (check("acme", "alice", "data1", "read"), true),
        (check("acme", "alice", "data1", "write"), true),
        (check("globex", "alice", "data2", "read"), false),
        (check("globex", "bob", "data2", "read"), true),
        (check("acme", "bob", "data1", "read"), false),
    ];
    for (request, expected) in cases {
        let (status, answer) = c
            .send("POST", "/v1/authz/check", Some(request.clone()))
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["allowed"], expected, "{request}");
    }

    // A key of tenant acme cannot read or change another tenant's policy.
    let (_, created) = c
        .send(
            "POST",
            "/v1/api-keys",
            Some(json!({"name": "acme-svc", "tenant": "acme", "scopes": ["authz:check", "authz:admin"]})),
        )
        .await;
    let acme = Client {
        app: c.app.clone(),
        key: created["secret"].as_str().expect("secret").to_owned(),
    };
    assert!(
        acme.allowed("alice", "read", "data1").await,
        "its own tenant by default"
    );
    let (status, _) = acme
        .send(
            "POST",
            "/v1/authz/check",
            Some(check("globex", "bob", "data2", "read")),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = acme
        .send("GET", "/v1/authz/policy?tenant=globex", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
