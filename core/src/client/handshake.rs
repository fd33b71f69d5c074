//! Registration: hello or resume, the mutual challenge-response, the
//! welcome with its view snapshot, resumes and rejects.

use rand::RngCore;

use super::link::{Nonces, Phase};
use super::types::{ClientEvent, ClientOutput};
use super::{Client, Session};
use crate::auth::{proofs_equal, SessionIds};
use crate::frame::{self, Auth, Frame, RejectReason, Resume};

impl Client {
    /// The connection is open: `Resume` the session if there is one, else
    /// register with a `Hello` carrying the member's state.
    pub(super) fn start_handshake(&mut self) {
        let mut nonce = [0u8; frame::NONCE_BYTES];
        self.rng.fill_bytes(&mut nonce);
        self.link.clear_buffers();
        self.incoming.drop_partial();
        self.link.last_heard = self.now;
        let first = match self.session {
            Some(s) => Frame::Resume(Resume {
                cluster: self.config.cluster.clone(),
                member_id: s.member_id,
                incarnation: self.config.incarnation,
                server_incarnation: s.server_incarnation,
                delivered_through: self.incoming.delivered_through(),
                client_nonce: nonce,
                credential: self.config.credential.clone(),
            }),
            None => {
                self.out.hello_built();
                Frame::Hello(self.local.hello(&self.config, nonce))
            }
        };
        self.write_control(&first);
        self.link.phase = Phase::AwaitChallenge {
            since: self.now,
            nonce,
        };
    }

    /// Handles one frame; returns false when the connection was dropped.
    pub(super) fn handle_frame(&mut self, f: Frame) -> bool {
        match (&mut self.link.phase, f) {
            (Phase::AwaitChallenge { nonce, since }, Frame::Challenge(c)) => {
                // A server rolling to a new secret proves each it accepts.
                let expected = self.config.secret.server_proof(nonce, &c.server_nonce);
                let proved = std::iter::once(&c.server_proof)
                    .chain(c.extra_proofs.iter())
                    .any(|p| proofs_equal(&expected, p));
                if !proved {
                    // A wrong secret here, or a server that is not ours:
                    // tell the application, keep retrying with backoff.
                    self.event(ClientEvent::Rejected {
                        reason: RejectReason::BadSecret,
                        text: "server failed to prove the cluster secret".into(),
                        fatal: false,
                    });
                    self.drop_connection("server failed to prove the cluster secret".into(), true);
                    return false;
                }
                let proof = self.config.secret.client_proof(&c.server_nonce, nonce);
                let nonces = Nonces {
                    client: *nonce,
                    server: c.server_nonce,
                };
                let since = *since;
                // Resuming: prove the session key over this handshake's
                // fresh nonces (never the key itself).
                let session_proof = match self.session {
                    Some(s) => s.key.resume_proof(&nonces.server, &nonces.client),
                    None => [0; frame::PROOF_BYTES],
                };
                self.write_control(&Frame::Auth(Auth {
                    client_proof: proof,
                    session_proof,
                }));
                self.link.phase = Phase::AwaitWelcome { since, nonces };
                true
            }
            (Phase::AwaitWelcome { since, nonces }, Frame::Welcome(w)) => {
                let (since, nonces) = (*since, *nonces);
                let remaining = w.snapshot_members;
                self.link.phase = Phase::Snapshot {
                    since,
                    welcome: w,
                    members: Vec::new(),
                    nonces,
                };
                if remaining == 0 {
                    self.finish_registration();
                }
                true
            }
            (
                Phase::Snapshot {
                    welcome, members, ..
                },
                Frame::Snapshot(s),
            ) => {
                members.extend(s.members);
                if members.len() as u64 > u64::from(welcome.snapshot_members) {
                    self.drop_connection("snapshot larger than announced".into(), true);
                    return false;
                }
                if members.len() as u64 == u64::from(welcome.snapshot_members) {
                    self.finish_registration();
                }
                true
            }
            (Phase::AwaitWelcome { .. }, Frame::Resumed(r)) => {
                self.link.phase = Phase::Ready;
                self.link.established();
                self.out.resumed(r.received_through);
                self.incoming.resumed();
                self.taking.resumed();
                let member_id = self.member_id().unwrap_or(0);
                self.event(ClientEvent::Resumed { member_id });
                true
            }
            (_, Frame::Gap(g)) => {
                self.event(ClientEvent::Gap {
                    from: g.from,
                    through: g.through,
                });
                true
            }
            (_, Frame::Reject(r)) => {
                let fatal = matches!(
                    r.reason,
                    RejectReason::BadSecret
                        | RejectReason::WrongCluster
                        | RejectReason::UnsupportedVersion
                        | RejectReason::Invalid
                );
                if r.reason == RejectReason::SessionUnknown {
                    // Register afresh at once; the outbox is resent.
                    self.session = None;
                    self.outputs.push_back(ClientOutput::Close);
                    self.link.clear_buffers();
                    self.link.phase = Phase::Idle { retry_at: self.now };
                    return false;
                }
                self.event(ClientEvent::Rejected {
                    reason: r.reason,
                    text: r.text,
                    fatal,
                });
                if fatal {
                    self.outputs.push_back(ClientOutput::Close);
                    self.link.phase = Phase::Closed;
                    self.event(ClientEvent::Closed);
                } else {
                    self.drop_connection("handshake refused".into(), true);
                }
                false
            }
            (Phase::Ready, f) => self.stream_frame(f),
            (_, Frame::Ping(n)) => {
                self.write_control(&Frame::Pong(n));
                true
            }
            (_, Frame::Pong(_)) => true,
            (_, other) => {
                let reason = format!("unexpected {} during the handshake", other.name());
                self.drop_connection(reason, true);
                false
            }
        }
    }

    /// The welcome and its whole snapshot arrived: registered.
    fn finish_registration(&mut self) {
        let Phase::Snapshot {
            welcome,
            members,
            nonces,
            ..
        } = std::mem::replace(&mut self.link.phase, Phase::Ready)
        else {
            return;
        };
        self.link.established();
        let session_lost = self.had_session;
        self.had_session = true;
        let key = self.config.secret.session_key(
            &nonces.client,
            &nonces.server,
            SessionIds {
                member_id: welcome.member_id,
                incarnation: self.config.incarnation,
                server_incarnation: welcome.server_incarnation,
            },
        );
        self.session = Some(Session {
            member_id: welcome.member_id,
            server_incarnation: welcome.server_incarnation,
            key,
        });
        // Never send frames larger than the server accepts.
        let frame_max = welcome
            .frame_bytes_max
            .min(self.config.limits.frame_bytes_max);
        self.config.limits = frame::Limits::with_frame_bytes_max(frame_max);
        self.link.heartbeat_interval_ms = u64::from(welcome.heartbeat_interval_ms.max(1));
        self.link.heartbeat_timeout_ms = u64::from(welcome.heartbeat_timeout_ms.max(1));
        self.incoming.registered(welcome.position);
        self.taking.registered(welcome.position);
        self.view.reset(welcome.epoch, &members);
        // The registration carried groups and subscriptions; resend data.
        self.out.registered();
        self.event(ClientEvent::Registered {
            member_id: welcome.member_id,
            epoch: welcome.epoch,
            position: welcome.position,
            view: members,
            session_lost,
        });
    }
}
