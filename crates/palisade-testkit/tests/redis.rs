//! Key prefixes against the real test Redis.

use std::time::Duration;

use palisade_testkit::redis::{delete_prefix, redis_url, unique_prefix};
use palisade_testkit::within;
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;

const PROMPT: Duration = Duration::from_secs(5);

async fn connect() -> MultiplexedConnection {
    let client = redis::Client::open(redis_url()).expect("parse test Redis URL");
    within(
        PROMPT,
        "connect to the test Redis",
        client.get_multiplexed_async_connection(),
    )
    .await
    .expect("connect to the test Redis (is it running? see scripts/test)")
}

#[test]
fn prefixes_are_unique_and_keep_a_sanitised_test_name() {
    let first = unique_prefix("limits::{tenant} a*b");
    let second = unique_prefix("limits::{tenant} a*b");
    assert_ne!(first, second);
    assert!(first.starts_with("t:limits___tenant__a_b:"), "{first}");
    assert!(first.ends_with(':'), "{first}");
    // No hash tag and nothing SCAN MATCH would treat as a pattern.
    assert!(
        !first.contains(['{', '}', '*', '?', '[', ']', '\\', ' ']),
        "{first}"
    );
}

#[tokio::test]
async fn delete_prefix_removes_exactly_that_prefix() {
    let mut connection = connect().await;
    let mine = unique_prefix("delete_prefix_mine");
    let other = unique_prefix("delete_prefix_other");
    within(PROMPT, "write test keys", async {
        for n in 0..25 {
            let () = connection.set(format!("{mine}{n}"), n).await.expect("set");
        }
        let () = connection
            .set(format!("{other}keep"), 1)
            .await
            .expect("set");
    })
    .await;

    let deleted = within(
        PROMPT,
        "delete_prefix",
        delete_prefix(&mut connection, &mine),
    )
    .await
    .expect("delete_prefix");
    assert_eq!(deleted, 25);
    let left: Vec<String> = connection.keys(format!("{mine}*")).await.expect("keys");
    assert!(left.is_empty(), "left behind: {left:?}");
    let kept: Option<i32> = connection.get(format!("{other}keep")).await.expect("get");
    assert_eq!(kept, Some(1), "another prefix's key was deleted");

    let deleted = within(
        PROMPT,
        "delete_prefix",
        delete_prefix(&mut connection, &other),
    )
    .await
    .expect("delete_prefix");
    assert_eq!(deleted, 1);
}
