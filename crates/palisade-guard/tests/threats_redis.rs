//! Threat detection shared through a real Redis: two instances that each see
//! half of an attack detect it once, and blocks made on one are enforced by
//! the other after a sync. The Redis of `PALISADE_TEST_REDIS_URL` (default
//! 127.0.0.1:6379), keys under a prefix per test, deleted at the end.

use palisade_core::{
    Clock, ManualClock, SecurityEvent, SecurityEventKind, SecurityEvents, SystemClock,
};
use palisade_guard::ratelimit::Tightenings;
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

fn responding(prefix: &str, clock: &ManualClock, set: Arc<Tightenings>) -> ThreatDefense {
    let rule = |action| DetectorRule {
        threshold: 3,
        window_ms: 60_000,
        action,
        block_ttl_ms: 60_000,
        tighten_factor: 4,
        ..DetectorRule::default()
    };
    let off = DetectorRule {
        enabled: false,
        ..DetectorRule::default()
    };
    ThreatDefense::new(
        ThreatOptions {
            settings: ThreatSettings {
                brute_force_account: rule(ResponseAction::BlockSubject),
                brute_force_ip: rule(ResponseAction::TightenRateLimit),
                credential_stuffing: off.clone(),
                password_spraying: off,
                ..ThreatSettings::default()
            },
            redis: Some(redis(prefix)),
            tightenings: Some(set),
            ..ThreatOptions::default()
        },
        SecurityEvents::new(64),
        Arc::new(clock.clone()),
    )
    .expect("valid settings")
}

fn failure(clock: &ManualClock, from: &str, account: &str) -> SecurityEvent {
    SecurityEvent::new(SecurityEventKind::LoginFailure, clock.now_unix_ms())
        .ip(Some(ip(from)))
        .subject(account)
}

#[tokio::test]
async fn tightenings_subject_blocks_and_incidents_made_on_one_instance_reach_the_other() {
    let prefix = unique_prefix("tightenings_subject_blocks_and_incidents");
    let clock = ManualClock::new();
    let (set_a, set_b) = (
        Arc::new(Tightenings::new(100)),
        Arc::new(Tightenings::new(100)),
    );
    let a = responding(&prefix, &clock, set_a.clone());
    let b = responding(&prefix, &clock, set_b.clone());

    // Three failures on one account from one address, seen on A: the
    // address is tightened, the account blocked, one incident opened.
    for _ in 0..3 {
        a.process(&failure(&clock, "198.51.100.40", "alice")).await;
        clock.advance(Duration::from_millis(100));
    }
    let now = clock.now_unix_ms();
    assert_eq!(set_a.factor_for_ip(ip("198.51.100.40"), now), 4);
    assert_eq!(
        set_b.factor_for_ip(ip("198.51.100.40"), now),
        1,
        "not synced yet"
    );
    assert!(b.check_subject("alice").is_none(), "not synced yet");
    b.sync_blocks().await.expect("sync b");
    assert_eq!(set_b.factor_for_ip(ip("198.51.100.40"), now), 4);
    assert_eq!(set_b.factor_for_ip(ip("198.51.100.41"), now), 1);
    assert!(
        b.check_subject("alice")
            .is_some_and(|block| !block.is_manual())
    );
    assert_eq!(b.tightenings().len(), 1);

    let on_b = b.incidents(None, 10, false).await;
    assert_eq!(on_b.len(), 1, "A's incident is listed on B");
    let incident = &on_b[0];
    assert_eq!(incident.detection_count, 2);
    assert_eq!(incident.actions.len(), 1, "the subject block");
    assert_eq!(incident.rate_limits.len(), 1, "the tightening");
    assert_eq!(b.incident(&incident.id).await.as_ref(), Some(incident));

    // The same address attacking again through B, in the next window, joins
    // A's incident, and its tightening escalates.
    clock.advance(Duration::from_secs(61));
    for n in 0..3 {
        b.process(&failure(&clock, "198.51.100.40", &format!("bob{n}")))
            .await;
        clock.advance(Duration::from_millis(100));
    }
    let on_a = a.incidents(None, 10, false).await;
    assert_eq!(on_a.len(), 1, "{on_a:?}");
    assert_eq!(on_a[0].id, incident.id);
    assert_eq!(on_a[0].detection_count, 3);
    assert_eq!(on_a[0].rate_limits.len(), 2);
    assert_eq!(on_a[0].rate_limits[1].offense, 2);
    assert!(on_a[0].event_count >= 2, "the triggers of both instances");

    // Once expired, tightenings leave the shared table and both instances.
    clock.advance(Duration::from_secs(10 * 60));
    a.sync_blocks().await.expect("sync a");
    b.sync_blocks().await.expect("sync b");
    assert!(set_a.is_empty() && set_b.is_empty());
    assert!(b.check_subject("alice").is_none());
    // Incidents stay listed, closed after the gap.
    clock.advance(Duration::from_secs(3600));
    assert_eq!(b.incidents(None, 10, false).await[0].status, "closed");
    assert!(b.incidents(None, 10, true).await.is_empty());
    cleanup(&prefix).await;
}

#[tokio::test]
async fn incident_listing_pages_across_instances_newest_first() {
    let prefix = unique_prefix("incident_listing_pages_across_instances");
    let clock = ManualClock::new();
    let a = responding(&prefix, &clock, Arc::new(Tightenings::new(100)));
    let b = responding(&prefix, &clock, Arc::new(Tightenings::new(100)));
    // Five attacks from five addresses, alternately on A and B.
    for n in 0..5 {
        let instance = if n % 2 == 0 { &a } else { &b };
        for _ in 0..3 {
            instance
                .process(&failure(
                    &clock,
                    &format!("192.0.2.{n}"),
                    &format!("user{n}-{}", 0),
                ))
                .await;
            clock.advance(Duration::from_millis(10));
        }
        clock.advance(Duration::from_secs(1));
    }
    let all = a.incidents(None, 10, false).await;
    assert_eq!(all.len(), 5);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let first = b.incidents(None, 2, false).await;
    let second = b.incidents(Some(&first[1].id), 2, false).await;
    let third = b.incidents(Some(&second[1].id), 2, false).await;
    let paged: Vec<&str> = first
        .iter()
        .chain(&second)
        .chain(&third)
        .map(|i| i.id.as_str())
        .collect();
    let expected: Vec<&str> = all.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(paged, expected);
    cleanup(&prefix).await;
}
