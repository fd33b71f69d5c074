//! The built `switchboard serve` under attack, over real TCP on loopback.
//!
//! Every scenario runs an honest pair alongside (one member sends a message
//! to the other every 20 ms) and checks that:
//! * the honest traffic arrives complete and in order;
//! * a new member registers, and a member whose connection drops resumes,
//!   each within 1 s, while the attack runs;
//! * the server's resident memory (`VmRSS` of the child process) stays
//!   under the configured budget plus [`RSS_SLACK_MB`], and goes back to
//!   within [`RSS_RETURN_MB`] of its idle figure afterwards;
//! * the attacker gets a clear refusal (a `Reject` or `Error` frame, or a
//!   closed connection for HTTP).
//!
//! Attackers without the secret bind 127.0.0.2 and up as their source
//! address; the honest members connect from 127.0.0.1. Each scenario prints
//! its figures (`cargo test -p switchboard-tests --test abuse -- --nocapture`).
//!
//! Why one file over 800 lines: it is one suite, one test per row of the
//! threat table in docs/SECURITY.md, and the first half is the attacker's
//! kit (raw frames, source addresses, the server child and its RSS) that
//! every row uses; cargo builds each file in `tests/` as its own binary, so
//! a split would build that kit once per part.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use switchboard_client::{member, Event, EventStream, Member, MemberConfig};
use switchboard_core::auth::Secret;
use switchboard_core::frame::{
    self, capabilities, flags, Address, Auth, Chunk, Frame, Hello, Limits, Send,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::{Child, Command};

const WAIT: Duration = Duration::from_secs(15);
const CLUSTER: &str = "abuse";
/// The budget every scenario configures.
const BUDGET_MB: u64 = 64;
/// RSS allowed over the budget: the binary, its runtime and allocator
/// overhead (idle is about 7 MB).
const RSS_SLACK_MB: u64 = 48;
/// RSS allowed over the idle figure once an attack is over.
const RSS_RETURN_MB: u64 = 24;
/// How long an honest registration or resume may take during an attack.
const PROBE_MAX: Duration = Duration::from_secs(1);

/// Server settings shared by the scenarios: small budgets so that limits
/// are reached in seconds.
fn base_toml() -> String {
    format!(
        "cluster = \"{CLUSTER}\"\n\
         memory_max_bytes = {}\n\
         handshakes_per_source_max = 8\n\
         [http]\n\
         connections_max = 64\n\
         header_timeout_ms = 1000\n\
         request_timeout_ms = 2000\n\
         idle_timeout_ms = 2000\n\
         [server]\n\
         handshakes_max = 64\n\
         handshake_timeout_ms = 1000\n\
         heartbeat_interval_ms = 200\n\
         heartbeat_timeout_ms = 1500\n\
         resume_window_ms = 3000\n\
         restart_grace_ms = 500\n\
         member_queue_bytes_max = 4194304\n\
         slow_consumer_grace_ms = 1000\n",
        BUDGET_MB << 20
    )
}

// ---------------------------------------------------------------------------
// The server child process
// ---------------------------------------------------------------------------

struct Srv {
    child: Child,
    pid: u32,
    internal: String,
    external: String,
    dir: PathBuf,
    secret: Secret,
}

impl Srv {
    async fn start(extra: &str) -> Srv {
        let dir = std::env::temp_dir().join(format!(
            "switchboard-abuse-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("switchboard.toml"), base_toml() + extra).unwrap();
        let mut child = Command::new(switchboard_tests::switchboard_bin())
            .arg("serve")
            .args(["--internal", "127.0.0.1:0", "--external", "127.0.0.1:0"])
            .arg("--config")
            .arg(dir.join("switchboard.toml"))
            .arg("--secret-file")
            .arg(dir.join("secret"))
            .env("SWITCHBOARD_LOG", "warn")
            // As dist/ runs it: glibc maps large blocks on their own and
            // returns free heap, so memory goes back after an eviction.
            .env("MALLOC_MMAP_THRESHOLD_", "32768")
            .env("MALLOC_TRIM_THRESHOLD_", "1048576")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (internal, external) = tokio::time::timeout(WAIT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.strip_prefix("switchboard: listening ") {
                    let get = |k: &str| {
                        rest.split_whitespace()
                            .find_map(|kv| kv.strip_prefix(k))
                            .unwrap()
                            .to_owned()
                    };
                    return (get("internal="), get("external="));
                }
            }
            panic!("switchboard serve exited before listening");
        })
        .await
        .expect("switchboard serve did not start");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let secret = switchboard_runtime::secret::load(&dir.join("secret")).unwrap();
        Srv {
            child,
            pid,
            internal,
            external,
            dir,
            secret,
        }
    }

    fn member_config(&self, instance: &str, process: &str) -> MemberConfig {
        let mut c = MemberConfig::new(
            self.internal.as_str(),
            CLUSTER,
            self.secret.clone(),
            instance,
            process,
        );
        c.core.reconnect_min_ms = 20;
        c.core.reconnect_max_ms = 100;
        c.connect_timeout = WAIT;
        c
    }

    async fn connect(&self, instance: &str, process: &str) -> (Member, EventStream) {
        tokio::time::timeout(WAIT, Member::connect(self.member_config(instance, process)))
            .await
            .expect("connect timed out")
            .expect("connect failed")
    }

    fn addr(&self) -> SocketAddr {
        self.internal.parse().unwrap()
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Resident memory of a process, MiB.
fn rss_mb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

// ---------------------------------------------------------------------------
// Raw protocol peers (what an attacker writes from the protocol document)
// ---------------------------------------------------------------------------

fn encode(f: &Frame) -> Vec<u8> {
    let mut b = BytesMut::new();
    f.encode(&mut b, &Limits::default()).unwrap();
    b.to_vec()
}

fn hello(instance: &str, process: &str, nonce: [u8; 16]) -> Frame {
    Frame::Hello(Hello {
        cluster: CLUSTER.into(),
        instance: instance.into(),
        process: process.into(),
        incarnation: rand::random::<u64>() | 1,
        capabilities: capabilities::CHUNKING | capabilities::OUTCOMES,
        client_nonce: nonce,
        services: vec![],
        load: 0,
        groups: vec![],
        subscriptions: vec![],
        credential: String::new(),
    })
}

/// A TCP connection from `src` to the server.
async fn connect_from(src: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::from((src, 0)))?;
    s.connect(to).await
}

/// Reads frames until one arrives, the connection closes or `within`
/// passes. Returns the first frame, or `None` at close or timeout.
async fn next_frame(s: &mut TcpStream, buf: &mut BytesMut, within: Duration) -> Option<Frame> {
    let limits = Limits::with_frame_bytes_max(frame::FRAME_BYTES_MAX_CEILING);
    tokio::time::timeout(within, async {
        loop {
            if let Ok(Some(f)) = frame::decode(buf, &limits) {
                return Some(f);
            }
            let mut chunk = [0u8; 16 * 1024];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .ok()
    .flatten()
}

/// What the server answered a refused connection with: the reject reason or
/// error text, or "closed" / "silent".
async fn refusal(s: &mut TcpStream, within: Duration) -> String {
    let mut buf = BytesMut::new();
    loop {
        match next_frame(s, &mut buf, within).await {
            Some(Frame::Reject(r)) => return format!("Reject {:?}", r.reason),
            Some(Frame::Error(e)) => return format!("Error {:?}: {}", e.code, e.text),
            Some(Frame::Challenge(_)) => continue,
            Some(other) => return format!("unexpected {}", other.name()),
            None => return "closed".into(),
        }
    }
}

/// A member registered over a raw socket, with the secret.
struct RawMember {
    s: TcpStream,
    buf: BytesMut,
    member_id: u64,
}

async fn raw_register(srv: &Srv, src: Ipv4Addr, process: &str) -> RawMember {
    let mut s = connect_from(src, srv.addr()).await.unwrap();
    let nonce: [u8; 16] = rand::random();
    s.write_all(&encode(&hello("raw", process, nonce)))
        .await
        .unwrap();
    let mut buf = BytesMut::new();
    let Some(Frame::Challenge(c)) = next_frame(&mut s, &mut buf, WAIT).await else {
        panic!("no challenge");
    };
    let proof = srv.secret.client_proof(&c.server_nonce, &nonce);
    s.write_all(&encode(&Frame::Auth(Auth {
        client_proof: proof,
        session_proof: [0; 32],
    })))
    .await
    .unwrap();
    let Some(Frame::Welcome(w)) = next_frame(&mut s, &mut buf, WAIT).await else {
        panic!("no welcome");
    };
    RawMember {
        s,
        buf,
        member_id: w.member_id,
    }
}

/// Registers a raw member from `src` and sends `pieces` pieces of `piece`
/// bytes (its first frame included) of a chunked message of `total` bytes
/// to itself, never the rest; `None` if the server closed it meanwhile.
async fn start_chunked(
    srv: &Srv,
    src: Ipv4Addr,
    process: &str,
    (total, piece, pieces): (u32, usize, u32),
) -> Option<RawMember> {
    let mut m = raw_register(srv, src, process).await;
    let head = encode(&Frame::Send(Send {
        seq: 1,
        flags: flags::MORE,
        to: Address::MemberId(m.member_id),
        correlation: 0,
        timeout_ms: 0,
        total_len: total,
        payload: Bytes::from(vec![1u8; piece]),
    }));
    m.s.write_all(&head).await.ok()?;
    for k in 1..pieces {
        let c = encode(&Frame::Chunk(Chunk {
            id: 1,
            offset: k * piece as u32,
            payload: Bytes::from(vec![2u8; piece]),
        }));
        m.s.write_all(&c).await.ok()?;
    }
    Some(m)
}

// ---------------------------------------------------------------------------
// The honest side and the scenario frame
// ---------------------------------------------------------------------------

/// Reads a member's stream into a channel, so that the member never stops
/// reading its socket (an honest member reads its stream).
fn drain(mut events: EventStream) -> tokio::sync::mpsc::UnboundedReceiver<Event> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(ev) = events.next().await {
            if tx.send(ev).is_err() {
                // Nobody looks at them: keep reading anyway.
                while events.next().await.is_some() {}
                return;
            }
        }
    });
    rx
}

/// Figures of one scenario.
#[derive(Debug, Default)]
struct Figures {
    idle_mb: u64,
    peak_mb: u64,
    after_mb: u64,
    join_ms: u128,
    resume_ms: u128,
    honest_messages: usize,
}

/// Runs `attack` against a fresh server with the honest pair alongside and
/// checks everything the module docs list. `attack` gets the server and
/// returns what the attacker was told (checked by the caller).
async fn scenario<F, Fut, T>(name: &str, extra_toml: &str, attack: F) -> (Figures, T)
where
    F: FnOnce(Arc<Srv>) -> Fut,
    Fut: std::future::Future<Output = T> + std::marker::Send + 'static,
    T: std::marker::Send + 'static,
{
    let srv = Arc::new(Srv::start(extra_toml).await);
    let (a, a_events) = srv.connect("honest", "a").await;
    let _a_events = drain(a_events);
    let (_b, mut b_events) = srv.connect("honest", "b").await;
    let (resumer, r_events) = srv.connect("honest", "resumer").await;
    let mut r_events = drain(r_events);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut fig = Figures {
        idle_mb: rss_mb(srv.pid),
        ..Figures::default()
    };

    // RSS sampler.
    let peak = Arc::new(AtomicU64::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling, pid) = (peak.clone(), sampling.clone(), srv.pid);
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(rss_mb(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    // Honest traffic: a message every 20 ms, each acknowledged.
    let sending = Arc::new(AtomicBool::new(true));
    let sender = {
        let sending = sending.clone();
        tokio::spawn(async move {
            let mut k = 0usize;
            while sending.load(Ordering::Relaxed) {
                let r = tokio::time::timeout(WAIT, a.send(member("honest", "b"), format!("h{k}")))
                    .await;
                assert!(matches!(r, Ok(Ok(_))), "honest send h{k}: {r:?}");
                k += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (a, k)
        })
    };
    let got: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let receiver = {
        let got = got.clone();
        tokio::spawn(async move {
            while let Some(ev) = b_events.next().await {
                // Only the honest sender's messages (broadcasts reach b too).
                if let Event::Message(m) = ev {
                    if m.payload.len() < 16 && m.payload.starts_with(b"h") {
                        got.lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&m.payload).into_owned());
                    }
                }
            }
        })
    };

    let attacker = tokio::spawn(attack(srv.clone()));

    // During the attack: a newcomer registers, a dropped member resumes.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let t = tokio::time::Instant::now();
    let joined = tokio::time::timeout(
        PROBE_MAX,
        Member::connect(srv.member_config("honest", "newcomer")),
    )
    .await;
    fig.join_ms = t.elapsed().as_millis();
    let (newcomer, _n_events) = match joined {
        Ok(Ok((m, ev))) => (m, drain(ev)),
        other => panic!("{name}: a new member did not register within {PROBE_MAX:?}: {other:?}"),
    };
    let t = tokio::time::Instant::now();
    resumer.drop_connection().await;
    let resumed = tokio::time::timeout(PROBE_MAX, async {
        while let Some(ev) = r_events.recv().await {
            match ev {
                Event::Resumed { .. } => return true,
                // (The first registration is in the stream too.)
                Event::Registered {
                    session_lost: true, ..
                } => return false,
                _ => {}
            }
        }
        false
    })
    .await;
    fig.resume_ms = t.elapsed().as_millis();
    assert_eq!(
        resumed,
        Ok(true),
        "{name}: a dropped member did not resume within {PROBE_MAX:?}"
    );

    let told = tokio::time::timeout(Duration::from_secs(30), attacker)
        .await
        .expect("attack did not end")
        .expect("attack panicked");
    newcomer.goodbye().await;

    // Honest traffic complete and in order.
    sending.store(false, Ordering::Relaxed);
    let (a, sent) = tokio::time::timeout(WAIT, sender).await.unwrap().unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while got.lock().unwrap().len() < sent && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let want: Vec<String> = (0..sent).map(|k| format!("h{k}")).collect();
    assert_eq!(
        *got.lock().unwrap(),
        want,
        "{name}: honest traffic incomplete or out of order"
    );
    a.goodbye().await;
    receiver.abort();
    fig.honest_messages = sent;

    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    fig.peak_mb = peak.load(Ordering::Relaxed);
    assert!(
        fig.peak_mb <= BUDGET_MB + RSS_SLACK_MB,
        "{name}: RSS peaked at {} MB, over the {BUDGET_MB} MB budget + {RSS_SLACK_MB} MB",
        fig.peak_mb
    );
    // Back near idle.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    loop {
        fig.after_mb = rss_mb(srv.pid);
        if fig.after_mb <= fig.idle_mb + RSS_RETURN_MB || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        fig.after_mb <= fig.idle_mb + RSS_RETURN_MB,
        "{name}: RSS stayed at {} MB after the attack (idle {} MB)",
        fig.after_mb,
        fig.idle_mb
    );
    eprintln!("abuse {name}: {fig:?}");
    if let Ok(srv) = Arc::try_unwrap(srv) {
        srv.stop().await;
    }
    (fig, told)
}

/// Counts of what attackers were told.
type Told = BTreeMap<String, usize>;

fn tally(told: &mut Told, what: String) {
    *told.entry(what).or_default() += 1;
}

/// Attacker source addresses 127.0.0.2 and up.
fn sources(n: u8) -> Vec<Ipv4Addr> {
    (0..n).map(|i| Ipv4Addr::new(127, 0, 0, 2 + i)).collect()
}

/// Connections without the secret, `per_source` at a time from each of
/// `srcs`, each reopened as soon as the server closes it, for `run`.
/// `send` is what each writes first (nothing: hold the slot silently).
async fn churn(
    srv: Arc<Srv>,
    srcs: Vec<Ipv4Addr>,
    per_source: usize,
    run: Duration,
    send: Vec<u8>,
) -> Told {
    let deadline = tokio::time::Instant::now() + run;
    let addr = srv.addr();
    let mut tasks = Vec::new();
    for src in srcs {
        for _ in 0..per_source {
            let send = send.clone();
            tasks.push(tokio::spawn(async move {
                let mut told = Told::new();
                while tokio::time::Instant::now() < deadline {
                    let Ok(mut s) = connect_from(src, addr).await else {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    };
                    if !send.is_empty() && s.write_all(&send).await.is_err() {
                        continue;
                    }
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    let r = refusal(&mut s, left + Duration::from_secs(2)).await;
                    tally(&mut told, r);
                }
                told
            }));
        }
    }
    let mut told = Told::new();
    for t in tasks {
        for (k, v) in t.await.unwrap() {
            *told.entry(k).or_default() += v;
        }
    }
    told
}

fn refused_clearly(name: &str, told: &Told) {
    let clear: usize = told
        .iter()
        .filter(|(k, _)| k.contains("Reject") || k.contains("Error") || k.contains("Nack"))
        .map(|(_, v)| *v)
        .sum();
    assert!(clear > 0, "{name}: no clear refusal: {told:?}");
    eprintln!("abuse {name}: attacker told {told:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_churn_from_one_address() {
    let (_, told) = scenario("churn one address", "", |srv| {
        churn(srv, sources(1), 130, Duration::from_secs(3), Vec::new())
    })
    .await;
    refused_clearly("churn one address", &told);
    assert!(told.keys().any(|k| k.contains("ServerFull")), "{told:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_churn_from_many_addresses() {
    let hello = encode(&hello("evil", "x", [7; 16]));
    let (_, told) = scenario("churn many addresses", "", move |srv| {
        churn(srv, sources(40), 4, Duration::from_secs(3), hello)
    })
    .await;
    refused_clearly("churn many addresses", &told);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_frames_before_authentication_are_refused_at_the_header() {
    let (_, told) = scenario("1 MiB hello", "", |srv| async move {
        let mut tasks = Vec::new();
        for i in 0..120u8 {
            let addr = srv.addr();
            tasks.push(tokio::spawn(async move {
                let src = Ipv4Addr::new(127, 0, 1, 1 + i % 100);
                let mut s = connect_from(src, addr).await.unwrap();
                let len: u32 = 1024 * 1024 - 4;
                let mut head = len.to_be_bytes().to_vec();
                head.extend_from_slice(&[frame::PROTOCOL_VERSION, frame::kind::HELLO]);
                let _ = s.write_all(&head).await;
                // Most of the body; the server stops reading long before.
                let _ = tokio::time::timeout(
                    Duration::from_secs(2),
                    s.write_all(&vec![0u8; 900 * 1024]),
                )
                .await;
                refusal(&mut s, Duration::from_secs(3)).await
            }));
        }
        let mut told = Told::new();
        for t in tasks {
            tally(&mut told, t.await.unwrap());
        }
        told
    })
    .await;
    refused_clearly("1 MiB hello", &told);
    assert!(
        told.keys()
            .any(|k| k.contains("exceeds the limit of 32768")),
        "{told:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_truncated_frames_and_wrong_secret_are_refused() {
    let (_, told) = scenario(
        "garbage, truncated, wrong secret, replay",
        "",
        |srv| async move {
            let addr = srv.addr();
            // One source address per case: an unfinished handshake puts its
            // address in cool-down.
            let mut last = 8u8;
            let mut src = || {
                last += 1;
                Ipv4Addr::new(127, 0, 0, last)
            };
            let mut told = Told::new();
            // Garbage.
            let mut s = connect_from(src(), addr).await.unwrap();
            s.write_all(&[0xde, 0xad, 0xbe, 0xef, 0xff, 0x00, 0x11])
                .await
                .unwrap();
            tally(
                &mut told,
                format!("garbage: {}", refusal(&mut s, WAIT).await),
            );
            // A truncated Hello, then silence: the handshake deadline.
            let mut s = connect_from(src(), addr).await.unwrap();
            let h = encode(&hello("evil", "t", [1; 16]));
            s.write_all(&h[..h.len() / 2]).await.unwrap();
            tally(
                &mut told,
                format!("truncated: {}", refusal(&mut s, WAIT).await),
            );
            // The wrong secret.
            let mut s = connect_from(src(), addr).await.unwrap();
            s.write_all(&h).await.unwrap();
            s.write_all(&encode(&Frame::Auth(Auth {
                client_proof: [0x55; 32],
                session_proof: [0; 32],
            })))
            .await
            .unwrap();
            tally(
                &mut told,
                format!("wrong secret: {}", refusal(&mut s, WAIT).await),
            );
            // A handshake recorded from an honest member, replayed: the
            // server's nonce differs, so the recorded proof fails.
            let nonce = [3u8; 16];
            let recorded_hello = encode(&hello("honest", "replayed", nonce));
            let mut s = connect_from(Ipv4Addr::LOCALHOST, addr).await.unwrap();
            s.write_all(&recorded_hello).await.unwrap();
            let mut buf = BytesMut::new();
            let Some(Frame::Challenge(c)) = next_frame(&mut s, &mut buf, WAIT).await else {
                panic!("no challenge");
            };
            let recorded_auth = encode(&Frame::Auth(Auth {
                client_proof: srv.secret.client_proof(&c.server_nonce, &nonce),
                session_proof: [0; 32],
            }));
            s.write_all(&recorded_auth).await.unwrap();
            drop(s);
            let mut s = connect_from(src(), addr).await.unwrap();
            s.write_all(&recorded_hello).await.unwrap();
            s.write_all(&recorded_auth).await.unwrap();
            tally(
                &mut told,
                format!("replay: {}", refusal(&mut s, WAIT).await),
            );
            told
        },
    )
    .await;
    refused_clearly("garbage", &told);
    let keys: Vec<&String> = told.keys().collect();
    assert!(
        keys.iter().any(|k| k.starts_with("garbage: Error")),
        "{keys:?}"
    );
    assert!(
        keys.iter()
            .any(|k| k.starts_with("truncated: Reject HandshakeTimeout")),
        "{keys:?}"
    );
    assert!(
        keys.iter()
            .any(|k| k.starts_with("wrong secret: Reject BadSecret")),
        "{keys:?}"
    );
    assert!(
        keys.iter()
            .any(|k| k.starts_with("replay: Reject BadSecret")),
        "{keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_before_and_after_registration() {
    let (_, told) = scenario("slowloris", "", |srv| async move {
        let addr = srv.addr();
        let mut told = Told::new();
        // Before: a Hello one byte every 100 ms.
        let mut s = connect_from(Ipv4Addr::new(127, 0, 0, 10), addr)
            .await
            .unwrap();
        let h = encode(&hello("evil", "slow", [2; 16]));
        let t = tokio::time::Instant::now();
        for b in &h {
            if s.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            if t.elapsed() > Duration::from_secs(3) {
                break;
            }
        }
        tally(
            &mut told,
            format!("before: {}", refusal(&mut s, WAIT).await),
        );
        // After: a registered member that sends half a frame and stalls.
        let mut m = raw_register(&srv, Ipv4Addr::new(127, 0, 4, 1), "slow").await;
        let ping = encode(&Frame::Ping(1));
        m.s.write_all(&ping[..3]).await.unwrap();
        loop {
            match next_frame(&mut m.s, &mut m.buf, WAIT).await {
                Some(Frame::Error(e)) => {
                    tally(&mut told, format!("after: Error {:?}: {}", e.code, e.text));
                    break;
                }
                Some(_) => continue,
                None => {
                    tally(&mut told, "after: closed".into());
                    break;
                }
            }
        }
        told
    })
    .await;
    refused_clearly("slowloris", &told);
    let keys: Vec<&String> = told.keys().collect();
    assert!(
        keys.iter()
            .any(|k| k.starts_with("before: Reject HandshakeTimeout")),
        "{keys:?}"
    );
    assert!(
        keys.iter()
            .any(|k| k.starts_with("after: Error DeclaredFailed")),
        "{keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequence_jump_is_a_protocol_violation() {
    let (_, told) = scenario("sequence jump", "", |srv| async move {
        let mut m = raw_register(&srv, Ipv4Addr::new(127, 0, 4, 2), "jumper").await;
        let send = |seq| {
            encode(&Frame::Send(Send {
                seq,
                flags: 0,
                to: Address::MemberId(m.member_id),
                correlation: 0,
                timeout_ms: 0,
                total_len: 1,
                payload: Bytes::from_static(b"x"),
            }))
        };
        let (a, b) = (send(1), send(u64::MAX));
        m.s.write_all(&a).await.unwrap();
        m.s.write_all(&b).await.unwrap();
        let mut told = Told::new();
        loop {
            match next_frame(&mut m.s, &mut m.buf, WAIT).await {
                Some(Frame::Error(e)) => {
                    tally(&mut told, format!("Error {:?}: {}", e.code, e.text));
                    break;
                }
                Some(_) => continue,
                None => break,
            }
        }
        told
    })
    .await;
    refused_clearly("sequence jump", &told);
    assert!(
        told.keys().any(|k| k.contains("jumps more than")),
        "{told:?}"
    );
}

/// A member that floods `payload`-byte messages at `to` without waiting.
async fn flood(m: &Member, to: Address, payload: usize, run: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + run;
    let body = Bytes::from(vec![0x5a; payload]);
    let mut n = 0;
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(200), m.post(to.clone(), body.clone()))
            .await
        {
            Ok(Ok(())) => n += 1,
            Ok(Err(_)) => break,
            Err(_) => {}
        }
    }
    n
}

async fn slow_reader_pairs(srv: Arc<Srv>, pairs: usize) -> Told {
    let mut tasks = Vec::new();
    for p in 0..pairs {
        let srv = srv.clone();
        tasks.push(tokio::spawn(async move {
            let round: u32 = rand::random();
            let reader = format!("reader{p}-{round}");
            let (_r, r_events) = srv.connect("slow", &reader).await;
            let (f, _f_events) = srv.connect("flood", &format!("f{p}-{round}")).await;
            // The reader never reads its stream: the client stops reading
            // its socket once its event buffer is full.
            let sent = flood(
                &f,
                member("slow", &reader),
                60 * 1024,
                Duration::from_secs(4),
            )
            .await;
            drop(r_events);
            format!("flooder sent {sent}")
        }));
    }
    let mut told = Told::new();
    for t in tasks {
        tally(&mut told, t.await.unwrap());
    }
    told
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_of_60kb_messages_costs_at_most_its_limit() {
    let (fig, told) = scenario("slow reader", "", |srv| slow_reader_pairs(srv, 1)).await;
    eprintln!("abuse slow reader: {told:?} {fig:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_slow_reader_pairs_stay_within_the_server_budget() {
    let (fig, told) = scenario("three slow readers", "", |srv| slow_reader_pairs(srv, 3)).await;
    eprintln!("abuse three slow readers: {told:?} {fig:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcaster_that_never_reads_is_cut_off() {
    let (_, told) = scenario("broadcaster", "", |srv| async move {
        // A raw member: it writes 8 KB broadcasts as fast as it can and
        // never reads its socket (its own broadcasts come back to it).
        let mut m = raw_register(&srv, Ipv4Addr::new(127, 0, 4, 3), "bcast").await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
        let mut seq = 1u64;
        while tokio::time::Instant::now() < deadline {
            let f = encode(&Frame::Send(Send {
                seq,
                flags: 0,
                to: Address::Broadcast,
                correlation: 0,
                timeout_ms: 0,
                total_len: 8 * 1024,
                payload: Bytes::from(vec![0x42; 8 * 1024]),
            }));
            match tokio::time::timeout(Duration::from_millis(200), m.s.write_all(&f)).await {
                Ok(Ok(())) => seq += 1,
                Ok(Err(_)) => break,
                Err(_) => {}
            }
        }
        let mut told = Told::new();
        loop {
            match next_frame(&mut m.s, &mut m.buf, WAIT).await {
                Some(Frame::Error(e)) => {
                    tally(
                        &mut told,
                        format!("Error {:?}: {} (after {seq} broadcasts)", e.code, e.text),
                    );
                    break;
                }
                Some(_) => continue,
                None => {
                    tally(&mut told, format!("closed (after {seq} broadcasts)"));
                    break;
                }
            }
        }
        told
    })
    .await;
    refused_clearly("broadcaster", &told);
    // Its own unread stream throttles it (its reads are paused, so its
    // heartbeats go unread too): it is declared failed, or evicted if its
    // queue went over the limit first. Either way it is cut off.
    assert!(
        told.keys()
            .any(|k| k.contains("DeclaredFailed") || k.contains("LimitExceeded")),
        "{told:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_chunked_messages_are_bounded_by_the_budget() {
    let (_, told) = scenario("unfinished chunked", "", |srv| async move {
        let mut tasks = Vec::new();
        for i in 0..20 {
            let srv = srv.clone();
            tasks.push(tokio::spawn(async move {
                // Everything but the last piece, then silence (pings
                // keep the member alive).
                let total: u32 = 14 * 1024 * 1024;
                let piece = 512 * 1024;
                let Some(mut m) = start_chunked(
                    &srv,
                    Ipv4Addr::new(127, 0, 5, 1 + i),
                    &format!("chunker{i}"),
                    (total, piece, total / piece as u32 - 1),
                )
                .await
                else {
                    return "closed".to_owned();
                };
                let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
                while tokio::time::Instant::now() < deadline {
                    let ping = encode(&Frame::Ping(7));
                    if m.s.write_all(&ping).await.is_err() {
                        break;
                    }
                    if let Some(Frame::Error(e)) =
                        next_frame(&mut m.s, &mut m.buf, Duration::from_millis(150)).await
                    {
                        return format!("Error {:?}: {}", e.code, e.text);
                    }
                }
                "kept".to_owned()
            }));
        }
        let mut told = Told::new();
        for t in tasks {
            tally(&mut told, t.await.unwrap());
        }
        told
    })
    .await;
    refused_clearly("unfinished chunked", &told);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_chunked_messages_are_dropped_and_nacked() {
    // 10 members each send 4 MiB of a 6 MiB message and stall: 40 MiB
    // against 24 MiB of reassembly space drops the oldest at once, the
    // deadline (1.5 s) the rest. Each is told `Nack{Incomplete}`.
    let extra = "reassembly_timeout_ms = 1500\nreassembly_bytes_max = 25165824\n";
    let (_, told) = scenario("chunked deadline", extra, |srv| async move {
        let mut tasks = Vec::new();
        for i in 0..10 {
            let srv = srv.clone();
            tasks.push(tokio::spawn(async move {
                let Some(mut m) = start_chunked(
                    &srv,
                    Ipv4Addr::new(127, 0, 8, 1 + i),
                    &format!("staller{i}"),
                    (6 * 1024 * 1024, 512 * 1024, 8),
                )
                .await
                else {
                    return "closed".to_owned();
                };
                let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                while tokio::time::Instant::now() < deadline {
                    let ping = encode(&Frame::Ping(7));
                    if m.s.write_all(&ping).await.is_err() {
                        return "closed".to_owned();
                    }
                    match next_frame(&mut m.s, &mut m.buf, Duration::from_millis(150)).await {
                        Some(Frame::Nack(n)) => return format!("Nack {:?}", n.reason),
                        Some(Frame::Error(e)) => return format!("Error {:?}: {}", e.code, e.text),
                        _ => {}
                    }
                }
                "kept".to_owned()
            }));
        }
        let mut told = Told::new();
        for t in tasks {
            tally(&mut told, t.await.unwrap());
        }
        told
    })
    .await;
    refused_clearly("chunked deadline", &told);
    assert_eq!(told.get("Nack Incomplete"), Some(&10), "{told:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_port_is_bounded_and_the_member_port_keeps_accepting() {
    let (_, told) = scenario("http flood", "", |srv| async move {
        let addr: SocketAddr = srv.external.parse().unwrap();
        let mut told = Told::new();
        // A client sending one byte per 200 ms.
        let slow = tokio::spawn(async move {
            let t = tokio::time::Instant::now();
            let Ok(mut s) = connect_from(Ipv4Addr::new(127, 0, 3, 1), addr).await else {
                return "connect failed".to_owned();
            };
            for b in
                b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n"
            {
                if s.write_all(&[*b]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let mut rest = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut rest)).await;
            format!("slowloris closed after {} s", t.elapsed().as_secs())
        });
        // The header timeout (1 s) ends it, not the 10 s it would take.
        tally(&mut told, slow.await.unwrap());
        // Far more idle connections than the HTTP cap (64).
        let mut idle = Vec::new();
        for i in 0..400u32 {
            let src = Ipv4Addr::new(127, 0, 2, 1 + (i % 200) as u8);
            if let Ok(s) = connect_from(src, addr).await {
                idle.push(s);
            }
        }
        // Every idle connection is closed by the server in time.
        let mut closed = 0;
        for mut s in idle {
            let mut b = [0u8; 64];
            if let Ok(Ok(0) | Err(_)) =
                tokio::time::timeout(Duration::from_secs(4), s.read(&mut b)).await
            {
                closed += 1;
            }
        }
        tally(&mut told, format!("idle closed {closed}/400"));
        // And /healthz answers again.
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut out)).await;
        tally(
            &mut told,
            format!(
                "healthz: {}",
                String::from_utf8_lossy(&out).lines().next().unwrap_or("")
            ),
        );
        told
    })
    .await;
    eprintln!("abuse http: {told:?}");
    assert!(told.contains_key("idle closed 400/400"), "{told:?}");
    assert!(
        told.keys()
            .any(|k| k == "slowloris closed after 1 s" || k == "slowloris closed after 2 s"),
        "{told:?}"
    );
    assert!(
        told.keys()
            .any(|k| k.starts_with("healthz: HTTP/1.0 200")
                || k.starts_with("healthz: HTTP/1.1 200")),
        "{told:?}"
    );
}

/// Every attack above at once for 20 s (`cargo test -p switchboard-tests
/// --test abuse -- --ignored --nocapture soak`): prints its figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak: about 40 s; run on demand"]
async fn soak_every_attack_at_once() {
    let run = Duration::from_secs(20);
    let hello = encode(&hello("evil", "x", [7; 16]));
    let (fig, told) = scenario("soak", "", move |srv| async move {
        let many = tokio::spawn(churn(srv.clone(), sources(40), 4, run, hello));
        let one = tokio::spawn(churn(
            srv.clone(),
            vec![Ipv4Addr::new(127, 0, 9, 1)],
            50,
            run,
            Vec::new(),
        ));
        let deadline = tokio::time::Instant::now() + run;
        let mut rounds = 0;
        while tokio::time::Instant::now() < deadline {
            slow_reader_pairs(srv.clone(), 2).await;
            rounds += 1;
        }
        let mut told = many.await.unwrap();
        for (k, v) in one.await.unwrap() {
            *told.entry(k).or_default() += v;
        }
        tally(&mut told, format!("slow reader rounds {rounds}"));
        told
    })
    .await;
    eprintln!("abuse soak: {fig:?} {told:?}");
    refused_clearly("soak", &told);
}
