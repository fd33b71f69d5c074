//! A small deterministic in-memory driver: one server, several clients,
//! byte pipes between them, a virtual clock. No faults except the ones a
//! test asks for (drop a connection, restart the server).
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::VecDeque;

use bytes::Bytes;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use switchboard_core::auth::Secret;
use switchboard_core::client::{Client, ClientConfig, ClientEvent, ClientOutput};
use switchboard_core::frame::{Missed, NackReason};
use switchboard_core::server::{ConnId, Output, Server, ServerConfig};
use switchboard_core::time::Tick;

pub const CLUSTER: &str = "test";

pub fn secret() -> Secret {
    Secret::new(*b"0123456789abcdef0123456789abcdef").unwrap()
}

pub fn server_config() -> ServerConfig {
    ServerConfig::new(CLUSTER, secret())
}

pub struct Node {
    pub client: Client,
    /// The connection it holds, if any.
    pub conn: Option<ConnId>,
    /// Events the client reported, in order.
    pub events: Vec<ClientEvent>,
    /// Bytes in flight to the client.
    pub inbound: VecDeque<Bytes>,
    /// Bytes in flight to the server.
    pub outbound: VecDeque<Bytes>,
    /// The client stopped reading.
    pub paused: bool,
    /// The process is dead or frozen: the driver no longer runs it.
    pub stopped: bool,
    /// The source address its connections come from, told to the server.
    pub peer: Option<std::net::IpAddr>,
}

pub struct Cluster {
    pub now: Tick,
    pub server: Server,
    pub server_config: ServerConfig,
    pub nodes: Vec<Node>,
    next_conn: u64,
    seed: u64,
    pub server_up: bool,
}

impl Cluster {
    pub fn new(seed: u64) -> Cluster {
        Self::with_config(seed, server_config())
    }

    pub fn with_config(seed: u64, cfg: ServerConfig) -> Cluster {
        let server = Server::new(
            cfg.clone(),
            Box::new(ChaCha8Rng::seed_from_u64(seed)),
            Tick::ZERO,
        );
        Cluster {
            now: Tick::ZERO,
            server,
            server_config: cfg,
            nodes: Vec::new(),
            next_conn: 1,
            seed,
            server_up: true,
        }
    }

    /// Adds a member; returns its index.
    pub fn add(&mut self, instance: &str, process: &str) -> usize {
        let idx = self.nodes.len();
        let cfg = ClientConfig::new(
            CLUSTER,
            secret(),
            instance,
            process,
            1000 + idx as u64 + self.seed * 7919,
        );
        self.add_with(cfg)
    }

    pub fn add_with(&mut self, cfg: ClientConfig) -> usize {
        let idx = self.nodes.len();
        let client = Client::new(
            cfg,
            Box::new(ChaCha8Rng::seed_from_u64(self.seed * 1000 + idx as u64)),
            self.now,
        );
        self.nodes.push(Node {
            client,
            conn: None,
            events: Vec::new(),
            inbound: VecDeque::new(),
            outbound: VecDeque::new(),
            paused: false,
            stopped: false,
            peer: None,
        });
        idx
    }

    fn drain_server(&mut self) {
        while let Some(o) = self.server.poll_output() {
            match o {
                Output::Transmit { conn, data } => {
                    if let Some(n) = self.nodes.iter_mut().find(|n| n.conn == Some(conn)) {
                        n.inbound.push_back(data);
                    }
                }
                Output::Close { conn, .. } => {
                    // The client sees the close after the bytes before it.
                    if let Some(n) = self.nodes.iter_mut().find(|n| n.conn == Some(conn)) {
                        n.inbound.push_back(Bytes::new());
                    }
                }
                Output::Event(_) => {}
            }
        }
    }

    fn drain_client(&mut self, i: usize) {
        if self.nodes[i].stopped {
            return;
        }
        loop {
            let n = &mut self.nodes[i];
            let Some(o) = n.client.poll_output() else {
                break;
            };
            match o {
                ClientOutput::Connect => {
                    if self.server_up {
                        let conn = ConnId(self.next_conn);
                        self.next_conn += 1;
                        self.nodes[i].conn = Some(conn);
                        self.nodes[i].inbound.clear();
                        self.nodes[i].outbound.clear();
                        self.server.handle_connected(self.now, conn);
                        if let Some(ip) = self.nodes[i].peer {
                            self.server.set_peer_address(conn, ip);
                        }
                        self.nodes[i].client.handle_connected(self.now);
                    } else {
                        self.nodes[i].client.handle_closed(self.now);
                    }
                }
                ClientOutput::Transmit(b) => n.outbound.push_back(b),
                ClientOutput::Close => {
                    if let Some(conn) = n.conn.take() {
                        n.inbound.clear();
                        // Bytes already written still reach the server.
                        let pending: Vec<Bytes> = n.outbound.drain(..).collect();
                        for b in pending {
                            self.server.handle_bytes(self.now, conn, &b);
                        }
                        self.server.handle_closed(self.now, conn);
                    }
                }
                ClientOutput::Event(e) => n.events.push(e),
            }
        }
    }

    /// Moves bytes and fires due timers until nothing moves. Returns the
    /// number of steps taken.
    pub fn settle(&mut self) -> usize {
        let mut steps = 0;
        loop {
            steps += 1;
            assert!(steps < 100_000, "cluster did not settle");
            let mut moved = false;
            self.drain_server();
            for i in 0..self.nodes.len() {
                self.drain_client(i);
            }
            for i in 0..self.nodes.len() {
                if self.nodes[i].stopped {
                    continue;
                }
                // Client -> server.
                while let Some(conn) = self.nodes[i].conn {
                    if !self.server.wants_read(conn) {
                        break;
                    }
                    let Some(b) = self.nodes[i].outbound.pop_front() else {
                        break;
                    };
                    moved = true;
                    self.server.handle_read(self.now, conn, b);
                }
                // Server -> client.
                if !self.nodes[i].paused {
                    while let Some(b) = self.nodes[i].inbound.pop_front() {
                        moved = true;
                        if b.is_empty() {
                            self.nodes[i].conn = None;
                            self.nodes[i].client.handle_closed(self.now);
                            self.nodes[i].inbound.clear();
                            break;
                        }
                        self.nodes[i].client.handle_bytes(self.now, &b);
                    }
                }
                self.drain_server();
                self.drain_client(i);
            }
            if !moved {
                return steps;
            }
        }
    }

    /// Advances the clock by `ms` in steps of `step_ms`, firing timers and
    /// settling after each step.
    pub fn run_for(&mut self, ms: u64, step_ms: u64) {
        let end = self.now.plus_millis(ms);
        while self.now < end {
            self.now = self.now.plus_millis(step_ms).min(end);
            if self.server_up && self.server.poll_timeout().is_some_and(|t| t <= self.now) {
                self.server.handle_timeout(self.now);
            }
            for i in 0..self.nodes.len() {
                if self.nodes[i].stopped {
                    continue;
                }
                if self.nodes[i]
                    .client
                    .poll_timeout()
                    .is_some_and(|t| t <= self.now)
                {
                    self.nodes[i].client.handle_timeout(self.now);
                }
            }
            self.settle();
        }
    }

    /// Brings every node up and registered, still inside the server's
    /// restart grace.
    pub fn start_in_grace(&mut self) {
        self.run_for(50, 10);
        for (i, n) in self.nodes.iter().enumerate() {
            assert!(n.client.is_ready(), "node {i} not ready: {:?}", n.client);
        }
    }

    /// Brings every node up and registered, past the server's restart grace
    /// (during which multicasts wait for members to come back).
    pub fn start(&mut self) {
        self.run_for(50, 10);
        let grace = self.server.config().restart_grace_ms;
        self.run_for(grace, 250);
        for (i, n) in self.nodes.iter().enumerate() {
            assert!(n.client.is_ready(), "node {i} not ready: {:?}", n.client);
        }
    }

    /// Breaks node `i`'s connection (both directions lose in-flight bytes).
    pub fn drop_connection(&mut self, i: usize) {
        if let Some(conn) = self.nodes[i].conn.take() {
            self.nodes[i].inbound.clear();
            self.nodes[i].outbound.clear();
            if self.server_up {
                self.server.handle_closed(self.now, conn);
            }
            self.nodes[i].client.handle_closed(self.now);
        }
    }

    /// Kills node `i`'s process: the server sees its connection reset.
    pub fn crash(&mut self, i: usize) {
        self.nodes[i].stopped = true;
        if let Some(conn) = self.nodes[i].conn.take() {
            self.server.handle_closed(self.now, conn);
        }
    }

    /// Freezes node `i`'s process: its connection stays open but silent.
    pub fn freeze(&mut self, i: usize) {
        self.nodes[i].stopped = true;
    }

    /// Crashes the server (all state lost) and starts a new one.
    pub fn restart_server(&mut self, seed: u64) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].conn.take().is_some() {
                self.nodes[i].inbound.clear();
                self.nodes[i].outbound.clear();
                self.nodes[i].client.handle_closed(self.now);
            }
        }
        self.server = Server::new(
            self.server_config.clone(),
            Box::new(ChaCha8Rng::seed_from_u64(seed)),
            self.now,
        );
    }

    pub fn member_id(&self, i: usize) -> u64 {
        self.nodes[i].client.member_id().unwrap()
    }

    /// Payloads of the messages node `i` received, in order.
    pub fn messages(&self, i: usize) -> Vec<Bytes> {
        self.nodes[i]
            .events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Message(m) => Some(m.payload.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn take_events(&mut self, i: usize) -> Vec<ClientEvent> {
        std::mem::take(&mut self.nodes[i].events)
    }

    /// Takes client `i`'s events and returns its outcomes, `(seq,
    /// delivered, missed)`.
    pub fn take_outcomes(&mut self, i: usize) -> Vec<(u64, u32, Vec<Missed>)> {
        self.take_events(i)
            .into_iter()
            .filter_map(|e| match e {
                ClientEvent::Outcome {
                    seq,
                    delivered,
                    missed,
                } => Some((seq, delivered, missed)),
                _ => None,
            })
            .collect()
    }

    /// Takes client `i`'s events and returns its NACKs, `(seq, reason)`.
    pub fn take_nacks(&mut self, i: usize) -> Vec<(u64, NackReason)> {
        self.take_events(i)
            .into_iter()
            .filter_map(|e| match e {
                ClientEvent::Nacked { seq, reason } => Some((seq, reason)),
                _ => None,
            })
            .collect()
    }
}
