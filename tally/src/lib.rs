//! # switchboard-tally
//!
//! The tally of posted messages: the one piece of state shared between a
//! Switchboard member's handles and its driver task (`switchboard-client`).
//! It lives in a crate of its own so that its `loom` models build in
//! seconds, without the adapter's dependencies.
//!
//! `Member::post` sends a message without a future
//! per message (no channel, no allocation per message): handles count it
//! as *submitted* here; the driver counts it as *acked* when the server
//! acknowledges receipt, or *refused* when the server NACKs it first or the
//! core refuses it locally. `Member::flush` waits
//! until everything submitted before the call is settled (acked or
//! refused).
//!
//! Writers: handles only increment `submitted`; the driver only increments
//! `acked` and `refused` and sets `closed`. Readers may see the counters at
//! different instants; the order that matters is "settle, then wake": the
//! driver adds to a counter *before* taking the waiter lock, and a flush
//! checks the counter *after* taking it, so a wake-up cannot fall between
//! the check and the registration (`loom` tests below explore every
//! interleaving of that).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

#[cfg(switchboard_loom)]
use loom::sync::{
    atomic::{AtomicBool, AtomicU64, Ordering},
    Mutex,
};
#[cfg(not(switchboard_loom))]
use std::sync::{
    atomic::{AtomicBool, AtomicU64, Ordering},
    Mutex,
};

/// Flushes that wait at once, at most (one per handle clone is typical);
/// past it a flush polls again on its next wake-up instead of registering.
pub const FLUSH_WAITERS_MAX: usize = 1024;

/// The counters (see the crate docs).
#[derive(Debug, Default)]
pub struct Tally {
    submitted: AtomicU64,
    acked: AtomicU64,
    refused: AtomicU64,
    closed: AtomicBool,
    /// Flushes waiting: (settled count they need, waker).
    waiters: Mutex<Vec<(u64, Waker)>>,
}

/// A reading of a member's tally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TallyCounts {
    /// Messages posted so far.
    pub submitted: u64,
    /// Posted messages the server acknowledged.
    pub acked: u64,
    /// Posted messages refused: NACKed by the server before its receipt
    /// acknowledgement, or refused by the client itself (too large, member
    /// closing).
    pub refused: u64,
}

impl TallyCounts {
    /// Acked plus refused.
    pub fn settled(&self) -> u64 {
        self.acked + self.refused
    }
}

impl Tally {
    /// Counts one posted message (handle side).
    pub fn submit(&self) {
        self.submitted.fetch_add(1, Ordering::AcqRel);
    }

    /// Counts `n` posted messages at once (handle side).
    pub fn submit_many(&self, n: u64) {
        self.submitted.fetch_add(n, Ordering::AcqRel);
    }

    /// Takes back a submission that never reached the driver (the command
    /// queue was full or closed): counted as refused so that flushes still
    /// settle.
    pub fn withdraw(&self) {
        self.settle(0, 1);
    }

    /// Takes back `n` submissions at once (see [`withdraw`](Tally::withdraw)).
    pub fn withdraw_many(&self, n: u64) {
        self.settle(0, n);
    }

    /// Counts `acked` receipts and `refused` refusals, then wakes the
    /// flushes they satisfy (driver side).
    pub fn settle(&self, acked: u64, refused: u64) {
        if acked == 0 && refused == 0 {
            return;
        }
        // Count first, then look at the waiters: a flush that registered
        // before this lock sees the new counts when woken; one that checks
        // after it sees them directly.
        if acked > 0 {
            self.acked.fetch_add(acked, Ordering::AcqRel);
        }
        if refused > 0 {
            self.refused.fetch_add(refused, Ordering::AcqRel);
        }
        let settled = self.settled();
        let ready: Vec<Waker> = {
            let mut w = lock(&self.waiters);
            if w.is_empty() {
                return;
            }
            let mut ready = Vec::new();
            w.retain(|(target, waker)| {
                if *target <= settled {
                    ready.push(waker.clone());
                    false
                } else {
                    true
                }
            });
            ready
        };
        for w in ready {
            w.wake();
        }
    }

    /// Marks the member closed and wakes every flush (driver side).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let all: Vec<(u64, Waker)> = std::mem::take(&mut *lock(&self.waiters));
        for (_, w) in all {
            w.wake();
        }
    }

    /// The counters now.
    pub fn counts(&self) -> TallyCounts {
        // The driver settles only what was submitted before; reading the
        // settled counters first means a reading never shows more settled
        // than submitted.
        let acked = self.acked.load(Ordering::Acquire);
        let refused = self.refused.load(Ordering::Acquire);
        let submitted = self.submitted.load(Ordering::Acquire);
        debug_assert!(acked + refused <= submitted, "settled more than submitted");
        TallyCounts {
            submitted,
            acked,
            refused,
        }
    }

    fn settled(&self) -> u64 {
        self.acked.load(Ordering::Acquire) + self.refused.load(Ordering::Acquire)
    }

    /// A future that resolves once everything submitted so far is settled.
    pub fn flush(&self) -> Flush<'_> {
        Flush {
            tally: self,
            target: self.submitted.load(Ordering::Acquire),
        }
    }
}

/// Locks, going on after a panic elsewhere (the data are plain counters).
#[cfg(not(switchboard_loom))]
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Locks (loom's mutex).
#[cfg(switchboard_loom)]
fn lock<T>(m: &Mutex<T>) -> loom::sync::MutexGuard<'_, T> {
    m.lock().expect("loom mutex")
}

/// Why a flush ended without settling everything: the member closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushClosed;

/// See [`Tally::flush`].
#[derive(Debug)]
pub struct Flush<'a> {
    tally: &'a Tally,
    target: u64,
}

impl Future for Flush<'_> {
    type Output = Result<TallyCounts, FlushClosed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let t = self.tally;
        if t.settled() >= self.target {
            return Poll::Ready(Ok(t.counts()));
        }
        if t.closed.load(Ordering::Acquire) {
            return Poll::Ready(Err(FlushClosed));
        }
        {
            let mut w = lock(&t.waiters);
            // Checked again under the lock: a settle that ran before we took
            // it has already counted, and one that runs after will see us.
            if t.settled() >= self.target {
                return Poll::Ready(Ok(t.counts()));
            }
            if t.closed.load(Ordering::Acquire) {
                return Poll::Ready(Err(FlushClosed));
            }
            if let Some(slot) = w.iter_mut().find(|(_, wk)| wk.will_wake(cx.waker())) {
                slot.0 = slot.0.max(self.target);
            } else if w.len() < FLUSH_WAITERS_MAX {
                w.push((self.target, cx.waker().clone()));
            } else {
                // Too many flushes at once: poll again soon instead.
                cx.waker().wake_by_ref();
            }
        }
        Poll::Pending
    }
}

#[cfg(all(test, not(switchboard_loom)))]
mod tests {
    use super::*;

    fn now<F: Future>(f: F) -> Option<F::Output> {
        let mut f = std::pin::pin!(f);
        let mut cx = Context::from_waker(Waker::noop());
        match f.as_mut().poll(&mut cx) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        }
    }

    #[test]
    fn flush_waits_for_what_was_submitted_before_it() {
        let t = Tally::default();
        t.submit();
        t.submit();
        let mut f = Box::pin(t.flush());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(f.as_mut().poll(&mut cx).is_pending());
        t.submit(); // after the flush started: not waited for
        t.settle(1, 0);
        assert!(f.as_mut().poll(&mut cx).is_pending());
        t.settle(0, 1);
        let c = match f.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(c)) => c,
            other => panic!("flush not done: {other:?}"),
        };
        assert_eq!((c.submitted, c.acked, c.refused), (3, 1, 1));
    }

    #[test]
    fn close_ends_waiting_flushes_with_an_error() {
        let t = Tally::default();
        t.submit();
        assert!(now(t.flush()).is_none());
        t.close();
        assert_eq!(now(t.flush()), Some(Err(FlushClosed)));
        // Settled work still reads as settled after a close.
        t.settle(1, 0);
        assert!(matches!(now(t.flush()), Some(Ok(_))));
    }

    #[test]
    fn waiters_are_bounded_and_deduplicated_by_waker() {
        let t = Tally::default();
        t.submit();
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..FLUSH_WAITERS_MAX + 10 {
            let mut f = Box::pin(t.flush());
            assert!(f.as_mut().poll(&mut cx).is_pending());
        }
        // The no-op waker "will wake" itself: one slot is reused.
        assert_eq!(lock(&t.waiters).len(), 1);
    }

    #[test]
    fn withdraw_counts_as_refused() {
        let t = Tally::default();
        t.submit();
        t.withdraw();
        let c = t.counts();
        assert_eq!((c.submitted, c.acked, c.refused, c.settled()), (1, 0, 1, 1));
    }
}

/// Model tests: every interleaving of handles and driver, run with
/// `RUSTFLAGS="--cfg switchboard_loom" cargo test -p switchboard-tally --release`.
#[cfg(all(test, switchboard_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    /// A flush racing the driver's acks is always woken: loom reports a
    /// deadlock if the waker registered by `flush` is never called.
    #[test]
    fn loom_flush_is_woken_by_concurrent_acks() {
        loom::model(|| {
            let t = Arc::new(Tally::default());
            t.submit();
            t.submit();
            let d = t.clone();
            let driver = thread::spawn(move || {
                d.settle(1, 0);
                d.settle(0, 1);
            });
            let c = loom::future::block_on(t.flush()).expect("not closed");
            assert!(c.settled() >= 2);
            driver.join().expect("driver thread");
            assert_eq!(t.counts().settled(), 2);
        });
    }

    /// A close racing a flush ends it (with an error, or with success if
    /// the ack came first): never a hang.
    #[test]
    fn loom_close_ends_a_concurrent_flush() {
        loom::model(|| {
            let t = Arc::new(Tally::default());
            t.submit();
            let d = t.clone();
            let driver = thread::spawn(move || {
                d.close();
            });
            let r = loom::future::block_on(t.flush());
            assert_eq!(r, Err(FlushClosed));
            driver.join().expect("driver thread");
        });
    }

    /// Two handles submitting while the driver settles: no submission is
    /// lost, and a reading never shows more settled than submitted.
    #[test]
    fn loom_concurrent_submitters_are_counted_exactly() {
        loom::model(|| {
            let t = Arc::new(Tally::default());
            let a = t.clone();
            let b = t.clone();
            let h1 = thread::spawn(move || {
                a.submit();
            });
            let h2 = thread::spawn(move || {
                b.submit();
            });
            t.submit();
            let c = t.counts();
            assert!(c.settled() <= c.submitted);
            h1.join().expect("h1");
            h2.join().expect("h2");
            t.settle(3, 0);
            let c = t.counts();
            assert_eq!((c.submitted, c.acked, c.settled()), (3, 3, 3));
        });
    }

    /// Two flushes from two handles, each woken by the driver. Three
    /// threads: explored up to two preemptions (loom's advice for larger
    /// models; the bugs it looks for need one or two).
    #[test]
    fn loom_two_flushes_both_complete() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        b.check(|| {
            let t = Arc::new(Tally::default());
            t.submit();
            let other = t.clone();
            let d = t.clone();
            let h = thread::spawn(move || loom::future::block_on(other.flush()).is_ok());
            let driver = thread::spawn(move || d.settle(1, 0));
            assert!(loom::future::block_on(t.flush()).is_ok());
            assert!(h.join().expect("handle"));
            driver.join().expect("driver thread");
        });
    }
}
