//! The simulated side of the network seam: turmoil's TCP behind
//! `switchboard_runtime::net`'s traits, and seeded randomness.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use switchboard_runtime::net::{Connector, Listener, NetRead};
use tokio::io::{AsyncRead, ReadBuf};
use turmoil::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use turmoil::net::TcpListener;

/// The server's member port on turmoil.
#[allow(missing_debug_implementations)]
pub struct SimListener(pub TcpListener);

/// The read half of an accepted simulated connection.
#[derive(Debug)]
pub struct SimRead(OwnedReadHalf);

impl NetRead for SimRead {
    async fn readable(&mut self) -> io::Result<()> {
        // Peeking one byte waits for data, EOF or a reset without taking it.
        std::future::poll_fn(|cx| {
            let mut one = [0u8; 1];
            let mut rb = ReadBuf::new(&mut one);
            Pin::new(&mut self.0).poll_peek(cx, &mut rb).map_ok(|_| ())
        })
        .await
    }

    fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        let start = buf.len();
        if buf.capacity() == start {
            buf.reserve(4096);
        }
        buf.resize(buf.capacity(), 0);
        let mut rb = ReadBuf::new(&mut buf[start..]);
        let mut cx = Context::from_waker(Waker::noop());
        let r = Pin::new(&mut self.0).poll_read(&mut cx, &mut rb);
        let n = rb.filled().len();
        buf.truncate(start + n);
        match r {
            Poll::Ready(Ok(())) => Ok(n),
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Listener for SimListener {
    type Read = SimRead;
    type Write = OwnedWriteHalf;

    async fn accept(&mut self) -> io::Result<(SimRead, OwnedWriteHalf, SocketAddr)> {
        let (s, peer) = self.0.accept().await?;
        let (rd, wr) = s.into_split();
        Ok((SimRead(rd), wr, peer))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// A member's connector: turmoil TCP, seeded randomness, and a note of
/// which server run each connection reached (the history needs it; the
/// application cannot see it).
#[derive(Debug, Clone)]
pub struct SimConnector {
    /// Seed of the member's state machine randomness.
    pub seed: u64,
    /// The server run currently up (shared with the world).
    pub server_run: Arc<AtomicU64>,
    /// The server run of the latest connection (read by the member).
    pub connected_run: Arc<AtomicU64>,
}

impl Connector for SimConnector {
    type Read = OwnedReadHalf;
    type Write = OwnedWriteHalf;

    #[allow(clippy::manual_async_fn)]
    fn connect(
        &self,
        addr: String,
    ) -> impl Future<Output = io::Result<(OwnedReadHalf, OwnedWriteHalf)>> + Send + 'static {
        let server_run = self.server_run.clone();
        let connected_run = self.connected_run.clone();
        async move {
            let s = turmoil::net::TcpStream::connect(addr.as_str()).await?;
            connected_run.store(server_run.load(Ordering::SeqCst), Ordering::SeqCst);
            Ok(s.into_split())
        }
    }

    fn rng(&self) -> Box<dyn RngCore + Send> {
        Box::new(ChaCha8Rng::seed_from_u64(self.seed))
    }
}
