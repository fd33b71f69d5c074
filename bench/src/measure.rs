//! Counting deliveries across receiver tasks, and waiting for them to
//! drain once the senders stop.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::workload::{BenchError, Workload};

/// How long receivers may make no progress before the rest counts as lost.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(1);

/// Deliveries counted by every receiver of a run, with the instant of the
/// last one.
#[derive(Debug)]
pub struct Deliveries {
    start: Instant,
    received: AtomicU64,
    last_ns: AtomicU64,
}

impl Deliveries {
    /// A count starting now.
    pub fn new() -> Deliveries {
        Deliveries {
            start: Instant::now(),
            received: AtomicU64::new(0),
            last_ns: AtomicU64::new(0),
        }
    }

    /// Restarts the clock (after setup, when the first send is made).
    pub fn restart(&mut self) {
        self.start = Instant::now();
    }

    /// Counts `n` deliveries that arrived now.
    pub fn record(&self, n: u64) {
        if n == 0 {
            return;
        }
        self.received.fetch_add(n, Ordering::Relaxed);
        let ns = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_ns.fetch_max(ns, Ordering::Relaxed);
    }

    /// Deliveries so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// From the start to the last delivery.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.last_ns.load(Ordering::Relaxed))
    }

    /// The instant of the last delivery (the start if none).
    pub fn last_at(&self) -> Instant {
        self.start + self.elapsed()
    }

    /// Waits until `expected` deliveries arrived, the count stalls for
    /// [`STALL_TIMEOUT`], or `limit` passes. Returns the count.
    pub async fn drained(&self, expected: u64, limit: Duration) -> u64 {
        let deadline = Instant::now() + limit;
        let mut last = self.received();
        let mut last_change = Instant::now();
        loop {
            let now_count = self.received();
            if now_count >= expected {
                return now_count;
            }
            if now_count != last {
                last = now_count;
                last_change = Instant::now();
            }
            if last_change.elapsed() > STALL_TIMEOUT || Instant::now() > deadline {
                return now_count;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// `fut` within `after`, else a timeout of `system` on workload `w`.
pub async fn within<T>(
    system: &str,
    w: Workload,
    after: Duration,
    fut: impl Future<Output = Result<T, BenchError>>,
) -> Result<T, BenchError> {
    tokio::time::timeout(after, fut)
        .await
        .map_err(|_| BenchError::Timeout {
            system: system.to_owned(),
            workload: w,
            after,
        })?
}

/// Ends `tasks` and waits until they are gone (with them their
/// connections).
pub async fn stop(tasks: Vec<JoinHandle<()>>) {
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Tasks aborted when this is dropped: a run that times out (its future
/// dropped) leaves no task of its own behind to hold sockets and CPU in
/// the runs after it.
#[derive(Debug)]
pub struct Tasks<T>(pub Vec<JoinHandle<T>>);

impl<T> Tasks<T> {
    /// Room for `n` tasks.
    pub fn with_capacity(n: usize) -> Tasks<T> {
        Tasks(Vec::with_capacity(n))
    }

    /// Adds one.
    pub fn push(&mut self, t: JoinHandle<T>) {
        self.0.push(t);
    }

    /// Waits for every task in order, ending early at the first that
    /// panicked or was aborted (the others are aborted when `self` drops).
    pub async fn join(mut self) -> Result<Vec<T>, tokio::task::JoinError> {
        let mut out = Vec::with_capacity(self.0.len());
        for t in &mut self.0 {
            out.push(t.await?);
        }
        Ok(out)
    }
}

impl<T> Drop for Tasks<T> {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

impl Default for Deliveries {
    fn default() -> Self {
        Deliveries::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drained_returns_at_the_expected_count_or_after_a_stall() {
        let d = Deliveries::new();
        d.record(3);
        assert_eq!(d.drained(3, Duration::from_secs(5)).await, 3);
        let t = Instant::now();
        assert_eq!(d.drained(10, Duration::from_secs(5)).await, 3);
        assert!(t.elapsed() >= STALL_TIMEOUT);
        assert!(d.elapsed() > Duration::ZERO);
    }
}
