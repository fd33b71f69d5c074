//! The server's own log of registrations, group changes and removals
//! (`ServerJoined`, `ServerGroup`, `ServerRemoved`), replayed: which member
//! ids, names, instances and groups a server run held at each point of the
//! history, and which member ids it still remembered as removed. G8 judges
//! the reason of a destination NACK against it.

use std::collections::BTreeSet;

use switchboard_core::frame::{Address, NackReason};

use super::fast::HashMap;
use crate::history::{Act, History};

/// How many removed member ids a server run remembers (the core's
/// `DEPARTED_MAX`, PROTOCOL's "last 4,096 removed"): an id is forgotten
/// only once this many later removals pushed it out, and sooner never.
pub(crate) const DEPARTED_MAX: u64 = 4_096;

/// Bit of [`NackReason::UnknownDestination`] in a set of reasons.
pub(crate) const UNKNOWN: u8 = 1;
/// Bit of [`NackReason::DestinationGone`] in a set of reasons.
pub(crate) const GONE: u8 = 2;

/// The bit of a destination NACK reason; 0 for any other reason.
pub(crate) fn reason_bit(reason: NackReason) -> u8 {
    match reason {
        NackReason::UnknownDestination => UNKNOWN,
        NackReason::DestinationGone => GONE,
        _ => 0,
    }
}

/// One server run's registrations, as its log tells them.
#[derive(Debug, Default)]
pub(crate) struct ServerState {
    /// Registered member ids with their (instance, process).
    live: HashMap<u64, (String, String)>,
    /// Registered member id per (instance, process).
    by_name: HashMap<(String, String), u64>,
    /// Registered member ids per instance (an instance without members is
    /// forgotten, as in the core).
    instances: HashMap<String, BTreeSet<u64>>,
    /// Member ids per group (a group without members is forgotten, as in
    /// the core).
    groups: HashMap<String, BTreeSet<u64>>,
    /// Removed member ids not registered again, with the count of
    /// removals in this run when they were removed.
    departed: HashMap<u64, u64>,
    /// Removals in this run so far.
    removals: u64,
}

impl ServerState {
    /// Applies a logged registration (its groups follow as
    /// [`ServerState::group`] changes).
    pub(crate) fn joined(&mut self, member_id: u64, instance: &str, process: &str) {
        self.departed.remove(&member_id);
        self.leave_all(member_id);
        self.live
            .insert(member_id, (instance.to_owned(), process.to_owned()));
        self.by_name
            .insert((instance.to_owned(), process.to_owned()), member_id);
        self.instances
            .entry(instance.to_owned())
            .or_default()
            .insert(member_id);
    }

    /// Applies a logged group change.
    pub(crate) fn group(&mut self, member_id: u64, group: &str, joined: bool) {
        if joined {
            self.groups
                .entry(group.to_owned())
                .or_default()
                .insert(member_id);
        } else if let Some(set) = self.groups.get_mut(group) {
            set.remove(&member_id);
            if set.is_empty() {
                self.groups.remove(group);
            }
        }
    }

    /// Takes a member out of every group.
    fn leave_all(&mut self, member_id: u64) {
        self.groups.retain(|_, set| {
            set.remove(&member_id);
            !set.is_empty()
        });
    }

    /// Applies a logged removal.
    pub(crate) fn removed(&mut self, member_id: u64) {
        self.removals += 1;
        self.leave_all(member_id);
        self.departed.insert(member_id, self.removals);
        let Some(name) = self.live.remove(&member_id) else {
            return;
        };
        if self.by_name.get(&name) == Some(&member_id) {
            self.by_name.remove(&name);
        }
        if let Some(set) = self.instances.get_mut(&name.0) {
            set.remove(&member_id);
            if set.is_empty() {
                self.instances.remove(&name.0);
            }
        }
    }

    /// The destination NACK reasons (`UNKNOWN`, `GONE` bits) the server
    /// could give now for a message from member `sender` to `to`, by the
    /// protocol's resolution rules (PROTOCOL, addressing): 0 when the
    /// address resolves (no NACK is possible; a broadcast always
    /// resolves, to zero addressees if need be).
    pub(crate) fn possible(&self, sender: u64, to: &Address) -> u8 {
        match to {
            Address::MemberId(x) => {
                if self.live.contains_key(x) {
                    0
                } else if let Some(&at) = self.departed.get(x) {
                    // Later removals may have pushed it out of memory.
                    if self.removals - at < DEPARTED_MAX {
                        GONE
                    } else {
                        GONE | UNKNOWN
                    }
                } else {
                    UNKNOWN
                }
            }
            Address::Member { instance, process } => {
                if self
                    .by_name
                    .contains_key(&(instance.clone(), process.clone()))
                {
                    0
                } else if self.instances.contains_key(instance) {
                    GONE
                } else {
                    UNKNOWN
                }
            }
            Address::Instance(i) => only_sender(self.instances.get(i), sender),
            // An anycast picks one member of the group; it fails exactly
            // when a group message would.
            Address::Group(g) | Address::Anycast(g) => only_sender(self.groups.get(g), sender),
            Address::Broadcast => 0,
        }
    }
}

/// The reasons for an instance or group address with these members:
/// unknown when it has none, gone when the sender is its only member.
fn only_sender(members: Option<&BTreeSet<u64>>, sender: u64) -> u8 {
    match members {
        None => UNKNOWN,
        Some(set) if set.len() == 1 && set.contains(&sender) => GONE,
        Some(_) => 0,
    }
}

/// A destination NACK to judge: the server run that gave it and the span
/// of the history within which it resolved the message.
#[derive(Debug, Clone)]
pub(crate) struct Query<'h> {
    /// Server run.
    pub(crate) server: u64,
    /// The sender's member id there.
    pub(crate) sender: u64,
    /// The address.
    pub(crate) to: &'h Address,
    /// First entry index at which the server may have resolved it (its
    /// send, or the run's start if later).
    pub(crate) from_idx: usize,
    /// Entry index of the NACK (it resolved it before).
    pub(crate) nack_idx: usize,
}

/// Servers whose registrations are logged (`ServerJoined`): only their
/// NACK reasons can be judged.
pub(crate) fn logged_servers(h: &History) -> BTreeSet<u64> {
    h.iter()
        .filter_map(|e| match e.act {
            Act::ServerJoined { server, .. } => Some(server),
            _ => None,
        })
        .collect()
}

/// For each query, the reasons the server could have given at some point
/// between its `from_idx` and its NACK (the union of [`ServerState::possible`]
/// over every state of its server in that span).
pub(crate) fn possible_reasons(h: &History, queries: &[Query<'_>]) -> Vec<u8> {
    let mut out = vec![0u8; queries.len()];
    let mut order: Vec<usize> = (0..queries.len()).collect();
    order.sort_by_key(|&q| queries[q].from_idx);
    let mut next = 0;
    let mut active: HashMap<u64, Vec<usize>> = HashMap::default();
    let mut states: HashMap<u64, ServerState> = HashMap::default();
    for (idx, e) in h.entries.iter().enumerate() {
        // Queries whose span starts here see the state before this act.
        while next < order.len() && queries[order[next]].from_idx <= idx {
            let q = order[next];
            next += 1;
            let query = &queries[q];
            if query.nack_idx <= idx {
                continue;
            }
            let state = states.entry(query.server).or_default();
            out[q] |= state.possible(query.sender, query.to);
            active.entry(query.server).or_default().push(q);
        }
        let changed = match &e.act {
            Act::ServerJoined {
                server,
                member_id,
                instance,
                process,
                ..
            } => {
                states
                    .entry(*server)
                    .or_default()
                    .joined(*member_id, instance, process);
                Some(*server)
            }
            Act::ServerRemoved {
                server, member_id, ..
            } => {
                states.entry(*server).or_default().removed(*member_id);
                Some(*server)
            }
            Act::ServerGroup {
                server,
                member_id,
                group,
                joined,
                ..
            } => {
                states
                    .entry(*server)
                    .or_default()
                    .group(*member_id, group, *joined);
                Some(*server)
            }
            _ => None,
        };
        if let Some(server) = changed {
            if let Some(list) = active.get_mut(&server) {
                list.retain(|&q| queries[q].nack_idx > idx);
                let state = &states[&server];
                for &q in list.iter() {
                    out[q] |= state.possible(queries[q].sender, queries[q].to);
                }
            }
        }
    }
    out
}

/// One member's changes in one group, in stream order: `(gseq, member
/// after it)`.
type Changes = Vec<(u64, bool)>;

/// Group membership by stream position, per server run, from the server's
/// log (`ServerJoined`, `ServerGroup`): whether a member was in a group
/// when its server sequenced a given position. G1 judges group and anycast
/// deliveries against it.
#[derive(Debug, Default)]
pub(crate) struct GroupTimeline {
    /// Per (server, member id), per group: its changes.
    changes: HashMap<(u64, u64), HashMap<String, Changes>>,
    /// Servers whose registrations are logged.
    logged: BTreeSet<u64>,
}

impl GroupTimeline {
    /// Replays the log.
    pub(crate) fn build(h: &History) -> Self {
        let mut t = GroupTimeline::default();
        for e in h.iter() {
            match &e.act {
                Act::ServerJoined {
                    server,
                    gseq,
                    member_id,
                    ..
                } => {
                    t.logged.insert(*server);
                    // A registration starts from the groups it lists (its
                    // `ServerGroup` acts follow at the same position).
                    if let Some(groups) = t.changes.get_mut(&(*server, *member_id)) {
                        for list in groups.values_mut() {
                            if list.last().is_some_and(|&(_, member)| member) {
                                list.push((*gseq, false));
                            }
                        }
                    }
                }
                Act::ServerGroup {
                    server,
                    gseq,
                    member_id,
                    group,
                    joined,
                } => {
                    let list = t
                        .changes
                        .entry((*server, *member_id))
                        .or_default()
                        .entry(group.clone())
                        .or_default();
                    debug_assert!(list.last().is_none_or(|&(at, _)| at <= *gseq));
                    list.push((*gseq, *joined));
                }
                _ => {}
            }
        }
        t
    }

    /// Whether `member_id` was in `group` when `server` sequenced position
    /// `gseq` (the last change before it); `None` when that server's log is
    /// not recorded.
    pub(crate) fn member_at(
        &self,
        server: u64,
        member_id: u64,
        group: &str,
        gseq: u64,
    ) -> Option<bool> {
        if !self.logged.contains(&server) {
            return None;
        }
        let list = self
            .changes
            .get(&(server, member_id))
            .and_then(|groups| groups.get(group));
        Some(list.is_some_and(|list| {
            list.iter()
                .rev()
                .find(|&&(at, _)| at < gseq)
                .is_some_and(|&(_, member)| member)
        }))
    }
}
