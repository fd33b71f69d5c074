//! A member host: one application process on the real client library. It
//! runs a seeded workload over the public `Member` API, reads its event
//! stream and one subscription (slowly, or not at all while a reading
//! fault says so) and records everything at the API level.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use switchboard_client::{
    ClusterEvent, ConnectionState, Error, Event, EventStream, Filter, Member, MemberConfig,
    RequestError, Subscription,
};
use switchboard_core::frame::Address;
use switchboard_sim::history::{MsgId, Proc, ViewChange};
use tokio::task::spawn_local;

use crate::net::SimConnector;
use crate::plan::StreamKind;
use crate::record::{payload_sized, read_payload, ApiAct, CallKind, CallResult, PAYLOAD_BYTES};
use crate::world::{now_ms, Shared, SERVER_ADDR};

/// Tags of replies have this bit set.
const REPLY_TAG: u64 = 1 << 63;

/// Payload of a flood message, bytes (chunked on the wire).
const FLOOD_BYTES: u32 = 96 * 1024;
/// A flooding member's sends not yet resolved at most.
const FLOOD_OUTSTANDING_MAX: usize = 32;

/// Groups the workload uses.
const GROUPS: [&str; 2] = ["g0", "g1"];

/// Instance name of a slot (two members per instance).
pub fn instance_of(slot: usize) -> String {
    format!("i{}", slot / 2)
}

/// Process name of a slot.
pub fn process_of(slot: usize) -> String {
    format!("p{slot}")
}

/// What the member's tasks share.
struct Local {
    sh: Arc<Shared>,
    proc: Proc,
    me: Member,
    /// Calls not resolved yet: call number and whether it is a confirmed
    /// send or a request (else a plain send, or another call).
    pending: RefCell<BTreeMap<u64, Pending>>,
    /// Member ids this member has heard of.
    known_ids: RefCell<Vec<u64>>,
    /// Sessions seen by the state watcher, oldest first: (member id, run).
    sessions: RefCell<VecDeque<(u64, u64)>>,
    next_tag: RefCell<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Plain,
    Confirm,
    Other,
}

/// The member host's software (restarted by the world after a crash).
pub async fn host(sh: Arc<Shared>, slot: usize) -> turmoil::Result {
    let restart = sh.next_restart(slot);
    let incarnation = mix(sh.seed, (slot as u64) << 32 | u64::from(restart)) | 1;
    let proc = Proc { slot, incarnation };
    let (instance, process) = (instance_of(slot), process_of(slot));
    sh.set_proc(slot, proc);
    sh.rec.push(ApiAct::Started {
        proc,
        instance: instance.clone(),
        process: process.clone(),
    });
    let mut config = MemberConfig::new(
        SERVER_ADDR,
        crate::world::CLUSTER,
        crate::world::secret(),
        instance,
        process,
    );
    config.core.incarnation = incarnation;
    // Room for a flood to reach the server's memory budget: a sender's
    // unconfirmed messages are bounded by its outbox (8 MiB by default,
    // half the simulated server's budget).
    config.core.outbox_bytes_max = 32 << 20;
    config.events_max = crate::world::EVENTS_MAX;
    config.commands_max = 64;
    let connected_run = Arc::new(AtomicU64::new(0));
    let net = SimConnector {
        seed: mix(incarnation, 7),
        server_run: sh.server_run.clone(),
        connected_run: connected_run.clone(),
    };
    let (me, events) = Member::start_with(config, net);
    let l = Rc::new(Local {
        sh: sh.clone(),
        proc,
        me: me.clone(),
        pending: RefCell::default(),
        known_ids: RefCell::default(),
        sessions: RefCell::default(),
        next_tag: RefCell::new((slot as u64) << 48 | u64::from(restart) << 32),
    });
    spawn_local(watch_sessions(l.clone(), connected_run));
    spawn_local(read_events(l.clone(), events, mix(incarnation, 1)));
    let sub = l.clone();
    spawn_local(async move {
        let call = sub.call(CallKind::Subscribe, Pending::Other);
        match sub.me.events(Filter::all()).await {
            Ok(s) => {
                sub.resolve(call, CallResult::Done);
                read_sub(sub, s, mix(incarnation, 2)).await;
            }
            Err(e) => sub.resolve(call, CallResult::Failed(e.to_string())),
        }
    });
    spawn_local(flood(l.clone()));
    workload(l, mix(incarnation, 3)).await;
    std::future::pending::<()>().await;
    Ok(())
}

/// A seeded 64-bit mix (splitmix64).
pub fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Local {
    fn call(&self, kind: CallKind, p: Pending) -> u64 {
        let call = self.sh.calls.fetch_add(1, Ordering::Relaxed);
        self.pending.borrow_mut().insert(call, p);
        self.sh.rec.push(ApiAct::Call {
            proc: self.proc,
            call,
            kind,
        });
        call
    }

    fn resolve(&self, call: u64, result: CallResult) {
        self.pending.borrow_mut().remove(&call);
        self.sh.rec.push(ApiAct::Resolved {
            proc: self.proc,
            call,
            result,
        });
    }

    fn tag(&self) -> u64 {
        let mut t = self.next_tag.borrow_mut();
        *t += 1;
        *t
    }

    /// The stream a reading fault stops now, with its end.
    fn unread(&self, which: StreamKind) -> Option<u64> {
        self.sh
            .reading(self.proc.slot)
            .filter(|(s, until)| *s == which && now_ms() < *until)
            .map(|(_, until)| until)
    }
}

/// The workload: a seeded mix of calls until the active phase ends, then
/// quiet until the final check.
async fn workload(l: Rc<Local>, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let active = l.sh.cfg.active_ms;
    let members = l.sh.cfg.members;
    while now_ms() < active {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(20..250))).await;
        if l.sh.take_reset(l.proc.slot) {
            l.me.drop_connection().await;
        }
        let unread = l.unread(StreamKind::Main).is_some() || l.unread(StreamKind::Sub).is_some();
        if unread {
            let tag = l.tag();
            send(
                &l,
                Address::Broadcast,
                tag,
                false,
                false,
                true,
                PAYLOAD_BYTES,
            );
            continue;
        }
        let to = match rng.gen_range(0..6) {
            0 => {
                let s = rng.gen_range(0..members);
                Address::Member {
                    instance: instance_of(s),
                    process: process_of(s),
                }
            }
            1 => {
                let ids = l.known_ids.borrow();
                match ids.get(rng.gen_range(0..ids.len().max(1))) {
                    Some(id) => Address::MemberId(*id),
                    None => Address::Broadcast,
                }
            }
            2 => Address::Instance(instance_of(rng.gen_range(0..members))),
            3 => Address::Group(GROUPS[rng.gen_range(0..2)].to_owned()),
            4 => Address::Anycast(GROUPS[rng.gen_range(0..2)].to_owned()),
            _ => Address::Broadcast,
        };
        match rng.gen_range(0..100) {
            0..=44 => {
                let tag = l.tag();
                send(&l, to, tag, false, false, false, PAYLOAD_BYTES);
            }
            45..=59 => {
                let tag = l.tag();
                send(&l, to, tag, true, false, false, PAYLOAD_BYTES);
            }
            60..=67 => {
                let tag = l.tag();
                send(&l, to, tag, false, true, false, PAYLOAD_BYTES);
            }
            68..=77 => {
                let group = GROUPS[rng.gen_range(0..2)].to_owned();
                let join = rng.gen_bool(0.6);
                let c = l.clone();
                spawn_local(async move {
                    let call = c.call(
                        CallKind::Group {
                            group: group.clone(),
                            join,
                        },
                        Pending::Other,
                    );
                    let r = if join {
                        c.me.join(&group).await
                    } else {
                        c.me.leave(&group).await
                    };
                    c.resolve(call, done(r));
                });
            }
            78..=82 => {
                let c = l.clone();
                spawn_local(async move {
                    let call = c.call(CallKind::Publish, Pending::Other);
                    let r = c.me.publish_custom("t", "e").await.map(|_| ());
                    c.resolve(call, done(r));
                });
            }
            _ => {
                let c = l.clone();
                let n = rng.gen_range(1..6);
                spawn_local(async move {
                    for _ in 0..n {
                        let tag = c.tag();
                        let call = c.call(
                            CallKind::Post {
                                to: to.clone(),
                                tag,
                            },
                            Pending::Other,
                        );
                        let r =
                            c.me.post(to.clone(), payload_sized(tag, PAYLOAD_BYTES))
                                .await;
                        c.resolve(call, done(r));
                    }
                    let call = c.call(CallKind::Flush, Pending::Other);
                    let r = c.me.flush().await.map(|_| ());
                    c.resolve(call, done(r));
                });
            }
        }
    }
    let end = active + l.sh.cfg.heal_ms;
    tokio::time::sleep(Duration::from_millis(end.saturating_sub(now_ms()))).await;
    let ready = l.me.member_id();
    let view = tokio::time::timeout(Duration::from_secs(2), l.me.view()).await;
    let in_view = match (ready, view) {
        (Some(id), Ok(Ok((_, v)))) => v.iter().any(|m| m.member_id == id),
        _ => false,
    };
    let pending = l.pending.borrow();
    l.sh.rec.push(ApiAct::Final {
        proc: l.proc,
        ready: ready.is_some(),
        in_view,
        pending_sends: pending.values().filter(|p| **p == Pending::Plain).count(),
        pending_confirms: pending.values().filter(|p| **p == Pending::Confirm).count(),
    });
}

fn done<T>(r: Result<T, Error>) -> CallResult {
    match r {
        Ok(_) => CallResult::Done,
        Err(e) => CallResult::Failed(e.to_string()),
    }
}

/// While a flood fault names this member as the flooder: plain sends of
/// large messages to the flooded member, as fast as they are acked (at most
/// [`FLOOD_OUTSTANDING_MAX`] unresolved), one per 5 ms at most.
async fn flood(l: Rc<Local>) {
    let mut running: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    while now_ms() < l.sh.cfg.active_ms {
        tokio::time::sleep(Duration::from_millis(5)).await;
        running.retain(|h| !h.is_finished());
        let Some((target, until)) = l.sh.flood(l.proc.slot) else {
            continue;
        };
        if now_ms() >= until || running.len() >= FLOOD_OUTSTANDING_MAX {
            continue;
        }
        let to = Address::Member {
            instance: instance_of(target),
            process: process_of(target),
        };
        let tag = l.tag();
        running.push(send(&l, to, tag, false, false, false, FLOOD_BYTES));
    }
}

/// Starts a send, confirmed send or request of a fresh tag.
fn send(
    l: &Rc<Local>,
    to: Address,
    tag: u64,
    confirm: bool,
    request: bool,
    probe: bool,
    bytes: u32,
) -> tokio::task::JoinHandle<()> {
    let c = l.clone();
    spawn_local(async move {
        let p = if confirm || request {
            Pending::Confirm
        } else {
            Pending::Plain
        };
        let kind = CallKind::Send {
            to: to.clone(),
            tag,
            confirm,
            request,
            probe,
            bytes,
        };
        let call = c.call(kind, p);
        let payload = || payload_sized(tag, bytes);
        let result = if request {
            match c.me.request(to, payload(), Duration::from_secs(3)).await {
                Ok(_) => CallResult::Reply,
                Err(Error::Request(RequestError::Nacked(reason))) => {
                    CallResult::Failed(format!("request refused: {reason:?}"))
                }
                Err(Error::Request(_)) => CallResult::NoReply,
                Err(Error::Nacked { seq, reason }) => CallResult::Nacked { seq, reason },
                Err(e) => CallResult::Failed(e.to_string()),
            }
        } else if confirm {
            match c.me.send_confirmed(to, payload()).await {
                Ok(o) => CallResult::Outcome {
                    seq: o.seq,
                    delivered: o.delivered,
                    missed: o.missed,
                },
                Err(Error::Nacked { seq, reason }) => CallResult::Nacked { seq, reason },
                Err(e) => CallResult::Failed(e.to_string()),
            }
        } else {
            match c.me.send(to, payload()).await {
                Ok(seq) => CallResult::Acked(seq),
                Err(Error::Nacked { seq, reason }) => CallResult::Nacked { seq, reason },
                Err(e) => CallResult::Failed(e.to_string()),
            }
        };
        c.resolve(call, result);
    })
}

/// Notes each new session (member id, server run) as the connection state
/// changes: the application's `Registered` event is matched to it later.
async fn watch_sessions(l: Rc<Local>, connected_run: Arc<AtomicU64>) {
    let mut state = l.me.connection_state();
    let mut last = None;
    loop {
        if let ConnectionState::Connected { member_id } = &*state.borrow_and_update() {
            let s = (*member_id, connected_run.load(Ordering::SeqCst));
            if last != Some(s) {
                l.sessions.borrow_mut().push_back(s);
                last = Some(s);
            }
        }
        if state.changed().await.is_err() {
            return;
        }
    }
}

/// Reads the event stream (with small seeded pauses, and not at all while
/// a reading fault stops it) and records what it yields; answers requests.
async fn read_events(l: Rc<Local>, mut events: EventStream, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut session: (u64, u64) = (0, 0); // (run, member id)
    loop {
        if let Some(until) = l.unread(StreamKind::Main) {
            tokio::time::sleep(Duration::from_millis(until.saturating_sub(now_ms()))).await;
        }
        if rng.gen_ratio(1, 20) {
            tokio::time::sleep(Duration::from_millis(rng.gen_range(1..50))).await;
        }
        let Some(ev) = events.next().await else {
            return;
        };
        let proc = l.proc;
        match ev {
            Event::Registered {
                member_id,
                position,
                view,
                session_lost,
                ..
            } => {
                let run = {
                    let mut s = l.sessions.borrow_mut();
                    loop {
                        match s.pop_front() {
                            Some((id, run)) if id == member_id => break run,
                            Some(_) => continue,
                            None => break l.sh.server_run.load(Ordering::SeqCst),
                        }
                    }
                };
                session = (run, member_id);
                let ids: Vec<u64> = view.iter().map(|m| m.member_id).collect();
                *l.known_ids.borrow_mut() = ids.clone();
                l.sh.rec.push(ApiAct::Registered {
                    proc,
                    run,
                    member_id,
                    position,
                    view: ids,
                    session_lost,
                });
            }
            Event::Resumed { .. } => l.sh.rec.push(ApiAct::Resumed { proc }),
            Event::Gap { from, through } => l.sh.rec.push(ApiAct::Gap {
                proc,
                from,
                through,
            }),
            Event::Message(m) | Event::Request(m) => {
                let (tag, intact) = read_payload(&m.payload).unwrap_or((0, false));
                if intact && tag & REPLY_TAG != 0 {
                    // A reply that outlived its request: replies are not
                    // in the history (they resolve calls, not streams).
                    continue;
                }
                l.sh.rec.push(ApiAct::Delivered {
                    proc,
                    run: session.0,
                    member_id: session.1,
                    gseq: m.gseq,
                    from: m.from,
                    id: MsgId {
                        sender: m.from_incarnation,
                        seq: m.seq,
                    },
                    tag,
                    intact,
                });
                if m.is_request() {
                    let c = l.clone();
                    let tag = REPLY_TAG | l.tag();
                    spawn_local(async move {
                        let _ =
                            c.me.reply(m.reply_to(), payload_sized(tag, PAYLOAD_BYTES))
                                .await;
                    });
                }
            }
            Event::Cluster(n) => {
                let change = match &n.event {
                    ClusterEvent::MemberJoined(info) => {
                        l.known_ids.borrow_mut().push(info.member_id);
                        Some(ViewChange::Joined(info.member_id))
                    }
                    ClusterEvent::MemberLeft { member_id } => Some(ViewChange::Left(*member_id)),
                    ClusterEvent::MemberFailed { member_id, reason } => {
                        Some(ViewChange::Failed(*member_id, *reason))
                    }
                    _ => None,
                };
                if let Some(change) = change {
                    l.sh.rec.push(ApiAct::ViewEvent {
                        proc,
                        run: session.0,
                        gseq: n.gseq,
                        change,
                        epoch: n.epoch,
                    });
                }
            }
            // Cluster events dropped because the stream was full (a burst
            // after a resume can fill it while the reader pauses): the view
            // events have a hole here.
            Event::Lagged { missed } => l.sh.rec.push(ApiAct::Lagged { proc, missed }),
            Event::Disconnected { .. } | Event::Rejected { .. } | Event::Closed => {}
        }
    }
}

/// Reads the subscription like the event stream.
async fn read_sub(l: Rc<Local>, mut sub: Subscription, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    loop {
        if let Some(until) = l.unread(StreamKind::Sub) {
            tokio::time::sleep(Duration::from_millis(until.saturating_sub(now_ms()))).await;
        }
        if rng.gen_ratio(1, 10) {
            tokio::time::sleep(Duration::from_millis(rng.gen_range(1..100))).await;
        }
        let Some(n) = sub.next().await else {
            return;
        };
        l.sh.rec.push(ApiAct::SubItem {
            proc: l.proc,
            gseq: n.gseq,
        });
    }
}
