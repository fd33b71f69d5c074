//! Duplicate detection for the incoming stream: the highest sequence seen
//! per sender incarnation, with a bounded table.

use std::collections::BTreeMap;

/// Last sequence delivered per sender incarnation.
#[derive(Debug, Default)]
pub(crate) struct Dedup {
    /// incarnation -> (highest seq, last use stamp)
    seen: BTreeMap<u64, (u64, u64)>,
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

    /// True when `(incarnation, seq)` is new (and records it). Messages of
    /// one sender arrive in sequence order (FIFO), so anything at or below
    /// the highest sequence seen is a duplicate.
    pub(crate) fn admit(&mut self, incarnation: u64, seq: u64) -> bool {
        self.stamp += 1;
        let stamp = self.stamp;
        if let Some((last, used)) = self.seen.get_mut(&incarnation) {
            *used = stamp;
            if seq <= *last {
                return false;
            }
            *last = seq;
            return true;
        }
        if self.seen.len() >= self.max {
            // Forget the sender not heard from for longest.
            if let Some(oldest) = self
                .seen
                .iter()
                .min_by_key(|(_, (_, u))| *u)
                .map(|(k, _)| *k)
            {
                self.seen.remove(&oldest);
            }
        }
        self.seen.insert(incarnation, (seq, stamp));
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
    fn duplicates_and_old_sequences_are_refused() {
        let mut d = Dedup::new(8);
        assert!(d.admit(7, 1));
        assert!(d.admit(7, 3));
        assert!(!d.admit(7, 3));
        assert!(!d.admit(7, 2));
        assert!(d.admit(9, 1));
        assert!(d.admit(7, 4));
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
