//! The history at the API level: what the applications asked, what their
//! calls resolved to, what their streams yielded, plus the world's faults.
//! Every host appends to one shared log, stamped with simulated time.

use std::sync::{Arc, Mutex, PoisonError};

use switchboard_core::frame::{Address, Missed, NackReason};
use switchboard_sim::history::{Ms, MsgId, Proc, ViewChange};

/// What a call asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CallKind {
    /// `send`, `send_confirmed` or `request` of a tagged payload.
    Send {
        /// Address.
        to: Address,
        /// Payload tag.
        tag: u64,
        /// `send_confirmed`.
        confirm: bool,
        /// `request`.
        request: bool,
        /// A probe sent while one of the member's streams is unread.
        probe: bool,
        /// Payload length, bytes.
        bytes: u32,
    },
    /// `post` of a tagged payload (no seq is returned).
    Post {
        /// Address.
        to: Address,
        /// Payload tag.
        tag: u64,
    },
    /// `flush`.
    Flush,
    /// `join` (true) or `leave` of a group.
    Group {
        /// Group.
        group: String,
        /// Join or leave.
        join: bool,
    },
    /// `publish_custom`.
    Publish,
    /// `events` (a subscription).
    Subscribe,
}

/// What a call resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CallResult {
    /// Acked with this sequence.
    Acked(u64),
    /// Refused by the server.
    Nacked {
        /// Sequence.
        seq: u64,
        /// Why.
        reason: NackReason,
    },
    /// A confirmed send's final outcome.
    Outcome {
        /// Sequence.
        seq: u64,
        /// Delivered count.
        delivered: u32,
        /// Misses.
        missed: Vec<Missed>,
    },
    /// A request got its reply.
    Reply,
    /// A request ended without a reply (timeout, partner gone).
    NoReply,
    /// Done (join, leave, subscribe, flush, publish).
    Done,
    /// Failed otherwise.
    Failed(String),
}

/// One act at the API level.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ApiAct {
    /// A member process started.
    Started {
        /// The process.
        proc: Proc,
        /// Instance name.
        instance: String,
        /// Process name.
        process: String,
    },
    /// A member host crashed.
    Crashed {
        /// The process.
        proc: Proc,
    },
    /// The server host started (its run number, from 1).
    ServerStarted {
        /// Run.
        run: u64,
    },
    /// The server host crashed.
    ServerCrashed {
        /// Run.
        run: u64,
    },
    /// The application made a call.
    Call {
        /// Caller.
        proc: Proc,
        /// Call number (per run, unique).
        call: u64,
        /// What.
        kind: CallKind,
    },
    /// A call resolved.
    Resolved {
        /// Caller.
        proc: Proc,
        /// Call number.
        call: u64,
        /// How.
        result: CallResult,
    },
    /// The event stream yielded `Registered`.
    Registered {
        /// The process.
        proc: Proc,
        /// Server run of the session.
        run: u64,
        /// Member id.
        member_id: u64,
        /// Snapshot position.
        position: u64,
        /// Member ids in the snapshot.
        view: Vec<u64>,
        /// A previous session was lost.
        session_lost: bool,
    },
    /// The event stream yielded `Resumed`.
    Resumed {
        /// The process.
        proc: Proc,
    },
    /// The event stream yielded `Gap`.
    Gap {
        /// The process.
        proc: Proc,
        /// First position.
        from: u64,
        /// Last position.
        through: u64,
    },
    /// The event stream said cluster events were dropped (`Event::Lagged`).
    Lagged {
        /// The process.
        proc: Proc,
        /// How many.
        missed: u64,
    },
    /// The event stream yielded a message or request.
    Delivered {
        /// Receiver.
        proc: Proc,
        /// Server run of the session.
        run: u64,
        /// Receiver's member id.
        member_id: u64,
        /// Stream position.
        gseq: u64,
        /// Sender member id.
        from: u64,
        /// Message id.
        id: MsgId,
        /// Payload tag.
        tag: u64,
        /// Payload checksum matched.
        intact: bool,
    },
    /// The event stream yielded a membership event.
    ViewEvent {
        /// Receiver.
        proc: Proc,
        /// Server run.
        run: u64,
        /// Stream position.
        gseq: u64,
        /// The change.
        change: ViewChange,
        /// The view epoch it carried.
        epoch: u64,
    },
    /// A subscription yielded an event.
    SubItem {
        /// Receiver.
        proc: Proc,
        /// Stream position.
        gseq: u64,
    },
    /// A fault of the world, over an interval.
    Fault {
        /// Member slot, `None` for the server.
        slot: Option<usize>,
        /// Start.
        from: Ms,
        /// End.
        until: Ms,
        /// Kind name.
        kind: &'static str,
    },
    /// A sample of what the server holds against its memory budget.
    ServerMemory {
        /// Server run.
        run: u64,
        /// Everything the budget counts, bytes.
        held: usize,
        /// Of it: the state machine's queues and buffers.
        state: usize,
        /// Of it: reads not yet processed.
        input: usize,
        /// Of it: transmits not yet written.
        write_queue: usize,
        /// The budget, bytes.
        budget: usize,
        /// Members cut off for the budget in this run so far.
        evictions: u64,
    },
    /// End of run: a live member's state.
    Final {
        /// The process.
        proc: Proc,
        /// Connected.
        ready: bool,
        /// Its member id is in its own view.
        in_view: bool,
        /// Plain sends not resolved.
        pending_sends: usize,
        /// Confirmed sends and requests not resolved.
        pending_confirms: usize,
    },
}

/// A stamped act.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApiEntry {
    /// Simulated time, ms.
    pub at: Ms,
    /// The act.
    pub act: ApiAct,
}

/// The shared log.
#[derive(Debug, Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<ApiEntry>>>);

impl Recorder {
    /// Appends an act at the current simulated time.
    pub fn push(&self, act: ApiAct) {
        let at = turmoil::sim_elapsed().map_or(0, |d| d.as_millis() as u64);
        self.push_at(at, act);
    }

    /// Appends an act at a given time.
    pub fn push_at(&self, at: Ms, act: ApiAct) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(ApiEntry { at, act });
    }

    /// The log so far.
    pub fn take(&self) -> Vec<ApiEntry> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// FNV-1a over the entries' debug text: equal logs hash equal on every
/// run of the same binary.
pub fn trace_hash(log: &[ApiEntry]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for e in log {
        for b in format!("{e:?}\n").bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Length of an ordinary payload: the tag and its checksum.
pub const PAYLOAD_BYTES: u32 = 16;

/// The payload of a tagged message: the tag and a checksum of it.
pub fn payload(tag: u64) -> bytes::Bytes {
    payload_sized(tag, PAYLOAD_BYTES)
}

/// A tagged payload of `len` bytes (at least [`PAYLOAD_BYTES`]): the tag,
/// the checksum of tag and length, then filler derived from the tag, so
/// that a truncated, extended or altered copy shows.
pub fn payload_sized(tag: u64, len: u32) -> bytes::Bytes {
    let len = len.max(PAYLOAD_BYTES) as usize;
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&tag.to_be_bytes());
    v.extend_from_slice(&checksum(tag, len).to_be_bytes());
    v.extend((16..len).map(|i| filler(tag, i)));
    bytes::Bytes::from(v)
}

/// Reads a payload back: `(tag, intact)`; `None` when too short.
pub fn read_payload(p: &[u8]) -> Option<(u64, bool)> {
    let tag = u64::from_be_bytes(p.get(..8)?.try_into().ok()?);
    let sum = u64::from_be_bytes(p.get(8..16)?.try_into().ok()?);
    let intact = sum == checksum(tag, p.len())
        && p[16..]
            .iter()
            .enumerate()
            .all(|(i, b)| *b == filler(tag, i + 16));
    Some((tag, intact))
}

fn filler(tag: u64, i: usize) -> u8 {
    (tag as u8) ^ (i as u8) ^ ((i >> 8) as u8)
}

fn checksum(tag: u64, len: usize) -> u64 {
    tag.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5157_1c4e ^ (len as u64) << 40
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_corruption_shows() {
        let p = payload(0x1234);
        assert_eq!(read_payload(&p), Some((0x1234, true)));
        let mut bad = p.to_vec();
        bad[15] ^= 1;
        assert_eq!(read_payload(&bad), Some((0x1234, false)));
        assert_eq!(read_payload(b"short"), None);
        let big = payload_sized(0x99, 5_000);
        assert_eq!(big.len(), 5_000);
        assert_eq!(read_payload(&big), Some((0x99, true)));
        let mut bad = big.to_vec();
        bad[4_000] ^= 1;
        assert_eq!(read_payload(&bad), Some((0x99, false)));
        assert_eq!(read_payload(&big[..4_999]), Some((0x99, false)));
    }
}
