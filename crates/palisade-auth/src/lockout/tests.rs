//! The facade on the in-process backend, with a manual clock.

use super::*;
use palisade_core::ManualClock;
use std::time::Duration;
use tokio::sync::broadcast;

fn policy() -> LockoutPolicy {
    LockoutPolicy {
        account: Thresholds {
            free_failures: 2,
            lockout_after: 5,
        },
        client: Thresholds {
            free_failures: 4,
            lockout_after: 8,
        },
        backoff_base: Duration::from_secs(1),
        backoff_cap: Duration::from_secs(4),
        lockout_duration: Duration::from_secs(60),
        window: Duration::from_secs(600),
    }
}

fn lockout(clock: &ManualClock) -> Lockout {
    let keys =
        LockoutKeys::derive_from(&Secret::new("k".repeat(32))).unwrap_or_else(|e| panic!("{e}"));
    Lockout::new(
        policy(),
        keys,
        Arc::new(clock.clone()),
        SecurityEvents::new(1024),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn tenant() -> TenantId {
    TenantId::default_tenant()
}

fn on(lockout: &Lockout, account: &str, ip: &str) -> Attempt {
    let ip: IpAddr = ip.parse().unwrap_or_else(|e| panic!("{e}"));
    lockout
        .attempt(
            &tenant(),
            Some(account),
            Some(ip),
            Some(&Secret::new("hunter2hunter2")),
        )
        .unwrap_or_else(|e| panic!("{e}"))
}

fn drain(rx: &mut broadcast::Receiver<SecurityEvent>) -> Vec<SecurityEvent> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

#[tokio::test]
async fn an_account_gets_growing_delays_then_a_lockout_that_ends_on_time() {
    let clock = ManualClock::new();
    let lockout = lockout(&clock);
    // Each failure from a different address, so only the account counts.
    let from = |n: u32| on(&lockout, "alice", &format!("10.0.0.{n}"));
    for n in 1..=2 {
        lockout
            .check(&from(n))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let failure = lockout.record_failure(&from(n)).await;
        assert_eq!(failure.withheld, None);
        assert!(!failure.caused_lockout());
    }
    // The third failure makes the next attempt wait 1 s, the fourth 2 s.
    for (n, wait) in [(3, 1), (4, 2)] {
        lockout
            .check(&from(n))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let _ = lockout.record_failure(&from(n)).await;
        let locked = lockout.check(&from(99)).await.err();
        assert_eq!(
            locked,
            Some(Locked {
                retry_after: Duration::from_secs(wait),
                scope: LockScope::Account,
                lockout: false,
            })
        );
        clock.advance(Duration::from_secs(wait));
    }
    let fifth = lockout.record_failure(&from(5)).await;
    assert!(fifth.caused_lockout());
    assert_eq!(
        fifth.account,
        Some(Counted {
            failures: 5,
            blocked_for: Duration::from_secs(60),
            caused_lockout: true,
        })
    );
    clock.advance(Duration::from_secs(59));
    let locked = lockout.check(&from(6)).await.err();
    assert_eq!(
        locked.map(|l| (l.lockout, l.retry_after)),
        Some((true, Duration::from_secs(1)))
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(lockout.check(&from(6)).await, Ok(()));
    // One more failure within the window locks again at once.
    assert!(lockout.record_failure(&from(6)).await.caused_lockout());
}

#[tokio::test]
async fn a_success_clears_the_account_but_is_refused_while_it_is_blocked() {
    let clock = ManualClock::new();
    let lockout = lockout(&clock);
    let attempt = on(&lockout, "bob", "10.0.0.1");
    for _ in 0..3 {
        let _ = lockout.record_failure(&attempt).await;
    }
    // Blocked for 1 s: a concurrent correct guess is not confirmed.
    let refused = lockout.record_success(&attempt).await;
    assert_eq!(refused.map_err(|l| l.scope), Err(LockScope::Account));
    clock.advance(Duration::from_secs(1));
    assert_eq!(lockout.record_success(&attempt).await, Ok(()));
    // Counting starts over: two free failures again.
    for _ in 0..2 {
        let failure = lockout.record_failure(&attempt).await;
        assert_eq!(failure.account.map(|c| c.blocked_for), Some(Duration::ZERO));
    }
}

#[tokio::test]
async fn failures_forgotten_after_the_window() {
    let clock = ManualClock::new();
    let lockout = lockout(&clock);
    let attempt = on(&lockout, "carol", "10.0.0.1");
    for _ in 0..2 {
        let _ = lockout.record_failure(&attempt).await;
    }
    clock.advance(Duration::from_secs(600));
    let failure = lockout.record_failure(&attempt).await;
    assert_eq!(failure.account.map(|c| c.failures), Some(1));
}

#[tokio::test]
async fn a_client_spraying_accounts_is_locked_and_its_own_login_does_not_reset_that() {
    let clock = ManualClock::new();
    let lockout = lockout(&clock);
    let ip = "203.0.113.9";
    // The attacker owns "mallory" and sprays other accounts, one guess each.
    for n in 0..4 {
        let failure = lockout
            .record_failure(&on(&lockout, &format!("victim{n}"), ip))
            .await;
        assert_eq!(failure.client.map(|c| c.failures), Some(n + 1));
    }
    // A typo on their own account, then a login to it: only that typo is taken back.
    let own = on(&lockout, "mallory", ip);
    let _ = lockout.record_failure(&own).await;
    clock.advance(Duration::from_secs(1));
    assert_eq!(lockout.record_success(&own).await, Ok(()));
    let next = lockout.record_failure(&on(&lockout, "victim9", ip)).await;
    assert_eq!(next.client.map(|c| c.failures), Some(5));
    assert_eq!(
        next.client.map(|c| c.blocked_for),
        Some(Duration::from_secs(1))
    );
    // A different client address is untouched.
    assert_eq!(
        lockout
            .check(&on(&lockout, "victim9", "203.0.113.10"))
            .await,
        Ok(())
    );
    let refused = lockout.check(&on(&lockout, "someone-else", ip)).await.err();
    assert_eq!(refused.map(|l| l.scope), Some(LockScope::Client));
}

#[tokio::test]
async fn a_burst_that_passed_check_together_gets_verdicts_only_until_the_first_block() {
    let clock = ManualClock::new();
    let lockout = lockout(&clock);
    let attempt = on(&lockout, "dave", "10.0.0.1");
    // Ten guesses all pass check before any of them is recorded.
    for _ in 0..10 {
        assert_eq!(lockout.check(&attempt).await, Ok(()));
    }
    let mut revealed = 0;
    let mut lockouts = Vec::new();
    for _ in 0..10 {
        let failure = lockout.record_failure(&attempt).await;
        revealed += usize::from(failure.withheld.is_none());
        lockouts.extend(failure.lockouts().map(|(scope, c)| (scope, c.failures)));
    }
    // Failures 1-3 are answered (the third sets the first delay); the rest
    // met a block and are withheld, but still counted: the account locks at
    // its 5th failure, the address at its 8th.
    assert_eq!(revealed, 3);
    assert_eq!(lockouts, [(LockScope::Account, 5), (LockScope::Client, 8)]);
    let locked = lockout.check(&attempt).await.err();
    assert!(locked.is_some_and(|l| l.lockout));
}

#[tokio::test]
async fn events_carry_fingerprints_never_passwords() {
    let clock = ManualClock::new();
    let lockout = lockout(&clock);
    let mut rx = lockout.events().subscribe();
    let attempt = on(&lockout, "Erin@Example.com", "10.0.0.1");
    for _ in 0..5 {
        let _ = lockout.record_failure(&attempt).await;
    }
    let _ = lockout.check(&attempt).await;
    clock.advance(Duration::from_secs(60));
    assert_eq!(lockout.record_success(&attempt).await, Ok(()));
    let events = drain(&mut rx);
    let kinds: Vec<(SecurityEventKind, Option<&str>)> = events
        .iter()
        .map(|e| (e.kind, e.reason.as_deref()))
        .collect();
    let failure = (SecurityEventKind::LoginFailure, Some("bad_password"));
    assert_eq!(
        kinds,
        [
            failure,
            failure,
            failure,
            failure,
            failure,
            (SecurityEventKind::Lockout, Some("too_many_failures")),
            (SecurityEventKind::LoginFailure, Some("locked")),
            (SecurityEventKind::LoginSuccess, None),
        ]
    );
    let fingerprint = attempt.fingerprint().map(str::to_owned);
    assert!(fingerprint.is_some());
    for event in &events {
        assert_eq!(event.subject.as_deref(), Some("erin@example.com"));
        assert_eq!(event.ip, attempt.ip());
        assert_eq!(event.tenant.as_ref(), Some(&tenant()));
        assert_eq!(event.credential_fingerprint, fingerprint);
        let json = serde_json::to_string(event).unwrap_or_default();
        assert!(!json.contains("hunter2"), "{json}");
    }
    assert_eq!(events[5].detail["scope"], "account");
    assert_eq!(events[5].detail["locked_for_ms"], 60_000);
    assert_eq!(events[6].detail["lockout"], true);
}

#[tokio::test]
async fn attempts_without_account_or_address_count_nothing_but_are_reported() {
    let clock = ManualClock::new();
    let lockout = lockout(&clock);
    let mut rx = lockout.events().subscribe();
    let anonymous = lockout
        .attempt(&tenant(), None, None, Some(&Secret::new("pw")))
        .unwrap_or_else(|e| panic!("{e}"));
    for _ in 0..20 {
        let failure = lockout.record_failure(&anonymous).await;
        assert_eq!(
            (failure.account, failure.client, failure.withheld),
            (None, None, None)
        );
    }
    assert_eq!(lockout.check(&anonymous).await, Ok(()));
    let events = drain(&mut rx);
    assert_eq!(events.len(), 20);
    assert!(events.iter().all(|e| e.credential_fingerprint.is_some()));
}

#[tokio::test]
async fn disabled_lockout_lets_everything_in_and_still_reports() {
    let clock = ManualClock::new();
    let lockout = Lockout::disabled(Arc::new(clock.clone()), SecurityEvents::new(64));
    let mut rx = lockout.events().subscribe();
    let attempt = on(&lockout, "frank", "10.0.0.1");
    for _ in 0..20 {
        assert!(!lockout.record_failure(&attempt).await.caused_lockout());
    }
    assert_eq!(lockout.check(&attempt).await, Ok(()));
    let events = drain(&mut rx);
    assert_eq!(events.len(), 20);
    assert!(events.iter().all(|e| e.credential_fingerprint.is_none()));
}

#[test]
fn invalid_accounts_are_refused_when_described() {
    let clock = ManualClock::new();
    let lockout = lockout(&clock);
    assert_eq!(
        lockout.attempt(&tenant(), Some("  "), None, None).err(),
        Some(LockoutError::InvalidAccount)
    );
}
