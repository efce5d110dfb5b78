//! A bounded number of hashing slots, each a thread of its own at the lowest
//! scheduling priority.
//!
//! Argon2 is ~20-40 ms of one core per call by design. Run on an async worker it would
//! stall every other request on that worker; run unbounded on blocking threads, a flood
//! of logins would take every core (tokio allows 512 blocking threads) and the process
//! would still starve. So each hash takes a semaphore permit first: at most
//! `max_concurrent` run, the rest queue, and a queue that is too long or too slow
//! answers [`PasswordError::Busy`] so the HTTP layer can shed load with 503.
//!
//! The hashes run on `max_concurrent` threads of their own, each at nice 19 on
//! Linux: a hash then only takes CPU the request path leaves idle, so a health
//! probe or an API call is not queued behind argon2 for a scheduler slice. They
//! are not tokio's blocking threads, which also serve file I/O that must not run
//! at the lowest priority.

use super::PasswordError;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// How busy password hashing is right now, for metrics and health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashingLoad {
    /// Hashes executing on blocking threads at this moment.
    pub running: usize,
    /// Calls queued for a slot.
    pub waiting: usize,
    /// The slot count.
    pub max_concurrent: usize,
}

/// A job for a hashing thread.
type Job = Box<dyn FnOnce() + Send>;

/// The gate: a semaphore plus counters of who runs and who waits, in front of
/// the hashing threads.
#[derive(Debug, Clone)]
pub(super) struct HashingSlots {
    semaphore: Arc<Semaphore>,
    /// Jobs for the hashing threads; they exit when the last clone is dropped.
    jobs: mpsc::Sender<Job>,
    max_concurrent: usize,
    running: Arc<AtomicUsize>,
    waiting: Arc<AtomicUsize>,
    pub(super) max_waiting: Option<usize>,
    pub(super) wait_timeout: Option<Duration>,
}

impl HashingSlots {
    /// `max_concurrent` must be at least 1 (checked by the caller).
    pub(super) fn new(max_concurrent: usize) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..max_concurrent {
            let queue = Arc::clone(&queue);
            let spawned = std::thread::Builder::new()
                .name(format!("palisade-hash-{n}"))
                .spawn(move || hashing_thread(&queue));
            if let Err(error) = spawned {
                // Fewer threads only means less parallelism: the semaphore
                // still bounds the work, and jobs wait for a thread.
                tracing::error!(%error, "could not start a password hashing thread");
            }
        }
        Self {
            jobs,
            semaphore: Arc::new(Semaphore::new(max_concurrent)),
            max_concurrent,
            running: Arc::new(AtomicUsize::new(0)),
            waiting: Arc::new(AtomicUsize::new(0)),
            max_waiting: None,
            wait_timeout: None,
        }
    }

    pub(super) fn load(&self) -> HashingLoad {
        HashingLoad {
            running: self.running.load(Ordering::Relaxed),
            waiting: self.waiting.load(Ordering::Relaxed),
            max_concurrent: self.max_concurrent,
        }
    }

    /// Runs `job` on a blocking thread once a slot is free.
    pub(super) async fn run<T, F>(&self, job: F) -> Result<T, PasswordError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, PasswordError> + Send + 'static,
    {
        let permit = match self.semaphore.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(TryAcquireError::NoPermits) => self.wait_for_slot().await?,
            Err(TryAcquireError::Closed) => return Err(PasswordError::Internal),
        };
        let running = Arc::clone(&self.running);
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // The permit lives in the hashing job, not in the caller's future: if the
            // caller gives up (client disconnects, request timeout), the hash still runs
            // to completion and its slot must stay taken until then, or the limit leaks.
            let counted = CountWhileAlive::enter(&running);
            let outcome = job();
            // Free the slot before answering, so a caller that sees its result also
            // sees the slot free (load() reads 0 once every caller has its answer).
            drop(counted);
            drop(permit);
            let _ = done.send(outcome);
        });
        self.jobs.send(job).map_err(|_| PasswordError::Internal)?;
        // A job that panicked drops `done` unsent.
        result.await.map_err(|_| PasswordError::Internal)?
    }

    async fn wait_for_slot(&self) -> Result<OwnedSemaphorePermit, PasswordError> {
        let _waiting = CountWhileAlive::enter_below(&self.waiting, self.max_waiting)?;
        let acquire = self.semaphore.clone().acquire_owned();
        let acquired = match self.wait_timeout {
            Some(limit) => tokio::time::timeout(limit, acquire)
                .await
                .map_err(|_| PasswordError::Busy)?,
            None => acquire.await,
        };
        acquired.map_err(|_| PasswordError::Internal)
    }
}

/// One hashing thread: lowers its own priority, then runs jobs until every
/// sender is gone. A job that panics is caught so the thread keeps serving.
fn hashing_thread(queue: &Mutex<mpsc::Receiver<Job>>) {
    lower_priority();
    loop {
        let next = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(job) = next else {
            return;
        };
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    }
}

/// Sets the calling thread's nice value to 19 (Linux keeps nice per thread).
/// Failing to is logged, not fatal: the hashes then run at normal priority.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(error) = rustix::process::setpriority_process(None, 19) {
        tracing::warn!(%error, "could not lower the priority of a password hashing thread");
    }
}

/// Adds one to a counter for as long as it lives.
struct CountWhileAlive(Arc<AtomicUsize>);

impl CountWhileAlive {
    fn enter(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(counter))
    }

    /// Like `enter`, but [`PasswordError::Busy`] if the counter is already at `limit`.
    fn enter_below(
        counter: &Arc<AtomicUsize>,
        limit: Option<usize>,
    ) -> Result<Self, PasswordError> {
        let before = counter.fetch_add(1, Ordering::Relaxed);
        let entered = Self(Arc::clone(counter));
        match limit {
            // Dropping `entered` undoes the increment.
            Some(limit) if before >= limit => Err(PasswordError::Busy),
            _ => Ok(entered),
        }
    }
}

impl Drop for CountWhileAlive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashes_run_at_the_lowest_priority_and_the_caller_keeps_its_own() {
        let before = rustix::process::getpriority_process(None).unwrap();
        let slots = HashingSlots::new(1);
        let nice = slots
            .run(|| Ok(rustix::process::getpriority_process(None)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(nice, 19);
        assert_eq!(rustix::process::getpriority_process(None).unwrap(), before);
    }

    #[tokio::test]
    async fn a_job_that_panics_is_an_error_and_the_thread_keeps_serving() {
        let slots = HashingSlots::new(1);
        let panicked = slots.run::<(), _>(|| panic!("boom")).await;
        assert_eq!(panicked, Err(PasswordError::Internal));
        assert_eq!(slots.run(|| Ok(7)).await, Ok(7));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn never_runs_more_jobs_than_slots() {
        let slots = HashingSlots::new(2);
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut jobs = Vec::new();
        for _ in 0..20 {
            let (slots, now, peak) = (slots.clone(), now.clone(), peak.clone());
            jobs.push(tokio::spawn(async move {
                slots
                    .run(move || {
                        let running = now.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(running, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(10));
                        now.fetch_sub(1, Ordering::SeqCst);
                        Ok(())
                    })
                    .await
            }));
        }
        for job in jobs {
            assert_eq!(job.await.ok(), Some(Ok(())));
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        assert_eq!(slots.load().running, 0);
        assert_eq!(slots.load().waiting, 0);
    }

    #[tokio::test]
    async fn answers_busy_when_the_wait_exceeds_the_timeout() {
        let mut slots = HashingSlots::new(1);
        slots.wait_timeout = Some(Duration::from_millis(20));
        let hog = {
            let slots = slots.clone();
            tokio::spawn(async move {
                slots
                    .run(|| {
                        std::thread::sleep(Duration::from_millis(300));
                        Ok(())
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(slots.run(|| Ok(())).await, Err(PasswordError::Busy));
        assert_eq!(hog.await.ok(), Some(Ok(())));
        assert_eq!(slots.run(|| Ok(())).await, Ok(()));
    }

    #[tokio::test]
    async fn answers_busy_at_once_when_the_queue_is_full() {
        let mut slots = HashingSlots::new(1);
        slots.max_waiting = Some(0);
        let hog = {
            let slots = slots.clone();
            tokio::spawn(async move {
                slots
                    .run(|| {
                        std::thread::sleep(Duration::from_millis(200));
                        Ok(())
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = std::time::Instant::now();
        assert_eq!(slots.run(|| Ok(())).await, Err(PasswordError::Busy));
        assert!(started.elapsed() < Duration::from_millis(100));
        assert_eq!(slots.load().waiting, 0);
        assert_eq!(hog.await.ok(), Some(Ok(())));
    }

    #[tokio::test]
    async fn a_caller_giving_up_keeps_the_slot_until_the_job_ends() {
        let slots = HashingSlots::new(1);
        let abandoned = slots.run(|| {
            std::thread::sleep(Duration::from_millis(150));
            Ok(())
        });
        // Starts the job, then drops the caller's future.
        let _ = tokio::time::timeout(Duration::from_millis(30), abandoned).await;
        assert_eq!(slots.load().running, 1);
        let started = std::time::Instant::now();
        assert_eq!(slots.run(|| Ok(())).await, Ok(()));
        assert!(started.elapsed() >= Duration::from_millis(80));
    }
}
