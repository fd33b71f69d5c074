//! Idle Switchboard members spoken on the wire protocol itself, for W5 at
//! scale. Each one registers with the protocol's handshake (`Hello`, the
//! server's `Challenge` verified, `Auth`, `Welcome`), then only reads: it
//! acknowledges its event stream (`DeliveryAck`), answers the server's
//! pings and watches for one membership event. Unlike a library member it
//! keeps no cluster view: N library members in one process hold N views of
//! N members (memory in N²), so ten thousand of them do not fit one load
//! generator, while ten thousand of these do. The server cannot tell them
//! apart from library members that have nothing to do.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rand::RngCore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::measure::Deliveries;
use super::workload::BenchError;
use switchboard_core::auth::{proofs_equal, Secret};
use switchboard_core::frame::{
    self, Auth, ClusterEvent, DeliveryAck, Frame, Hello, Limits, NONCE_BYTES, PROOF_BYTES,
};

const SYSTEM: &str = "switchboard";

/// Bytes read at most per read (a crowd's join events come in bursts).
const READ_BYTES: usize = 16 * 1024;

/// How long a registration may take.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(30);

/// Who an idle member is and what it watches for.
#[derive(Debug, Clone)]
pub struct Idle {
    /// The server's member address.
    pub addr: SocketAddr,
    /// The cluster name.
    pub cluster: String,
    /// The cluster secret.
    pub secret: Secret,
    /// Its instance name.
    pub instance: String,
    /// The process whose `MemberJoined` it counts once in `told`.
    pub newcomer: String,
    /// Where it counts that event.
    pub told: Arc<Deliveries>,
}

/// Registers process `process` and returns the task that keeps it
/// registered (abort it to disconnect).
pub async fn connect(idle: Arc<Idle>, process: String) -> Result<JoinHandle<()>, BenchError> {
    let err = |e: String| BenchError::client(SYSTEM, e);
    let sock = TcpStream::connect(idle.addr)
        .await
        .map_err(|e| err(format!("connect: {e}")))?;
    sock.set_nodelay(true)
        .map_err(|e| err(format!("nodelay: {e}")))?;
    let (nonce, incarnation) = {
        let mut rng = rand::thread_rng();
        let mut nonce = [0u8; NONCE_BYTES];
        rng.fill_bytes(&mut nonce);
        (nonce, rng.next_u64() | 1)
    };
    let hello = Frame::Hello(Hello {
        cluster: idle.cluster.clone(),
        instance: idle.instance.clone(),
        process,
        incarnation,
        capabilities: 0,
        client_nonce: nonce,
        services: Vec::new(),
        load: 0,
        groups: Vec::new(),
        subscriptions: Vec::new(),
        credential: String::new(),
    });
    let mut conn = Conn {
        sock,
        buf: BytesMut::with_capacity(READ_BYTES),
        out: BytesMut::new(),
    };
    conn.write(&hello).await.map_err(err)?;
    let registered = tokio::time::timeout(REGISTER_TIMEOUT, async {
        let c = match conn.next_handshake_frame().await? {
            Frame::Challenge(c) => c,
            Frame::Reject(r) => return Err(format!("rejected: {:?} {}", r.reason, r.text)),
            other => return Err(format!("expected a Challenge, got {}", other.name())),
        };
        let expected = idle.secret.server_proof(&nonce, &c.server_nonce);
        let proved = std::iter::once(&c.server_proof)
            .chain(c.extra_proofs.iter())
            .any(|p| proofs_equal(&expected, p));
        if !proved {
            return Err("the server did not prove the cluster secret".to_owned());
        }
        let auth = Frame::Auth(Auth {
            client_proof: idle.secret.client_proof(&c.server_nonce, &nonce),
            session_proof: [0; PROOF_BYTES],
        });
        conn.write(&auth).await?;
        match conn.next_handshake_frame().await? {
            Frame::Welcome(_) => Ok(()),
            Frame::Reject(r) => Err(format!("rejected: {:?} {}", r.reason, r.text)),
            other => Err(format!("expected a Welcome, got {}", other.name())),
        }
    })
    .await;
    match registered {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(err(e)),
        Err(_) => return Err(err("registration timed out".to_owned())),
    }
    Ok(tokio::spawn(async move {
        // Ends when the connection does (or the task is aborted).
        let _ = conn.serve(&idle).await;
    }))
}

/// One idle member's connection.
struct Conn {
    sock: TcpStream,
    buf: BytesMut,
    out: BytesMut,
}

impl Conn {
    async fn write(&mut self, f: &Frame) -> Result<(), String> {
        self.out.clear();
        f.encode(&mut self.out, &Limits::default())
            .map_err(|e| format!("encode: {e}"))?;
        self.sock
            .write_all(&self.out)
            .await
            .map_err(|e| format!("write: {e}"))
    }

    /// Reads more bytes; an error at end of stream.
    async fn fill(&mut self) -> Result<(), String> {
        self.buf.reserve(READ_BYTES);
        match self.sock.read_buf(&mut self.buf).await {
            Ok(0) => Err("the server closed the connection".to_owned()),
            Ok(_) => Ok(()),
            Err(e) => Err(format!("read: {e}")),
        }
    }

    fn decode(&mut self) -> Result<Option<Frame>, String> {
        frame::decode(&mut self.buf, &Limits::default()).map_err(|e| format!("decode: {e}"))
    }

    /// The next frame of the handshake, answering pings on the way.
    async fn next_handshake_frame(&mut self) -> Result<Frame, String> {
        loop {
            while let Some(f) = self.decode()? {
                match f {
                    Frame::Ping(n) => self.write(&Frame::Pong(n)).await?,
                    f => return Ok(f),
                }
            }
            self.fill().await?;
        }
    }

    /// Registered: acknowledges the stream after every read, answers
    /// pings, counts the newcomer's join once.
    async fn serve(&mut self, idle: &Idle) -> Result<(), String> {
        let (mut through, mut acked, mut seen) = (0u64, 0u64, false);
        loop {
            while let Some(f) = self.decode()? {
                match f {
                    Frame::Notify(n) => {
                        through = through.max(n.gseq);
                        if !seen {
                            if let ClusterEvent::MemberJoined(m) = &n.event {
                                if m.process == idle.newcomer {
                                    seen = true;
                                    idle.told.record(1);
                                }
                            }
                        }
                    }
                    Frame::Deliver(d) => through = through.max(d.gseq),
                    Frame::Ping(n) => self.write(&Frame::Pong(n)).await?,
                    _ => {}
                }
            }
            if through > acked {
                self.write(&Frame::DeliveryAck(DeliveryAck { through }))
                    .await?;
                acked = through;
            }
            self.fill().await?;
        }
    }
}
