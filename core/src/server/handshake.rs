//! Registration: hello or resume, mutual challenge-response, welcome with
//! the view snapshot, or a reject with a reason.

use super::member::Member;
use super::timers::Timer;
use super::types::DenialKind;
use super::*;
use crate::auth::{proofs_equal, Secret, SessionIds};
use crate::credentials::{CredentialId, CredentialKind, Permissions};
use crate::frame::{
    Challenge, Gap, Hello, RejectReason, Resume, Resumed, Snapshot, Welcome, NAME_BYTES_MAX,
};

/// What the client asked for in its first frame.
#[derive(Debug)]
pub(super) enum Start {
    Hello(Box<Hello>),
    Resume(Resume),
}

/// The credential a handshake proved and what it permits.
#[derive(Debug, Clone)]
pub(super) struct Granted {
    pub id: CredentialId,
    pub permissions: std::sync::Arc<Permissions>,
    /// The connection's certificate names (kept to resolve certificate
    /// credentials again on a reload).
    pub cert_names: Vec<String>,
}

/// The nonces of one handshake.
#[derive(Debug, Clone, Copy)]
struct Nonces {
    client: [u8; frame::NONCE_BYTES],
    server: [u8; frame::NONCE_BYTES],
}

/// Bytes of a member in a snapshot frame (see `frame::encode`).
fn member_encoded_len(m: &MemberInfo) -> usize {
    8 + 8
        + 2
        + m.instance.len()
        + 2
        + m.process.len()
        + 2
        + m.services.iter().map(|s| 2 + s.len()).sum::<usize>()
        + 4
        + 2
        + m.groups.iter().map(|g| 2 + g.len()).sum::<usize>()
}

/// SplitMix64 finalizer.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A member, group or service name: non-empty, within the limit, no
/// control characters.
pub(super) fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= NAME_BYTES_MAX && !s.chars().any(|c| c.is_control())
}

impl Server {
    pub(super) fn handshake_frame(&mut self, conn: ConnId, f: Frame) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        match (&c.state, f) {
            (ConnState::AwaitHello, Frame::Hello(h)) => {
                if h.cluster != self.config.cluster {
                    return self.reject(conn, RejectReason::WrongCluster, "unknown cluster".into());
                }
                if !valid_name(&h.instance) || !valid_name(&h.process) {
                    return self.reject(conn, RejectReason::Invalid, "invalid member name".into());
                }
                if h.incarnation == 0 {
                    return self.reject(conn, RejectReason::Invalid, "incarnation 0".into());
                }
                let nonce = h.client_nonce;
                let claim = h.credential.clone();
                self.challenge(conn, Start::Hello(Box::new(h)), &nonce, claim);
            }
            (ConnState::AwaitHello, Frame::Resume(r)) => {
                if r.cluster != self.config.cluster {
                    return self.reject(conn, RejectReason::WrongCluster, "unknown cluster".into());
                }
                let nonce = r.client_nonce;
                let claim = r.credential.clone();
                self.challenge(conn, Start::Resume(r), &nonce, claim);
            }
            (ConnState::AwaitAuth { .. }, Frame::Auth(a)) => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                let state = std::mem::replace(&mut c.state, ConnState::AwaitHello);
                let ConnState::AwaitAuth {
                    start,
                    server_nonce,
                    claim,
                } = state
                else {
                    return;
                };
                let client_nonce = match &start {
                    Start::Hello(h) => h.client_nonce,
                    Start::Resume(r) => r.client_nonce,
                };
                let Some((secret, granted)) =
                    self.verify(conn, &claim, &server_nonce, &client_nonce, &a.client_proof)
                else {
                    // An unknown credential name and a wrong proof are
                    // refused alike: the answer tells nothing about which
                    // names exist.
                    let text = if claim.is_empty() {
                        "authentication failed".to_owned()
                    } else {
                        format!("authentication failed for credential {claim:?}")
                    };
                    return self.reject(conn, RejectReason::BadSecret, text);
                };
                let peer = self.conns.get(&conn).and_then(|c| c.peer);
                if !granted.permissions.permits_source(peer) {
                    let detail = match peer {
                        Some(ip) => format!("credential {} may not be used from {ip}", granted.id),
                        None => format!("credential {} may not be used here", granted.id),
                    };
                    return self.deny_handshake(conn, &granted.id, DenialKind::Register, detail);
                }
                let nonces = Nonces {
                    client: client_nonce,
                    server: server_nonce,
                };
                match start {
                    Start::Hello(h) => self.register(conn, *h, nonces, &secret, granted),
                    Start::Resume(r) => self.resume(conn, r, nonces, &a.session_proof, &granted.id),
                }
            }
            (_, other) => {
                let detail = format!("{} is not allowed during the handshake", other.name());
                self.reject(conn, RejectReason::Invalid, detail);
            }
        }
    }

    /// The secret and credential a client proved, if its proof holds: for
    /// an empty claim, any accepted cluster secret (the credential is then
    /// the connection's certificate credential, if one names its
    /// certificate, else the cluster's); for a named one, that secret.
    fn verify(
        &self,
        conn: ConnId,
        claim: &str,
        server_nonce: &[u8; frame::NONCE_BYTES],
        client_nonce: &[u8; frame::NONCE_BYTES],
        proof: &[u8; frame::PROOF_BYTES],
    ) -> Option<(Secret, Granted)> {
        let creds = &self.config.credentials;
        let holds = |s: &Secret| proofs_equal(&s.client_proof(server_nonce, client_nonce), proof);
        if !claim.is_empty() {
            let c = creds.secrets.get(claim).filter(|c| holds(&c.secret))?;
            let id = CredentialId {
                kind: CredentialKind::Secret,
                name: claim.to_owned(),
            };
            return Some((
                c.secret.clone(),
                Granted {
                    id,
                    permissions: c.permissions.clone(),
                    cert_names: Vec::new(),
                },
            ));
        }
        let secret = self.config.accepted_secrets().find(|s| holds(s))?.clone();
        let cert_names = self
            .conns
            .get(&conn)
            .map(|c| c.cert_names.clone())
            .unwrap_or_default();
        let granted = match creds.for_certificate(&cert_names) {
            Some(c) => Granted {
                id: CredentialId {
                    kind: CredentialKind::Certificate,
                    name: c.name.clone(),
                },
                permissions: c.permissions.clone(),
                cert_names,
            },
            None => Granted {
                id: CredentialId::cluster(),
                permissions: creds.cluster.clone(),
                cert_names,
            },
        };
        Some((secret, granted))
    }

    fn challenge(
        &mut self,
        conn: ConnId,
        start: Start,
        client_nonce: &[u8; frame::NONCE_BYTES],
        claim: String,
    ) {
        let mut server_nonce = [0u8; frame::NONCE_BYTES];
        self.rng.fill_bytes(&mut server_nonce);
        let (server_proof, extra_proofs) = if claim.is_empty() {
            let mut proofs = self
                .config
                .accepted_secrets()
                .map(|s| s.server_proof(client_nonce, &server_nonce));
            let first = proofs.next().unwrap_or_default();
            (first, proofs.collect())
        } else {
            let proof = match self.config.credentials.secrets.get(&claim) {
                Some(c) => c.secret.server_proof(client_nonce, &server_nonce),
                None => {
                    // An unknown name: a proof with a throwaway key, which
                    // the client finds wrong exactly as it would a proof
                    // with another secret.
                    let mut key = [0u8; 32];
                    self.rng.fill_bytes(&mut key);
                    Secret::new(key.to_vec())
                        .map(|k| k.server_proof(client_nonce, &server_nonce))
                        .unwrap_or_default()
                }
            };
            (proof, Vec::new())
        };
        if let Some(c) = self.conns.get_mut(&conn) {
            c.state = ConnState::AwaitAuth {
                start,
                server_nonce,
                claim,
            };
        }
        let _ = self.write_control(
            conn,
            &Frame::Challenge(Challenge {
                server_incarnation: self.incarnation,
                server_nonce,
                server_proof,
                extra_proofs,
            }),
        );
    }

    /// The handshake table is full: the oldest pending handshake makes room
    /// for a new connection (connection ids grow with time). An honest
    /// handshake, a `Hello` or a `Resume`, completes within a round trip or
    /// two after it connects, so it is pushed out only if more than
    /// `handshakes_max` connections arrive within that time; nobody waits
    /// for a slot, so a returning member is never starved by new ones.
    /// Returns false when no handshake is pending.
    pub(super) fn evict_stalest_handshake(&mut self) -> bool {
        let victim = self
            .conns
            .iter()
            .find(|(_, c)| c.counted && !matches!(c.state, ConnState::Attached(_)))
            .map(|(id, _)| *id);
        let Some(victim) = victim else {
            return false;
        };
        self.reject(
            victim,
            RejectReason::ServerFull,
            "handshake table full: the oldest pending handshake was closed".into(),
        );
        true
    }

    /// Refuses a handshake and closes the connection.
    pub(super) fn reject(&mut self, conn: ConnId, reason: RejectReason, text: String) {
        self.stats.rejects += 1;
        self.stats.rejects_by_reason[super::stats::reject_index(reason)] += 1;
        self.outputs
            .push_back(Output::Event(ServerEvent::HandshakeRejected {
                conn,
                reason,
                detail: text.clone(),
            }));
        let _ = self.write_control(conn, &Frame::Reject(frame::Reject { reason, text }));
        self.close_conn(conn, CloseReason::Rejected(reason));
    }

    /// A new member, authenticated.
    fn register(
        &mut self,
        conn: ConnId,
        h: Hello,
        nonces: Nonces,
        secret: &Secret,
        granted: Granted,
    ) {
        // Validate everything before touching the view.
        let mut groups: Vec<String> = h.groups.clone();
        groups.sort();
        groups.dedup();
        let new_groups = groups
            .iter()
            .filter(|g| !self.groups.contains_key(*g))
            .count();
        if groups.iter().any(|g| !valid_name(g))
            || h.services.iter().any(|s| !valid_name(s))
            || self.groups.len() + new_groups > self.config.groups_max
        {
            return self.reject(
                conn,
                RejectReason::Invalid,
                "invalid groups or services".into(),
            );
        }
        let mut services = h.services.clone();
        services.sort();
        services.dedup();
        let cred = granted.id.clone();
        if !granted.permissions.register.matches(&h.instance) {
            let detail = format!(
                "credential {cred} may not register as instance {:?}",
                h.instance
            );
            return self.deny_handshake(conn, &cred, DenialKind::Register, detail);
        }
        if let Some(g) = groups.iter().find(|g| !granted.permissions.join.matches(g)) {
            let detail = format!("credential {cred} may not join group {g:?}");
            return self.deny_handshake(conn, &cred, DenialKind::Register, detail);
        }
        let old = self.by_name.get(&h.instance, &h.process);
        let replacing = old.is_some();
        if let Some(old) = old {
            let (attached, same, owner) = match self.members.get(&old) {
                Some(m) => (
                    m.conn.is_some(),
                    m.info.incarnation == h.incarnation,
                    Some(m.credential.clone()),
                ),
                None => (false, false, None),
            };
            if same && attached {
                return self.reject(
                    conn,
                    RejectReason::DuplicateIdentity,
                    format!("{}/{} is already registered", h.instance, h.process),
                );
            }
            // Superseding a live incarnation, or adopting a detached
            // session, needs the credential that registered it.
            if owner.is_some_and(|o| o != cred) {
                let detail = format!(
                    "{}/{} is registered with another credential than {cred}",
                    h.instance, h.process
                );
                return self.deny_handshake(conn, &cred, DenialKind::Supersede, detail);
            }
        }
        if !replacing && self.members.len() >= self.config.members_max {
            return self.reject(
                conn,
                RejectReason::ServerFull,
                "member limit reached".into(),
            );
        }
        let mut info = MemberInfo {
            member_id: 0,
            incarnation: h.incarnation,
            instance: h.instance.clone(),
            process: h.process.clone(),
            services,
            load: h.load,
            groups: groups.clone(),
        };
        // Every event about the member must fit a frame.
        if member_encoded_len(&info) + 128 > self.config.limits.frame_bytes_max as usize {
            return self.reject(
                conn,
                RejectReason::Invalid,
                "member description larger than a frame".into(),
            );
        }
        if let Some(old) = old {
            // A new incarnation of the process replaces the old one; the
            // same incarnation re-registering drops its stale session.
            let same = self
                .members
                .get(&old)
                .is_some_and(|m| m.info.incarnation == h.incarnation);
            let reason = if same {
                FailReason::ConnectionLost
            } else {
                FailReason::Superseded
            };
            self.remove_member(old, Removal::Failed(reason));
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            if c.counted {
                c.counted = false;
                self.handshakes -= 1;
            }
        }
        let id = self.identity_id(&h.instance, &h.process, h.incarnation);
        info.member_id = id;
        // A removed session is adopted only by the credential that
        // registered it.
        let departed = self.departed.remove(&id).filter(|d| d.credential == cred);
        self.departed_order.retain(|d| *d != id);
        // Existing members learn of the joiner in their stream; the joiner
        // learns of itself in its snapshot, taken right after.
        let instance_new = !self.instances.contains_key(&h.instance);
        self.raise(frame::ClusterEvent::MemberJoined(info.clone()), None);
        if instance_new {
            self.raise(
                frame::ClusterEvent::InstanceUp {
                    instance: h.instance.clone(),
                },
                None,
            );
        }
        self.by_name.insert(&h.instance, &h.process, id);
        self.instances
            .entry(h.instance.clone())
            .or_default()
            .insert(id);
        for g in &groups {
            self.groups.entry(g.clone()).or_default().insert(id);
        }
        self.sessions += 1;
        self.stats.registrations += 1;
        let mut m = Member::new(info, conn, self.now, self.sessions);
        m.reports_taken = h.capabilities & frame::capabilities::TAKEN != 0;
        let mut notices = Vec::new();
        if let Some(d) = departed.filter(|d| d.incarnation == h.incarnation) {
            // The same process again: continue its sequence space, and
            // re-issue the final statuses its lost session never received.
            self.stats.reregistrations += 1;
            m.received_through = d.received_through;
            m.pending = d.pending;
            m.session = d.session;
            notices = d.notices;
        }
        let session = m.session;
        m.credential = cred.clone();
        m.permissions = granted.permissions;
        m.cert_names = granted.cert_names;
        m.session_key = Some(secret.session_key(
            &nonces.client,
            &nonces.server,
            SessionIds {
                member_id: id,
                incarnation: h.incarnation,
                server_incarnation: self.incarnation,
            },
        ));
        for s in &h.subscriptions {
            if m.subscriptions.len() < frame::SUBSCRIPTIONS_MAX {
                m.subscriptions.insert(s.sub_id, s.filter.clone());
            }
        }
        self.members.insert(id, m);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.state = ConnState::Attached(id);
        }
        self.send_welcome(conn, id);
        for n in notices {
            self.notify_sender(id, session, n);
        }
        let interval = u64::from(self.config.heartbeat_interval_ms);
        self.timers
            .insert((self.now.plus_millis(interval), Timer::Heartbeat(id)));
        self.outputs
            .push_back(Output::Event(ServerEvent::MemberJoined {
                member_id: id,
                name: format!("{}/{}", h.instance, h.process),
                incarnation: h.incarnation,
                conn,
                credential: cred.to_string(),
            }));
        // Messages parked for this member may go now.
        self.wake.note_parked();
    }

    /// The member id of a process: a hash of its stable identity, so that
    /// the same process gets the same id from every server run and messages
    /// addressed by id survive a server restart. Never 0; probes on the
    /// (astronomically unlikely) collision with another live identity.
    fn identity_id(&self, instance: &str, process: &str, incarnation: u64) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in instance.bytes().chain([0xff]).chain(process.bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01B3);
        }
        let mut id = splitmix(h ^ incarnation) >> 1;
        while id == 0
            || self.members.get(&id).is_some_and(|m| {
                m.info.incarnation != incarnation
                    || m.info.instance != instance
                    || m.info.process != process
            })
        {
            id = splitmix(id) >> 1;
        }
        id
    }

    fn send_welcome(&mut self, conn: ConnId, id: u64) {
        let welcome = Welcome {
            member_id: id,
            server_incarnation: self.incarnation,
            epoch: self.epoch,
            position: self.gseq,
            heartbeat_interval_ms: self.config.heartbeat_interval_ms,
            heartbeat_timeout_ms: self.config.heartbeat_timeout_ms,
            resume_window_ms: self.config.resume_window_ms,
            frame_bytes_max: self.config.limits.frame_bytes_max,
            snapshot_members: self.members.len() as u32,
        };
        let _ = self.write_control(conn, &Frame::Welcome(welcome));
        // Split the snapshot by count and by encoded size.
        let budget = self.config.limits.frame_bytes_max as usize - 64;
        let mut batch: Vec<MemberInfo> = Vec::new();
        let mut batch_bytes = 0;
        let infos: Vec<MemberInfo> = self.members.values().map(|m| m.info.clone()).collect();
        for info in infos {
            let len = member_encoded_len(&info);
            if !batch.is_empty()
                && (batch.len() == frame::SNAPSHOT_MEMBERS_MAX || batch_bytes + len > budget)
            {
                let members = std::mem::take(&mut batch);
                let _ = self.write_control(conn, &Frame::Snapshot(Snapshot { members }));
                batch_bytes = 0;
            }
            batch_bytes += len;
            batch.push(info);
        }
        if !batch.is_empty() {
            let _ = self.write_control(conn, &Frame::Snapshot(Snapshot { members: batch }));
        }
    }

    /// A returning member, authenticated with the cluster secret; it must
    /// also prove the session key of the registration it resumes, else
    /// it is refused exactly like an unknown session and the session it
    /// named stays untouched.
    fn resume(
        &mut self,
        conn: ConnId,
        r: Resume,
        nonces: Nonces,
        session_proof: &[u8; frame::PROOF_BYTES],
        credential: &CredentialId,
    ) {
        let known = r.server_incarnation == self.incarnation
            && self
                .members
                .get(&r.member_id)
                .is_some_and(|m| m.info.incarnation == r.incarnation);
        if !known {
            if r.server_incarnation == self.incarnation && self.departed.contains_key(&r.member_id)
            {
                // The session expired on this server: say what was lost.
                self.stats.gaps += 1;
                let gap = Gap {
                    from: r.delivered_through.saturating_add(1),
                    through: self.gseq,
                };
                let _ = self.write_control(conn, &Frame::Gap(gap));
            }
            return self.reject(
                conn,
                RejectReason::SessionUnknown,
                "session unknown or expired: register again".into(),
            );
        }
        let id = r.member_id;
        // The session key proves the registration's secret; the credential
        // must be the registration's as well (a certificate credential's
        // holder proves the public certificate-auth secret).
        let proved = self
            .members
            .get(&id)
            .filter(|m| m.credential == *credential)
            .and_then(|m| m.session_key.as_ref())
            .is_some_and(|k| {
                proofs_equal(
                    &k.resume_proof(&nonces.server, &nonces.client),
                    session_proof,
                )
            });
        if !proved {
            return self.reject(
                conn,
                RejectReason::SessionUnknown,
                "session unknown or expired: register again".into(),
            );
        }
        let old_conn = self.members.get(&id).and_then(|m| m.conn);
        if let Some(old) = old_conn {
            self.close_conn(old, CloseReason::Replaced);
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            if c.counted {
                c.counted = false;
                self.handshakes -= 1;
            }
            c.state = ConnState::Attached(id);
        }
        // Everything the member already has counts as acknowledged.
        let through = r.delivered_through;
        if let Some(m) = self.members.get_mut(&id) {
            m.rewind();
            m.sent_items = m.queue.iter().take_while(|i| i.gseq <= through).count();
            m.sent_bytes = m.queue.iter().take(m.sent_items).map(|i| i.bytes).sum();
        }
        self.on_delivery_ack(id, through);
        let Some(m) = self.members.get_mut(&id) else {
            return;
        };
        m.conn = Some(conn);
        m.detached_since = None;
        m.last_heard = self.now;
        m.stats.connected_since = self.now;
        m.stats.resumes += 1;
        m.rewind();
        #[cfg(feature = "mutation")]
        if self.config.mutation == crate::mutation::Mutation::ServerSkipReplay {
            // Pretend everything queued was already sent.
            m.sent_items = m.queue.len();
            m.sent_bytes = m.queue_bytes;
        }
        let replay_from = m.queue.front().map_or(self.gseq + 1, |i| i.gseq);
        let replayed = m.queue.len();
        let received_through = m.received_through;
        self.stats.resumes += 1;
        let _ = self.write_control(
            conn,
            &Frame::Resumed(Resumed {
                received_through,
                replay_from,
            }),
        );
        self.dirty.insert(conn);
        self.outputs
            .push_back(Output::Event(ServerEvent::MemberResumed {
                member_id: id,
                replayed,
            }));
    }
}
