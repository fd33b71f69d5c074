//! Connection tasks: the accept loop, and per connection a reader and a
//! writer. They touch sockets only; every decision is the core task's.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use switchboard_core::server::ConnId;
use tokio::io::AsyncWrite;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use super::core_task::CoreMsg;
use switchboard_runtime::io::{write_loop_with, READ_BYTES};
use switchboard_runtime::net::{Listener, NetRead};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::TryAcquireError;

/// Transmits queued for one connection's writer at most. The core's send
/// window bounds what a reading peer has in flight; a connection that
/// still fills this queue is closed.
pub(crate) const WRITE_QUEUE_MAX: usize = 1024;

/// The core task's end of a connection's write queue. Every transmit is
/// counted in the server's queued-bytes figure (part of the memory budget)
/// as it is queued, and the writer lowers it as it writes or drops it: the
/// only way to queue a transmit, so the count never falls below what the
/// writers hold.
#[derive(Debug)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Bytes>,
    queued: Arc<AtomicUsize>,
}

impl Writer {
    /// Queues a transmit without waiting.
    pub(crate) fn try_send(&self, data: Bytes) -> Result<(), TrySendError<Bytes>> {
        let len = data.len();
        self.queued.fetch_add(len, Ordering::Relaxed);
        let sent = self.tx.try_send(data);
        if sent.is_err() {
            self.queued.fetch_sub(len, Ordering::Relaxed);
        }
        sent
    }
}

/// The first read of a connection, bytes; reads double while they fill
/// the buffer, up to `READ_BYTES`.
const READ_BYTES_MIN: usize = 4 * 1024;

/// First pause after a failed `accept` (for example out of file
/// descriptors), so that the loop does not spin; it doubles while `accept`
/// keeps failing, up to `ACCEPT_ERROR_PAUSE_MAX`.
pub(crate) const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(10);

/// Longest pause after failed `accept`s.
pub(crate) const ACCEPT_ERROR_PAUSE_MAX: Duration = Duration::from_secs(1);

/// How often failed `accept`s are logged at most (with their count).
const ACCEPT_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Backs off after failed `accept`s: the pause doubles while they keep
/// failing, and one line per interval says how many failed.
#[derive(Debug)]
pub(crate) struct AcceptBackoff {
    which: &'static str,
    pause: Duration,
    failed: u64,
    logged: Option<tokio::time::Instant>,
}

impl AcceptBackoff {
    pub(crate) fn new(which: &'static str) -> AcceptBackoff {
        AcceptBackoff {
            which,
            pause: ACCEPT_ERROR_PAUSE,
            failed: 0,
            logged: None,
        }
    }

    /// An `accept` succeeded.
    pub(crate) fn reset(&mut self) {
        self.pause = ACCEPT_ERROR_PAUSE;
    }

    /// An `accept` failed: logs (rate-limited) and sleeps.
    pub(crate) async fn failed(&mut self, e: &std::io::Error) {
        self.failed += 1;
        let now = tokio::time::Instant::now();
        if self
            .logged
            .is_none_or(|t| now.duration_since(t) >= ACCEPT_ERROR_LOG_INTERVAL)
        {
            tracing::warn!(
                port = self.which,
                error = %e,
                failed = self.failed,
                pause_ms = self.pause.as_millis() as u64,
                "accept failed; backing off"
            );
            self.logged = Some(now);
            self.failed = 0;
        }
        tokio::time::sleep(self.pause).await;
        self.pause = (self.pause * 2).min(ACCEPT_ERROR_PAUSE_MAX);
    }
}

/// Accepts internal connections up to `connections_max` open at once;
/// beyond that a new connection is closed at once.
pub(crate) async fn accept_loop<L: Listener>(
    mut listener: L,
    connections_max: usize,
    core: mpsc::Sender<CoreMsg>,
    done: mpsc::Sender<()>,
    input: Arc<Semaphore>,
    queued: Arc<AtomicUsize>,
) {
    let slots = Arc::new(Semaphore::new(connections_max));
    let mut next_conn: u64 = 1;
    let mut backoff = AcceptBackoff::new("internal");
    let mut full_logged: Option<tokio::time::Instant> = None;
    let mut full_count: u64 = 0;
    loop {
        let (rd, wr, peer) = match listener.accept().await {
            Ok(x) => {
                backoff.reset();
                x
            }
            Err(e) => {
                backoff.failed(&e).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            full_count += 1;
            let now = tokio::time::Instant::now();
            if full_logged.is_none_or(|t| now.duration_since(t) >= ACCEPT_ERROR_LOG_INTERVAL) {
                tracing::warn!(%peer, connections_max, refused = full_count, "connections refused: too many connections");
                full_logged = Some(now);
                full_count = 0;
            }
            drop((rd, wr));
            continue;
        };
        let conn = ConnId(next_conn);
        next_conn += 1;
        let (writer_tx, writer_rx) = mpsc::channel(WRITE_QUEUE_MAX);
        let (gate_tx, gate_rx) = watch::channel(true);
        let accepted = CoreMsg::Accepted {
            conn,
            peer,
            writer: Writer {
                tx: writer_tx,
                queued: queued.clone(),
            },
            gate: gate_tx,
        };
        if core.send(accepted).await.is_err() {
            return;
        }
        let permit = Arc::new(permit);
        tokio::spawn(reader(
            conn,
            rd,
            gate_rx,
            core.clone(),
            input.clone(),
            permit.clone(),
        ));
        tokio::spawn(writer(
            conn,
            peer,
            wr,
            writer_rx,
            core.clone(),
            (permit, done.clone()),
            queued.clone(),
        ));
    }
}

/// Reads while the gate is open and hands each read to the core. Ends on
/// EOF, error, or when the core forgets the connection (gate dropped).
async fn reader<R: NetRead>(
    conn: ConnId,
    mut rd: R,
    mut gate: watch::Receiver<bool>,
    core: mpsc::Sender<CoreMsg>,
    input: Arc<Semaphore>,
    _slot: Arc<OwnedSemaphorePermit>,
) {
    // No buffer is held while waiting: an idle member costs no read
    // memory. Once the socket is readable, a buffer of `read_size` is
    // taken; reads grow it while they come back full, up to READ_BYTES.
    let mut read_size = READ_BYTES_MIN;
    loop {
        // Wait while the core does not want this connection's bytes.
        while !*gate.borrow_and_update() {
            if gate.changed().await.is_err() {
                return;
            }
        }
        // Biased: the same choice every time both are ready (a seeded
        // simulation replays exactly).
        tokio::select! {
            biased;
            r = rd.readable() => {
                if r.is_err() {
                    let _ = core.send(CoreMsg::Closed { conn }).await;
                    return;
                }
                // The TLS handshake verified a client certificate: its
                // names reach the core before the connection's bytes.
                if let Some(names) = rd.take_certificate_names() {
                    if core.send(CoreMsg::Certificate { conn, names }).await.is_err() {
                        return;
                    }
                }
                // A read takes its size from the input budget first; the
                // core task gives it back once the state machine has the
                // bytes. Readers wait in turn while it is spent.
                let budget = match input.clone().try_acquire_many_owned(read_size as u32) {
                    Ok(p) => p,
                    Err(TryAcquireError::Closed) => return,
                    Err(TryAcquireError::NoPermits) => {
                        match input.clone().acquire_many_owned(read_size as u32).await {
                            Ok(p) => p,
                            Err(_) => return,
                        }
                    }
                };
                let mut buf = BytesMut::with_capacity(read_size);
                match rd.try_read_buf(&mut buf) {
                    Ok(0) => {
                        let _ = core.send(CoreMsg::Closed { conn }).await;
                        return;
                    }
                    Ok(n) => {
                        read_size = if n >= read_size {
                            (read_size * 2).min(READ_BYTES)
                        } else {
                            (read_size / 2).max(READ_BYTES_MIN)
                        };
                        let data = buf.freeze();
                        if core.send(CoreMsg::Bytes { conn, data, budget }).await.is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => {
                        let _ = core.send(CoreMsg::Closed { conn }).await;
                        return;
                    }
                }
            }
            changed = gate.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// Writes what the core queues; tells the core if the socket fails.
async fn writer<W: AsyncWrite + Unpin>(
    conn: ConnId,
    peer: SocketAddr,
    wr: W,
    rx: mpsc::Receiver<bytes::Bytes>,
    core: mpsc::Sender<CoreMsg>,
    // Held for the task's life: its connection slot, and the sender whose
    // drop tells a shutdown that this writer has flushed.
    _held: (Arc<OwnedSemaphorePermit>, mpsc::Sender<()>),
    queued: Arc<AtomicUsize>,
) {
    let left = |n: usize| {
        let before = queued.fetch_sub(n, Ordering::Relaxed);
        debug_assert!(before >= n, "write queue count below what a writer held");
    };
    if let Err(e) = write_loop_with(wr, rx, left).await {
        tracing::debug!(conn = conn.0, %peer, error = %e, "write failed");
        let _ = core.send(CoreMsg::Closed { conn }).await;
    }
}
