//! The write side of a connection, shared by the server and the client:
//! one task per socket writes everything queued for it, coalesced into as
//! few syscalls as the queue allows.

use std::time::Duration;

use std::io::IoSlice;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Largest batch of queued transmits concatenated into one write.
pub const WRITE_BATCH_BYTES_MAX: usize = 1024 * 1024;

/// A write that makes no progress for this long ends the connection: the
/// peer stopped reading. The state machines notice a dead peer too (by
/// heartbeat), but a writer must never hang on a socket forever.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a closing member waits for its last writes (the goodbye) to
/// reach the socket.
pub const SHUTDOWN_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// Per-read buffer size: one read hands this much to the state machine,
/// which parses every frame in it.
pub const READ_BYTES: usize = 64 * 1024;

/// Writes every queued transmit in order until the queue closes, then shuts
/// the write side down. Transmits already queued when the sender is dropped
/// are still written (a `Close` after a `Goodbye` flushes the goodbye).
///
/// Everything queued at the time of a write (up to `WRITE_BATCH_BYTES_MAX`)
/// goes out in one vectored write straight from the transmits' shared
/// buffers: no copy in user space.
pub async fn write_loop<W: AsyncWrite + Unpin>(
    wr: W,
    rx: mpsc::Receiver<Bytes>,
) -> std::io::Result<()> {
    write_loop_with(wr, rx, |_| {}).await
}

/// [`write_loop`], calling `left(n)` for the `n` bytes of every batch of
/// transmits that leaves the queue: written to the socket, or dropped
/// because the write failed (what was still queued is dropped and reported
/// too). A counter raised by the queue's sender before each transmit and
/// lowered here therefore holds what the queue and the batch in progress
/// hold, and returns to zero when the writer ends.
pub async fn write_loop_with<W: AsyncWrite + Unpin>(
    mut wr: W,
    mut rx: mpsc::Receiver<Bytes>,
    mut left: impl FnMut(usize),
) -> std::io::Result<()> {
    let mut batch: Vec<Bytes> = Vec::new();
    #[cfg(feature = "fault-injection")]
    let mut reorder = crate::fault::Reorder::default();
    while let Some(first) = rx.recv().await {
        let mut total = first.len();
        batch.push(first);
        while total < WRITE_BATCH_BYTES_MAX {
            match rx.try_recv() {
                Ok(b) => {
                    total += b.len();
                    batch.push(b);
                }
                Err(_) => break,
            }
        }
        #[cfg(feature = "fault-injection")]
        reorder.apply(&mut batch);
        let r = timed(write_all_vectored(&mut wr, &mut batch)).await;
        batch.clear();
        left(total);
        if batch.capacity() > WRITE_BATCH_ITEMS_KEEP && rx.is_empty() {
            batch = Vec::new();
        }
        if let Err(e) = r {
            rx.close();
            while let Ok(b) = rx.try_recv() {
                left(b.len());
            }
            return Err(e);
        }
    }
    let _ = timed(wr.shutdown()).await;
    Ok(())
}

/// Slices handed to one `write_vectored` call at most.
const IOV_MAX: usize = 64;

/// Transmits an idle writer keeps room for.
const WRITE_BATCH_ITEMS_KEEP: usize = 16;

/// Writes all of `bufs`, in order, with as few vectored writes as it takes.
async fn write_all_vectored<W: AsyncWrite + Unpin>(
    wr: &mut W,
    bufs: &mut [Bytes],
) -> std::io::Result<()> {
    let mut i = 0;
    while i < bufs.len() {
        if bufs[i].is_empty() {
            i += 1;
            continue;
        }
        let n = {
            let mut slices = [IoSlice::new(&[]); IOV_MAX];
            let mut k = 0;
            for b in bufs[i..].iter().filter(|b| !b.is_empty()).take(IOV_MAX) {
                slices[k] = IoSlice::new(b);
                k += 1;
            }
            wr.write_vectored(&slices[..k]).await?
        };
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let mut left = n;
        while left > 0 && i < bufs.len() {
            let len = bufs[i].len();
            if left >= len {
                left -= len;
                i += 1;
            } else {
                bufs[i].advance(left);
                left = 0;
            }
        }
    }
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

    /// A writer that takes at most 7 bytes per call: vectored writes
    /// resume mid-buffer correctly.
    struct Dribble(Vec<u8>);

    impl AsyncWrite for Dribble {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            let n = buf.len().min(7);
            self.0.extend_from_slice(&buf[..n]);
            std::task::Poll::Ready(Ok(n))
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn partial_writes_resume_mid_buffer() {
        let mut bufs: Vec<Bytes> = (0..100u8)
            .map(|i| Bytes::from(vec![i; usize::from(i % 13)]))
            .collect();
        let want: Vec<u8> = bufs.iter().flat_map(|b| b.to_vec()).collect();
        let mut w = Dribble(Vec::new());
        write_all_vectored(&mut w, &mut bufs).await.ok();
        assert_eq!(w.0, want);
    }

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
