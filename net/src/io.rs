//! The write side of a connection, shared by the server and the client:
//! one task per socket writes everything queued for it, coalesced into as
//! few syscalls as the queue allows.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Largest batch of queued transmits concatenated into one write.
pub(crate) const WRITE_BATCH_BYTES_MAX: usize = 1024 * 1024;

/// Spare batch capacity an idle writer keeps.
const WRITE_KEEP_BYTES: usize = 16 * 1024;

/// A write that makes no progress for this long ends the connection: the
/// peer stopped reading. The state machines notice a dead peer too (by
/// heartbeat), but a writer must never hang on a socket forever.
pub(crate) const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a closing member waits for its last writes (the goodbye) to
/// reach the socket.
pub(crate) const SHUTDOWN_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// Per-read buffer size: one read hands this much to the state machine,
/// which parses every frame in it.
pub(crate) const READ_BYTES: usize = 64 * 1024;

/// Writes every queued transmit in order until the queue closes, then shuts
/// the write side down. Transmits already queued when the sender is dropped
/// are still written (a `Close` after a `Goodbye` flushes the goodbye).
pub(crate) async fn write_loop<W: AsyncWrite + Unpin>(
    mut wr: W,
    mut rx: mpsc::Receiver<Bytes>,
) -> std::io::Result<()> {
    let mut batch = BytesMut::new();
    while let Some(first) = rx.recv().await {
        let write = if rx.is_empty() {
            timed(wr.write_all(&first)).await
        } else {
            batch.clear();
            batch.extend_from_slice(&first);
            while batch.len() < WRITE_BATCH_BYTES_MAX {
                match rx.try_recv() {
                    Ok(b) => batch.extend_from_slice(&b),
                    Err(_) => break,
                }
            }
            let r = timed(wr.write_all(&batch)).await;
            // Keep the buffer while more is queued; an idle connection
            // (or one after a burst) does not hold a large one.
            if batch.capacity() > 2 * WRITE_BATCH_BYTES_MAX
                || (rx.is_empty() && batch.capacity() > WRITE_KEEP_BYTES)
            {
                batch = BytesMut::new();
            }
            r
        };
        write?;
    }
    let _ = timed(wr.shutdown()).await;
    Ok(())
}

async fn timed(f: impl std::future::Future<Output = std::io::Result<()>>) -> std::io::Result<()> {
    match tokio::time::timeout(WRITE_STALL_TIMEOUT, f).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "peer stopped reading",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn queued_transmits_are_written_in_order_then_shut_down() {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let (tx, rx) = mpsc::channel(16);
        for i in 0..10u8 {
            tx.send(Bytes::from(vec![i; 3])).await.ok();
        }
        drop(tx);
        write_loop(a, rx).await.ok();
        let mut out = Vec::new();
        b.read_to_end(&mut out).await.ok();
        let want: Vec<u8> = (0..10u8).flat_map(|i| [i; 3]).collect();
        assert_eq!(out, want);
    }
}
