//! One registered member as the server holds it: identity, session state,
//! the ordered outbound stream and its replay buffer, subscriptions.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::types::ConnId;
use crate::credentials::{CredentialId, Permissions};
use crate::frame::{Filter, MemberInfo, Send};
use crate::seq_queue::SeqQueue;
use crate::time::Tick;

/// The encoded frames of one stream item, shared by every recipient of a
/// multicast: the payload is encoded once and never copied per recipient.
#[derive(Debug, Clone)]
pub(crate) enum ItemData {
    /// One frame.
    One(Bytes),
    /// A chunked message: `Deliver` with `MORE`, then `Chunk` frames.
    Parts(Arc<[Bytes]>),
}

impl ItemData {
    pub(crate) fn len(&self) -> usize {
        match self {
            ItemData::One(b) => b.len(),
            ItemData::Parts(p) => p.iter().map(|b| b.len()).sum(),
        }
    }
}

/// One entry of a member's ordered stream, kept until the member
/// acknowledges it (so that it can be replayed after a resume).
#[derive(Debug, Clone)]
pub(crate) struct Item {
    /// Global sequence; strictly increasing along a member's queue.
    pub gseq: u64,
    /// The encoded frame(s).
    pub data: ItemData,
    /// Encoded length.
    pub bytes: usize,
    /// True when an in-flight record (keyed by `gseq`) waits for this
    /// member's acknowledgement.
    pub tracked: bool,
    /// For a NACK item: the refused sequence (acks must not pass it
    /// before the NACK itself is transmitted).
    pub nack_seq: Option<u64>,
    /// For a NACK or outcome item: what it says, to re-issue it if the
    /// member's session is lost and the same process registers again.
    pub notice: Option<Box<Notice>>,
}

/// A final status for one of the member's own messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Notice {
    /// The message was refused.
    Nack {
        seq: u64,
        reason: crate::frame::NackReason,
    },
    /// The message's outcome.
    Outcome {
        seq: u64,
        delivered: u32,
        missed: Vec<crate::frame::Missed>,
    },
}

/// A chunked message from the member being reassembled.
#[derive(Debug)]
pub(crate) struct Partial {
    /// The first frame, payload emptied.
    pub head: Send,
    /// Bytes so far (empty when `discard`).
    pub buf: BytesMut,
    /// Bytes received so far.
    pub received: u32,
    /// True when the message is refused, a duplicate or dropped (deadline,
    /// reassembly space): chunks are counted and thrown away.
    pub discard: bool,
    /// When its first frame was processed.
    pub started: Tick,
}

/// What the server keeps of a removed member, so that the same process
/// incarnation registering again (after its session expired) continues its
/// sequence space: its resends are recognized, and its messages still in
/// flight keep holding back its stable watermark.
#[derive(Debug)]
pub(crate) struct Departed {
    pub incarnation: u64,
    /// The credential its registration proved: only a registration with
    /// the same one adopts the session.
    pub credential: CredentialId,
    pub received_through: u64,
    pub pending: SeqQueue<()>,
    pub session: u64,
    /// Final statuses not yet received by the member.
    pub notices: Vec<Notice>,
}

/// Server-side state of one member.
#[derive(Debug)]
pub(crate) struct Member {
    pub info: MemberInfo,
    /// The connection it is attached to, if any.
    pub conn: Option<ConnId>,
    /// When its connection dropped (while detached).
    pub detached_since: Option<Tick>,
    /// Highest client sequence processed.
    pub received_through: u64,
    /// A chunked message in reassembly.
    pub partial: Option<Partial>,
    /// Unacknowledged stream, in gseq order.
    pub queue: VecDeque<Item>,
    /// Sum of `queue[..].bytes`.
    pub queue_bytes: usize,
    /// Items of `queue` that are notices.
    pub notices_queued: usize,
    /// Number of `queue` items transmitted on the current connection.
    pub sent_items: usize,
    /// Bytes of those items.
    pub sent_bytes: usize,
    /// Parts of `queue[sent_items]` already transmitted (chunked items).
    pub sent_parts: usize,
    /// Control frames waiting for transmission (Pong, Ping, Welcome, ...).
    pub control: BytesMut,
    /// Room the deliveries addressed to this member alone are encoded
    /// into, [`ARENA_BYTES`](super::routing::ARENA_BYTES) at a time, so
    /// that a unicast message costs no allocation of its own. Its frames
    /// are acknowledged in order, so a block is freed soon after its last
    /// frame; released when the queue empties.
    pub arena: BytesMut,
    /// This member's messages not yet final everywhere, by sequence
    /// (tracked in increasing order: a sender's messages are sequenced in
    /// its order, parked ones included).
    pub pending: SeqQueue<()>,
    /// Sequences of NACK items not yet transmitted.
    pub unsent_nacks: BTreeSet<u64>,
    /// The last (through, stable_through) sent in an `Ack`.
    pub ack_sent: (u64, u64),
    /// Subscriptions by client id.
    pub subscriptions: BTreeMap<u32, Filter>,
    /// Last time a frame arrived from the member.
    pub last_heard: Tick,
    /// Last time something was queued for transmission to it.
    pub last_sent: Tick,
    /// Since when the queue is over its soft limit.
    pub over_since: Option<Tick>,
    /// A recipient over its limit that this member (as a sender) waits for.
    pub throttled_by: Option<u64>,
    /// Which registration this is (server-wide counter): in-flight records
    /// of an earlier session of the same id must not touch this one.
    pub session: u64,
    /// Sequences of messages parked until their addressee registers; acks
    /// must not pass them.
    pub held: BTreeSet<u64>,
    /// Sequenced frames received while throttled, in order, with the
    /// time each arrived.
    pub inbox: VecDeque<(Tick, crate::frame::Frame)>,
    /// Their counted size (see `frame_cost`).
    pub inbox_bytes: usize,
    /// Counters of this session.
    pub stats: super::stats::MemberStats,
    /// The credential its registration proved.
    pub credential: CredentialId,
    /// What that credential permits (replaced on a reload).
    pub permissions: Arc<Permissions>,
    /// The names of its connection's client certificate, if any (to
    /// resolve certificate credentials again on a reload).
    pub cert_names: Vec<String>,
    /// The key derived at registration; a `Resume` must prove it.
    pub session_key: Option<crate::auth::SessionKey>,
    /// The client reports what its application took (`Taken` frames,
    /// `capabilities::TAKEN`).
    pub reports_taken: bool,
    /// The highest `Taken.through` received in this session.
    pub taken_through: u64,
    /// Received items of messages that ask for an outcome, which the
    /// application has not taken yet, in gseq order: each keeps its
    /// in-flight record waiting. Counted against the queue's item limit.
    pub untaken: VecDeque<u64>,
}

impl Member {
    pub(crate) fn new(info: MemberInfo, conn: ConnId, now: Tick, session: u64) -> Member {
        Member {
            info,
            conn: Some(conn),
            detached_since: None,
            received_through: 0,
            partial: None,
            queue: VecDeque::new(),
            queue_bytes: 0,
            notices_queued: 0,
            sent_items: 0,
            sent_bytes: 0,
            sent_parts: 0,
            control: BytesMut::new(),
            arena: BytesMut::new(),
            pending: SeqQueue::default(),
            unsent_nacks: BTreeSet::new(),
            ack_sent: (0, 0),
            subscriptions: BTreeMap::new(),
            last_heard: now,
            last_sent: now,
            over_since: None,
            throttled_by: None,
            session,
            held: BTreeSet::new(),
            inbox: VecDeque::new(),
            inbox_bytes: 0,
            stats: super::stats::MemberStats {
                connected_since: now,
                ..Default::default()
            },
            session_key: None,
            credential: CredentialId::cluster(),
            permissions: Arc::new(Permissions::all()),
            cert_names: Vec::new(),
            reports_taken: false,
            taken_through: 0,
            untaken: VecDeque::new(),
        }
    }

    /// Why `seq` cannot come from an honest client, if it cannot. A client
    /// numbers its sequenced frames one by one and never resends one more
    /// than `SEQ_WINDOW` behind its newest, so once the session has a base
    /// (`received_through > 0`), a jump of more than the window ahead, or a
    /// "resend" more than the window behind, is a protocol violation: it
    /// would otherwise make every later frame look like a resend and stall
    /// the member silently.
    pub(crate) fn seq_violation(&self, seq: u64) -> Option<String> {
        let r = self.received_through;
        let w = crate::frame::SEQ_WINDOW;
        if r > 0 && seq > r.saturating_add(w) {
            Some(format!(
                "sequence {seq} jumps more than {w} past the last one processed ({r})"
            ))
        } else if seq.saturating_add(w) < r {
            Some(format!(
                "sequence {seq} is more than {w} behind the last one processed ({r}): not a resend"
            ))
        } else {
            None
        }
    }

    /// `instance/process`, for logs.
    pub(crate) fn name(&self) -> String {
        format!("{}/{}", self.info.instance, self.info.process)
    }

    /// Highest sequence the `Ack` may cover: never past a NACK not yet
    /// transmitted, so the client always sees a NACK before its ack.
    pub(crate) fn ack_through(&self) -> u64 {
        let mut through = self.received_through;
        if let Some(&n) = self.unsent_nacks.first() {
            through = through.min(n - 1);
        }
        if let Some(&h) = self.held.first() {
            through = through.min(h - 1);
        }
        through
    }

    /// Highest sequence final at every addressee, capped by `ack_through`.
    pub(crate) fn stable_through(&self) -> u64 {
        let through = self.ack_through();
        match self.pending.first_key() {
            Some(p) => through.min(p - 1),
            None => through,
        }
    }

    /// Appends a stream item.
    pub(crate) fn push(&mut self, item: Item) {
        debug_assert!(
            self.queue.back().is_none_or(|last| last.gseq < item.gseq),
            "stream items must be in strictly increasing gseq order"
        );
        if let Some(seq) = item.nack_seq {
            self.unsent_nacks.insert(seq);
        }
        if item.notice.is_some() {
            self.notices_queued += 1;
        }
        self.queue_bytes += item.bytes;
        self.queue.push_back(item);
    }

    /// True when the queue is over its soft limit.
    /// Notices (NACKs, outcomes) are not counted: they are bounded by the
    /// member's own messages in flight (`sender_inflight_max`), and a burst
    /// of them is no sign of a slow consumer. Messages received but not yet
    /// taken by the application are: a member that stops taking them is a
    /// slow consumer like one that stops reading.
    pub(crate) fn over_limit(&self, items_max: usize, bytes_max: usize) -> bool {
        self.queue.len() - self.notices_queued + self.untaken.len() > items_max
            || self.queue_bytes > bytes_max
    }

    /// The `(through, stable_through)` pair the next `Ack` carries.
    pub(crate) fn ack_pair(&self) -> (u64, u64) {
        (self.ack_through(), self.stable_through())
    }

    /// True when something can be transmitted now; `ack` is the pair the
    /// next `Ack` would carry.
    pub(crate) fn has_output(
        &self,
        window_items: usize,
        window_bytes: usize,
        ack: (u64, u64),
    ) -> bool {
        !self.control.is_empty()
            || self.ack_sent != ack
            || (self.sent_items < self.queue.len()
                && self.sent_items < window_items
                && self.sent_bytes < window_bytes)
    }

    /// Rewinds the transmit cursor for a new connection (replay).
    pub(crate) fn rewind(&mut self) {
        self.sent_items = 0;
        self.sent_bytes = 0;
        self.sent_parts = 0;
        self.control.clear();
        self.ack_sent = (0, 0);
        self.unsent_nacks = self.queue.iter().filter_map(|i| i.nack_seq).collect();
    }

    pub(crate) fn check_invariants(&self) {
        debug_assert!(self.sent_items <= self.queue.len());
        debug_assert!(self.queue.is_empty() == (self.queue_bytes == 0));
        debug_assert!(self.stable_through() <= self.ack_through());
        debug_assert!(self.ack_through() <= self.received_through);
        debug_assert!(self.reports_taken || self.untaken.is_empty());
        debug_assert!(self.untaken.front().is_none_or(|&g| g > self.taken_through));
    }
}
