//! The health registry: each dependency registers a check, and `/health`,
//! `/health/ready` ask the registry for one report that runs every check at once,
//! each bounded by a timeout, so a hung dependency shows up as `down` instead of
//! hanging the probe (and getting the instance killed by its orchestrator).

use crate::resilience::BreakerSnapshot;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, join_all};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

/// How well a component (or the whole service) is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Working normally.
    Up,
    /// Working with reduced capability (a fallback in use, an optional part down).
    Degraded,
    /// Not working.
    Down,
}

/// The result of one health check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentHealth {
    /// The component's status.
    pub status: HealthStatus,
    /// How long the check took; filled in by the registry when the check leaves it empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// A short operator-facing explanation. Never secrets or connection strings:
    /// `/health` may be reachable without authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The breaker guarding the component, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker: Option<BreakerSnapshot>,
}

impl ComponentHealth {
    /// A component that works.
    pub fn up() -> Self {
        Self::with_status(HealthStatus::Up)
    }

    /// A component that works with reduced capability, and why.
    pub fn degraded(detail: impl Into<String>) -> Self {
        Self::with_status(HealthStatus::Degraded).with_detail(detail)
    }

    /// A component that does not work, and why.
    pub fn down(detail: impl Into<String>) -> Self {
        Self::with_status(HealthStatus::Down).with_detail(detail)
    }

    fn with_status(status: HealthStatus) -> Self {
        Self {
            status,
            latency_ms: None,
            detail: None,
            breaker: None,
        }
    }

    /// Sets the explanation.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Sets the measured latency (a check may time only its round trip).
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency_ms = Some(latency.as_secs_f64() * 1e3);
        self
    }

    /// Attaches the breaker guarding the component.
    pub fn with_breaker(mut self, snapshot: BreakerSnapshot) -> Self {
        self.breaker = Some(snapshot);
        self
    }
}

/// One dependency's health check. Object safe, so the registry holds many kinds.
pub trait HealthCheck: Send + Sync {
    /// The component's name in the report (`postgres`, `redis`, `kms`); unique per registry.
    fn name(&self) -> &str;

    /// Whether the service cannot serve without it: a required component that is
    /// down makes the service down and not ready; an optional one only degrades it.
    fn required(&self) -> bool;

    /// Probes the component. Should be cheap (a `SELECT 1`, a `PING`); the
    /// registry bounds it with a timeout anyway.
    fn check(&self) -> BoxFuture<'_, ComponentHealth>;
}

/// A second check registered under a name that is already taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a health check named `{0}` is already registered")]
pub struct DuplicateCheck(pub String);

/// One component in a [`HealthReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentReport {
    /// Whether the component is required (see [`HealthCheck::required`]).
    pub required: bool,
    /// What its check found.
    #[serde(flatten)]
    pub health: ComponentHealth,
}

/// The service's health: the overall status and every component's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// Overall status (see [`HealthReport::aggregate`] for the rules).
    pub status: HealthStatus,
    /// Each component by name, in name order so the JSON is stable.
    pub components: BTreeMap<String, ComponentReport>,
}

impl HealthReport {
    /// Builds a report from component results, computing the overall status:
    /// any required component down → down; otherwise any component degraded or
    /// any optional component down → degraded; otherwise up (also when empty).
    pub fn aggregate(components: BTreeMap<String, ComponentReport>) -> Self {
        let status = components
            .values()
            .map(|c| match (c.health.status, c.required) {
                (HealthStatus::Down, true) => HealthStatus::Down,
                (HealthStatus::Down, false) | (HealthStatus::Degraded, _) => HealthStatus::Degraded,
                (HealthStatus::Up, _) => HealthStatus::Up,
            })
            .max()
            .unwrap_or(HealthStatus::Up);
        Self { status, components }
    }

    /// Whether the instance should receive traffic: no required component is down.
    /// A degraded service is still ready; taking it out of rotation would turn a
    /// Redis outage (which Palisade survives) into a full outage.
    pub fn ready(&self) -> bool {
        !self
            .components
            .values()
            .any(|c| c.required && c.health.status == HealthStatus::Down)
    }
}

/// The set of health checks for this instance.
///
/// Built at start-up, then shared (it is cheap to clone) with the HTTP layer.
#[derive(Clone)]
pub struct HealthRegistry {
    checks: Vec<Arc<dyn HealthCheck>>,
    check_timeout: Duration,
}

impl HealthRegistry {
    /// A registry whose checks each get at most `check_timeout` (keep it below the
    /// orchestrator's probe timeout, typically 1 s).
    pub fn new(check_timeout: Duration) -> Self {
        Self {
            checks: Vec::new(),
            check_timeout,
        }
    }

    /// Adds a check; its name must not be taken.
    pub fn register(&mut self, check: Arc<dyn HealthCheck>) -> Result<(), DuplicateCheck> {
        if self.checks.iter().any(|c| c.name() == check.name()) {
            return Err(DuplicateCheck(check.name().to_owned()));
        }
        self.checks.push(check);
        Ok(())
    }

    /// The per-check timeout.
    pub fn check_timeout(&self) -> Duration {
        self.check_timeout
    }

    /// Runs every check concurrently, each bounded by the timeout, and aggregates.
    /// A check that times out or panics reports `down`; it never fails the report.
    pub async fn report(&self) -> HealthReport {
        let results = join_all(self.checks.iter().map(|check| self.run_one(check.as_ref()))).await;
        let components = self
            .checks
            .iter()
            .zip(results)
            .map(|(check, health)| {
                let report = ComponentReport {
                    required: check.required(),
                    health,
                };
                (check.name().to_owned(), report)
            })
            .collect();
        HealthReport::aggregate(components)
    }

    async fn run_one(&self, check: &dyn HealthCheck) -> ComponentHealth {
        // Latency is real elapsed time on tokio's clock, the same clock the timeout uses.
        let started = tokio::time::Instant::now();
        // A panicking check is a bug in that check; it must not take /health down with it.
        let guarded = AssertUnwindSafe(check.check()).catch_unwind();
        let mut health = match tokio::time::timeout(self.check_timeout, guarded).await {
            Ok(Ok(health)) => health,
            Ok(Err(_panic)) => {
                tracing::error!(check = check.name(), "health check panicked");
                ComponentHealth::down("health check panicked")
            }
            Err(_elapsed) => {
                tracing::warn!(
                    check = check.name(),
                    timeout_ms = self.check_timeout.as_secs_f64() * 1e3,
                    "health check timed out"
                );
                ComponentHealth::down(format!(
                    "health check timed out after {} ms",
                    self.check_timeout.as_millis()
                ))
            }
        };
        if health.latency_ms.is_none() {
            health = health.with_latency(started.elapsed());
        }
        health
    }
}

impl fmt::Debug for HealthRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthRegistry")
            .field(
                "checks",
                &self
                    .checks
                    .iter()
                    .map(|c| (c.name(), c.required()))
                    .collect::<Vec<_>>(),
            )
            .field("check_timeout", &self.check_timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde::de::IntoDeserializer;
    use serde::de::value::Error as DeError;
    use tokio::sync::Barrier;

    /// A check whose behaviour the test chooses.
    struct Fixed {
        name: &'static str,
        required: bool,
        behaviour: Behaviour,
    }

    enum Behaviour {
        Reports(ComponentHealth),
        Hangs,
        Panics,
        Meets(Arc<Barrier>),
    }

    impl HealthCheck for Fixed {
        fn name(&self) -> &str {
            self.name
        }

        fn required(&self) -> bool {
            self.required
        }

        fn check(&self) -> BoxFuture<'_, ComponentHealth> {
            Box::pin(async move {
                match &self.behaviour {
                    Behaviour::Reports(health) => health.clone(),
                    Behaviour::Hangs => std::future::pending().await,
                    Behaviour::Panics => panic!("check bug"),
                    Behaviour::Meets(barrier) => {
                        barrier.wait().await;
                        ComponentHealth::up()
                    }
                }
            })
        }
    }

    fn check(name: &'static str, required: bool, behaviour: Behaviour) -> Arc<dyn HealthCheck> {
        Arc::new(Fixed {
            name,
            required,
            behaviour,
        })
    }

    fn component(status: HealthStatus, required: bool) -> ComponentReport {
        ComponentReport {
            required,
            health: ComponentHealth {
                status,
                latency_ms: None,
                detail: None,
                breaker: None,
            },
        }
    }

    fn aggregate(components: &[(HealthStatus, bool)]) -> HealthReport {
        HealthReport::aggregate(
            components
                .iter()
                .enumerate()
                .map(|(i, (status, required))| (format!("c{i}"), component(*status, *required)))
                .collect(),
        )
    }

    use HealthStatus::{Degraded, Down, Up};

    #[test]
    fn overall_status_and_readiness_follow_the_aggregation_rules() {
        /// Components as (status, required), then the expected overall status and readiness.
        type Case = (&'static [(HealthStatus, bool)], HealthStatus, bool);
        let table: &[Case] = &[
            (&[], Up, true),
            (&[(Up, true), (Up, false)], Up, true),
            (&[(Up, true), (Degraded, false)], Degraded, true),
            (&[(Degraded, true)], Degraded, true),
            (&[(Up, true), (Down, false)], Degraded, true),
            (&[(Down, true), (Up, false)], Down, false),
            (
                &[(Down, true), (Degraded, false), (Down, false)],
                Down,
                false,
            ),
        ];
        for (components, status, ready) in table {
            let report = aggregate(components);
            assert_eq!(report.status, *status, "{components:?}");
            assert_eq!(report.ready(), *ready, "{components:?}");
        }
    }

    #[tokio::test]
    async fn report_runs_every_check_and_fills_in_latency() {
        let mut registry = HealthRegistry::new(Duration::from_secs(5));
        let redis_down = ComponentHealth::down("connection refused");
        registry
            .register(check(
                "postgres",
                true,
                Behaviour::Reports(ComponentHealth::up()),
            ))
            .expect("unique name");
        registry
            .register(check("redis", false, Behaviour::Reports(redis_down)))
            .expect("unique name");
        let report = registry.report().await;
        assert_eq!(report.status, Degraded, "optional redis down degrades");
        assert!(report.ready());
        let redis = &report.components["redis"];
        assert!(!redis.required);
        assert_eq!(redis.health.status, Down);
        assert_eq!(redis.health.detail.as_deref(), Some("connection refused"));
        assert!(report.components["postgres"].health.latency_ms.is_some());
    }

    #[tokio::test]
    async fn hung_check_reports_down_after_the_timeout() {
        let mut registry = HealthRegistry::new(Duration::from_millis(20));
        registry
            .register(check("postgres", true, Behaviour::Hangs))
            .expect("unique name");
        registry
            .register(check(
                "kms",
                false,
                Behaviour::Reports(ComponentHealth::up()),
            ))
            .expect("unique name");
        let report = tokio::time::timeout(Duration::from_secs(5), registry.report())
            .await
            .expect("a hung check must not hang the report");
        let postgres = &report.components["postgres"].health;
        assert_eq!(postgres.status, Down);
        assert!(
            postgres
                .detail
                .as_deref()
                .is_some_and(|d| d.contains("timed out"))
        );
        assert!(postgres.latency_ms.is_some_and(|ms| ms >= 20.0));
        assert_eq!(report.components["kms"].health.status, Up);
        assert_eq!(report.status, Down);
        assert!(!report.ready());
    }

    #[tokio::test]
    async fn checks_run_concurrently() {
        // Each check waits for the other: run one after the other, the first would
        // time out and report down.
        let barrier = Arc::new(Barrier::new(2));
        let mut registry = HealthRegistry::new(Duration::from_secs(5));
        registry
            .register(check("a", true, Behaviour::Meets(barrier.clone())))
            .expect("unique name");
        registry
            .register(check("b", true, Behaviour::Meets(barrier)))
            .expect("unique name");
        let report = registry.report().await;
        assert_eq!(report.status, Up, "{report:?}");
    }

    #[tokio::test]
    async fn panicking_check_reports_down_instead_of_failing_the_report() {
        let mut registry = HealthRegistry::new(Duration::from_secs(5));
        registry
            .register(check("buggy", false, Behaviour::Panics))
            .expect("unique name");
        let report = registry.report().await;
        assert_eq!(report.components["buggy"].health.status, Down);
        assert_eq!(report.status, Degraded);
    }

    #[test]
    fn duplicate_names_are_rejected() {
        let mut registry = HealthRegistry::new(Duration::from_secs(1));
        let up = || Behaviour::Reports(ComponentHealth::up());
        registry
            .register(check("redis", false, up()))
            .expect("first registration");
        assert_eq!(
            registry.register(check("redis", true, up())),
            Err(DuplicateCheck("redis".to_owned()))
        );
    }

    #[test]
    fn status_uses_lowercase_names() {
        for (text, status) in [("up", Up), ("degraded", Degraded), ("down", Down)] {
            let parsed = HealthStatus::deserialize(text.into_deserializer())
                .map_err(|e: DeError| e.to_string());
            assert_eq!(parsed, Ok(status));
        }
    }
}
