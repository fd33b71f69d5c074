//! `kill -9` of a member *process*: the built `switchboard` binary runs
//! `switchboard watch --as victim/p1` as a child against an in-process
//! server; two observers (one on its event stream, one on a membership
//! subscription) see it join, it is killed with SIGKILL, and both must get
//! `MemberFailed` for its member id within the configured timeouts. A
//! restarted child joins as a new incarnation with a new member id, and
//! the old one is gone from every view.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use switchboard_client::{Event, EventStream, Member, MemberConfig, Subscription};
use switchboard_core::frame::{ClusterEvent, EventKind, FailReason, Filter, MemberInfo};
use switchboard_core::server::ServerConfig;
use switchboard_server::config::ServerOptions;
use switchboard_server::{MemberView, MembersView, ServerHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::Instant;

const CLUSTER: &str = "crash";
const VICTIM: (&str, &str) = ("victim", "p1");
/// Longest any single wait may take (process start and connect included;
/// generous for a loaded machine).
const WAIT: Duration = Duration::from_secs(20);
const HEARTBEAT_INTERVAL_MS: u32 = 200;
const HEARTBEAT_TIMEOUT_MS: u32 = 1_000;
const RESUME_WINDOW_MS: u32 = 1_000;
/// Scheduling slack on top of the configured detection time.
const SLACK: Duration = Duration::from_secs(2);

fn temp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "switchboard-member-crash-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Where an observer hears cluster events from.
enum Source {
    /// The member's main event stream (membership events always arrive).
    Stream(EventStream),
    /// A subscription for membership events.
    Sub(Subscription),
}

struct Observer {
    name: &'static str,
    member: Member,
    source: Source,
    /// Everything heard so far, for failure messages.
    seen: Vec<ClusterEvent>,
}

impl Observer {
    /// Waits until `deadline` for the first cluster event `f` maps to
    /// `Some`.
    async fn wait_for<T>(
        &mut self,
        what: &str,
        deadline: Instant,
        mut f: impl FnMut(&ClusterEvent) -> Option<T>,
    ) -> T {
        loop {
            let next = async {
                match &mut self.source {
                    Source::Stream(s) => loop {
                        match s.next().await {
                            Some(Event::Cluster(n)) => return Some(n.event),
                            Some(_) => {}
                            None => return None,
                        }
                    },
                    Source::Sub(s) => s.next().await.map(|n| n.event),
                }
            };
            match tokio::time::timeout_at(deadline, next).await {
                Ok(Some(ev)) => {
                    let hit = f(&ev);
                    self.seen.push(ev);
                    if let Some(t) = hit {
                        return t;
                    }
                }
                Ok(None) => panic!("{}: stream ended while waiting for {what}", self.name),
                Err(_) => panic!(
                    "{}: timed out waiting for {what}; heard {:#?}",
                    self.name, self.seen
                ),
            }
        }
    }

    async fn wait_joined(&mut self, deadline: Instant, not_id: Option<u64>) -> MemberInfo {
        self.wait_for("the victim's MemberJoined", deadline, |ev| match ev {
            ClusterEvent::MemberJoined(m)
                if (m.instance.as_str(), m.process.as_str()) == VICTIM
                    && Some(m.member_id) != not_id =>
            {
                Some(m.clone())
            }
            _ => None,
        })
        .await
    }

    async fn wait_failed(&mut self, deadline: Instant, id: u64) -> FailReason {
        self.wait_for("the victim's MemberFailed", deadline, |ev| match ev {
            ClusterEvent::MemberFailed { member_id, reason } if *member_id == id => Some(*reason),
            ClusterEvent::MemberLeft { member_id } if *member_id == id => {
                panic!("a SIGKILLed member cannot say goodbye, yet MemberLeft was seen")
            }
            _ => None,
        })
        .await
    }
}

async fn start_server(secret_file: &Path) -> ServerHandle {
    let (secret, created) = switchboard_runtime::secret::load_or_create(secret_file).unwrap();
    assert!(created);
    let mut core = ServerConfig::new(CLUSTER, secret);
    core.heartbeat_interval_ms = HEARTBEAT_INTERVAL_MS;
    core.heartbeat_timeout_ms = HEARTBEAT_TIMEOUT_MS;
    core.resume_window_ms = RESUME_WINDOW_MS;
    core.restart_grace_ms = 200;
    let mut opts = ServerOptions::loopback_ephemeral(core);
    // Member ids on the HTTP port need the reader token.
    opts.http_token = Some(HTTP_TOKEN.into());
    switchboard_server::run(opts).await.unwrap()
}

async fn observer(
    name: &'static str,
    server: &ServerHandle,
    secret_file: &Path,
    subscribe: bool,
) -> Observer {
    let secret = switchboard_runtime::secret::load(secret_file).unwrap();
    let mut c = MemberConfig::new(
        server.internal_addr().to_string(),
        CLUSTER,
        secret,
        "observers",
        name,
    );
    c.core.reconnect_min_ms = 20;
    c.core.reconnect_max_ms = 200;
    c.connect_timeout = WAIT;
    let (member, stream) = Member::connect(c).await.unwrap();
    let source = if subscribe {
        let sub =
            tokio::time::timeout(WAIT, member.events(Filter::kinds(&[EventKind::Membership])))
                .await
                .unwrap()
                .unwrap();
        // Fence: the server processes a member's frames in order, so once a
        // later publish is acknowledged the subscription is in place.
        tokio::time::timeout(WAIT, member.set_load(1))
            .await
            .unwrap()
            .unwrap();
        drop(stream);
        Source::Sub(sub)
    } else {
        Source::Stream(stream)
    };
    Observer {
        name,
        member,
        source,
        seen: Vec::new(),
    }
}

/// `switchboard watch --as victim/p1` against `server`.
fn spawn_victim(server: &ServerHandle, secret_file: &Path) -> Child {
    Command::new(switchboard_tests::switchboard_bin())
        .arg("watch")
        .args(["--as", &format!("{}/{}", VICTIM.0, VICTIM.1)])
        .args(["--cluster", CLUSTER])
        .args(["--internal", &server.internal_addr().to_string()])
        .args(["--external", &server.external_addr().to_string()])
        .arg("--secret-file")
        .arg(secret_file)
        .env_remove("SWITCHBOARD_CONFIG")
        .env("SWITCHBOARD_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Waits for both observers to see the victim join (a member id other than
/// `not_id`), failing early if the child exits.
async fn both_see_join(
    child: &mut Child,
    observers: &mut [Observer; 2],
    not_id: Option<u64>,
) -> MemberInfo {
    let deadline = Instant::now() + WAIT;
    let [a, b] = observers;
    let joined = async {
        let ma = a.wait_joined(deadline, not_id).await;
        let mb = b.wait_joined(deadline, not_id).await;
        assert_eq!(ma, mb, "the observers disagree on the victim");
        ma
    };
    tokio::select! {
        m = joined => m,
        status = child.wait() => panic!("the victim exited before joining: {status:?}"),
    }
}

/// The HTTP reader token the server is configured with.
const HTTP_TOKEN: &str = "member-crash-reader";

async fn http_get(addr: &str, path: &str) -> (u16, String) {
    tokio::time::timeout(WAIT, async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {HTTP_TOKEN}\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (code, body.to_owned())
    })
    .await
    .unwrap()
}

/// The victim entries of `GET /members`.
async fn victims_over_http(server: &ServerHandle) -> Vec<MemberView> {
    let (code, body) = http_get(&server.external_addr().to_string(), "/members").await;
    assert_eq!(code, 200, "{body}");
    let view: MembersView = serde_json::from_str(&body).unwrap();
    view.members
        .into_iter()
        .filter(|m| (m.instance.as_str(), m.process.as_str()) == VICTIM)
        .collect()
}

/// The victim's ids in an observer's own view.
async fn victim_ids_in_view(o: &Observer) -> Vec<u64> {
    let (_, view) = tokio::time::timeout(WAIT, o.member.view())
        .await
        .unwrap()
        .unwrap();
    view.iter()
        .filter(|m| (m.instance.as_str(), m.process.as_str()) == VICTIM)
        .map(|m| m.member_id)
        .collect()
}

fn hex(incarnation: u64) -> String {
    switchboard_runtime::secret::to_hex(&incarnation.to_be_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_member_process_is_declared_failed_and_rejoins_as_a_new_incarnation() {
    let dir = temp_dir();
    let secret_file = dir.join("secret");
    let server = start_server(&secret_file).await;
    let mut observers = [
        observer("stream", &server, &secret_file, false).await,
        observer("subscription", &server, &secret_file, true).await,
    ];

    // First incarnation: the child process joins.
    let mut child = spawn_victim(&server, &secret_file);
    let first = both_see_join(&mut child, &mut observers, None).await;
    let http = victims_over_http(&server).await;
    assert_eq!(http.len(), 1, "{http:?}");
    assert_eq!(http[0].member_id, Some(first.member_id));
    assert!(http[0].attached);

    // SIGKILL: no goodbye, no flush; the kernel closes the socket.
    let killed_at = Instant::now();
    child.start_kill().unwrap();
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "{status:?}");
    }
    #[cfg(not(unix))]
    assert!(!status.success());

    // Worst case: silence until the heartbeat timeout, or a dropped
    // connection not resumed within the resume window.
    let budget =
        Duration::from_millis(u64::from(HEARTBEAT_TIMEOUT_MS.max(RESUME_WINDOW_MS))) + SLACK;
    for o in observers.iter_mut() {
        let reason = o.wait_failed(killed_at + budget, first.member_id).await;
        let took = killed_at.elapsed();
        assert!(
            matches!(
                reason,
                FailReason::ConnectionLost | FailReason::HeartbeatTimeout
            ),
            "{}: {reason:?}",
            o.name
        );
        if reason == FailReason::ConnectionLost {
            // The session was kept for the whole resume window first.
            assert!(
                took >= Duration::from_millis(u64::from(RESUME_WINDOW_MS)),
                "{}: failed after {took:?}, before the resume window ended",
                o.name
            );
        }
        eprintln!(
            "{}: MemberFailed({reason:?}) {took:?} after the kill",
            o.name
        );
    }
    // Gone from every view.
    for o in &observers {
        assert_eq!(victim_ids_in_view(o).await, Vec::<u64>::new(), "{}", o.name);
    }
    assert!(victims_over_http(&server).await.is_empty());

    // Restart: a new process, a new incarnation, a new member id.
    let mut child = spawn_victim(&server, &secret_file);
    let second = both_see_join(&mut child, &mut observers, Some(first.member_id)).await;
    assert_ne!(second.incarnation, first.incarnation);
    assert_ne!(second.member_id, first.member_id);
    for o in &observers {
        assert_eq!(
            victim_ids_in_view(o).await,
            vec![second.member_id],
            "{}",
            o.name
        );
    }
    let http = victims_over_http(&server).await;
    assert_eq!(http.len(), 1, "{http:?}");
    assert_eq!(http[0].member_id, Some(second.member_id));
    assert_eq!(http[0].incarnation, Some(hex(second.incarnation)));
    assert!(http[0].attached);

    child.start_kill().unwrap();
    let _ = tokio::time::timeout(WAIT, child.wait()).await;
    for o in &observers {
        o.member.goodbye().await;
    }
    tokio::time::timeout(WAIT, server.shutdown()).await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
