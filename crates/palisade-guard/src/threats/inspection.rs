//! The request-inspection detectors: `inspection_sqli`, `inspection_xss`,
//! `inspection_path_traversal`, `inspection_cmdi` and `inspection_protocol`.
//!
//! One inspected request is one verdict; a single finding says little (a
//! false positive, a curious user), repeated findings of one category from
//! one client say a scanner or an attacker. So each category is a detector
//! like the account-attack ones: inspected requests with a finding of the
//! category are counted in a sliding window per client address (or, when
//! the address is unknown, per subject), and reaching the threshold makes a
//! detection that gets the category's configured response (log, flag,
//! tighten, block with escalating TTLs), its incident and its audit record.
//!
//! The findings travel as [`SecurityEventKind::InspectionFinding`] events
//! through the one security-event stream ([`inspection_events`] makes them
//! from a [`Verdict`]), so the tower layer, `POST /v1/inspect` and services
//! reporting their own findings through `POST /v1/threats/events` all feed
//! the same detectors. An event carries the category as its `reason` and, in
//! `detail`, the request's `verdict` and `score` and the category's
//! strongest finding (`rule`, `location`, `evidence`): the evidence is the
//! inspector's, already cut short and redacted for secret-looking fields,
//! and cut again here for events reported from outside.
//!
//! Only requests the inspector blocked count, unless
//! `inspection_count_flagged` is set; an event without a `verdict` (a
//! service's own finding) counts as blocked, one saying `allow` never counts.

use super::detect::{Detection, DetectorKind, Detectors};
use crate::inspect::{Action, Category, Verdict};
use ipnet::IpNet;
use palisade_core::principal::TenantId;
use palisade_core::{SecurityEvent, SecurityEventKind};
use std::net::IpAddr;

/// The longest string copied from an event's detail into a detection.
const MAX_DETAIL_CHARS: usize = 128;

/// The detector of `category`.
pub fn detector_of(category: Category) -> DetectorKind {
    match category {
        Category::Sqli => DetectorKind::InspectionSqli,
        Category::Xss => DetectorKind::InspectionXss,
        Category::PathTraversal => DetectorKind::InspectionPathTraversal,
        Category::Cmdi => DetectorKind::InspectionCmdi,
        Category::Protocol => DetectorKind::InspectionProtocol,
    }
}

fn category_named(name: &str) -> Option<Category> {
    Category::ALL.into_iter().find(|c| c.as_str() == name)
}

/// The security events of one inspected request: none when it was allowed,
/// else one per category found, carrying that category's strongest finding.
/// `subject` is the one blocks name (`tenant/sub` outside the default
/// tenant is made from `tenant`).
pub fn inspection_events(
    verdict: &Verdict,
    at_ms: i64,
    ip: Option<IpAddr>,
    tenant: Option<&TenantId>,
    subject: Option<&str>,
) -> Vec<SecurityEvent> {
    if verdict.action == Action::Allow {
        return Vec::new();
    }
    let mut seen: Vec<Category> = Vec::new();
    let mut events = Vec::new();
    // Findings come strongest first: the first of a category is its strongest.
    for finding in &verdict.findings {
        if seen.contains(&finding.category) {
            continue;
        }
        seen.push(finding.category);
        let mut event = SecurityEvent::new(SecurityEventKind::InspectionFinding, at_ms)
            .ip(ip.map(|ip| ip.to_canonical()))
            .reason(finding.category.as_str());
        event.tenant = tenant.cloned();
        event.subject = subject.map(str::to_owned);
        let detail = &mut event.detail;
        detail.insert("verdict".into(), verdict.action.as_str().into());
        detail.insert("score".into(), verdict.score.into());
        detail.insert("rule".into(), finding.rule.into());
        detail.insert("location".into(), finding.location.clone().into());
        detail.insert("evidence".into(), finding.evidence.clone().into());
        events.push(event);
    }
    events
}

/// `text` cut to [`MAX_DETAIL_CHARS`] characters.
fn cut(text: &str) -> String {
    let mut out: String = text.chars().take(MAX_DETAIL_CHARS).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

impl Detectors {
    /// Counts one inspection finding; a detection when its category's
    /// threshold is reached for the client.
    pub(super) async fn inspection(
        &self,
        event: &SecurityEvent,
        ip: Option<IpAddr>,
        account: Option<&str>,
    ) -> Option<Detection> {
        let category = category_named(event.reason.as_deref()?)?;
        let verdict = event.detail.get("verdict").and_then(|v| v.as_str());
        let counts = match verdict {
            None | Some("block") => true,
            Some("flag") => self.settings().inspection_count_flagged,
            Some(_) => false,
        };
        if !counts {
            return None;
        }
        let detector = detector_of(category);
        let rule = detector.rule(self.settings());
        let (key, by) = match (ip, account) {
            (Some(ip), _) => (format!("insp:{}:{ip}", category.as_str()), "address"),
            (None, Some(account)) => (format!("insp:{}:s:{account}", category.as_str()), "subject"),
            (None, None) => return None,
        };
        let mut d = self
            .count(detector, rule, &key, &self.new_id(), event)
            .await?
            .subject(event)
            .summary(format!(
                "{} requests with {} findings from one {by} within {} s",
                rule.threshold,
                category.as_str(),
                rule.window_ms / 1000
            ));
        if let Some(ip) = ip {
            d = d.source(IpNet::from(ip));
        }
        d.evidence
            .insert("category".into(), category.as_str().into());
        for field in ["verdict", "rule", "location", "evidence"] {
            if let Some(text) = event.detail.get(field).and_then(|v| v.as_str()) {
                d.evidence.insert(field.into(), cut(text).into());
            }
        }
        if let Some(score) = event.detail.get("score").and_then(|v| v.as_u64()) {
            d.evidence.insert("score".into(), score.into());
        }
        Some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::{HttpRequest, Inspector};
    use crate::threats::tests::{Fixture, fixture_with, rule};
    use crate::threats::{IpVerdict, ResponseAction, ThreatNotice, ThreatOptions, ThreatSettings};
    use palisade_core::Clock;
    use std::time::Duration;

    fn fixture(settings: ThreatSettings) -> Fixture {
        fixture_with(
            ThreatOptions {
                settings,
                ..ThreatOptions::default()
            },
            64,
        )
    }

    fn settings() -> ThreatSettings {
        ThreatSettings {
            inspection_sqli: rule(3, ResponseAction::BlockIp),
            inspection_xss: rule(3, ResponseAction::Log),
            ..ThreatSettings::default()
        }
    }

    fn verdict(query: &str) -> Verdict {
        Inspector::default().inspect(&HttpRequest {
            method: "GET",
            path: "/search",
            query,
            headers: &[],
            body: b"",
            content_type: None,
        })
    }

    const SQLI: &str = "id=1%27%20UNION%20SELECT%20password%20FROM%20users--";
    const XSS: &str = "q=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E";

    /// Inspects `query` as from `ip` and feeds its events to the detectors.
    async fn attack(f: &Fixture, ip: &str, query: &str) -> Vec<Detection> {
        let v = verdict(query);
        let mut found = Vec::new();
        let events = inspection_events(
            &v,
            f.clock.now_unix_ms(),
            Some(ip.parse().unwrap()),
            None,
            None,
        );
        for event in events {
            found.extend(f.threats.process(&event).await);
        }
        found
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_verdict_makes_one_event_per_category_and_none_when_allowed() {
        assert!(inspection_events(&verdict("page=2&sort=name"), 0, None, None, None).is_empty());
        let v = verdict(&format!("{SQLI}&{XSS}"));
        let events = inspection_events(&v, 7, Some(ip("192.0.2.1")), None, Some("alice"));
        let mut categories: Vec<&str> = events.iter().filter_map(|e| e.reason.as_deref()).collect();
        categories.sort_unstable();
        assert_eq!(categories, ["sqli", "xss"], "{v:?}");
        for e in &events {
            assert_eq!(e.kind, SecurityEventKind::InspectionFinding);
            assert_eq!(e.at_ms, 7);
            assert_eq!(e.subject.as_deref(), Some("alice"));
            assert_eq!(e.detail["verdict"], "block");
            assert!(e.detail["rule"].as_str().unwrap().contains('.'));
            assert!(e.detail["location"].as_str().unwrap().starts_with("query."));
        }
    }

    #[tokio::test]
    async fn repeated_sqli_from_one_address_blocks_it_and_escalates() {
        let f = fixture(settings());
        assert!(attack(&f, "198.51.100.7", SQLI).await.is_empty());
        assert!(
            attack(&f, "198.51.100.8", SQLI).await.is_empty(),
            "another address"
        );
        assert!(attack(&f, "198.51.100.7", SQLI).await.is_empty());
        assert_eq!(f.threats.check_ip(ip("198.51.100.7")), IpVerdict::Pass);
        let found = attack(&f, "198.51.100.7", SQLI).await;
        assert_eq!(found.len(), 1, "{found:?}");
        let d = &found[0];
        assert_eq!(d.detector, DetectorKind::InspectionSqli);
        assert_eq!(d.source, Some("198.51.100.7/32".parse().unwrap()));
        assert_eq!(d.evidence["category"], "sqli");
        assert_eq!(d.evidence["count"], 3);
        assert!(d.evidence["rule"].as_str().unwrap().starts_with("sqli"));
        assert!(d.evidence.contains_key("evidence"));
        assert!(matches!(
            f.threats.check_ip(ip("198.51.100.7")),
            IpVerdict::Refused(_)
        ));
        assert_eq!(f.threats.check_ip(ip("198.51.100.8")), IpVerdict::Pass);
        {
            let notices = f.notices.lock().unwrap();
            assert!(notices.iter().any(|n| matches!(n,
                ThreatNotice::Detection { action: ResponseAction::BlockIp, detection, .. }
                    if detection.detector == DetectorKind::InspectionSqli)));
            let Some(ThreatNotice::Action { block, .. }) = notices.last() else {
                panic!("no block notice: {notices:?}");
            };
            assert_eq!(block.expires_at_ms - block.created_at_ms, 60_000);
        }
        assert_eq!(f.threats.incidents(None, 10, false).await.len(), 1);

        // The block ends; a second offence is blocked twice as long.
        f.clock.advance(Duration::from_secs(61));
        assert_eq!(f.threats.check_ip(ip("198.51.100.7")), IpVerdict::Pass);
        for _ in 0..2 {
            assert!(attack(&f, "198.51.100.7", SQLI).await.is_empty());
        }
        assert_eq!(attack(&f, "198.51.100.7", SQLI).await.len(), 1);
        let notices = f.notices.lock().unwrap();
        let Some(ThreatNotice::Action { block, .. }) = notices.last() else {
            panic!("no block notice: {notices:?}");
        };
        assert_eq!(block.expires_at_ms - block.created_at_ms, 120_000);
    }

    #[tokio::test]
    async fn findings_spread_wider_than_the_window_do_not_add_up() {
        let f = fixture(settings());
        for _ in 0..5 {
            assert!(attack(&f, "203.0.113.9", SQLI).await.len() <= 1);
            // Two findings per window at most: 31 s apart against a 60 s window.
            f.clock.advance(Duration::from_secs(31));
        }
        assert_eq!(f.threats.detections(), 0);
        assert_eq!(f.threats.check_ip(ip("203.0.113.9")), IpVerdict::Pass);
    }

    #[tokio::test]
    async fn each_category_has_its_own_rule() {
        let f = fixture(settings());
        let mut found = Vec::new();
        for _ in 0..3 {
            found.extend(attack(&f, "192.0.2.44", XSS).await);
        }
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].detector, DetectorKind::InspectionXss);
        assert_eq!(
            f.threats.check_ip(ip("192.0.2.44")),
            IpVerdict::Pass,
            "xss is log only here"
        );
        assert!(f.threats.blocks().is_empty());
        // A disabled category never fires.
        let mut s = settings();
        s.inspection_sqli.enabled = false;
        let g = fixture(s);
        for _ in 0..5 {
            assert!(attack(&g, "192.0.2.45", SQLI).await.is_empty());
        }
    }

    #[tokio::test]
    async fn flagged_requests_count_only_when_configured_and_subjects_stand_in_for_addresses() {
        let flagged = |subject: &str, at: i64| {
            let mut e = SecurityEvent::new(SecurityEventKind::InspectionFinding, at)
                .reason("cmdi")
                .subject(subject);
            e.detail.insert("verdict".into(), "flag".into());
            e
        };
        let mut s = settings();
        s.inspection_cmdi = rule(2, ResponseAction::BlockSubject);
        let f = fixture(s.clone());
        for _ in 0..3 {
            let e = flagged("mallory", f.clock.now_unix_ms());
            assert!(f.threats.process(&e).await.is_empty());
        }
        s.inspection_count_flagged = true;
        let f = fixture(s);
        let e = flagged("mallory", f.clock.now_unix_ms());
        assert!(f.threats.process(&e).await.is_empty());
        let found = f.threats.process(&e).await;
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].detector, DetectorKind::InspectionCmdi);
        assert!(f.threats.check_subject("mallory").is_some());
        // An allowed request, an unknown category, or no client: nothing counted.
        let mut allowed = flagged("eve", 0);
        allowed.detail.insert("verdict".into(), "allow".into());
        let mut unknown = flagged("eve", 0);
        unknown.reason = Some("ldap".into());
        let mut nobody = flagged("eve", 0);
        nobody.subject = None;
        for e in [allowed, unknown, nobody] {
            for _ in 0..3 {
                assert!(f.threats.process(&e).await.is_empty());
            }
        }
    }

    #[tokio::test]
    async fn evidence_reported_from_outside_is_cut_short() {
        let f = fixture(ThreatSettings {
            inspection_path_traversal: rule(1, ResponseAction::Flag),
            ..ThreatSettings::default()
        });
        let mut e = SecurityEvent::new(SecurityEventKind::InspectionFinding, 0)
            .reason("path_traversal")
            .ip(Some(ip("2001:db8::1")));
        e.detail
            .insert("evidence".into(), "../".repeat(1000).into());
        let found = f.threats.process(&e).await;
        assert_eq!(found.len(), 1);
        let evidence = found[0].evidence["evidence"].as_str().unwrap();
        assert_eq!(evidence.chars().count(), MAX_DETAIL_CHARS + 1);
        assert!(matches!(
            f.threats.check_ip(ip("2001:db8::1")),
            IpVerdict::Flagged(_)
        ));
    }
}
