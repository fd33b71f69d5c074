//! What every system's W6 shares: time-stamped payloads, the random choice
//! of addressee, the pacing of each member's sends, and the latency
//! histograms the receivers and senders fill.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use hdrhistogram::Histogram;

use super::measure::Deliveries;
use super::workload::{latency_histogram, BenchError, Figure, Params, MANY_PAYLOAD_MIN};

/// Members connected at once while W6 builds its crowd.
pub const CONNECT_PARALLEL: usize = 64;

/// The clock every W6 payload is stamped against (one process: the
/// loader's), and the payload size.
#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    epoch: Instant,
    len: usize,
}

impl Stamp {
    /// A clock starting now, for payloads of `p.payload` bytes (at least
    /// [`MANY_PAYLOAD_MIN`]).
    pub fn new(p: &Params) -> Stamp {
        Stamp {
            epoch: Instant::now(),
            len: p.payload.max(MANY_PAYLOAD_MIN),
        }
    }

    /// A payload carrying the time now in its first 8 bytes.
    pub fn payload(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(self.len);
        b.put_u64(self.nanos_now());
        b.resize(self.len, 0x5a);
        b.freeze()
    }

    /// Microseconds since the time stamped in `payload` (at least 1), or
    /// `None` if it is too short to hold one.
    pub fn age_us(&self, payload: &[u8]) -> Option<u64> {
        let head: [u8; 8] = payload.get(..8)?.try_into().ok()?;
        let sent = u64::from_be_bytes(head);
        Some((self.nanos_now().saturating_sub(sent) / 1_000).max(1))
    }

    fn nanos_now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A latency histogram shared by many tasks (each records a batch per
/// lock).
#[derive(Debug, Clone)]
pub struct SharedHist(Arc<Mutex<Histogram<u64>>>);

impl SharedHist {
    /// An empty one.
    pub fn new() -> SharedHist {
        SharedHist(Arc::new(Mutex::new(latency_histogram())))
    }

    /// Adds `h` (a task's batch) to it.
    pub fn add(&self, h: &Histogram<u64>) {
        if let Ok(mut all) = self.0.lock() {
            let _ = all.add(h);
        }
    }

    /// Records one value, µs.
    pub fn record(&self, us: u64) {
        if let Ok(mut all) = self.0.lock() {
            all.saturating_record(us);
        }
    }

    /// A copy of what it holds.
    pub fn snapshot(&self) -> Histogram<u64> {
        self.0
            .lock()
            .map(|h| h.clone())
            .unwrap_or_else(|_| latency_histogram())
    }
}

impl Default for SharedHist {
    fn default() -> Self {
        SharedHist::new()
    }
}

/// Member `me`'s choice of addressee: uniformly one of the other `n - 1`
/// members (xorshift, seeded per member so that runs repeat).
#[derive(Debug, Clone)]
pub struct Picker {
    me: usize,
    n: usize,
    state: u64,
}

impl Picker {
    /// The picker of member `me` of `n` (n ≥ 2 for a choice to exist).
    pub fn new(me: usize, n: usize) -> Picker {
        Picker {
            me,
            n,
            state: 0x9e37_79b9_7f4a_7c15 ^ ((me as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9)),
        }
    }

    /// The next addressee (never `me`; `me` itself only when alone).
    pub fn next_other(&mut self) -> usize {
        if self.n < 2 {
            return self.me;
        }
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let k = (self.state % (self.n as u64 - 1)) as usize;
        if k >= self.me {
            k + 1
        } else {
            k
        }
    }
}

/// The send schedule of member `me` of `n`: every `1 / rate` seconds from
/// `start` plus an offset spreading the members evenly over one period, so
/// that they do not all send at the same instant.
pub fn pacer(start: Instant, me: usize, n: usize, rate: u32) -> tokio::time::Interval {
    let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let offset = period.mul_f64(me as f64 / n.max(1) as f64);
    let mut i = tokio::time::interval_at((start + offset).into(), period);
    // A member that fell behind sends what it missed, so that the offered
    // load is the same for every system.
    i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    i
}

/// Ends a W6 run whose senders report how many messages each sent: the
/// first failure fails the run (`join_err` names a sender task that
/// panicked); else, once the receivers have drained what was sent (or
/// stalled), the run's figure. No acknowledgement is counted: the peers
/// that use this acknowledge nothing.
pub async fn finish_unacked(
    senders: Vec<tokio::task::JoinHandle<Result<u64, BenchError>>>,
    join_err: impl Fn(tokio::task::JoinError) -> BenchError,
    told: &Deliveries,
    (start, drain): (Instant, Duration),
    delivery: &SharedHist,
) -> Result<Figure, BenchError> {
    let members = senders.len() as u64;
    let mut sent = 0;
    let mut failure = None;
    for h in senders {
        match h.await {
            Ok(Ok(k)) => sent += k,
            Ok(Err(e)) => failure = failure.or(Some(e)),
            Err(e) => failure = failure.or(Some(join_err(e))),
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let received = told.drained(sent, drain).await;
    Ok(Figure::Many {
        members,
        sent,
        acked: None,
        received,
        elapsed: told.last_at().saturating_duration_since(start),
        delivery: delivery.snapshot(),
        ack: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_picker_never_picks_itself_and_reaches_everyone_else() {
        let mut p = Picker::new(3, 5);
        let mut seen = [0u32; 5];
        for _ in 0..1000 {
            seen[p.next_other()] += 1;
        }
        assert_eq!(seen[3], 0);
        assert!(seen.iter().enumerate().all(|(i, &c)| i == 3 || c > 100));
    }

    #[test]
    fn a_stamp_reads_back_as_an_age() {
        let s = Stamp::new(&Params::quick(4));
        let p = s.payload();
        assert_eq!(p.len(), MANY_PAYLOAD_MIN);
        assert!(s.age_us(&p).is_some_and(|us| us >= 1));
        assert_eq!(s.age_us(b"short"), None);
    }
}
