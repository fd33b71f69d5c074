//! Requests waiting for their reply, with their deadlines.

use std::collections::{BTreeMap, BTreeSet};

use crate::time::Tick;

/// A request waiting for its reply.
#[derive(Debug, Clone, Copy)]
struct Pending {
    deadline: Tick,
    /// The addressed member, when known (member addresses).
    target: Option<u64>,
}

/// Open requests by id (the request's sequence).
#[derive(Debug, Default)]
pub(super) struct Requests {
    pending: BTreeMap<u64, Pending>,
    deadlines: BTreeSet<(Tick, u64)>,
}

impl Requests {
    pub(super) fn len(&self) -> usize {
        self.pending.len()
    }

    /// A request was sent.
    pub(super) fn insert(&mut self, id: u64, deadline: Tick, target: Option<u64>) {
        self.pending.insert(id, Pending { deadline, target });
        self.deadlines.insert((deadline, id));
    }

    /// Closes a request (reply, NACK, failure); false if it was not open.
    /// Its deadline entry is dropped lazily.
    pub(super) fn remove(&mut self, id: u64) -> bool {
        self.pending.remove(&id).is_some()
    }

    /// The next request whose deadline passed at `now`, closed.
    pub(super) fn pop_expired(&mut self, now: Tick) -> Option<u64> {
        while let Some(&(at, id)) = self.deadlines.first() {
            if at > now {
                return None;
            }
            self.deadlines.pop_first();
            if self.pending.get(&id).is_some_and(|p| p.deadline <= now) {
                self.pending.remove(&id);
                return Some(id);
            }
        }
        None
    }

    /// Closes every request addressed to `member_id` (it left the view),
    /// appending their ids to `out` in id order.
    pub(super) fn take_for_target(&mut self, member_id: u64, out: &mut Vec<u64>) {
        let start = out.len();
        out.extend(
            self.pending
                .iter()
                .filter(|(_, p)| p.target == Some(member_id))
                .map(|(id, _)| *id),
        );
        for id in &out[start..] {
            self.pending.remove(id);
        }
    }

    /// The earliest deadline.
    pub(super) fn next_deadline(&self) -> Option<Tick> {
        self.deadlines.first().map(|(t, _)| *t)
    }
}
