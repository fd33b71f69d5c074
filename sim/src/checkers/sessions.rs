//! Shared indexes over a history used by several checkers: member sessions,
//! process names, sends, acks, nacks, deliveries and group membership, the
//! addressee rule, and a capped violation report.

use std::collections::BTreeSet;

use super::fast::HashMap;

use switchboard_core::frame::Address;

use crate::history::{Act, History, Ms, MsgId, Proc, ViewChange, Violation};

/// Most violations one checker reports in detail.
pub(crate) const MAX_VIOLATIONS: usize = 20;

/// Collects one checker's violations, keeping at most [`MAX_VIOLATIONS`]
/// in detail and summarising the rest in one extra line.
pub(crate) struct Report {
    name: &'static str,
    out: Vec<Violation>,
    suppressed: usize,
}

impl Report {
    /// An empty report for the checker `name`.
    pub(crate) fn new(name: &'static str) -> Self {
        Report {
            name,
            out: Vec::new(),
            suppressed: 0,
        }
    }

    /// Records one violation.
    pub(crate) fn add(&mut self, detail: String) {
        if self.out.len() < MAX_VIOLATIONS {
            self.out.push(Violation {
                guarantee: self.name,
                detail,
            });
        } else {
            self.suppressed += 1;
        }
    }

    /// The violations found, with a summary line when some were left out.
    pub(crate) fn finish(mut self) -> Vec<Violation> {
        if self.suppressed > 0 {
            self.out.push(Violation {
                guarantee: self.name,
                detail: format!("... and {} more violations not shown", self.suppressed),
            });
        }
        self.out
    }
}

/// Short form of a process: `p<slot>#<incarnation>`.
pub(crate) fn fp(p: Proc) -> String {
    format!("p{}#{}", p.slot, p.incarnation)
}

/// Short form of a message id: `<sender incarnation>:<seq>`.
pub(crate) fn fm(id: MsgId) -> String {
    format!("{}:{}", id.sender, id.seq)
}

/// One registration of a process in one server incarnation.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The process.
    pub(crate) proc: Proc,
    /// Server incarnation.
    pub(crate) server: u64,
    /// Member id given.
    pub(crate) member_id: u64,
    /// Stream position of the snapshot.
    pub(crate) position: u64,
    /// Entry index of the `Registered` act.
    pub(crate) start_idx: usize,
    /// Time of the `Registered` act.
    pub(crate) start_at: Ms,
    /// Entry index of the act that ended it, if any.
    pub(crate) end_idx: Option<usize>,
}

/// All sessions of a history, with their ends, indexed.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    /// Sessions in `Registered` order.
    pub(crate) all: Vec<Session>,
    by_proc: HashMap<Proc, Vec<usize>>,
    by_proc_server: HashMap<(Proc, u64), Vec<usize>>,
    by_member: HashMap<(u64, u64), Vec<usize>>,
    by_server: HashMap<u64, Vec<usize>>,
}

impl Sessions {
    /// Builds the session index. A session ends at the first later
    /// `ServerRemoved` of its (server, member id), `ServerCrashed` of its
    /// server, `Crashed`/`Goodbye` of its process, or later `Registered` of
    /// its process. A registration recorded after some member already saw
    /// that member id leave or fail at a position past the registration's
    /// own (its process read its `Welcome` late, after the server had
    /// removed the session) ends where it starts: that session was over
    /// before its application knew it had begun.
    pub(crate) fn build(h: &History) -> Self {
        let mut b = SessionBuilder::default();
        // Per (server, member id), the highest position at which a member
        // was seen to leave or fail so far.
        let mut removed_at: HashMap<(u64, u64), u64> = HashMap::default();
        for (idx, e) in h.entries.iter().enumerate() {
            match &e.act {
                Act::ViewEvent {
                    server,
                    gseq,
                    change: ViewChange::Left(id) | ViewChange::Failed(id, _),
                    ..
                } => {
                    let g = removed_at.entry((*server, *id)).or_default();
                    *g = (*g).max(*gseq);
                }
                Act::Registered {
                    proc,
                    server,
                    member_id,
                    position,
                    ..
                } => {
                    if let Some(&old) = b.open_by_proc.get(proc) {
                        b.end(old, idx);
                    }
                    let s = &mut b.s;
                    let sid = s.all.len();
                    s.all.push(Session {
                        proc: *proc,
                        server: *server,
                        member_id: *member_id,
                        position: *position,
                        start_idx: idx,
                        start_at: e.at,
                        end_idx: None,
                    });
                    s.by_proc.entry(*proc).or_default().push(sid);
                    s.by_proc_server
                        .entry((*proc, *server))
                        .or_default()
                        .push(sid);
                    s.by_member
                        .entry((*server, *member_id))
                        .or_default()
                        .push(sid);
                    s.by_server.entry(*server).or_default().push(sid);
                    b.open_by_proc.insert(*proc, sid);
                    b.open_by_member.insert((*server, *member_id), sid);
                    b.open_by_server.entry(*server).or_default().insert(sid);
                    if removed_at
                        .get(&(*server, *member_id))
                        .is_some_and(|&g| g > *position)
                    {
                        b.end(sid, idx);
                    }
                }
                Act::ServerRemoved {
                    server, member_id, ..
                } => {
                    if let Some(&sid) = b.open_by_member.get(&(*server, *member_id)) {
                        b.end(sid, idx);
                    }
                }
                Act::ServerCrashed { server } => {
                    let sids: Vec<usize> = b
                        .open_by_server
                        .get(server)
                        .map(|set| set.iter().copied().collect())
                        .unwrap_or_default();
                    for sid in sids {
                        b.end(sid, idx);
                    }
                }
                Act::Crashed { proc } | Act::Goodbye { proc } => {
                    if let Some(&sid) = b.open_by_proc.get(proc) {
                        b.end(sid, idx);
                    }
                }
                _ => {}
            }
        }
        b.s
    }

    /// Id of the process's most recent session registered strictly before
    /// entry `idx`, in any server.
    pub(crate) fn latest_before(&self, proc: Proc, idx: usize) -> Option<usize> {
        let v = self.by_proc.get(&proc)?;
        let n = v.partition_point(|&sid| self.all[sid].start_idx < idx);
        n.checked_sub(1).map(|i| v[i])
    }

    /// Id of the process's most recent session in `server` registered
    /// strictly before entry `idx`.
    pub(crate) fn latest_in_server_before(
        &self,
        proc: Proc,
        server: u64,
        idx: usize,
    ) -> Option<usize> {
        let v = self.by_proc_server.get(&(proc, server))?;
        let n = v.partition_point(|&sid| self.all[sid].start_idx < idx);
        n.checked_sub(1).map(|i| v[i])
    }

    /// Sessions that had `member_id` in `server`.
    pub(crate) fn with_member(
        &self,
        server: u64,
        member_id: u64,
    ) -> impl Iterator<Item = &Session> + '_ {
        self.by_member
            .get(&(server, member_id))
            .into_iter()
            .flatten()
            .map(|&sid| &self.all[sid])
    }

    /// Ids of all sessions in `server`, in registration order.
    pub(crate) fn in_server(&self, server: u64) -> &[usize] {
        self.by_server
            .get(&server)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Sessions in `server` that started before `t` and never ended.
    /// Strictly before: times are in ms, and a registration in the same
    /// millisecond as a send may have been processed after it.
    pub(crate) fn never_ended_since(
        &self,
        server: u64,
        t: Ms,
    ) -> impl Iterator<Item = &Session> + '_ {
        self.in_server(server)
            .iter()
            .map(|&sid| &self.all[sid])
            .filter(move |s| s.end_idx.is_none() && s.start_at < t)
    }
}

/// A `Sent` act, unpacked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SentInfo<'h> {
    /// Entry index.
    pub(crate) idx: usize,
    /// Time.
    pub(crate) at: Ms,
    /// Sender.
    pub(crate) proc: Proc,
    /// Message id.
    pub(crate) id: MsgId,
    /// Address.
    pub(crate) to: &'h Address,
    /// Payload tag.
    pub(crate) tag: u64,
    /// Confirmation asked.
    pub(crate) confirm: bool,
    /// Request.
    pub(crate) request: bool,
    /// Payload length.
    pub(crate) bytes: u32,
}

/// A `Delivered` act, unpacked (the fields checkers need).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeliveredInfo {
    /// Entry index.
    pub(crate) idx: usize,
    /// Receiver.
    pub(crate) proc: Proc,
    /// Server incarnation.
    pub(crate) server: u64,
}

/// Sessions being built, with the ones still open.
#[derive(Default)]
struct SessionBuilder {
    s: Sessions,
    open_by_proc: HashMap<Proc, usize>,
    open_by_member: HashMap<(u64, u64), usize>,
    open_by_server: HashMap<u64, BTreeSet<usize>>,
}

impl SessionBuilder {
    /// Ends session `sid` at entry `idx`.
    fn end(&mut self, sid: usize, idx: usize) {
        let ses = &mut self.s.all[sid];
        if ses.end_idx.is_none() {
            ses.end_idx = Some(idx);
        }
        if self.open_by_proc.get(&ses.proc) == Some(&sid) {
            self.open_by_proc.remove(&ses.proc);
        }
        if self.open_by_member.get(&(ses.server, ses.member_id)) == Some(&sid) {
            self.open_by_member.remove(&(ses.server, ses.member_id));
        }
        if let Some(set) = self.open_by_server.get_mut(&ses.server) {
            set.remove(&sid);
        }
    }
}

/// A group operation: entry index, join (true) or leave, seq.
type GroupOp = (usize, bool, u64);

/// Facts about sends, acks, deliveries, names and groups.
#[derive(Debug, Default)]
pub(crate) struct Facts<'h> {
    /// `Started` names: instance, process.
    pub(crate) names: HashMap<Proc, (&'h str, &'h str)>,
    /// Every `Sent`, in order.
    pub(crate) sents: Vec<SentInfo<'h>>,
    /// First `Sent` of each message id (index into `sents`).
    pub(crate) sent_by_id: HashMap<MsgId, usize>,
    /// First `Sent` of each (sender, seq) (index into `sents`).
    pub(crate) sent_by_seq: HashMap<(Proc, u64), usize>,
    /// Entry indices of `Acked` per (sender, seq).
    pub(crate) acks: HashMap<(Proc, u64), Vec<usize>>,
    /// Entry indices of `Nacked` per (sender, seq).
    pub(crate) nacks: HashMap<(Proc, u64), Vec<usize>>,
    /// `Delivered` acts per message id.
    pub(crate) delivered: HashMap<MsgId, Vec<DeliveredInfo>>,
    /// Group operations per (process, group): (entry index, join, seq).
    groups: HashMap<(Proc, &'h str), Vec<GroupOp>>,
}

impl<'h> Facts<'h> {
    /// Builds the indexes.
    pub(crate) fn build(h: &'h History) -> Self {
        let mut f = Facts::default();
        for (idx, e) in h.entries.iter().enumerate() {
            match &e.act {
                Act::Started {
                    proc,
                    instance,
                    process,
                } => {
                    f.names.insert(*proc, (instance.as_str(), process.as_str()));
                }
                Act::Sent {
                    proc,
                    id,
                    to,
                    tag,
                    confirm,
                    request,
                    bytes,
                } => {
                    let n = f.sents.len();
                    f.sents.push(SentInfo {
                        idx,
                        at: e.at,
                        proc: *proc,
                        id: *id,
                        to,
                        tag: *tag,
                        confirm: *confirm,
                        request: *request,
                        bytes: *bytes,
                    });
                    f.sent_by_id.entry(*id).or_insert(n);
                    f.sent_by_seq.entry((*proc, id.seq)).or_insert(n);
                }
                Act::Acked { proc, seq } => f.acks.entry((*proc, *seq)).or_default().push(idx),
                Act::Nacked { proc, seq, .. } => {
                    f.nacks.entry((*proc, *seq)).or_default().push(idx)
                }
                Act::Delivered {
                    proc, server, id, ..
                } => f.delivered.entry(*id).or_default().push(DeliveredInfo {
                    idx,
                    proc: *proc,
                    server: *server,
                }),
                Act::GroupOp {
                    proc,
                    group,
                    join,
                    seq,
                } => f
                    .groups
                    .entry((*proc, group.as_str()))
                    .or_default()
                    .push((idx, *join, *seq)),
                _ => {}
            }
        }
        f
    }

    /// The `Sent` of a message id, if any.
    pub(crate) fn sent(&self, id: MsgId) -> Option<&SentInfo<'h>> {
        self.sent_by_id.get(&id).map(|&i| &self.sents[i])
    }

    /// Whether `r` has a `Delivered` of `id`.
    pub(crate) fn was_delivered_to(&self, id: MsgId, r: Proc) -> bool {
        self.delivered
            .get(&id)
            .is_some_and(|v| v.iter().any(|d| d.proc == r))
    }

    /// Whether `r` issued a `GroupOp` join of `group` before entry `idx`.
    pub(crate) fn joined_before(&self, r: Proc, group: &str, idx: usize) -> bool {
        self.groups
            .get(&(r, group))
            .is_some_and(|ops| ops.iter().any(|&(i, join, _)| join && i < idx))
    }

    /// Whether `r` counts as a member of `group` for a message sent at
    /// `sent_at`: it has a join whose seq was acked at or before `sent_at`
    /// and no leave of the group after that join.
    pub(crate) fn in_group_at(&self, h: &History, r: Proc, group: &str, sent_at: Ms) -> bool {
        let Some(ops) = self.groups.get(&(r, group)) else {
            return false;
        };
        let after_last_leave = ops
            .iter()
            .rposition(|&(_, join, _)| !join)
            .map_or(0, |p| p + 1);
        ops[after_last_leave..].iter().any(|&(_, _, seq)| {
            self.acks
                .get(&(r, seq))
                .is_some_and(|acks| acks.iter().any(|&a| h.entries[a].at < sent_at))
        })
    }

    /// Whether `r` was in `group` throughout session `ses` from before `t`
    /// until entry `until_idx`: a join of the group that the server
    /// confirmed (`Acked`) during the session and strictly before `t`, and
    /// no leave of the group issued after that join and before `until_idx`.
    pub(crate) fn in_group_in_session(
        &self,
        h: &History,
        r: Proc,
        group: &str,
        ses: &Session,
        t: Ms,
        until_idx: usize,
    ) -> bool {
        let Some(ops) = self.groups.get(&(r, group)) else {
            return false;
        };
        ops.iter().enumerate().any(|(n, &(_, join, seq))| {
            join && self.acks.get(&(r, seq)).is_some_and(|acks| {
                acks.iter().any(|&a| {
                    let at = h.entries[a].at;
                    a > ses.start_idx && at < t
                })
            }) && !ops[n + 1..]
                .iter()
                .any(|&(i, join, _)| !join && i < until_idx)
        })
    }

    /// Whether `r` had left `group` for a message sent at `t` and delivered
    /// at entry `idx`: a leave the server confirmed (`Acked`) strictly
    /// before `t`, and no join of the group issued after that leave and
    /// before `idx`.
    pub(crate) fn left_group_before(
        &self,
        h: &History,
        r: Proc,
        group: &str,
        t: Ms,
        idx: usize,
    ) -> bool {
        let Some(ops) = self.groups.get(&(r, group)) else {
            return false;
        };
        ops.iter().enumerate().any(|(n, &(_, join, seq))| {
            !join
                && self
                    .acks
                    .get(&(r, seq))
                    .is_some_and(|acks| acks.iter().any(|&a| h.entries[a].at < t))
                && !ops[n + 1..].iter().any(|&(i, join, _)| join && i < idx)
        })
    }

    /// A session that makes a destination NACK (`UnknownDestination`,
    /// `DestinationGone`) of `sent`, given by `server` at entry `nack_idx`,
    /// wrong: a process other than the sender (any process for a member
    /// address) that matches the address, registered in `server` strictly
    /// before the send and still in session at the NACK (for a group or
    /// anycast address: in the group throughout, see
    /// [`Facts::in_group_in_session`]).
    pub(crate) fn live_addressee_at_nack<'s>(
        &self,
        h: &History,
        sessions: &'s Sessions,
        sent: &SentInfo<'h>,
        server: u64,
        nack_idx: usize,
    ) -> Option<&'s Session> {
        let live =
            |s: &&Session| s.start_at < sent.at && s.end_idx.is_none_or(|end| end > nack_idx);
        if let Address::MemberId(x) = sent.to {
            return sessions.with_member(server, *x).find(live);
        }
        sessions
            .in_server(server)
            .iter()
            .map(|&sid| &sessions.all[sid])
            .filter(live)
            .find(|s| {
                let names = self.names.get(&s.proc);
                let other = s.proc != sent.proc;
                match sent.to {
                    Address::MemberId(_) => false,
                    Address::Member { instance, process } => {
                        names.is_some_and(|&(i, p)| i == instance && p == process)
                    }
                    Address::Instance(i) => other && names.is_some_and(|&(ri, _)| ri == i),
                    Address::Broadcast => other,
                    Address::Group(g) | Address::Anycast(g) => {
                        other && self.in_group_in_session(h, s.proc, g, s, sent.at, nack_idx)
                    }
                }
            })
    }

    /// The addressee rule for a message to `to` from `sender`, sent at
    /// `sent_at`, and a candidate `r` with member id `r_member`. `None` for
    /// anycast (one addressee, not checked).
    pub(crate) fn is_addressee(
        &self,
        h: &History,
        to: &Address,
        sender: Proc,
        sent_at: Ms,
        r: Proc,
        r_member: u64,
    ) -> Option<bool> {
        Some(match to {
            Address::MemberId(x) => r_member == *x,
            Address::Member { instance, process } => self
                .names
                .get(&r)
                .is_some_and(|&(i, p)| i == instance && p == process),
            Address::Instance(i) => {
                r != sender && self.names.get(&r).is_some_and(|&(ri, _)| ri == i)
            }
            Address::Broadcast => r != sender,
            Address::Group(g) => r != sender && self.in_group_at(h, r, g, sent_at),
            Address::Anycast(_) => return None,
        })
    }
}
