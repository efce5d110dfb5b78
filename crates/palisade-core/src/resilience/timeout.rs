//! A per-call timeout with a typed error, so "the dependency took too long" is a
//! variant callers can match on rather than tokio's opaque `Elapsed`.

use std::future::Future;
use std::time::Duration;

/// The guarded call did not finish within its time bound and was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timed out after {after:?}")]
pub struct TimedOut {
    /// The bound that was exceeded.
    pub after: Duration,
}

/// Runs `fut` for at most `duration`; past that the future is dropped (cancelling
/// whatever it was doing) and [`TimedOut`] is returned.
///
/// This measures real time on tokio's timer, not the injected [`Clock`](crate::Clock):
/// a timeout has to fire even when nobody advances a manual clock.
pub async fn with_timeout<F: Future>(duration: Duration, fut: F) -> Result<F::Output, TimedOut> {
    tokio::time::timeout(duration, fut)
        .await
        .map_err(|_elapsed| TimedOut { after: duration })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_value_when_the_future_finishes_in_time() {
        let result = with_timeout(Duration::from_secs(5), async { 7 }).await;
        assert_eq!(result, Ok(7));
    }

    #[tokio::test]
    async fn reports_the_bound_when_the_future_hangs() {
        let bound = Duration::from_millis(10);
        let result = with_timeout(bound, std::future::pending::<()>()).await;
        assert_eq!(result, Err(TimedOut { after: bound }));
    }
}
