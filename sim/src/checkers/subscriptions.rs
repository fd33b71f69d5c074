//! Shared index of subscriptions and published events: what each process
//! subscribed to, when the server had each subscription and
//! unsubscription (`Acked`), and what each published event was.

use super::fast::HashMap;

use switchboard_core::frame::EventKind;

use crate::history::{Act, History, Ms, MsgId, Proc, SubFilter};

/// One subscription of a process, with what became of it.
#[derive(Debug, Clone)]
pub(crate) struct Sub<'h> {
    /// Entry index of the `Subscribed` act.
    pub(crate) idx: usize,
    /// Sequence of the `Subscribe`.
    pub(crate) seq: u64,
    /// What it selects.
    pub(crate) filter: &'h SubFilter,
    /// The first `Acked` of `seq`: entry index and time.
    pub(crate) acked: Option<(usize, Ms)>,
    /// A `Nacked` of `seq` exists.
    pub(crate) nacked: bool,
    /// Entry index of the `Unsubscribed` act that dropped it.
    pub(crate) unsub_idx: Option<usize>,
    /// Entry index of the first `Acked` of that unsubscription.
    pub(crate) unsub_acked: Option<usize>,
}

/// A `Published` act, unpacked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PubInfo<'h> {
    /// Entry index.
    pub(crate) idx: usize,
    /// Time.
    pub(crate) at: Ms,
    /// The publisher.
    pub(crate) proc: Proc,
    /// Its identity.
    pub(crate) id: MsgId,
    /// Kind, for filters.
    pub(crate) kind: EventKind,
    /// Topic, for filters.
    pub(crate) topic: &'h str,
}

/// What a state sequence of a process is.
#[derive(Debug, Clone, Copy)]
enum StateSeq {
    /// The `Subscribe` of subscription number `n` of the process.
    Subscribe(usize),
    /// The `Unsubscribe` of subscription number `n` of the process.
    Unsubscribe(usize),
}

/// Subscriptions per process and published events, indexed.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions<'h> {
    /// Subscriptions of each process, in `Subscribed` order.
    pub(crate) by_proc: HashMap<Proc, Vec<Sub<'h>>>,
    /// Every `Published`, in order.
    pub(crate) published: Vec<PubInfo<'h>>,
    /// First `Published` of each event id (index into `published`).
    pub(crate) published_by_id: HashMap<MsgId, usize>,
}

impl<'h> Subscriptions<'h> {
    /// Builds the index.
    pub(crate) fn build(h: &'h History) -> Self {
        let mut s = Subscriptions::default();
        let mut seqs: HashMap<(Proc, u64), StateSeq> = HashMap::default();
        let mut by_sub: HashMap<(Proc, u32), usize> = HashMap::default();
        for (idx, e) in h.entries.iter().enumerate() {
            match &e.act {
                Act::Subscribed {
                    proc,
                    seq,
                    sub_id,
                    filter,
                } => {
                    let subs = s.by_proc.entry(*proc).or_default();
                    seqs.insert((*proc, *seq), StateSeq::Subscribe(subs.len()));
                    by_sub.insert((*proc, *sub_id), subs.len());
                    subs.push(Sub {
                        idx,
                        seq: *seq,
                        filter,
                        acked: None,
                        nacked: false,
                        unsub_idx: None,
                        unsub_acked: None,
                    });
                }
                Act::Unsubscribed { proc, seq, sub_id } => {
                    let Some(&k) = by_sub.get(&(*proc, *sub_id)) else {
                        continue;
                    };
                    let subs = s.by_proc.entry(*proc).or_default();
                    if subs[k].unsub_idx.is_none() {
                        subs[k].unsub_idx = Some(idx);
                        seqs.insert((*proc, *seq), StateSeq::Unsubscribe(k));
                    }
                }
                Act::Acked { proc, seq } => {
                    let Some(&what) = seqs.get(&(*proc, *seq)) else {
                        continue;
                    };
                    let Some(subs) = s.by_proc.get_mut(proc) else {
                        continue;
                    };
                    match what {
                        StateSeq::Subscribe(k) => {
                            subs[k].acked.get_or_insert((idx, e.at));
                        }
                        StateSeq::Unsubscribe(k) => {
                            subs[k].unsub_acked.get_or_insert(idx);
                        }
                    }
                }
                Act::Nacked { proc, seq, .. } => {
                    if let Some(&StateSeq::Subscribe(k)) = seqs.get(&(*proc, *seq)) {
                        if let Some(subs) = s.by_proc.get_mut(proc) {
                            subs[k].nacked = true;
                        }
                    }
                }
                Act::Published {
                    proc,
                    id,
                    kind,
                    topic,
                    ..
                } => {
                    let n = s.published.len();
                    s.published.push(PubInfo {
                        idx,
                        at: e.at,
                        proc: *proc,
                        id: *id,
                        kind: *kind,
                        topic,
                    });
                    s.published_by_id.entry(*id).or_insert(n);
                }
                _ => {}
            }
        }
        s
    }

    /// The subscriptions of `p`.
    pub(crate) fn of(&self, p: Proc) -> &[Sub<'h>] {
        self.by_proc.get(&p).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The `Published` of an event id, if any.
    pub(crate) fn published(&self, id: MsgId) -> Option<&PubInfo<'h>> {
        self.published_by_id.get(&id).map(|&i| &self.published[i])
    }
}
