//! Personal data in audit events through the binary with its embedded defaults:
//! `palisade serve` wires its keyring into the audit log, so an event's `pii` is
//! sealed before it is stored (no file the server writes, database, WAL, spool or
//! logs, holds the plaintext), revealed only to keys allowed to see it, erased by
//! `DELETE /v1/crypto/subjects/{id}`, and `palisade audit verify` still passes.

mod support;

use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;
use support::{Client, Server, run};

const EMAIL: &str = "alice.liddell@example.com";
const PHONE: &str = "+44 20 7946 0958";

/// Every file under `dir`, recursively, with its bytes.
fn files(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path.display().to_string(), bytes));
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn serve_seals_pii_reveals_it_by_scope_and_shredding_erases_it_while_verify_passes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(dir.path(), HashMap::new());
    server.wait_ready(200).await;
    let admin = Client::new(&server.base, &server.printed_key().expect("admin key"));

    let event = json!({
        "action": "user.profile.read", "actor": {"id": "agent-7"}, "outcome": "success",
        "subject": "alice", "pii": {"email": EMAIL, "phone": PHONE},
    });
    let mut appended = (0, Value::Null);
    for _ in 0..200 {
        appended = admin.post("/v1/audit/events?wait=sequenced", &event).await;
        if appended.0 != 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(appended.0, 201, "{}", appended.1);
    let id = appended.1["events"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();

    let (status, created) = admin
        .post(
            "/v1/api-keys",
            &json!({"name": "reader", "scopes": ["audit:read"]}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let reader = Client::new(&server.base, created["secret"].as_str().expect("secret"));

    let uri = format!("/v1/audit/events/{id}");
    let (status, seen) = admin.get(&uri).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(
        seen["event"]["pii"],
        json!({"email": EMAIL, "phone": PHONE})
    );
    let (_, redacted) = reader.get(&uri).await;
    assert_eq!(redacted["event"]["pii"], json!({"redacted": true}));

    // Nothing the server wrote holds the plaintext.
    let mut written = Vec::new();
    files(dir.path(), &mut written);
    assert!(written.len() > 2, "{written:?}");
    for (path, bytes) in &written {
        assert!(
            !contains(bytes, EMAIL) && !contains(bytes, PHONE),
            "{path} holds the plaintext"
        );
    }

    let shred = admin
        .http
        .delete(format!("{}/v1/crypto/subjects/alice", server.base))
        .bearer_auth(&admin.key)
        .send()
        .await
        .expect("delete");
    assert_eq!(shred.status().as_u16(), 204);
    for client in [&admin, &reader] {
        let (status, erased) = client.get(&uri).await;
        assert_eq!(status, 200);
        assert_eq!(erased["event"]["pii"], json!({"erased": true}));
    }

    let (status, out, err) = run(dir.path(), &server.env, &["audit", "verify"]);
    assert!(status.success(), "verify after shredding: {out}{err}");
}
