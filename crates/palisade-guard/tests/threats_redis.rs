//! Threat detection shared through a real Redis: two instances that each see
//! half of an attack detect it once, and blocks made on one are enforced by
//! the other after a sync. The Redis of `PALISADE_TEST_REDIS_URL` (default
//! 127.0.0.1:6379), keys under a prefix per test, deleted at the end.

use palisade_core::{
    Clock, ManualClock, SecurityEvent, SecurityEventKind, SecurityEvents, SystemClock,
};
use palisade_guard::reputation::BlockTarget;
use palisade_guard::threats::{
    DetectorKind, DetectorRule, IpVerdict, ResponseAction, ThreatDefense, ThreatOptions,
    ThreatSettings,
};
use palisade_store::{Redis, RedisConfig};
use palisade_testkit::redis::{delete_prefix, redis_url, unique_prefix};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

fn redis(prefix: &str) -> Redis {
    let config = RedisConfig {
        key_prefix: prefix.to_owned(),
        ..RedisConfig::single(redis_url())
    };
    Redis::new(&config, SystemClock::shared()).expect("valid redis config")
}

fn settings() -> ThreatSettings {
    let rule = |threshold, action| DetectorRule {
        threshold,
        window_ms: 60_000,
        action,
        block_ttl_ms: 60_000,
        ..DetectorRule::default()
    };
    ThreatSettings {
        brute_force_account: DetectorRule {
            enabled: false,
            ..DetectorRule::default()
        },
        brute_force_ip: rule(10, ResponseAction::BlockIp),
        credential_stuffing: rule(8, ResponseAction::Log),
        password_spraying: rule(6, ResponseAction::Log),
        ..ThreatSettings::default()
    }
}

fn instance(prefix: &str, clock: &ManualClock) -> ThreatDefense {
    ThreatDefense::new(
        ThreatOptions {
            settings: settings(),
            redis: Some(redis(prefix)),
            ..ThreatOptions::default()
        },
        SecurityEvents::new(64),
        Arc::new(clock.clone()),
    )
    .expect("valid settings")
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("address")
}

async fn cleanup(prefix: &str) {
    let client = redis::Client::open(redis_url()).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    delete_prefix(&mut conn, prefix).await.expect("cleanup");
}

#[tokio::test]
async fn two_instances_sharing_redis_detect_one_attack_once_and_enforce_one_block() {
    let prefix = unique_prefix("two_instances_sharing_redis_detect_one_attack");
    let clock = ManualClock::new();
    let (a, b) = (instance(&prefix, &clock), instance(&prefix, &clock));
    let mut detections = Vec::new();
    // Ten failures from one address, alternating between the instances, on
    // ten accounts with one password: brute force (10), stuffing (8 accounts)
    // and spraying (6 accounts), each seen by neither instance alone.
    for i in 0..10 {
        let mut event = SecurityEvent::new(SecurityEventKind::LoginFailure, clock.now_unix_ms())
            .ip(Some(ip("198.51.100.23")))
            .subject(format!("user{i}"));
        event.credential_fingerprint = Some("c0ffee".into());
        let instance = if i % 2 == 0 { &a } else { &b };
        detections.extend(instance.process(&event).await);
        clock.advance(Duration::from_millis(500));
    }
    let mut kinds: Vec<DetectorKind> = detections.iter().map(|d| d.detector).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            DetectorKind::BruteForceIp,
            DetectorKind::CredentialStuffing,
            DetectorKind::PasswordSpraying
        ],
        "each attack detected exactly once across both instances"
    );
    let brute = detections
        .iter()
        .find(|d| d.detector == DetectorKind::BruteForceIp)
        .expect("brute force");
    assert_eq!(brute.evidence["count"], 10);

    // The block was made by the instance that saw the tenth failure; the
    // other enforces it after reading the shared table.
    a.sync_blocks().await.expect("sync a");
    b.sync_blocks().await.expect("sync b");
    for instance in [&a, &b] {
        assert!(matches!(
            instance.check_ip(ip("198.51.100.23")),
            IpVerdict::Refused(_)
        ));
        assert_eq!(instance.blocks().len(), 1);
    }

    // A manual block on one and its removal reach the other.
    let target = BlockTarget::ip("203.0.113.0/24".parse().expect("net"));
    a.block(
        target.clone(),
        600_000,
        "abuse report".into(),
        "key-1".into(),
    )
    .await
    .expect("block");
    b.sync_blocks().await.expect("sync b");
    assert!(matches!(
        b.check_ip(ip("203.0.113.77")),
        IpVerdict::Refused(_)
    ));
    let lifted = b.unblock(&target).await.expect("unblock");
    assert!(lifted.is_some_and(|block| block.is_manual()));
    a.sync_blocks().await.expect("sync a");
    assert_eq!(a.check_ip(ip("203.0.113.77")), IpVerdict::Pass);

    // Expired blocks leave the shared table.
    clock.advance(Duration::from_secs(120));
    a.sync_blocks().await.expect("sync a");
    assert!(a.blocks().is_empty());
    assert_eq!(a.check_ip(ip("198.51.100.23")), IpVerdict::Pass);
    cleanup(&prefix).await;
}

#[tokio::test]
async fn a_second_attack_after_the_window_is_a_second_detection_on_either_instance() {
    let prefix = unique_prefix("a_second_attack_after_the_window");
    let clock = ManualClock::new();
    let (a, b) = (instance(&prefix, &clock), instance(&prefix, &clock));
    let mut count = 0;
    for round in 0..2 {
        for i in 0..10 {
            let event = SecurityEvent::new(SecurityEventKind::LoginFailure, clock.now_unix_ms())
                .ip(Some(ip("192.0.2.200")))
                .subject("root");
            let instance = if (i + round) % 3 == 0 { &a } else { &b };
            count += instance
                .process(&event)
                .await
                .iter()
                .filter(|d| d.detector == DetectorKind::BruteForceIp)
                .count();
        }
        clock.advance(Duration::from_secs(61));
    }
    assert_eq!(count, 2);
    cleanup(&prefix).await;
}
