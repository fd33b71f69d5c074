//! The checks of the cluster model, run after every step (bounded
//! queues, integrity, duplicates, FIFO, one total order, nothing from a
//! member after it left) and after healing (everyone back, every status
//! final, every outbox empty).

use super::*;

impl Model {
    /// G11: after every input no member's stream holds more than twice
    /// its soft limit (`queue_len`, notices excluded). Notices (NACKs,
    /// outcomes) are documented to stay within `sender_inflight_max`;
    /// known bug (see `nack_notices_are_bounded`): NACK notices are not,
    /// so unless `strict` they are only held to one per command the node
    /// issued.
    pub fn check_queues(&mut self) {
        let limit = 2 * QUEUE_MAX;
        let inflight = self.c.server_config.sender_inflight_max;
        for m in self.c.server.view() {
            let q = self.c.server.queue_len(m.member_id).unwrap();
            assert!(
                q <= limit,
                "G11: member {} ({}/{}) has {q} queued items, limit {limit} (2 x {QUEUE_MAX})",
                m.member_id,
                m.instance,
                m.process
            );
            let n = self.c.server.notices_len(m.member_id).unwrap();
            let node = self.node_of_incarnation(m.incarnation).unwrap();
            // Outcomes are bounded by the member's messages in flight and
            // NACKs stop its sending once it holds `inflight` unread
            // notices: at most twice that.
            let bound = if self.opts.strict {
                2 * inflight
            } else {
                (2 * inflight).max(self.commands[node])
            };
            assert!(
                n <= bound,
                "G11: member {} holds {n} notices, bound {bound}",
                m.member_id
            );
        }
    }

    /// G4: a stream position means the same thing at every node, and each
    /// node's positions strictly increase (per server generation).
    pub fn position(&mut self, r: usize, gseq: u64, epoch: Option<u64>, ident: Ident) {
        let gen = self.gen;
        let mut last_epoch = 0;
        if let Some((g, last, e)) = self.last_pos[r] {
            if g == gen {
                assert!(
                    gseq > last,
                    "G4: node {r} got position {gseq} after {last} (generation {gen})"
                );
                last_epoch = e;
            }
        }
        if let Some(epoch) = epoch {
            assert!(
                epoch >= last_epoch,
                "G7: node {r} saw epoch {epoch} after {last_epoch}"
            );
            last_epoch = epoch;
        }
        self.last_pos[r] = Some((gen, gseq, last_epoch));
        match self.positions.get(&(gen, gseq)) {
            Some(prev) => assert_eq!(
                prev, &ident,
                "G4: position {gseq} (generation {gen}) differs at node {r}"
            ),
            None => {
                self.positions.insert((gen, gseq), ident);
            }
        }
    }

    /// Checks every event the nodes reported since the last call. Outcomes
    /// are checked last: the receiver's delivery precedes the sender's
    /// outcome, but events of different nodes are collected separately.
    pub fn absorb(&mut self) {
        let mut outcomes = Vec::new();
        let batches: Vec<Vec<ClientEvent>> = (0..self.n).map(|r| self.c.take_events(r)).collect();
        // A sender's registration in this batch may precede a receiver's
        // delivery of its resent message (nodes report separately).
        for (r, batch) in batches.iter().enumerate() {
            self.registering[r] = batch
                .iter()
                .filter(|e| matches!(e, ClientEvent::Registered { .. }))
                .count() as u32;
        }
        for (r, batch) in batches.into_iter().enumerate() {
            for e in batch {
                match e {
                    ClientEvent::Outcome { seq, delivered, .. } => {
                        assert!(
                            self.finals.insert((r, seq)),
                            "G8: two final statuses for {seq}"
                        );
                        outcomes.push((r, seq, delivered));
                    }
                    ClientEvent::Nacked { seq, .. } => {
                        assert!(
                            self.finals.insert((r, seq)),
                            "G8: two final statuses for {seq}"
                        );
                    }
                    e => self.on_event(r, e),
                }
            }
        }
        for (r, seq, delivered) in outcomes {
            let Some(uid) = self.by_seq.get(&(r, seq)).copied() else {
                panic!("G8: node {r} got an outcome for {seq}, which it never sent");
            };
            let s = &self.sent[&uid];
            assert!(s.confirm, "G8: outcome for unconfirmed {uid}");
            let got = self.received.get(&uid).map_or(0, |set| set.len());
            assert!(
                got >= delivered as usize,
                "G5: outcome of {uid} ({:?}) says {delivered} delivered, {got} nodes got it",
                s.to
            );
        }
    }

    pub fn on_event(&mut self, r: usize, e: ClientEvent) {
        let gen = self.gen;
        match e {
            ClientEvent::Registered {
                member_id, view, ..
            } => {
                self.registrations[r] += 1;
                self.id_to_node.insert((gen, member_id), r);
                // A fresh snapshot: who left before it is in it or not.
                self.departed[r].retain(|(g, _)| *g != gen);
                for info in view {
                    if let Some(node) = self.node_of_incarnation(info.incarnation) {
                        self.id_to_node.insert((gen, info.member_id), node);
                    }
                }
            }
            ClientEvent::Message(m) => {
                let uid = uid_of(&m.payload);
                let s = self
                    .sent
                    .get(&uid)
                    .unwrap_or_else(|| panic!("G1: node {r} got unknown message {uid}"))
                    .clone();
                // G1: unmodified, from the true sender, as addressed.
                assert_eq!(
                    m.payload,
                    payload(uid, s.len),
                    "G1: payload of {uid} changed"
                );
                assert_eq!(
                    m.from_incarnation,
                    node_incarnation(s.sender),
                    "G1: sender of {uid}"
                );
                assert_eq!(m.seq, s.seq, "G1: sequence of {uid}");
                assert_eq!(m.to, s.to, "G1: address of {uid}");
                assert_eq!(
                    m.is_request(),
                    s.kind == Kind::Request,
                    "G1: request flag of {uid}"
                );
                if let Kind::Reply { to_node, corr } = s.kind {
                    // A reply nobody waits for (any more) is handed over
                    // as a message, to the requester, with its correlation.
                    assert!(m.flags & flags::REPLY != 0, "G1: reply flag of {uid}");
                    assert_eq!(m.correlation, corr, "G1: correlation of reply {uid}");
                    assert_eq!(r, to_node, "G1: reply {uid} reached node {r}");
                    assert!(self.replies_seen.insert(uid), "G2: reply {uid} twice");
                }
                let (inst, proc_) = node_names(r);
                match &s.to {
                    Address::MemberId(_) => {
                        // Ids name a process incarnation, in every server run.
                        let want = s.intended.expect("G1: message to an unknown id");
                        assert_eq!(r, want, "G1: message {uid} to node {want} by id");
                    }
                    Address::Member { instance, process } => {
                        assert!(
                            *instance == inst && *process == proc_,
                            "G1: {uid} for {instance}/{process} reached {inst}/{proc_}"
                        );
                    }
                    Address::Instance(name) => {
                        assert!(*name == inst && r != s.sender, "G1: {uid} to {name} at {r}");
                    }
                    Address::Group(g) | Address::Anycast(g) => {
                        assert!(
                            self.joined_ever[r].contains(g) && r != s.sender,
                            "G1: {uid} to group {g} reached node {r}"
                        );
                    }
                    Address::Broadcast => assert_ne!(r, s.sender, "G1: broadcast to self"),
                }
                // G2 and G3.
                assert!(
                    self.seen.insert((r, m.from_incarnation, m.seq)),
                    "G2: node {r} got ({}, {}) twice",
                    m.from_incarnation,
                    m.seq
                );
                let last = self.last_seq.entry((r, m.from_incarnation)).or_insert(0);
                if m.seq <= *last {
                    let what = format!(
                        "node {r} got seq {} of {} after {}",
                        m.seq, m.from_incarnation, last
                    );
                    // G3 holds per server run: a message resent after a
                    // restart is routed again and may newly reach a
                    // receiver that already had later ones (documented;
                    // see `a_resent_message_after_a_restart_is_delivered_late_not_lost`).
                    let resent =
                        self.registrations[s.sender] + self.registering[s.sender] > s.registration;
                    assert!(resent, "G3: {what}");
                    self.resend_reorders.push(what);
                }
                *last = (*last).max(m.seq);
                // G7: nothing from a member after its departure.
                assert!(
                    !self.departed[r].contains(&(gen, m.from)),
                    "G7: node {r} got {uid} from member {} after it left",
                    m.from
                );
                self.position(
                    r,
                    m.gseq,
                    None,
                    Ident::Msg {
                        from_incarnation: m.from_incarnation,
                        seq: m.seq,
                    },
                );
                if m.is_request() {
                    self.requests_in[r].push((m.reply_to(), uid));
                }
                self.received.entry(uid).or_default().insert(r);
            }
            ClientEvent::Reply { request, message } => {
                let p = message.payload;
                let uid = uid_of(&p);
                let s = self.sent.get(&uid).expect("G1: unknown reply").clone();
                assert_eq!(p, payload(uid, s.len), "G1: reply payload changed");
                let Kind::Reply { to_node, corr } = s.kind else {
                    panic!("G1: message {uid} surfaced as a reply at node {r}");
                };
                assert!(
                    to_node == r && corr == request,
                    "G1: reply {uid} for request {corr} of node {to_node} reached node {r} \
                     as the reply to its request {request}"
                );
                assert!(self.replies_seen.insert(uid), "G2: reply {uid} twice");
            }
            ClientEvent::Event {
                gseq, epoch, event, ..
            } => {
                match &event {
                    ClusterEvent::MemberJoined(info) => {
                        if let Some(node) = self.node_of_incarnation(info.incarnation) {
                            self.id_to_node.insert((gen, info.member_id), node);
                        }
                        // The same process incarnation registering again
                        // gets the same id back.
                        self.departed[r].remove(&(gen, info.member_id));
                    }
                    ClusterEvent::MemberLeft { member_id } => {
                        self.departed[r].insert((gen, *member_id));
                    }
                    ClusterEvent::MemberFailed { member_id, reason } => {
                        self.departed[r].insert((gen, *member_id));
                        // G10: a node that always read, never crashed and
                        // never left is never declared failed. Evictions
                        // are exempt: with a 16-item limit one burst from a
                        // sender (or the outcomes of an evicted peer) can
                        // fill a healthy reader's queue within one input.
                        let evicted = *reason == FailReason::SlowConsumer;
                        if let Some(&node) = self.id_to_node.get(&(gen, *member_id)) {
                            assert!(
                                evicted || !self.healthy(node),
                                "G10: healthy node {node} (member {member_id}) declared \
                                 failed: {reason:?}"
                            );
                        }
                    }
                    _ => {}
                }
                self.position(r, gseq, Some(epoch), Ident::Event(event));
            }
            _ => {}
        }
    }

    /// Unpauses everyone, runs long enough for resumes, re-registrations,
    /// session expiry and heartbeats, and checks convergence (G9).
    pub fn heal(&mut self) {
        for node in &mut self.c.nodes {
            node.paused = false;
        }
        self.c.run_for(30_000, 100);
        self.absorb();
        self.check_queues();
        let live: BTreeSet<u64> = (0..self.n)
            .filter(|&i| self.alive(i))
            .map(node_incarnation)
            .collect();
        let in_view: BTreeSet<u64> = self.c.server.view().map(|m| m.incarnation).collect();
        assert_eq!(in_view, live, "G9: server view after healing");
        let alive: Vec<usize> = (0..self.n).filter(|&i| self.alive(i)).collect();
        for i in alive {
            let client = &self.c.nodes[i].client;
            assert!(client.is_ready(), "G9: node {i} not ready: {client:?}");
            let view: BTreeSet<u64> = client.view().values().map(|m| m.incarnation).collect();
            assert_eq!(view, live, "G9: view of node {i}");
            // G8: every confirmed message (and request) got a final status.
            let mut stuck = 0;
            for (uid, s) in &self.sent {
                if s.sender != i || !s.confirm || self.finals.contains(&(i, s.seq)) {
                    continue;
                }
                let what = format!("node {i} never got a final status for {uid} ({:?})", s.to);
                // Known bug (see `every_confirmed_message_gets_a_final_status_after_a_lost_session`):
                // outcomes due while the sender's session is lost can be dropped.
                let lost_session = self.registrations[i] > s.registration;
                assert!(
                    !self.opts.strict && lost_session,
                    "G8: {what} (session lost since: {lost_session})"
                );
                self.lost_statuses.push(what);
                stuck += 1;
            }
            assert_eq!(
                client.outbox_len(),
                stuck,
                "G9: node {i} still holds unconfirmed messages"
            );
            let id = client.member_id().unwrap();
            assert!(self.c.server.is_attached(id), "G9: node {i} not attached");
        }
    }
}
