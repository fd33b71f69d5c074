//! The network seam: how the server accepts connections and how a member
//! opens one, and where their state machines get randomness.
//!
//! The server runtime and the client driver reach sockets only through
//! [`Listener`] and [`Connector`]. Production uses [`TokioNet`] (tokio's
//! TCP, entropy-seeded randomness), the default of every entry point; a
//! simulation passes its own implementation (simulated TCP, seeded
//! randomness) to `run_with` / `start_with` and runs the same tasks. The
//! traits are generic, not boxed: the production build is monomorphised
//! on tokio's types and carries no simulation code.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use bytes::BytesMut;
use rand::{RngCore, SeedableRng};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// The read half of an accepted connection, as the server's reader task
/// uses it: wait until readable without holding a buffer, then read what
/// is there.
pub trait NetRead: Send + 'static {
    /// Resolves once a read would make progress (data, EOF or an error).
    fn readable(&mut self) -> impl Future<Output = io::Result<()>> + Send;
    /// Reads what is available without waiting: `Ok(0)` is EOF,
    /// `WouldBlock` means nothing after all.
    fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize>;
    /// Once [`readable`](NetRead::readable) has returned: the names of the
    /// client certificate the connection's TLS handshake verified (see
    /// [`crate::tls::certificate_names`]), taken once. `None` for plain
    /// TCP and for a connection without a client certificate.
    fn take_certificate_names(&mut self) -> Option<Vec<String>> {
        None
    }
}

/// Where the server's member port gets its connections.
pub trait Listener: Send + 'static {
    /// Read half of an accepted connection.
    type Read: NetRead;
    /// Write half of an accepted connection.
    type Write: AsyncWrite + Unpin + Send + 'static;
    /// The next connection, split, with its peer's address.
    fn accept(
        &mut self,
    ) -> impl Future<Output = io::Result<(Self::Read, Self::Write, SocketAddr)>> + Send;
    /// The bound address.
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// How a member opens connections to the server, and seeds its state
/// machine's randomness.
pub trait Connector: Clone + Send + Sync + 'static {
    /// Read half of a connection.
    type Read: AsyncRead + Unpin + Send + 'static;
    /// Write half of a connection.
    type Write: AsyncWrite + Unpin + Send + 'static;
    /// Connects to `addr` (`host:port`, resolved on every call).
    fn connect(
        &self,
        addr: String,
    ) -> impl Future<Output = io::Result<(Self::Read, Self::Write)>> + Send + 'static;
    /// Randomness for the core client (retry jitter, nonces).
    fn rng(&self) -> Box<dyn RngCore + Send>;
}

/// Production networking: tokio's TCP, randomness from the OS.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioNet;

/// Fresh entropy-seeded randomness for a state machine.
pub fn entropy_rng() -> Box<dyn RngCore + Send> {
    Box::new(rand::rngs::StdRng::from_entropy())
}

impl Connector for TokioNet {
    type Read = OwnedReadHalf;
    type Write = OwnedWriteHalf;

    // Not an `async fn`: the future must not borrow `self` (`'static`).
    #[allow(clippy::manual_async_fn)]
    fn connect(
        &self,
        addr: String,
    ) -> impl Future<Output = io::Result<(OwnedReadHalf, OwnedWriteHalf)>> + Send + 'static {
        async move {
            let s = TcpStream::connect(addr.as_str()).await?;
            s.set_nodelay(true)?;
            Ok(s.into_split())
        }
    }

    fn rng(&self) -> Box<dyn RngCore + Send> {
        entropy_rng()
    }
}

impl Listener for TcpListener {
    type Read = OwnedReadHalf;
    type Write = OwnedWriteHalf;

    async fn accept(&mut self) -> io::Result<(OwnedReadHalf, OwnedWriteHalf, SocketAddr)> {
        let (stream, peer) = TcpListener::accept(self).await?;
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "set_nodelay failed");
        }
        let (rd, wr) = stream.into_split();
        Ok((rd, wr, peer))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        TcpListener::local_addr(self)
    }
}

impl NetRead for OwnedReadHalf {
    async fn readable(&mut self) -> io::Result<()> {
        OwnedReadHalf::readable(self).await
    }

    fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        OwnedReadHalf::try_read_buf(self, buf)
    }
}
