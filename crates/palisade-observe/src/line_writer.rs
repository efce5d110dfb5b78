//! Log lines from every thread into one buffer, written out by one background
//! thread, so a request never waits for a write syscall.
//!
//! Unlike `tracing_appender::non_blocking` (a channel message per line, and a
//! wake-up of the writer thread for nearly every line, since it drains faster than
//! lines arrive), appending here is a copy under a mutex, and the writer thread is
//! woken only by the first line after it went idle. It then lingers for
//! [`LINGER`] to gather the lines that follow, and writes them in one call: under
//! load that is one wake-up and one syscall per millisecond instead of one per line.
//!
//! No line is ever dropped: when the buffer is full, writers wait for the writer
//! thread (back-pressure), and lines written after shutdown go straight out.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the writer thread gathers lines after the first one before writing:
/// the most a line waits to reach the output while the process runs.
pub const LINGER: Duration = Duration::from_millis(1);
/// Bytes buffered before writers wait: seconds of logs at full load, enough to
/// ride out a slow stderr reader without blocking requests.
pub const CAPACITY: usize = 1024 * 1024;

/// A handle to append lines; cheap to clone. Also a `MakeWriter` for
/// `tracing-subscriber` layers.
#[derive(Clone, Debug)]
pub struct LineWriter {
    shared: Arc<Shared>,
}

/// Stops the writer thread when dropped, after every buffered line is written.
#[derive(Debug)]
pub struct LineWriterGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    /// Signals the writer thread: the first line after idling, a full buffer, close.
    wake_writer: Condvar,
    /// Signals writers waiting for room.
    room: Condvar,
    output: Mutex<Box<dyn Write + Send>>,
    linger: Duration,
    capacity: usize,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("linger", &self.linger)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    pending: Vec<u8>,
    /// The writer thread waits for a first line; the next append must wake it.
    writer_idle: bool,
    writers_waiting: usize,
    closed: bool,
    /// The writer thread has exited: append writes to the output itself.
    finished: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves whole lines or none: keep going.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LineWriter {
    /// Starts the writer thread (named `thread_name`) writing to `output`.
    pub fn start(
        output: impl Write + Send + 'static,
        thread_name: &str,
    ) -> std::io::Result<(Self, LineWriterGuard)> {
        Self::start_with(Box::new(output), thread_name, LINGER, CAPACITY)
    }

    fn start_with(
        output: Box<dyn Write + Send>,
        thread_name: &str,
        linger: Duration,
        capacity: usize,
    ) -> std::io::Result<(Self, LineWriterGuard)> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake_writer: Condvar::new(),
            room: Condvar::new(),
            output: Mutex::new(output),
            linger,
            capacity,
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(thread_name.to_owned())
                .spawn(move || shared.run())?
        };
        Ok((
            Self {
                shared: shared.clone(),
            },
            LineWriterGuard {
                shared,
                thread: Some(thread),
            },
        ))
    }

    /// Appends `bytes` (whole lines) to the buffer, waiting for room when it is full.
    pub fn append(&self, bytes: &[u8]) {
        let shared = &*self.shared;
        let mut state = lock(&shared.state);
        // A write larger than the whole buffer goes in alone rather than wait forever.
        while !state.pending.is_empty()
            && state.pending.len() + bytes.len() > shared.capacity
            && !state.finished
        {
            state.writers_waiting += 1;
            state = shared
                .room
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.writers_waiting -= 1;
        }
        if state.finished {
            drop(state);
            shared.write_out(bytes);
            return;
        }
        state.pending.extend_from_slice(bytes);
        let wake = state.writer_idle || state.pending.len() >= shared.capacity / 2;
        if wake {
            state.writer_idle = false;
        }
        drop(state);
        if wake {
            shared.wake_writer.notify_one();
        }
    }
}

impl Shared {
    fn run(&self) {
        let mut batch = Vec::new();
        loop {
            let mut state = lock(&self.state);
            while state.pending.is_empty() && !state.closed {
                state.writer_idle = true;
                state = self
                    .wake_writer
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            state.writer_idle = false;
            // Gather the lines that follow the first, unless the buffer fills first.
            let deadline = Instant::now() + self.linger;
            while !state.closed && state.pending.len() < self.capacity / 2 {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                state = self
                    .wake_writer
                    .wait_timeout(state, deadline - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            if state.pending.is_empty() && state.closed {
                state.finished = true;
                let waiting = state.writers_waiting > 0;
                drop(state);
                if waiting {
                    self.room.notify_all();
                }
                return;
            }
            std::mem::swap(&mut state.pending, &mut batch);
            let waiting = state.writers_waiting > 0;
            drop(state);
            if waiting {
                self.room.notify_all();
            }
            self.write_out(&batch);
            batch.clear();
            // Keep the larger of the two buffers from growing without bound after
            // one burst: the pending one regrows as needed.
            if batch.capacity() > self.capacity {
                batch = Vec::new();
            }
        }
    }

    fn write_out(&self, bytes: &[u8]) {
        let mut output = lock(&self.output);
        if let Err(e) = output.write_all(bytes).and_then(|()| output.flush()) {
            // The output is normally stderr itself; there is nowhere better to say it.
            eprintln!("[palisade-observe] unable to write log lines: {e}");
        }
    }
}

impl Drop for LineWriterGuard {
    fn drop(&mut self) {
        lock(&self.shared.state).closed = true;
        self.shared.wake_writer.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One `write` call per line from `tracing-subscriber`'s layers.
#[derive(Debug)]
pub struct LineHandle<'a>(&'a LineWriter);

impl Write for LineHandle<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LineWriter {
    type Writer = LineHandle<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineHandle(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// An output that keeps what it gets, optionally slowly, and counts writes.
    #[derive(Clone, Default)]
    struct Output {
        bytes: Arc<Mutex<Vec<u8>>>,
        writes: Arc<Mutex<usize>>,
        delay: Duration,
    }

    impl Write for Output {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            std::thread::sleep(self.delay);
            lock(&self.bytes).extend_from_slice(buf);
            *lock(&self.writes) += 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Output {
        fn text(&self) -> String {
            String::from_utf8_lossy(&lock(&self.bytes)).into_owned()
        }
    }

    #[test]
    fn every_line_arrives_whole_under_back_pressure() {
        // A slow output and a buffer of a few lines, so writers must wait.
        let output = Output {
            delay: Duration::from_millis(1),
            ..Output::default()
        };
        let (writer, guard) =
            LineWriter::start_with(Box::new(output.clone()), "test-log", LINGER, 256)
                .unwrap_or_else(|e| panic!("{e}"));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for n in 0..500 {
                        writer.append(
                            format!("thread {t} line {n} {}\n", "x".repeat(n % 40)).as_bytes(),
                        );
                    }
                })
            })
            .collect();
        for thread in threads {
            thread
                .join()
                .unwrap_or_else(|_| panic!("writer thread panicked"));
        }
        drop(guard);
        let text = output.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2000);
        let unique: HashSet<&str> = lines.iter().copied().collect();
        assert_eq!(unique.len(), 2000);
        for line in lines {
            let mut parts = line.split(' ');
            let n: usize = parts
                .nth(3)
                .and_then(|n| n.parse().ok())
                .unwrap_or(usize::MAX);
            assert_eq!(
                parts.next().map(str::len),
                Some(n % 40),
                "torn line: {line}"
            );
        }
    }

    #[test]
    fn a_burst_is_written_in_few_calls() {
        let output = Output::default();
        let (writer, guard) = LineWriter::start_with(
            Box::new(output.clone()),
            "test-log",
            Duration::from_millis(200),
            CAPACITY,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        for n in 0..1000 {
            writer.append(format!("line {n}\n").as_bytes());
        }
        drop(guard);
        assert_eq!(output.text().lines().count(), 1000);
        assert!(
            *lock(&output.writes) <= 3,
            "{} writes",
            *lock(&output.writes)
        );
    }

    #[test]
    fn a_lone_line_reaches_the_output_without_more_lines_or_shutdown() {
        let output = Output::default();
        let (writer, _guard) =
            LineWriter::start(output.clone(), "test-log").unwrap_or_else(|e| panic!("{e}"));
        writer.append(b"alone\n");
        let deadline = Instant::now() + Duration::from_secs(5);
        while output.text().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(output.text(), "alone\n");
    }

    #[test]
    fn lines_after_shutdown_and_oversized_lines_still_arrive() {
        let output = Output::default();
        let (writer, guard) =
            LineWriter::start_with(Box::new(output.clone()), "test-log", LINGER, 64)
                .unwrap_or_else(|e| panic!("{e}"));
        writer.append(b"before\n");
        let big = format!("{}\n", "b".repeat(1000));
        writer.append(big.as_bytes());
        drop(guard);
        writer.append(b"after\n");
        assert_eq!(output.text(), format!("before\n{big}after\n"));
    }
}
