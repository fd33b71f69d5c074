//! The set of connections with something to transmit, served round robin
//! so that one busy connection cannot starve the others within a drain.

use std::collections::{BTreeSet, VecDeque};

use super::types::ConnId;

/// Connections ready to transmit, in arrival order, each at most once.
#[derive(Debug, Default)]
pub(crate) struct Ready {
    set: BTreeSet<ConnId>,
    order: VecDeque<ConnId>,
}

impl Ready {
    /// Marks a connection ready (no-op if it already is).
    pub(crate) fn insert(&mut self, conn: ConnId) {
        if self.set.insert(conn) {
            self.order.push_back(conn);
        }
    }

    /// Forgets a connection.
    pub(crate) fn remove(&mut self, conn: &ConnId) {
        // Lazily dropped from `order` by `pop`.
        self.set.remove(conn);
    }

    /// The next ready connection.
    pub(crate) fn pop(&mut self) -> Option<ConnId> {
        while let Some(c) = self.order.pop_front() {
            if self.set.remove(&c) {
                return Some(c);
            }
        }
        debug_assert!(self.set.is_empty());
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_without_duplicates() {
        let mut r = Ready::default();
        r.insert(ConnId(2));
        r.insert(ConnId(1));
        r.insert(ConnId(2));
        r.remove(&ConnId(1));
        r.insert(ConnId(3));
        assert_eq!(r.pop(), Some(ConnId(2)));
        r.insert(ConnId(2));
        assert_eq!(r.pop(), Some(ConnId(3)));
        assert_eq!(r.pop(), Some(ConnId(2)));
        assert_eq!(r.pop(), None);
    }
}
