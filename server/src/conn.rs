//! Connection tasks: the accept loop, and per connection a reader and a
//! writer. They touch sockets only; every decision is the core task's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use switchboard_core::server::ConnId;
use tokio::io::AsyncWrite;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use super::core_task::CoreMsg;
use switchboard_runtime::io::{write_loop, READ_BYTES};
use switchboard_runtime::net::{Listener, NetRead};

/// Transmits queued for one connection's writer at most. The core's send
/// window bounds what a reading peer has in flight; a connection that
/// still fills this queue is closed.
pub(crate) const WRITE_QUEUE_MAX: usize = 1024;

/// The first read of a connection, bytes; reads double while they fill
/// the buffer, up to `READ_BYTES`.
const READ_BYTES_MIN: usize = 4 * 1024;

/// Pause after a failed `accept` (for example out of file descriptors),
/// so that the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Accepts internal connections up to `connections_max` open at once;
/// beyond that a new connection is closed at once.
pub(crate) async fn accept_loop<L: Listener>(
    mut listener: L,
    connections_max: usize,
    core: mpsc::Sender<CoreMsg>,
    done: mpsc::Sender<()>,
) {
    let slots = Arc::new(Semaphore::new(connections_max));
    let mut next_conn: u64 = 1;
    loop {
        let (rd, wr, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, connections_max, "connection refused: too many connections");
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
            writer: writer_tx,
            gate: gate_tx,
        };
        if core.send(accepted).await.is_err() {
            return;
        }
        let permit = Arc::new(permit);
        tokio::spawn(reader(conn, rd, gate_rx, core.clone(), permit.clone()));
        tokio::spawn(writer(
            conn,
            peer,
            wr,
            writer_rx,
            core.clone(),
            permit,
            done.clone(),
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
                        if core.send(CoreMsg::Bytes { conn, data }).await.is_err() {
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
    _slot: Arc<OwnedSemaphorePermit>,
    _done: mpsc::Sender<()>,
) {
    if let Err(e) = write_loop(wr, rx).await {
        tracing::debug!(conn = conn.0, %peer, error = %e, "write failed");
        let _ = core.send(CoreMsg::Closed { conn }).await;
    }
}
