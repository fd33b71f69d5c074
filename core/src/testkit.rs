//! A raw-frame driver for the server state machine, shared by the property
//! tests and the fuzz target (cargo feature `testkit`; never in a normal
//! build).
//!
//! [`RawDriver`] holds one [`Server`] and the connections it opened, feeds
//! them bytes, performs real authenticated handshakes (Hello or Resume,
//! Challenge, Auth with the cluster secret), and after every input drains
//! the outputs and checks them:
//! * every transmit goes to an open connection, is not empty, and holds
//!   only whole, valid frames of the server's kinds; before a Welcome or
//!   Resumed only handshake replies, and those two only after a correct
//!   proof;
//! * a connection is closed at most once and hears nothing after; Reject,
//!   Error and Goodbye come with a close;
//! * the server tracks exactly the open connections, at most
//!   `handshakes_max` of them still in their handshake;
//! * no member holds more than twice `member_queue_items_max` stream items
//!   (G11), nor more notices than [`RawDriver::notices_max`].
//!
//! A failed check panics with what was wrong.
#![allow(clippy::panic)]

use bytes::{Bytes, BytesMut};
use rand::RngCore;

use crate::auth::Secret;
use crate::frame::{
    self, flags, Auth, Deliver, Frame, Limits, Nack, Notify, Outcome, NONCE_BYTES, PROOF_BYTES,
};
use crate::server::{ConnId, Output, Server, ServerConfig, ServerEvent};
use crate::time::Tick;

/// One connection as the driver tracks it.
#[derive(Debug)]
pub struct RawConn {
    /// Its id.
    pub id: ConnId,
    /// Not closed by either side.
    pub open: bool,
    /// A correct proof was sent on it.
    pub proved: bool,
    /// A Welcome or Resumed was received.
    pub registered: bool,
    /// Frames received from the server, in order.
    pub frames: Vec<Frame>,
    /// Last sequence number sent.
    pub seq: u64,
    /// A chunked send in progress: (seq, bytes sent, total).
    pub partial: Option<(u64, u32, u32)>,
    /// Highest stream position received.
    pub position: u64,
}

impl RawConn {
    fn new(id: ConnId) -> RawConn {
        RawConn {
            id,
            open: true,
            proved: false,
            registered: false,
            frames: Vec::new(),
            seq: 0,
            partial: None,
            position: 0,
        }
    }

    /// Takes the next sequence number.
    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Follows the server's frames: a new session restarts sequences.
    fn saw(&mut self, f: &Frame) {
        match f {
            Frame::Welcome(w) => {
                self.registered = true;
                self.seq = 0;
                self.partial = None;
                self.position = w.position;
            }
            Frame::Resumed(r) => {
                self.registered = true;
                self.seq = r.received_through;
                self.partial = None;
                self.position = r.replay_from.saturating_sub(1);
            }
            Frame::Deliver(Deliver { gseq, .. })
            | Frame::Notify(Notify { gseq, .. })
            | Frame::Nack(Nack { gseq, .. })
            | Frame::Outcome(Outcome { gseq, .. }) => self.position = self.position.max(*gseq),
            _ => {}
        }
    }

    /// Fixes up a member frame to follow on from the connection's state:
    /// the next sequence number, the chunk position of the send in
    /// progress (a `Ping` when there is none), the stream position to ack.
    pub fn auto(&mut self, mut f: Frame) -> Frame {
        match &mut f {
            Frame::Send(x) => {
                x.seq = self.next_seq();
                if x.flags & flags::MORE != 0 {
                    self.partial = Some((x.seq, x.payload.len() as u32, x.total_len));
                }
            }
            Frame::Publish(x) => x.seq = self.next_seq(),
            Frame::Subscribe(x) => x.seq = self.next_seq(),
            Frame::Unsubscribe(x) => x.seq = self.next_seq(),
            Frame::Join(x) | Frame::Leave(x) => x.seq = self.next_seq(),
            Frame::Chunk(_) if self.partial.is_none() => return Frame::Ping(1),
            Frame::Chunk(c) => {
                if let Some((seq, sent, total)) = self.partial {
                    let room = (total - sent) as usize;
                    if c.payload.is_empty() {
                        c.payload = Bytes::from(vec![1u8; room.min(3_000)]);
                    }
                    c.payload.truncate(room);
                    c.id = seq;
                    c.offset = sent;
                    let sent = sent + c.payload.len() as u32;
                    self.partial = (sent < total).then_some((seq, sent, total));
                }
            }
            Frame::DeliveryAck(a) => a.through = self.position,
            _ => {}
        }
        f
    }
}

/// Frames a connection may hear before it is registered.
fn handshake_reply(f: &Frame) -> bool {
    matches!(
        f,
        Frame::Challenge(_)
            | Frame::Welcome(_)
            | Frame::Resumed(_)
            | Frame::Reject(_)
            | Frame::Gap(_)
            | Frame::Error(_)
            | Frame::Goodbye(_)
    )
}

/// One server driven over raw connections, every output checked.
pub struct RawDriver {
    /// The server.
    pub server: Server,
    /// The virtual clock.
    pub now: Tick,
    /// Every connection opened so far, in order.
    pub conns: Vec<RawConn>,
    /// The server's incarnation, once a Challenge told it.
    pub server_incarnation: Option<u64>,
    /// Sessions registered so far: (member id, incarnation).
    pub sessions: Vec<(u64, u64)>,
    /// Most notices (NACKs, outcomes) a member may hold; the caller may
    /// move it (defaults to `sender_inflight_max`).
    pub notices_max: usize,
    /// Print the server's events to stderr.
    pub log_events: bool,
    limits: Limits,
    secret: Secret,
    /// Session keys of the registrations, by member id.
    keys: std::collections::BTreeMap<u64, crate::auth::SessionKey>,
    next_conn: u64,
}

impl std::fmt::Debug for RawDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawDriver")
            .field("now", &self.now)
            .field("conns", &self.conns.len())
            .finish_non_exhaustive()
    }
}

impl RawDriver {
    /// A server with `config`, its nonces from `rng`, at time zero.
    pub fn new(config: ServerConfig, rng: Box<dyn RngCore + Send>) -> RawDriver {
        let limits = config.limits;
        let secret = config.secret.clone();
        let notices_max = config.sender_inflight_max;
        RawDriver {
            server: Server::new(config, rng, Tick::ZERO),
            now: Tick::ZERO,
            conns: Vec::new(),
            server_incarnation: None,
            sessions: Vec::new(),
            notices_max,
            log_events: false,
            limits,
            secret,
            keys: std::collections::BTreeMap::new(),
            next_conn: 1,
        }
    }

    /// Opens a connection; returns its index in `conns`.
    pub fn connect(&mut self) -> usize {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        self.conns.push(RawConn::new(id));
        self.server.handle_connected(self.now, id);
        self.drain();
        self.conns.len() - 1
    }

    /// Closes connection `k` from the member's side (if still open).
    pub fn close(&mut self, k: usize) {
        if self.conns[k].open {
            self.conns[k].open = false;
            let id = self.conns[k].id;
            self.server.handle_closed(self.now, id);
            self.drain();
        }
    }

    /// Bytes arrive on connection `k`.
    pub fn feed(&mut self, k: usize, data: &[u8]) {
        let id = self.conns[k].id;
        self.server.handle_bytes(self.now, id, data);
        self.drain();
    }

    /// A frame arrives on connection `k` (dropped if it does not encode).
    pub fn send_frame(&mut self, k: usize, f: &Frame) {
        let mut b = BytesMut::new();
        if f.encode(&mut b, &self.limits).is_ok() {
            self.feed(k, &b);
        }
    }

    /// Time passes.
    pub fn advance(&mut self, ms: u64) {
        self.now = self.now.plus_millis(ms);
        self.server.handle_timeout(self.now);
        self.drain();
    }

    /// A graceful shutdown: no connection may be left.
    pub fn shutdown(&mut self) {
        self.server.shutdown(self.now);
        self.drain();
        assert_eq!(self.server.connections(), 0, "connections after shutdown");
    }

    /// The frame limits of the server.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// A whole handshake on connection `k`: `first` (a Hello or Resume,
    /// its nonce set to `nonce`), the server's Challenge (its proof must
    /// verify), then an Auth with a correct proof or, without `good_proof`,
    /// a wrong one (which must be refused). A registration is recorded in
    /// `sessions`. Returns the member id of a Welcome.
    pub fn handshake(
        &mut self,
        k: usize,
        first: &Frame,
        nonce: [u8; NONCE_BYTES],
        good_proof: bool,
    ) -> Option<u64> {
        let before = self.conns[k].frames.len();
        self.send_frame(k, first);
        let ch = self.conns[k].frames[before..]
            .iter()
            .find_map(|f| match f {
                Frame::Challenge(c) => Some(c.clone()),
                _ => None,
            })?;
        assert_eq!(
            ch.server_proof,
            self.secret.server_proof(&nonce, &ch.server_nonce),
            "the server's proof does not verify"
        );
        let client_proof = if good_proof {
            self.secret.client_proof(&ch.server_nonce, &nonce)
        } else {
            [0; PROOF_BYTES]
        };
        // A Resume proves the key of the session it names, when known.
        let session_proof = match first {
            Frame::Resume(r) => self.keys.get(&r.member_id).map_or([0; PROOF_BYTES], |key| {
                key.resume_proof(&ch.server_nonce, &nonce)
            }),
            _ => [0; PROOF_BYTES],
        };
        self.conns[k].proved = good_proof;
        let before = self.conns[k].frames.len();
        self.send_frame(
            k,
            &Frame::Auth(Auth {
                client_proof,
                session_proof,
            }),
        );
        let c = &self.conns[k];
        let answered = c.frames[before..]
            .iter()
            .any(|f| matches!(f, Frame::Welcome(_) | Frame::Resumed(_) | Frame::Reject(_)));
        assert!(answered || !c.open, "no answer to a complete handshake");
        if !good_proof {
            assert!(!c.open, "a bad proof was accepted");
        }
        let welcome = c.frames[before..].iter().find_map(|f| match f {
            Frame::Welcome(w) => Some(w.member_id),
            _ => None,
        });
        if let (Some(id), Frame::Hello(h)) = (welcome, first) {
            self.sessions.push((id, h.incarnation));
            let key = self.secret.session_key(
                &nonce,
                &ch.server_nonce,
                crate::auth::SessionIds {
                    member_id: id,
                    incarnation: h.incarnation,
                    server_incarnation: ch.server_incarnation,
                },
            );
            self.keys.insert(id, key);
        }
        welcome
    }

    /// Drains the server's outputs and checks them, then its state.
    pub fn drain(&mut self) {
        let mut ended: Vec<ConnId> = Vec::new();
        let mut closed: Vec<ConnId> = Vec::new();
        while let Some(o) = self.server.poll_output() {
            match o {
                Output::Transmit { conn, data } => {
                    let Some(c) = self.conns.iter_mut().find(|c| c.id == conn) else {
                        panic!("transmit to unknown {conn:?}");
                    };
                    assert!(c.open, "transmit to {conn:?} after it closed");
                    assert!(!data.is_empty(), "empty transmit to {conn:?}");
                    let mut buf = BytesMut::from(&data[..]);
                    while !buf.is_empty() {
                        let f = match frame::decode(&mut buf, &self.limits) {
                            Ok(Some(f)) => f,
                            Ok(None) => panic!("transmit ends inside a frame"),
                            Err(e) => panic!("server sent an invalid frame: {e}"),
                        };
                        assert!(f.is_from_server(), "server sent a client frame: {f:?}");
                        if !c.registered {
                            assert!(handshake_reply(&f), "{} before registration", f.name());
                        }
                        if matches!(f, Frame::Welcome(_) | Frame::Resumed(_)) {
                            assert!(c.proved, "{} without a correct proof", f.name());
                        }
                        if let Frame::Challenge(ch) = &f {
                            self.server_incarnation = Some(ch.server_incarnation);
                        }
                        if matches!(f, Frame::Reject(_) | Frame::Error(_) | Frame::Goodbye(_)) {
                            ended.push(conn);
                        }
                        c.saw(&f);
                        c.frames.push(f);
                    }
                }
                Output::Close { conn, .. } => {
                    let Some(c) = self.conns.iter_mut().find(|c| c.id == conn) else {
                        panic!("close of unknown {conn:?}");
                    };
                    assert!(c.open, "second close of {conn:?}");
                    c.open = false;
                    closed.push(conn);
                }
                Output::Event(e) => self.log(&e),
            }
        }
        for conn in ended {
            assert!(
                closed.contains(&conn),
                "Reject/Error/Goodbye on {conn:?} without a close"
            );
        }
        self.check();
    }

    fn log(&self, e: &ServerEvent) {
        if self.log_events {
            eprintln!("{e:?}");
        }
    }

    /// Checks the server's state against the connections.
    pub fn check(&self) {
        let config = self.server.config();
        let open = self.conns.iter().filter(|c| c.open).count();
        assert_eq!(
            self.server.connections(),
            open,
            "server tracks {} connections, {open} are open",
            self.server.connections()
        );
        let attached = self
            .server
            .view()
            .filter(|m| self.server.is_attached(m.member_id))
            .count();
        assert!(attached <= open, "{attached} attached, {open} open");
        assert!(
            open - attached <= config.handshakes_max,
            "{} connections in their handshake, limit {}",
            open - attached,
            config.handshakes_max
        );
        let queue_max = 2 * config.member_queue_items_max;
        for m in self.server.view() {
            let q = self.server.queue_len(m.member_id).unwrap_or(0);
            assert!(
                q <= queue_max,
                "G11: member {} holds {q} items",
                m.member_id
            );
            let n = self.server.notices_len(m.member_id).unwrap_or(0);
            assert!(
                n <= self.notices_max,
                "G11: member {} holds {n} notices (at most {})",
                m.member_id,
                self.notices_max
            );
        }
    }
}
