//! One checker per guarantee of `docs/GUARANTEES.md`. Each reads only a
//! [`History`] and the run's [`Bounds`] and returns the violations it found
//! (at most 20 in detail per checker, plus one summary line when more).

use crate::history::{Bounds, History, Violation};

/// Fast deterministic hash maps for the checkers' indexes (the default
/// SipHash dominated the checkers' time).
pub(crate) mod fast {
    /// A hash map with a fast, fixed hasher.
    pub(crate) type HashMap<K, V> = rustc_hash::FxHashMap<K, V>;
    /// A hash set with a fast, fixed hasher.
    pub(crate) type HashSet<K> = rustc_hash::FxHashSet<K>;
}

pub mod g01_integrity;
pub mod g02_no_duplicates;
pub mod g03_fifo;
pub mod g04_total_order;
pub mod g05_ack_means_delivery;
pub mod g06_multicast_agreement;
pub mod g07_view_consistency;
pub mod g08_outcomes;
pub mod g09_liveness;
pub mod g10_failure_detection;
pub mod g11_bounded_memory;
pub(crate) mod server_log;
pub(crate) mod sessions;
pub(crate) mod subscriptions;
pub(crate) mod throttling;
pub(crate) mod written;

/// A checker: judges a history against one guarantee.
pub type Checker = fn(&History, &Bounds) -> Vec<Violation>;

/// Every checker, with its guarantee's name.
pub const CHECKERS: &[(&str, Checker)] = &[
    (g01_integrity::NAME, g01_integrity::check),
    (g02_no_duplicates::NAME, g02_no_duplicates::check),
    (g03_fifo::NAME, g03_fifo::check),
    (g04_total_order::NAME, g04_total_order::check),
    (g05_ack_means_delivery::NAME, g05_ack_means_delivery::check),
    (
        g06_multicast_agreement::NAME,
        g06_multicast_agreement::check,
    ),
    (g07_view_consistency::NAME, g07_view_consistency::check),
    (g08_outcomes::NAME, g08_outcomes::check),
    (g09_liveness::NAME, g09_liveness::check),
    (g10_failure_detection::NAME, g10_failure_detection::check),
    (g11_bounded_memory::NAME, g11_bounded_memory::check),
];

/// Runs every checker and returns all violations, in checker order.
pub fn check_all(h: &History, b: &Bounds) -> Vec<Violation> {
    CHECKERS.iter().flat_map(|(_, c)| c(h, b)).collect()
}

/// Terse builders for hand-made histories.
#[cfg(test)]
#[allow(dead_code)]
pub(crate) mod testkit {
    use switchboard_core::frame::{Address, EventKind, FailReason, Missed, NackReason};

    use crate::history::{
        Act, Bounds, History, Ms, MsgId, Proc, ServiceFact, SubFilter, ViewChange, Violation,
    };

    /// A filter that selects every event.
    pub(crate) fn every_event() -> SubFilter {
        SubFilter {
            kinds: EventKind::ALL,
            topic_prefix: String::new(),
        }
    }

    /// A filter for custom events whose topic starts with `prefix`.
    pub(crate) fn topic(prefix: &str) -> SubFilter {
        SubFilter {
            kinds: EventKind::Custom.bit(),
            topic_prefix: prefix.into(),
        }
    }

    /// Slot 0, instance "alpha", process "a".
    pub(crate) const A: Proc = Proc {
        slot: 0,
        incarnation: 100,
    };
    /// Slot 1, instance "alpha", process "b".
    pub(crate) const B: Proc = Proc {
        slot: 1,
        incarnation: 200,
    };
    /// Slot 2, instance "beta", process "c".
    pub(crate) const C: Proc = Proc {
        slot: 2,
        incarnation: 300,
    };

    /// Bounds used by the tests.
    pub(crate) fn bounds() -> Bounds {
        Bounds {
            heartbeat_timeout_ms: 3000,
            resume_window_ms: 5000,
            member_queue_items_max: 100,
            restart_grace_ms: 2000,
            outbox_items_max: 50,
            slow_consumer_grace_ms: 1000,
            chunk_bytes_max: 1000,
            message_bytes_max: 100_000,
            member_queue_bytes_max: 10_000,
        }
    }

    /// Message id of `p`'s `seq`.
    pub(crate) fn id(p: Proc, seq: u64) -> MsgId {
        MsgId {
            sender: p.incarnation,
            seq,
        }
    }

    /// The tag the builder gives a message.
    pub(crate) fn tag(id: MsgId) -> u64 {
        id.sender * 1_000_000 + id.seq
    }

    /// Address of a group.
    pub(crate) fn group(g: &str) -> Address {
        Address::Group(g.to_string())
    }

    /// History builder: each act is stamped with the current time, which
    /// then advances by 1 ms (`at` sets it).
    #[derive(Debug, Default, Clone)]
    pub(crate) struct Hb {
        /// The history so far.
        pub(crate) h: History,
        now: Ms,
    }

    impl Hb {
        pub(crate) fn new() -> Self {
            Hb::default()
        }
        pub(crate) fn at(mut self, t: Ms) -> Self {
            self.now = t;
            self
        }
        pub(crate) fn act(mut self, a: Act) -> Self {
            self.h.push(self.now, a);
            self.now += 1;
            self
        }
        pub(crate) fn build(self) -> History {
            self.h
        }
        /// Starts `p` with the default names of its slot.
        pub(crate) fn start(self, p: Proc) -> Self {
            let (i, n) = match p.slot {
                0 => ("alpha", "a"),
                1 => ("alpha", "b"),
                _ => ("beta", "c"),
            };
            self.start_named(p, i, n)
        }
        pub(crate) fn start_named(self, p: Proc, instance: &str, process: &str) -> Self {
            self.act(Act::Started {
                proc: p,
                instance: instance.into(),
                process: process.into(),
            })
        }
        pub(crate) fn crash(self, p: Proc) -> Self {
            self.act(Act::Crashed { proc: p })
        }
        pub(crate) fn bye(self, p: Proc) -> Self {
            self.act(Act::Goodbye { proc: p })
        }
        pub(crate) fn server_start(self, k: u64) -> Self {
            self.act(Act::ServerStarted { server: k })
        }
        pub(crate) fn server_crash(self, k: u64) -> Self {
            self.act(Act::ServerCrashed { server: k })
        }
        pub(crate) fn reg(
            self,
            p: Proc,
            k: u64,
            member_id: u64,
            position: u64,
            view: &[u64],
        ) -> Self {
            self.act(Act::Registered {
                proc: p,
                server: k,
                member_id,
                position,
                view: view.to_vec(),
            })
        }
        /// A hostile write by `p` in server `k` as member `member_id`.
        pub(crate) fn hostile(
            self,
            p: Proc,
            k: u64,
            member_id: u64,
            frame: crate::history::HostileFrame,
        ) -> Self {
            self.act(Act::Hostile {
                proc: p,
                server: k,
                member_id,
                frame,
            })
        }
        pub(crate) fn resumed(self, p: Proc) -> Self {
            self.act(Act::Resumed { proc: p })
        }
        pub(crate) fn resume_refused(self, p: Proc, k: u64, member_id: u64) -> Self {
            self.act(Act::ResumeRefused {
                proc: p,
                server: k,
                member_id,
            })
        }
        pub(crate) fn queue_over(self, k: u64, member_id: u64, over: bool) -> Self {
            self.act(Act::QueueOver {
                server: k,
                member_id,
                over,
            })
        }
        pub(crate) fn gap(self, p: Proc, from: u64, through: u64) -> Self {
            self.act(Act::GapNotice {
                proc: p,
                from,
                through,
            })
        }
        fn sent(self, p: Proc, seq: u64, to: Address, confirm: bool, request: bool) -> Self {
            self.sent_sized(p, seq, to, (confirm, request), 16)
        }
        fn sent_sized(
            self,
            p: Proc,
            seq: u64,
            to: Address,
            (confirm, request): (bool, bool),
            bytes: u32,
        ) -> Self {
            let id = id(p, seq);
            self.act(Act::Sent {
                proc: p,
                id,
                to,
                tag: tag(id),
                confirm,
                request,
                bytes,
            })
        }
        pub(crate) fn send(self, p: Proc, seq: u64, to: Address) -> Self {
            self.sent(p, seq, to, false, false)
        }
        /// A confirmed message of `bytes` payload bytes.
        pub(crate) fn send_bytes(self, p: Proc, seq: u64, to: Address, bytes: u32) -> Self {
            self.sent_sized(p, seq, to, (true, false), bytes)
        }
        pub(crate) fn send_confirm(self, p: Proc, seq: u64, to: Address) -> Self {
            self.sent(p, seq, to, true, false)
        }
        pub(crate) fn send_request(self, p: Proc, seq: u64, to: Address) -> Self {
            self.sent(p, seq, to, false, true)
        }
        pub(crate) fn join(self, p: Proc, g: &str, seq: u64) -> Self {
            self.act(Act::GroupOp {
                proc: p,
                group: g.into(),
                join: true,
                seq,
            })
        }
        pub(crate) fn leave(self, p: Proc, g: &str, seq: u64) -> Self {
            self.act(Act::GroupOp {
                proc: p,
                group: g.into(),
                join: false,
                seq,
            })
        }
        pub(crate) fn ack(self, p: Proc, seq: u64) -> Self {
            self.act(Act::Acked { proc: p, seq })
        }
        pub(crate) fn nack(self, p: Proc, seq: u64, reason: NackReason) -> Self {
            self.act(Act::Nacked {
                proc: p,
                seq,
                reason,
            })
        }
        pub(crate) fn outcome(
            self,
            p: Proc,
            seq: u64,
            delivered: u32,
            missed: Vec<Missed>,
        ) -> Self {
            self.act(Act::Outcome {
                proc: p,
                seq,
                delivered,
                missed,
            })
        }
        /// `r` (member `member_id` in server `k`) delivers `id` at `gseq`
        /// from member `from`, intact and with the builder's tag.
        pub(crate) fn deliver(
            self,
            r: Proc,
            k: u64,
            member_id: u64,
            gseq: u64,
            from: u64,
            id: MsgId,
        ) -> Self {
            self.act(Act::Delivered {
                proc: r,
                server: k,
                member_id,
                gseq,
                from,
                id,
                tag: tag(id),
                intact: true,
            })
        }
        /// `p` published event `seq` with content digest `digest`: a
        /// custom event on topic `cache/x`.
        pub(crate) fn publish(self, p: Proc, seq: u64, digest: u64) -> Self {
            self.publish_on(p, seq, digest, EventKind::Custom, "cache/x")
        }
        /// `p` published event `seq` of `kind` on `topic`.
        pub(crate) fn publish_on(
            self,
            p: Proc,
            seq: u64,
            digest: u64,
            kind: EventKind,
            topic: &str,
        ) -> Self {
            self.act(Act::Published {
                proc: p,
                id: id(p, seq),
                digest,
                bytes: 8,
                valid: true,
                kind,
                topic: topic.into(),
            })
        }
        /// `p` subscribed (sequence `seq`, id `sub_id`) with `filter`.
        pub(crate) fn subscribe(self, p: Proc, seq: u64, sub_id: u32, filter: SubFilter) -> Self {
            self.act(Act::Subscribed {
                proc: p,
                seq,
                sub_id,
                filter,
            })
        }
        /// `p` dropped subscription `sub_id` (sequence `seq`).
        pub(crate) fn unsubscribe(self, p: Proc, seq: u64, sub_id: u32) -> Self {
            self.act(Act::Unsubscribed {
                proc: p,
                seq,
                sub_id,
            })
        }
        /// `r` (member `member_id` in server `k`) was handed published event
        /// `id` from member `from` at `gseq`, content digest `digest`.
        #[allow(clippy::too_many_arguments)]
        pub(crate) fn notify(
            self,
            r: Proc,
            k: u64,
            member_id: u64,
            gseq: u64,
            from: u64,
            id: MsgId,
            digest: u64,
        ) -> Self {
            self.act(Act::Notified {
                proc: r,
                server: k,
                member_id,
                gseq,
                from,
                id,
                digest,
            })
        }
        /// `r` saw member `member_id`'s services at `gseq` of server `k` (in
        /// a snapshot or a `MemberJoined`).
        pub(crate) fn seen(
            self,
            r: Proc,
            k: u64,
            gseq: u64,
            member_id: u64,
            services: &[&str],
        ) -> Self {
            self.act(Act::ServicesSeen {
                proc: r,
                server: k,
                gseq,
                member_id,
                services: services.iter().map(|s| (*s).to_owned()).collect(),
            })
        }
        /// Server `k` logged the `MemberJoined` of `member_id` at `gseq`
        /// with `services`.
        pub(crate) fn logged_join(
            self,
            k: u64,
            gseq: u64,
            member_id: u64,
            services: &[&str],
        ) -> Self {
            self.act(Act::ServerServices {
                server: k,
                gseq,
                member_id,
                fact: ServiceFact::Joined(services.iter().map(|s| (*s).to_owned()).collect()),
            })
        }
        /// Server `k` logged `member_id`'s service `service` going up or
        /// down at `gseq`.
        pub(crate) fn logged_change(
            self,
            k: u64,
            gseq: u64,
            member_id: u64,
            service: &str,
            up: bool,
        ) -> Self {
            self.act(Act::ServerServices {
                server: k,
                gseq,
                member_id,
                fact: ServiceFact::Change {
                    service: service.into(),
                    up,
                },
            })
        }
        /// A view event at `gseq`, with epoch `gseq` (epochs then grow
        /// with the position, as they must).
        pub(crate) fn view(self, r: Proc, k: u64, gseq: u64, change: ViewChange) -> Self {
            self.view_epoch(r, k, gseq, change, gseq)
        }
        pub(crate) fn view_epoch(
            self,
            r: Proc,
            k: u64,
            gseq: u64,
            change: ViewChange,
            epoch: u64,
        ) -> Self {
            self.act(Act::ViewEvent {
                proc: r,
                server: k,
                gseq,
                change,
                epoch,
            })
        }
        /// Server `k` logged the registration of `member_id` as
        /// `instance`/`process`.
        pub(crate) fn logged_reg(
            self,
            k: u64,
            member_id: u64,
            instance: &str,
            process: &str,
        ) -> Self {
            self.logged_reg_at(k, 0, member_id, instance, process)
        }
        /// Like [`Hb::logged_reg`], with the stream position of the
        /// `MemberJoined`.
        pub(crate) fn logged_reg_at(
            self,
            k: u64,
            gseq: u64,
            member_id: u64,
            instance: &str,
            process: &str,
        ) -> Self {
            self.act(Act::ServerJoined {
                server: k,
                gseq,
                member_id,
                instance: instance.into(),
                process: process.into(),
            })
        }
        /// Server `k` logged `member_id` joining (`joined`) or leaving
        /// `group` at `gseq`.
        pub(crate) fn logged_group(
            self,
            k: u64,
            gseq: u64,
            member_id: u64,
            group: &str,
            joined: bool,
        ) -> Self {
            self.act(Act::ServerGroup {
                server: k,
                gseq,
                member_id,
                group: group.into(),
                joined,
            })
        }
        /// `p`'s connection dropped, closed by an `Error` with `code` or
        /// by the connection's close reaching it (`by_peer`).
        pub(crate) fn disconnected(
            self,
            p: Proc,
            code: Option<switchboard_core::frame::ErrorCode>,
            by_peer: bool,
        ) -> Self {
            self.act(Act::Disconnected {
                proc: p,
                code,
                by_peer,
            })
        }
        /// `p`'s client was told everything through `through` is stable.
        pub(crate) fn stable(self, p: Proc, through: u64) -> Self {
            self.act(Act::Stable { proc: p, through })
        }
        pub(crate) fn removed(self, k: u64, member_id: u64, reason: Option<FailReason>) -> Self {
            self.act(Act::ServerRemoved {
                server: k,
                member_id,
                reason,
            })
        }
        pub(crate) fn fault(self, slot: Option<usize>, from: Ms, until: Ms) -> Self {
            self.act(Act::Fault {
                slot,
                from,
                until,
                kind: "partition",
            })
        }
        pub(crate) fn memory(self, server_queue_max: usize, outbox_max: usize) -> Self {
            self.act(Act::Memory {
                server_queue_max,
                outbox_max,
                server_queue_bytes_max: 0,
            })
        }
        pub(crate) fn final_state(
            self,
            p: Proc,
            ready: bool,
            in_view: bool,
            outbox: usize,
            unresolved_confirms: usize,
        ) -> Self {
            self.act(Act::Final {
                proc: p,
                ready,
                in_view,
                outbox,
                unresolved_confirms,
            })
        }
        pub(crate) fn final_ok(self, p: Proc) -> Self {
            self.final_state(p, true, true, 0, 0)
        }
    }

    /// A consistent run in server 1: A (member 1), B (2) and C (3) join;
    /// B and C join group "g"; A broadcasts (confirmed) and sends to "g";
    /// B sends to instance "alpha"; C sends to member 1 (confirmed); A
    /// sends to alpha/b; C says goodbye; A and B see it leave at gseq 9.
    /// Ends before the `Final` acts so tests can append (see [`happy`]).
    pub(crate) fn happy_run() -> Hb {
        use ViewChange::*;
        Hb::new()
            .server_start(1)
            .start(A)
            .start(B)
            .start(C)
            .reg(A, 1, 1, 1, &[1])
            .reg(B, 1, 2, 2, &[1, 2])
            .view(A, 1, 2, Joined(2))
            .reg(C, 1, 3, 3, &[1, 2, 3])
            .view(A, 1, 3, Joined(3))
            .view(B, 1, 3, Joined(3))
            .join(B, "g", 1)
            .ack(B, 1)
            .join(C, "g", 1)
            .ack(C, 1)
            .send_confirm(A, 1, Address::Broadcast)
            .ack(A, 1)
            .deliver(B, 1, 2, 4, 1, id(A, 1))
            .deliver(C, 1, 3, 4, 1, id(A, 1))
            .outcome(A, 1, 2, vec![])
            .send(A, 2, group("g"))
            .ack(A, 2)
            .deliver(B, 1, 2, 5, 1, id(A, 2))
            .deliver(C, 1, 3, 5, 1, id(A, 2))
            .send(B, 2, Address::Instance("alpha".into()))
            .ack(B, 2)
            .deliver(A, 1, 1, 6, 2, id(B, 2))
            .send_confirm(C, 2, Address::MemberId(1))
            .ack(C, 2)
            .deliver(A, 1, 1, 7, 3, id(C, 2))
            .outcome(C, 2, 1, vec![])
            .send(
                A,
                3,
                Address::Member {
                    instance: "alpha".into(),
                    process: "b".into(),
                },
            )
            .ack(A, 3)
            .deliver(B, 1, 2, 8, 1, id(A, 3))
            .bye(C)
            .removed(1, 3, None)
            .view(A, 1, 9, Left(3))
            .view(B, 1, 9, Left(3))
            .fault(Some(1), 5, 6)
            .memory(10, 5)
    }

    /// [`happy_run`] with the final states of A and B.
    pub(crate) fn happy() -> Hb {
        happy_run().final_ok(A).final_ok(B)
    }

    /// Asserts no violations.
    #[track_caller]
    pub(crate) fn assert_clean(v: &[Violation]) {
        assert!(v.is_empty(), "expected no violations, got {v:#?}");
    }

    /// Asserts some violation's detail contains `needle`.
    #[track_caller]
    pub(crate) fn assert_flags(v: &[Violation], needle: &str) {
        assert!(
            v.iter().any(|x| x.detail.contains(needle)),
            "expected a violation containing {needle:?}, got {v:#?}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::testkit::*;
    use super::*;
    use crate::history::{Act, Proc};

    #[test]
    fn happy_history_passes_every_checker() {
        assert_clean(&check_all(&happy().build(), &bounds()));
    }

    #[test]
    fn every_checker_is_listed_once_with_its_name() {
        assert_eq!(CHECKERS.len(), 11);
        for (i, (name, _)) in CHECKERS.iter().enumerate() {
            assert!(name.starts_with(&format!("G{} ", i + 1)), "{name}");
        }
    }

    #[test]
    fn reports_are_capped() {
        let mut hb = happy();
        for _ in 0..100 {
            hb = hb.memory(10_000, 5);
        }
        let v = g11_bounded_memory::check(&hb.build(), &bounds());
        assert_eq!(v.len(), sessions::MAX_VIOLATIONS + 1);
        assert_flags(&v, "80 more");
    }

    #[test]
    fn check_all_names_the_guarantee() {
        let h = happy()
            .act(Act::Final {
                proc: Proc {
                    slot: 0,
                    incarnation: 100,
                },
                ready: false,
                in_view: true,
                outbox: 0,
                unresolved_confirms: 0,
            })
            .build();
        let v = check_all(&h, &bounds());
        assert_eq!(v.len(), 1, "{v:#?}");
        assert_eq!(v[0].guarantee, g09_liveness::NAME);
    }
}
