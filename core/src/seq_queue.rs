//! [`SeqQueue`]: a map from increasing sequence numbers to values, for the
//! tables whose keys only ever grow and that are mostly emptied from the
//! front (a client's outbox, the server's in-flight messages).
//!
//! A `VecDeque` of `(key, Option<value>)` in key order: appending is O(1),
//! finding a key is a binary search, removing leaves a tombstone that is
//! popped once it reaches the front. A `BTreeMap` with values of a few
//! hundred bytes spends most of its time moving them inside its nodes when
//! the front is removed; this moves nothing. Tombstones are bounded: when
//! they outnumber the live entries (plus a small floor) the queue is
//! compacted, so memory stays within a constant factor of the live
//! entries even when an old entry lives long.

use std::collections::VecDeque;

/// Below this many tombstones the queue is never compacted.
const COMPACT_FLOOR: usize = 64;

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct SeqQueue<T> {
    slots: VecDeque<(u64, Option<T>)>,
    live: usize,
}

impl<T> Default for SeqQueue<T> {
    fn default() -> Self {
        SeqQueue {
            slots: VecDeque::new(),
            live: 0,
        }
    }
}

impl<T> SeqQueue<T> {
    /// Live entries.
    pub fn len(&self) -> usize {
        self.live
    }

    /// True when no entry is live.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Appends `value` under `key`, which must be above every key ever
    /// pushed that is still in the queue (debug-asserted; a smaller key is
    /// refused and returns the value back).
    pub fn push(&mut self, key: u64, value: T) -> Result<(), T> {
        if self.slots.back().is_some_and(|(k, _)| *k >= key) {
            debug_assert!(false, "SeqQueue keys must increase: {key}");
            return Err(value);
        }
        self.slots.push_back((key, Some(value)));
        self.live += 1;
        Ok(())
    }

    /// The slot of `key`. Keys strictly increase, so `key` sits at most
    /// `key - first` slots from the front, and exactly there while no key
    /// in between was skipped or compacted away: the common case (dense
    /// sequence numbers) is one comparison, the rest a binary search of
    /// the slots before that bound.
    fn index(&self, key: u64) -> Option<usize> {
        let first = self.slots.front()?.0;
        let bound = usize::try_from(key.checked_sub(first)?).unwrap_or(usize::MAX);
        match self.slots.get(bound) {
            Some((k, _)) if *k == key => return Some(bound),
            _ => {}
        }
        let (mut lo, mut hi) = (0, bound.min(self.slots.len()));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let k = self.slots[mid].0;
            if k == key {
                return Some(mid);
            }
            if k < key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        None
    }

    /// The value under `key`.
    pub fn get(&self, key: u64) -> Option<&T> {
        self.slots[self.index(key)?].1.as_ref()
    }

    /// The value under `key`, mutable.
    pub fn get_mut(&mut self, key: u64) -> Option<&mut T> {
        let i = self.index(key)?;
        self.slots[i].1.as_mut()
    }

    /// Removes and returns the value under `key`.
    pub fn remove(&mut self, key: u64) -> Option<T> {
        let i = self.index(key)?;
        let v = self.slots[i].1.take()?;
        self.live -= 1;
        self.trim();
        Some(v)
    }

    /// The smallest live key.
    pub fn first_key(&self) -> Option<u64> {
        // The front is never a tombstone (see `trim`).
        self.slots.front().map(|(k, _)| *k)
    }

    /// Live entries with keys in `from..=through`, in key order.
    pub fn range_mut(
        &mut self,
        from: u64,
        through: u64,
    ) -> impl Iterator<Item = (u64, &mut T)> + '_ {
        let start = self.slots.partition_point(|(k, _)| *k < from);
        self.slots
            .range_mut(start..)
            .take_while(move |(k, _)| *k <= through)
            .filter_map(|(k, v)| v.as_mut().map(|v| (*k, v)))
    }

    /// Live entries with keys above `after`, in key order.
    pub fn after(&self, after: u64) -> impl Iterator<Item = (u64, &T)> + '_ {
        let start = self.slots.partition_point(|(k, _)| *k <= after);
        self.slots
            .range(start..)
            .filter_map(|(k, v)| v.as_ref().map(|v| (*k, v)))
    }

    /// Every live value, mutable, in key order.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut T> + '_ {
        self.slots.iter_mut().filter_map(|(_, v)| v.as_mut())
    }

    /// Removes the live entries with keys at most `through` for which
    /// `pred` holds; returns them in key order through `out`.
    pub fn remove_through_if(
        &mut self,
        through: u64,
        mut pred: impl FnMut(&T) -> bool,
        mut out: impl FnMut(u64, T),
    ) {
        for (k, slot) in self.slots.iter_mut() {
            if *k > through {
                break;
            }
            if slot.as_ref().is_some_and(&mut pred) {
                if let Some(v) = slot.take() {
                    self.live -= 1;
                    out(*k, v);
                }
            }
        }
        self.trim();
    }

    /// Pops tombstones off the front; compacts when tombstones dominate.
    fn trim(&mut self) {
        while self.slots.front().is_some_and(|(_, v)| v.is_none()) {
            self.slots.pop_front();
        }
        let dead = self.slots.len() - self.live;
        if dead > COMPACT_FLOOR && dead > self.live {
            self.slots.retain(|(_, v)| v.is_some());
        }
        if self.slots.is_empty() && self.slots.capacity() > 4 * COMPACT_FLOOR {
            self.slots = VecDeque::new();
        }
        debug_assert!(self.slots.front().is_none_or(|(_, v)| v.is_some()));
        debug_assert!(self.live <= self.slots.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone)]
    enum Op {
        Push(u8),
        Remove(u16),
        RangeFlip(u16, u16),
        RemoveThroughEven(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1..4u8).prop_map(Op::Push),
            3 => any::<u16>().prop_map(Op::Remove),
            1 => (any::<u16>(), any::<u16>()).prop_map(|(a, b)| Op::RangeFlip(a, b)),
            1 => any::<u16>().prop_map(Op::RemoveThroughEven),
        ]
    }

    proptest! {
        /// Every operation agrees with a `BTreeMap`, and the slots never
        /// exceed twice the live entries plus the floor.
        #[test]
        fn behaves_like_a_btree_map(ops in prop::collection::vec(op(), 1..400)) {
            let mut q: SeqQueue<u64> = SeqQueue::default();
            let mut m: BTreeMap<u64, u64> = BTreeMap::new();
            let mut next = 1u64;
            for o in ops {
                match o {
                    Op::Push(gap) => {
                        next += u64::from(gap);
                        prop_assert!(q.push(next, next * 10).is_ok());
                        m.insert(next, next * 10);
                    }
                    Op::Remove(k) => {
                        let k = u64::from(k) % (next + 1);
                        prop_assert_eq!(q.remove(k), m.remove(&k));
                    }
                    Op::RangeFlip(a, b) => {
                        let (a, b) = (u64::from(a) % (next + 1), u64::from(b) % (next + 1));
                        let got: Vec<u64> = q.range_mut(a, b).map(|(k, v)| { *v += 1; k }).collect();
                        let want: Vec<u64> = if a <= b {
                            m.range_mut(a..=b).map(|(k, v)| { *v += 1; *k }).collect()
                        } else {
                            Vec::new()
                        };
                        prop_assert_eq!(got, want);
                    }
                    Op::RemoveThroughEven(t) => {
                        let t = u64::from(t) % (next + 1);
                        let mut got = Vec::new();
                        q.remove_through_if(t, |v| v % 2 == 0, |k, _| got.push(k));
                        let want: Vec<u64> = m.range(..=t).filter(|(_, v)| *v % 2 == 0).map(|(k, _)| *k).collect();
                        for k in &want {
                            m.remove(k);
                        }
                        prop_assert_eq!(got, want);
                    }
                }
                prop_assert_eq!(q.len(), m.len());
                prop_assert_eq!(q.first_key(), m.keys().next().copied());
                let all: Vec<(u64, u64)> = q.after(0).map(|(k, v)| (k, *v)).collect();
                let want: Vec<(u64, u64)> = m.iter().map(|(k, v)| (*k, *v)).collect();
                prop_assert_eq!(all, want);
                prop_assert!(q.slots.len() <= 2 * q.len() + COMPACT_FLOOR + 1);
                for (k, v) in &m {
                    prop_assert_eq!(q.get(*k), Some(v));
                }
            }
        }
    }

    /// Release builds refuse a key that does not increase; debug builds
    /// stop at the assertion.
    #[test]
    #[cfg_attr(debug_assertions, should_panic(expected = "keys must increase"))]
    fn a_smaller_key_is_refused() {
        let mut q = SeqQueue::default();
        assert!(q.push(5, 'a').is_ok());
        assert_eq!(q.push(5, 'b'), Err('b'));
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn an_old_entry_does_not_keep_the_tombstones_of_later_ones() {
        let mut q = SeqQueue::default();
        assert!(q.push(1, 0u32).is_ok());
        for k in 2..10_000u64 {
            assert!(q.push(k, 0).is_ok());
            q.remove(k);
        }
        assert_eq!(q.len(), 1);
        assert!(q.slots.len() <= 2 + COMPACT_FLOOR);
    }
}
