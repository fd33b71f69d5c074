//! Server-side observations for the checkers that judge what the server
//! did rather than what members saw: the stream items it wrote to each
//! process's connection (`Act::Written`, G5 (e)), and per server step the
//! facts throttling is judged by (`Act::ThrottleDue`, `Act::QueueUnderHalf`,
//! G11). Everything here reads the server's public accessors and its
//! transmitted bytes between steps; nothing reaches into its state.

use std::collections::BTreeMap;

use switchboard_core::frame::{kind, HEADER_BYTES, PROTOCOL_VERSION};
use switchboard_core::server::Server;

use super::World;
use crate::history::{Act, MsgId};

/// A member's queue as last seen between two server steps.
#[derive(Debug, Clone, Copy, Default)]
struct Level {
    /// `Server::queue_len`: items (notices excluded) plus untaken ones.
    items: usize,
    /// Messages received by it but not yet taken by its application.
    untaken: usize,
    /// Stream items it acknowledged so far.
    acked: u64,
    /// Over half its soft item or byte limit.
    over_half: bool,
    /// Over its soft item or byte limit.
    over: bool,
}

/// What the observations carry from one server step to the next.
#[derive(Debug, Default)]
pub(super) struct Observed {
    /// Per slot: (process generation, server incarnation, highest stream
    /// position written to it there).
    written: BTreeMap<usize, (u64, u64, u64)>,
    /// Queue levels of the current server run's members after the last
    /// step, with whether each was throttled (`Server::is_throttled`), in
    /// member-id order.
    levels: Vec<(u64, Level, bool)>,
    /// The same after this step (kept to reuse its room).
    next: Vec<(u64, Level, bool)>,
    /// Acts to record (kept to reuse its room).
    acts: Vec<Act>,
    /// Last stream position assigned by the end of the last step.
    gseq: u64,
    /// The slot whose read drives the current step, if a read does.
    pub(super) input: Option<usize>,
    /// The current step raised an event of the server's own (membership,
    /// instance up or down): not attributable to the reader.
    pub(super) raised: bool,
    /// Members removed in the current step.
    pub(super) removed: Vec<u64>,
}

impl Observed {
    /// A new server run: nothing carries over.
    pub(super) fn server_started(&mut self) {
        self.levels.clear();
        self.gseq = 0;
        self.input = None;
        self.raised = false;
        self.removed.clear();
    }
}

/// Calls `f(gseq, id)` for each `Deliver` and each `Notify` of a published
/// event among the whole frames of a transmit. Reads only the fixed
/// header fields; stops at anything it does not recognise.
fn stream_items(data: &[u8], mut f: impl FnMut(u64, MsgId)) {
    let u64_at = |b: &[u8], at: usize| {
        b.get(at..at + 8)
            .and_then(|s| <[u8; 8]>::try_from(s).ok())
            .map(u64::from_be_bytes)
    };
    let mut rest = data;
    while rest.len() >= HEADER_BYTES {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize + 4;
        if len < HEADER_BYTES || len > rest.len() || rest[4] != PROTOCOL_VERSION {
            return;
        }
        let (frame, next) = rest.split_at(len);
        let body = &frame[HEADER_BYTES..];
        match frame[5] {
            // gseq, from, from_incarnation, seq, ...
            kind::DELIVER => {
                if let (Some(gseq), Some(sender), Some(seq)) =
                    (u64_at(body, 0), u64_at(body, 16), u64_at(body, 24))
                {
                    f(gseq, MsgId { sender, seq });
                }
            }
            // gseq, epoch, origin_incarnation, origin_seq, event
            kind::NOTIFY => {
                if let (Some(gseq), Some(sender), Some(seq)) =
                    (u64_at(body, 0), u64_at(body, 16), u64_at(body, 24))
                {
                    if sender != 0 {
                        f(gseq, MsgId { sender, seq });
                    }
                }
            }
            _ => {}
        }
        rest = next;
    }
}

/// The queue level of member `id`, if it is a member.
fn level(server: &Server, id: u64, items_max: usize, bytes_max: usize) -> Option<Level> {
    let items = server.queue_len(id)?;
    let bytes = server.queue_bytes(id)?;
    let stats = server.member_stats(id)?;
    let notices = server.notices_len(id)?;
    // `items_out` is acknowledged items plus the queue, so the queue is
    // their difference; the rest of `queue_len` is untaken messages.
    let queued = stats.items_out.saturating_sub(stats.acked) as usize;
    Some(Level {
        items,
        untaken: items.saturating_sub(queued.saturating_sub(notices)),
        acked: stats.acked,
        over_half: items > items_max / 2 || bytes > bytes_max / 2,
        over: items > items_max || bytes > bytes_max,
    })
}

impl World {
    /// Records the stream items of a server transmit to `conn` that were
    /// not written to that process in this server run before.
    pub(super) fn note_written(&mut self, conn: u64, data: &[u8]) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let slot = c.slot;
        let Some(s) = self.slots.get(slot).filter(|s| s.gen == c.gen) else {
            return;
        };
        let proc = s.proc;
        let server = self.server_inc;
        let mark = match self.observed.written.get(&slot) {
            Some(&(gen, k, g)) if gen == c.gen && k == server => g,
            _ => 0,
        };
        let mut through = mark;
        let mut acts = std::mem::take(&mut self.observed.acts);
        stream_items(data, |gseq, id| {
            if gseq > through {
                through = gseq;
                acts.push(Act::Written {
                    proc,
                    server,
                    gseq,
                    id,
                });
            }
        });
        if through > mark {
            self.observed.written.insert(slot, (c.gen, server, through));
        }
        for act in acts.drain(..) {
            self.record(act);
        }
        self.observed.acts = acts;
    }

    /// After a server step: records the throttling facts (see
    /// `Act::ThrottleDue`, `Act::QueueUnderHalf`) and keeps the levels for
    /// the next step.
    pub(super) fn note_throttling(&mut self) {
        let input = self.observed.input.take();
        let raised = std::mem::take(&mut self.observed.raised);
        let removed = std::mem::take(&mut self.observed.removed);
        let Some(server) = &self.server else {
            return;
        };
        let k = self.server_inc;
        let (items_max, bytes_max) = (self.queue_items_max, self.queue_bytes_max);
        let mut next = std::mem::take(&mut self.observed.next);
        next.clear();
        next.extend(server.view().filter_map(|m| {
            let id = m.member_id;
            Some((
                id,
                level(server, id, items_max, bytes_max)?,
                server.is_throttled(id),
            ))
        }));
        let before = std::mem::take(&mut self.observed.levels);
        let find = |v: &[(u64, Level, bool)], id: u64| {
            v.binary_search_by_key(&id, |e| e.0).ok().map(|i| v[i].1)
        };
        let gseq_before = self.observed.gseq;
        let gseq_after = server.gseq();
        let in_grace = server.in_restart_grace(self.now);
        // The reading member, by its incarnation in the server's view.
        let reader = input.and_then(|slot| {
            let inc = self.slots.get(slot)?.proc.incarnation;
            server
                .view()
                .find(|m| m.incarnation == inc)
                .map(|m| m.member_id)
        });
        let mut acts = std::mem::take(&mut self.observed.acts);
        for &(id, b, _) in &before {
            let after = find(&next, id);
            let gone = after.is_none() || removed.contains(&id);
            let shrank = after.is_some_and(|a| a.acked > b.acked || a.untaken < b.untaken);
            let under = after.is_some_and(|a| !a.over_half);
            if gone || (b.over_half && (under || shrank)) {
                acts.push(Act::QueueUnderHalf {
                    server: k,
                    member_id: id,
                    gseq: gseq_before,
                    removed: gone,
                });
            }
        }
        for &id in &removed {
            if find(&before, id).is_none() {
                acts.push(Act::QueueUnderHalf {
                    server: k,
                    member_id: id,
                    gseq: gseq_before,
                    removed: true,
                });
            }
        }
        if let Some(x) = reader {
            let others_released = before
                .iter()
                .any(|&(y, _, was)| was && y != x && !next.iter().any(|&(z, _, is)| z == y && is));
            let clear = !raised
                && removed.is_empty()
                && !in_grace
                && !others_released
                && find(&before, x).is_some_and(|l| !l.over_half)
                && gseq_after > gseq_before;
            if clear {
                for &(r, after, _) in &next {
                    let grew = find(&before, r).is_some_and(|b| after.items > b.items);
                    if r != x && grew && after.over {
                        acts.push(Act::ThrottleDue {
                            server: k,
                            member_id: x,
                            by: r,
                            gseq: gseq_after,
                        });
                    }
                }
            }
        }
        self.observed.levels = next;
        self.observed.next = before;
        self.observed.gseq = gseq_after;
        for act in acts.drain(..) {
            self.record(act);
        }
        self.observed.acts = acts;
    }
}
