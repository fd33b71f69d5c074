//! Duplicate detection for the incoming stream: per sender incarnation, the
//! exact set of sequences seen within a window of [`SEQ_WINDOW`] below the
//! highest one, as a ring bitmap; anything older is a duplicate.
//!
//! Why a window and not "highest sequence seen": after a server restart a
//! resent anycast or group message can be routed to a receiver that never
//! got it but already got later messages of the same sender. "Highest
//! seen" would drop it and still acknowledge it, losing an acked message.
//! Why the window is safe: a sender never keeps an unconfirmed message more
//! than `SEQ_WINDOW` sequences older than its newest (the client refuses
//! new sends beyond that), so a resend is always inside the window.

use std::collections::BTreeMap;

use crate::frame::SEQ_WINDOW;

const WORDS: usize = (SEQ_WINDOW / 64) as usize;

/// Sequences seen from one sender incarnation.
#[derive(Debug)]
struct Seen {
    /// Highest sequence seen.
    top: u64,
    /// Bit `s % SEQ_WINDOW` is set when `s` in `(top - SEQ_WINDOW, top]`
    /// was seen.
    bits: Box<[u64; WORDS]>,
    /// Last use, for eviction.
    used: u64,
}

impl Seen {
    fn bit(seq: u64) -> (usize, u64) {
        let i = seq % SEQ_WINDOW;
        ((i / 64) as usize, 1u64 << (i % 64))
    }

    fn clear(&mut self, seq: u64) {
        let (w, b) = Self::bit(seq);
        self.bits[w] &= !b;
    }

    /// Records `seq`; false if it was seen (or is older than the window).
    fn admit(&mut self, seq: u64) -> bool {
        if seq > self.top {
            if seq - self.top >= SEQ_WINDOW {
                self.bits.fill(0);
            } else {
                for s in self.top + 1..=seq {
                    self.clear(s);
                }
            }
            self.top = seq;
        } else if self.top - seq >= SEQ_WINDOW {
            return false;
        }
        let (w, b) = Self::bit(seq);
        if self.bits[w] & b != 0 {
            return false;
        }
        self.bits[w] |= b;
        true
    }
}

/// Sequences seen per sender incarnation, for a bounded number of senders.
#[derive(Debug, Default)]
pub(crate) struct Dedup {
    seen: BTreeMap<u64, Seen>,
    stamp: u64,
    max: usize,
}

impl Dedup {
    pub(crate) fn new(max: usize) -> Dedup {
        Dedup {
            seen: BTreeMap::new(),
            stamp: 0,
            max: max.max(1),
        }
    }

    /// True when `(incarnation, seq)` is new (and records it).
    pub(crate) fn admit(&mut self, incarnation: u64, seq: u64) -> bool {
        self.stamp += 1;
        let stamp = self.stamp;
        if let Some(s) = self.seen.get_mut(&incarnation) {
            s.used = stamp;
            return s.admit(seq);
        }
        if self.seen.len() >= self.max {
            // Forget the sender not heard from for longest.
            if let Some(oldest) = self
                .seen
                .iter()
                .min_by_key(|(_, s)| s.used)
                .map(|(k, _)| *k)
            {
                self.seen.remove(&oldest);
            }
        }
        let mut s = Seen {
            top: seq,
            bits: Box::new([0; WORDS]),
            used: stamp,
        };
        s.admit(seq);
        self.seen.insert(incarnation, s);
        true
    }

    /// Forgets a sender that said goodbye (it can never send again).
    pub(crate) fn forget(&mut self, incarnation: u64) {
        self.seen.remove(&incarnation);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_duplicates_are_refused_late_originals_admitted() {
        let mut d = Dedup::new(8);
        assert!(d.admit(7, 1));
        assert!(d.admit(7, 3));
        assert!(!d.admit(7, 3));
        // 2 was never seen: a resend routed here after 3 is admitted.
        assert!(d.admit(7, 2));
        assert!(!d.admit(7, 2));
        assert!(d.admit(9, 1));
        assert!(d.admit(7, 4));
    }

    #[test]
    fn window_slides_and_old_sequences_are_duplicates() {
        let mut d = Dedup::new(8);
        assert!(d.admit(1, 10));
        assert!(d.admit(1, 10 + SEQ_WINDOW - 1));
        assert!(!d.admit(1, 10), "still in the window, seen");
        assert!(d.admit(1, 11), "in the window, unseen");
        assert!(d.admit(1, 10 + SEQ_WINDOW));
        assert!(!d.admit(1, 10), "fell out of the window");
        assert!(d.admit(1, 10 + 3 * SEQ_WINDOW));
        assert!(!d.admit(1, 10 + SEQ_WINDOW), "far behind the new top");
        assert!(d.admit(1, 10 + 3 * SEQ_WINDOW - 5));
    }

    #[test]
    fn table_is_bounded_and_evicts_least_recently_used() {
        let mut d = Dedup::new(2);
        assert!(d.admit(1, 1));
        assert!(d.admit(2, 1));
        assert!(!d.admit(1, 1)); // touches 1
        assert!(d.admit(3, 1)); // evicts 2
        assert_eq!(d.len(), 2);
        assert!(!d.admit(1, 1));
        assert!(d.admit(2, 1)); // forgotten, so admitted again
    }
}
