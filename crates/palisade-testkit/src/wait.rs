//! Bounded waits for test code, so no test can hang.
//!
//! A test that awaits a network call or polls for a condition should do it
//! through these: on timeout they panic with what was awaited, which names the
//! failure in the test report instead of leaving a runner to kill a silent test.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// Awaits `future`, panicking if it takes longer than `limit`.
///
/// # Panics
///
/// When `limit` passes first, with `what` and the caller's location.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::time::Duration;
/// let answer = palisade_testkit::within(Duration::from_secs(1), "the answer", async { 42 }).await;
/// assert_eq!(answer, 42);
/// # }
/// ```
#[track_caller]
pub fn within<F: Future>(
    limit: Duration,
    what: &str,
    future: F,
) -> impl Future<Output = F::Output> {
    // `track_caller` does not reach into an async body, so the caller's
    // location is captured here and reported from inside.
    let caller = std::panic::Location::caller();
    let what = what.to_owned();
    async move {
        match tokio::time::timeout(limit, future).await {
            Ok(output) => output,
            Err(_) => panic!("timed out after {limit:?} waiting for {what} (at {caller})"),
        }
    }
}

/// Polls `condition` every 20 ms until it returns true, panicking if it is
/// still false after `limit`. For effects that happen soon but not at once,
/// such as a cut connection being closed.
///
/// # Panics
///
/// When `limit` passes first, with `what` and the caller's location.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::time::Duration;
/// let start = std::time::Instant::now();
/// palisade_testkit::eventually(Duration::from_secs(1), "50 ms to pass", || {
///     let passed = start.elapsed() >= Duration::from_millis(50);
///     async move { passed }
/// })
/// .await;
/// # }
/// ```
#[track_caller]
pub fn eventually<C, Fut>(limit: Duration, what: &str, mut condition: C) -> impl Future<Output = ()>
where
    C: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let caller = std::panic::Location::caller();
    let what = what.to_owned();
    async move {
        let deadline = Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, condition()).await {
                Ok(true) => return,
                Ok(false) => {}
                Err(_) => break,
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("timed out after {limit:?} waiting for {what} (at {caller})");
    }
}
