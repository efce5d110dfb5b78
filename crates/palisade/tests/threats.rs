//! Threat response across real `palisade serve` processes sharing Redis and
//! PostgreSQL: an API key blocked on one instance is refused by the other,
//! an attack reported to one tightens the address's rate limit on both
//! (`[threats.detectors]` set through the environment), and the incident
//! opened on one is listed by the other.

mod support;

use palisade_testkit::{TestDatabase, eventually};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;
use support::{Client, Twins, shared_state_env};

const PROMPT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_tightenings_and_incidents_made_on_one_instance_reach_the_other() {
    let pg = TestDatabase::create().await.expect("test schema");
    let mut env = shared_state_env(pg.url(), "two_instances_threat_response");
    for (key, value) in [
        ("THRESHOLD", "3"),
        ("ACTION", "tighten_rate_limit"),
        ("TIGHTEN_FACTOR", "4"),
        ("BLOCK_TTL_MS", "600000"),
    ] {
        env.insert(
            format!("PALISADE_THREATS__DETECTORS__BRUTE_FORCE_IP__{key}"),
            value.to_owned(),
        );
    }
    let twins = Twins::start(&env, &HashMap::new()).await;
    let (a, b) = (&twins.a, &twins.b);

    // A service's key, blocked on A, is refused by B.
    let (status, created) = a
        .post(
            "/v1/api-keys",
            &json!({"name": "billing", "scopes": ["guard:check"]}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let service = Client::new(&b.base, created["secret"].as_str().expect("secret"));
    assert_eq!(service.get("/v1/whoami").await.0, 200);
    let (status, block) = a
        .post(
            "/v1/threats/blocks",
            &json!({"subject": id, "ttl_ms": 600000, "reason": "leaked"}),
        )
        .await;
    assert_eq!(status, 201, "{block}");
    eventually(PROMPT, "B refuses the blocked key", || async {
        service.get("/v1/whoami").await.0 == 403
    })
    .await;
    let (_, refused) = service.get("/v1/whoami").await;
    assert!(
        refused["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/subject-blocked")),
        "{refused}"
    );
    let (_, verdict) = b.get(&format!("/v1/threats/blocks?subject={id}")).await;
    assert_eq!(verdict["refused"], true);

    // Brute force reported to A: the address is tightened on both.
    let failures: Vec<Value> = (0..3)
        .map(
            |n| json!({"kind": "login_failure", "ip": "198.51.100.90", "subject": format!("u{n}")}),
        )
        .collect();
    let (status, accepted) = a
        .post("/v1/threats/events", &json!({"events": failures}))
        .await;
    assert_eq!(status, 202, "{accepted}");
    let tightened_on = |client: &'static str| {
        let c = if client == "a" { a } else { b };
        async move {
            let (_, listed) = c.get("/v1/threats/blocks?ip=198.51.100.90").await;
            listed["tightened"][0]["factor"] == 4
        }
    };
    eventually(PROMPT, "tightened on A", || tightened_on("a")).await;
    eventually(PROMPT, "tightened on B", || tightened_on("b")).await;

    // A's incident is listed on B, with the tightening.
    let (status, incidents) = b.get("/v1/threats/incidents").await;
    assert_eq!(status, 200, "{incidents}");
    let incident = &incidents["incidents"][0];
    assert_eq!(incident["detectors"], json!(["brute_force_ip"]));
    assert_eq!(
        incident["rate_limits"][0]["target"]["ip"],
        "198.51.100.90/32"
    );
    let (_, on_a) = a.get("/v1/threats/incidents").await;
    assert_eq!(on_a["incidents"][0]["id"], incident["id"]);
}
