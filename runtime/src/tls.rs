//! TLS for the member port (and the HTTP port): rustls configurations
//! from PEM files, a [`Listener`] that accepts TLS connections and a
//! [`Connector`] that opens them.
//!
//! The server side never runs a TLS handshake in its accept loop: a
//! [`TlsListener`] hands the connection over at once, as TCP, and runs the
//! handshake in a task of its own, so the connection counts against the
//! server's handshake limits (its handshake table, the per-address limit,
//! the handshake deadline) from its first byte. The read and write halves
//! wait for that task; when the server gives up on the connection (its
//! handshake deadline, a full table) it drops both halves and the TLS
//! handshake is abandoned with them. The task also has a deadline of its
//! own, the same handshake timeout.
//!
//! Errors name what failed in words an operator can act on
//! ([`TlsError`]); a failed handshake on the client side comes back as an
//! `io::Error` whose inner error is a [`TlsFailure`].

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use rand::RngCore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWrite, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;

use crate::net::{entropy_rng, Connector, Listener, NetRead};

/// Bytes a TLS connection's reader takes from the stream at once: one
/// TLS record's plaintext at most.
const TLS_READ_BYTES: usize = 16 * 1024;

/// Why TLS settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing of the expected kind.
    #[error("TLS {what} file {path}: {detail}")]
    File {
        /// `certificate`, `private key` or `CA certificate`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// rustls refused the combination (a key that does not match the
    /// certificate, say).
    #[error("TLS settings: {0}")]
    Config(String),
    /// The server name is not a valid DNS name or IP address.
    #[error("TLS server name {0:?} is not a valid DNS name or IP address")]
    ServerName(String),
}

/// A TLS handshake that failed, as the inner error of the `io::Error` a
/// [`TlsConnector`] returns: the peer's certificate was not trusted, the
/// server asked for a client certificate the member does not have, the
/// peer does not speak TLS, and so on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TlsFailure(pub String);

fn file_err(what: &'static str, path: &Path, detail: impl fmt::Display) -> TlsError {
    TlsError::File {
        what,
        path: path.to_owned(),
        detail: detail.to_string(),
    }
}

/// Every certificate in a PEM file (at least one).
pub fn load_certs(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_err(what, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(what, path, e))?;
    if certs.is_empty() {
        return Err(file_err(what, path, "no CERTIFICATE block in the file"));
    }
    Ok(certs)
}

/// The first private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_err("private key", path, e))
}

fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for c in load_certs(path, "CA certificate")? {
        store
            .add(c)
            .map_err(|e| file_err("CA certificate", path, e))?;
    }
    Ok(store)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server side's TLS files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTlsFiles {
    /// The server's certificate chain (PEM, its own first).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// CA certificates (PEM) that client certificates must chain to; when
    /// set, a client without a certificate valid under them is refused
    /// during the TLS handshake.
    pub client_ca: Option<PathBuf>,
}

/// A rustls server configuration from the files. With `client_ca`, client
/// certificates are required and verified against it (mutual TLS);
/// without it none is asked for.
pub fn server_config(files: &ServerTlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = load_certs(&files.cert, "certificate")?;
    let key = load_key(&files.key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider())
                    .build()
                    .map_err(|e| file_err("CA certificate", ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(format!("certificate and key do not work together: {e}")))?;
    Ok(Arc::new(config))
}

/// The member side's TLS files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTlsFiles {
    /// CA certificates (PEM) the server's certificate must chain to.
    pub ca: PathBuf,
    /// The member's certificate chain and key (PEM), for a server that
    /// asks for client certificates.
    pub cert_key: Option<(PathBuf, PathBuf)>,
}

/// A rustls client configuration from the files.
pub fn client_config(files: &ClientTlsFiles) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots(&files.ca)?);
    let config = match &files.cert_key {
        Some((cert, key)) => builder
            .with_client_auth_cert(load_certs(cert, "certificate")?, load_key(key)?)
            .map_err(|e| {
                TlsError::Config(format!("certificate and key do not work together: {e}"))
            })?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Parses a server name (DNS name or IP address) for certificate checks.
pub fn server_name(name: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(name.to_owned()).map_err(|_| TlsError::ServerName(name.to_owned()))
}

/// The host part of `host:port` (an IPv6 address without its brackets).
pub fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// Says in words why a TLS handshake failed, from the error rustls or
/// the socket gave.
pub fn describe_failure(e: &io::Error) -> String {
    if let Some(r) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return match r {
            rustls::Error::InvalidCertificate(c) => {
                format!("the peer's certificate is not accepted: {c:?}")
            }
            rustls::Error::AlertReceived(a) => {
                format!("the peer refused the TLS handshake (alert {a:?})")
            }
            rustls::Error::InvalidMessage(_) => format!(
                "the peer does not speak TLS ({r}); is TLS enabled on both sides of this port?"
            ),
            other => other.to_string(),
        };
    }
    match e.kind() {
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => format!(
            "the peer closed the connection during the TLS handshake ({e}): TLS may be off \
             on its side of this port, or it refused the connection (its access rules, its \
             handshake limits)"
        ),
        io::ErrorKind::TimedOut => "the TLS handshake took too long".to_owned(),
        _ => e.to_string(),
    }
}

/// A member port that accepts TLS connections: TCP accepted at once, the
/// TLS handshake in a task of its own (see the module documentation).
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
    failures: TlsFailures,
}

/// Why server-side TLS handshakes fail, as counted by [`TlsFailures`].
pub const FAILURE_KINDS: [&str; 8] = [
    "certificate_expired",
    "certificate_refused",
    "no_certificate",
    "not_tls",
    "peer_refused",
    "tls_error",
    "timeout",
    "closed",
];

/// Failed server-side TLS handshakes of a [`TlsListener`] since its
/// start, by kind ([`FAILURE_KINDS`]); shared with whoever exports them.
#[derive(Debug, Clone, Default)]
pub struct TlsFailures(Arc<std::sync::Mutex<FailureLog>>);

impl TlsFailures {
    /// The count per kind, in [`FAILURE_KINDS`] order.
    pub fn totals(&self) -> [u64; FAILURE_KINDS.len()] {
        self.0.lock().map(|l| l.totals).unwrap_or_default()
    }

    fn record(&self, peer: SocketAddr, reason: &'static str, detail: String) {
        if let Ok(mut log) = self.0.lock() {
            log.record(peer, reason, detail);
        }
    }
}

/// How often failed server-side TLS handshakes are summarised in one log
/// line at most.
const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Failed TLS handshakes since the last summary line, by reason.
#[derive(Debug, Default)]
struct FailureLog {
    totals: [u64; FAILURE_KINDS.len()],
    counts: std::collections::BTreeMap<&'static str, u64>,
    last: Option<(SocketAddr, String)>,
    logged: Option<tokio::time::Instant>,
}

impl FailureLog {
    /// Counts a failure; logs a summary (WARN) at most once per interval,
    /// every single one at DEBUG.
    fn record(&mut self, peer: SocketAddr, reason: &'static str, detail: String) {
        tracing::debug!(%peer, reason, detail = %detail, "TLS handshake failed");
        let kind = FAILURE_KINDS.iter().position(|k| *k == reason);
        debug_assert!(kind.is_some(), "unknown TLS failure kind {reason}");
        if let Some(i) = kind {
            self.totals[i] += 1;
        }
        *self.counts.entry(reason).or_default() += 1;
        self.last = Some((peer, detail));
        let now = tokio::time::Instant::now();
        if self
            .logged
            .is_none_or(|t| now.duration_since(t) >= FAILURE_LOG_INTERVAL)
        {
            let counts = self
                .counts
                .iter()
                .map(|(r, n)| format!("{r}={n}"))
                .collect::<Vec<_>>()
                .join(" ");
            if let Some((peer, detail)) = self.last.take() {
                tracing::warn!(
                    %counts,
                    last_peer = %peer,
                    last = %detail,
                    "TLS handshakes failed on the member port"
                );
            }
            self.counts.clear();
            self.logged = Some(now);
        }
    }
}

/// A short name for why a server-side handshake failed, for counting.
fn failure_kind(e: &io::Error) -> &'static str {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Expired)) => {
            "certificate_expired"
        }
        Some(rustls::Error::InvalidCertificate(_)) => "certificate_refused",
        Some(rustls::Error::NoCertificatesPresented) => "no_certificate",
        Some(rustls::Error::InvalidMessage(_)) => "not_tls",
        Some(rustls::Error::AlertReceived(_)) => "peer_refused",
        Some(_) => "tls_error",
        None if e.kind() == io::ErrorKind::TimedOut => "timeout",
        None => "closed",
    }
}

impl fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsListener")
            .field("tcp", &self.tcp)
            .finish()
    }
}

impl TlsListener {
    /// Serves TLS with `config` on `tcp`; a handshake not finished within
    /// `handshake_timeout` is abandoned.
    pub fn new(tcp: TcpListener, config: Arc<ServerConfig>, handshake_timeout: Duration) -> Self {
        TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(config),
            handshake_timeout,
            failures: TlsFailures::default(),
        }
    }

    /// The counts of this listener's failed handshakes.
    pub fn failures(&self) -> TlsFailures {
        self.failures.clone()
    }
}

type ServerStream = tokio_rustls::server::TlsStream<TcpStream>;

/// Runs a server-side TLS handshake and hands the halves over; gives up
/// when the connection's reader is dropped (the server forgot the
/// connection) or the deadline passes.
async fn server_handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    timeout: Duration,
    mut rd_tx: oneshot::Sender<io::Result<(ReadHalf<ServerStream>, Vec<String>)>>,
    wr_tx: oneshot::Sender<WriteHalf<ServerStream>>,
    failures: TlsFailures,
) {
    let hs = tokio::time::timeout(timeout, acceptor.accept(tcp));
    let result = tokio::select! {
        r = hs => r,
        _ = rd_tx.closed() => return,
    };
    match result {
        Ok(Ok(stream)) => {
            let names = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| certificate_names(c.as_ref()))
                .unwrap_or_default();
            let (rd, wr) = tokio::io::split(stream);
            let _ = rd_tx.send(Ok((rd, names)));
            let _ = wr_tx.send(wr);
        }
        Ok(Err(e)) => {
            failures.record(peer, failure_kind(&e), describe_failure(&e));
            let _ = rd_tx.send(Err(e));
        }
        Err(_) => {
            failures.record(peer, "timeout", "the TLS handshake took too long".into());
            let _ = rd_tx.send(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            )));
        }
    }
}

impl Listener for TlsListener {
    type Read = TlsRead;
    type Write = TlsWrite;

    async fn accept(&mut self) -> io::Result<(TlsRead, TlsWrite, SocketAddr)> {
        let (tcp, peer) = TcpListener::accept(&self.tcp).await?;
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "set_nodelay failed");
        }
        let (rd_tx, rd_rx) = oneshot::channel();
        let (wr_tx, wr_rx) = oneshot::channel();
        tokio::spawn(server_handshake(
            self.acceptor.clone(),
            tcp,
            peer,
            self.handshake_timeout,
            rd_tx,
            wr_tx,
            self.failures.clone(),
        ));
        Ok((
            TlsRead {
                state: ReadState::Handshake(rd_rx),
                stash: BytesMut::new(),
                eof: false,
                names: None,
            },
            TlsWrite {
                state: WriteState::Handshake(wr_rx),
            },
            peer,
        ))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

enum ReadState {
    Handshake(oneshot::Receiver<io::Result<(ReadHalf<ServerStream>, Vec<String>)>>),
    Ready(ReadHalf<ServerStream>),
}

/// The read half of an accepted TLS connection. A TLS stream cannot say
/// "readable" without decrypting, so [`readable`](NetRead::readable)
/// reads up to one record's plaintext into a small buffer of its own and
/// [`try_read_buf`](NetRead::try_read_buf) hands it over.
pub struct TlsRead {
    state: ReadState,
    stash: BytesMut,
    eof: bool,
    /// The client certificate's names, until taken.
    names: Option<Vec<String>>,
}

impl fmt::Debug for TlsRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsRead")
            .field("ready", &matches!(self.state, ReadState::Ready(_)))
            .field("stashed", &self.stash.len())
            .finish()
    }
}

impl NetRead for TlsRead {
    async fn readable(&mut self) -> io::Result<()> {
        if let ReadState::Handshake(rx) = &mut self.state {
            let (half, names) = match rx.await {
                Ok(r) => r?,
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "TLS handshake abandoned",
                    ))
                }
            };
            self.state = ReadState::Ready(half);
            self.names = (!names.is_empty()).then_some(names);
        }
        if !self.stash.is_empty() || self.eof {
            return Ok(());
        }
        let ReadState::Ready(half) = &mut self.state else {
            return Ok(());
        };
        self.stash.reserve(TLS_READ_BYTES);
        // Cancel safe: a read that is dropped before it completes has
        // taken no bytes.
        if half.read_buf(&mut self.stash).await? == 0 {
            self.eof = true;
        }
        Ok(())
    }

    fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        if self.stash.is_empty() {
            if self.eof {
                return Ok(0);
            }
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let room = buf.capacity().saturating_sub(buf.len()).max(1);
        let n = room.min(self.stash.len());
        buf.extend_from_slice(&self.stash.split_to(n));
        if self.stash.is_empty() {
            // An idle connection keeps no read buffer.
            self.stash = BytesMut::new();
        }
        Ok(n)
    }

    fn take_certificate_names(&mut self) -> Option<Vec<String>> {
        self.names.take()
    }
}

/// Certificate names taken from one certificate at most.
pub const CERTIFICATE_NAMES_MAX: usize = 32;

/// The names of an end-entity certificate (DER) a certificate credential
/// can match: its subject common names, then its DNS and URI subject
/// alternative names, at most [`CERTIFICATE_NAMES_MAX`], each at most 128
/// bytes and free of control characters (others are skipped). A
/// certificate that does not parse has no names (the TLS handshake already
/// verified it; it then matches no certificate credential).
pub fn certificate_names(der: &[u8]) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let mut names: Vec<String> = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_owned))
        .collect();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(s) | GeneralName::URI(s) => names.push((*s).to_owned()),
                _ => {}
            }
        }
    }
    names.retain(|n| {
        !n.is_empty()
            && n.len() <= switchboard_core::frame::NAME_BYTES_MAX
            && !n.chars().any(char::is_control)
    });
    names.dedup();
    names.truncate(CERTIFICATE_NAMES_MAX);
    names
}

enum WriteState {
    Handshake(oneshot::Receiver<WriteHalf<ServerStream>>),
    Ready(WriteHalf<ServerStream>),
    Failed,
}

/// The write half of an accepted TLS connection; writes wait for the
/// handshake and fail if it does.
pub struct TlsWrite {
    state: WriteState,
}

impl fmt::Debug for TlsWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsWrite")
            .field("ready", &matches!(self.state, WriteState::Ready(_)))
            .finish()
    }
}

impl TlsWrite {
    fn poll_half(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<&mut WriteHalf<ServerStream>>> {
        if let WriteState::Handshake(rx) = &mut self.state {
            match Pin::new(rx).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(w)) => self.state = WriteState::Ready(w),
                Poll::Ready(Err(_)) => self.state = WriteState::Failed,
            }
        }
        match &mut self.state {
            WriteState::Ready(w) => Poll::Ready(Ok(w)),
            _ => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the TLS handshake did not complete",
            ))),
        }
    }
}

impl AsyncWrite for TlsWrite {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().poll_half(cx) {
            Poll::Ready(Ok(w)) => Pin::new(w).poll_write(cx, buf),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().poll_half(cx) {
            Poll::Ready(Ok(w)) => Pin::new(w).poll_write_vectored(cx, bufs),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().poll_half(cx) {
            Poll::Ready(Ok(w)) => Pin::new(w).poll_flush(cx),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if matches!(this.state, WriteState::Handshake(_)) {
            // Nothing was written: nothing to close politely.
            this.state = WriteState::Failed;
            return Poll::Ready(Ok(()));
        }
        match &mut this.state {
            WriteState::Ready(w) => Pin::new(w).poll_shutdown(cx),
            _ => Poll::Ready(Ok(())),
        }
    }
}

/// A member's connections over TLS: TCP, then a TLS handshake checking
/// the server's certificate against the configured CA for `server_name`
/// (and presenting the member's certificate when configured).
#[derive(Clone)]
pub struct TlsNet {
    connector: TlsConnector,
    server_name: ServerName<'static>,
    handshake_timeout: Duration,
}

impl fmt::Debug for TlsNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsNet")
            .field("server_name", &self.server_name)
            .finish()
    }
}

/// How long a member's TLS handshake may take.
pub const CLIENT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

impl TlsNet {
    /// Connects with `config`, checking the server's certificate for
    /// `server_name`.
    pub fn new(config: Arc<ClientConfig>, server_name: ServerName<'static>) -> TlsNet {
        TlsNet {
            connector: TlsConnector::from(config),
            server_name,
            handshake_timeout: CLIENT_HANDSHAKE_TIMEOUT,
        }
    }
}

/// The read half of a member's TLS connection.
pub type ClientRead = ReadHalf<tokio_rustls::client::TlsStream<TcpStream>>;
/// The write half of a member's TLS connection.
pub type ClientWrite = WriteHalf<tokio_rustls::client::TlsStream<TcpStream>>;

impl Connector for TlsNet {
    type Read = ClientRead;
    type Write = ClientWrite;

    #[allow(clippy::manual_async_fn)]
    fn connect(
        &self,
        addr: String,
    ) -> impl Future<Output = io::Result<(ClientRead, ClientWrite)>> + Send + 'static {
        let connector = self.connector.clone();
        let name = self.server_name.clone();
        let timeout = self.handshake_timeout;
        async move {
            let tcp = TcpStream::connect(addr.as_str()).await?;
            tcp.set_nodelay(true)?;
            let tls = match tokio::time::timeout(timeout, connector.connect(name, tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(io::Error::other(TlsFailure(describe_failure(&e)))),
                Err(_) => {
                    return Err(io::Error::other(TlsFailure(
                        "the TLS handshake took too long".to_owned(),
                    )))
                }
            };
            Ok(tokio::io::split(tls))
        }
    }

    fn rng(&self) -> Box<dyn RngCore + Send> {
        entropy_rng()
    }
}

/// True when `bytes` start like a TLS record (a handshake or an alert,
/// TLS 1.0 to 1.3): what a plain member reads from a TLS port. No frame
/// of the member protocol starts so: its first four bytes are a length
/// far above any frame's limit.
pub fn looks_like_tls(bytes: &[u8]) -> bool {
    matches!(bytes, [0x15 | 0x16, 0x03, 0x00..=0x04, ..])
}

/// The TLS failure inside a connect or read error, in words, if it is
/// one: a failed handshake, or (TLS 1.3) the server's refusal of the
/// member's certificate, which arrives as an alert on the first read.
pub fn tls_failure(e: &io::Error) -> Option<String> {
    let inner = e.get_ref()?;
    if let Some(f) = inner.downcast_ref::<TlsFailure>() {
        return Some(f.0.clone());
    }
    inner
        .downcast_ref::<rustls::Error>()
        .map(|_| describe_failure(e))
}

/// A server-side TLS handshake on an accepted stream (the HTTP port's),
/// with a deadline.
pub async fn accept_stream(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    timeout: Duration,
) -> io::Result<ServerStream> {
    match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "TLS handshake timed out",
        )),
    }
}

/// The server-side stream of an accepted TLS connection.
pub type ServerTlsStream = ServerStream;

pub use tokio_rustls::TlsAcceptor;

/// The secret both sides prove in the challenge-response handshake when
/// the member port authenticates members by certificate alone (`auth =
/// "certificate"`). It is public: there, what keeps a stranger out is the
/// client certificate the TLS handshake verified before the first
/// protocol byte. Session keys stay private all the same, because the
/// nonces they are derived from travel inside TLS.
pub fn certificate_auth_secret() -> switchboard_core::auth::Secret {
    const PUBLIC: &[u8; 32] = b"switchboard certificate auth /1.";
    match switchboard_core::auth::Secret::new(PUBLIC.to_vec()) {
        Ok(s) => s,
        Err(_) => unreachable!("32 bytes is longer than the minimum"),
    }
}
