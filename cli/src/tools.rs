//! `switchboard watch` (alias `sub`), `send` (alias `pub`), `publish`,
//! `request` and `reply`: thin commands over the client library, with
//! `--json` output and exit codes that say what happened.

use std::time::Duration;

use switchboard_client::{parse_address, Event, Filter, Member, Message};
use tokio::io::AsyncWriteExt;

use super::print::{self, Names};
use super::{stop_signal, CliError, Identity, Settings};

/// What `watch` prints and when it stops.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct WatchArgs {
    /// Join this group first (repeatable): messages to the group reach the
    /// watcher.
    #[arg(long = "join", value_name = "GROUP")]
    pub join: Vec<String>,
    /// Only custom events whose topic starts with PREFIX (default: every
    /// event of every kind).
    #[arg(long, value_name = "PREFIX")]
    pub topic: Option<String>,
    /// Exit after printing N messages and events.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
}

pub(crate) async fn watch(s: &Settings, who: &Identity, a: &WatchArgs) -> Result<(), CliError> {
    let cfg = s.member_config(who, "watch")?;
    let (me, mut events) = Member::connect(cfg).await?;
    for g in &a.join {
        me.join(g).await?;
    }
    // Custom and service events arrive only for a matching subscription; a
    // handler that does nothing puts them on the main stream, which is the
    // one printed (one order for everything). An unread stream lags, it
    // never stops the member.
    let filter = match &a.topic {
        Some(p) => Filter::topic(p.clone()),
        None => Filter::all(),
    };
    me.on_event(filter, |_| {}).await?;
    let name = format!("{}/{}", me.instance(), me.process());
    if !a.json {
        eprintln!(
            "watching as {name}{}; stop with Ctrl-C",
            if a.join.is_empty() {
                String::new()
            } else {
                format!(" in group(s) {}", a.join.join(", "))
            }
        );
    }
    let mut names = Names::default();
    let (_, view) = me.view().await?;
    names.learn_view(&view);
    let mut printed = 0u64;
    let stop = stop_signal();
    tokio::pin!(stop);
    let mut out = Out::new();
    loop {
        tokio::select! {
            r = &mut stop => { r?; break; }
            ev = events.next() => {
                let Some(ev) = ev else { break };
                if let Event::Cluster(n) = &ev {
                    if a.topic.is_some() && n.handlers.is_empty() {
                        // A membership event: always on the stream.
                        names.learn(&n.event);
                        continue;
                    }
                }
                let data = matches!(
                    ev,
                    Event::Message(_) | Event::Request(_) | Event::Cluster(_) | Event::Lagged { .. }
                );
                if !data {
                    // Connection changes: to standard error, as text.
                    eprintln!("{} {}", print::timestamp(), names.describe(&ev));
                    if matches!(ev, Event::Closed) { break; }
                    continue;
                }
                let line = if a.json {
                    print::json_event(&mut names, &ev).to_string()
                } else {
                    format!("{} {}", print::timestamp(), names.describe(&ev))
                };
                out.line(&line).await?;
                if matches!(ev, Event::Message(_) | Event::Request(_) | Event::Cluster(_)) {
                    printed += 1;
                    if a.count.is_some_and(|c| printed >= c) {
                        break;
                    }
                }
            }
        }
    }
    out.flush().await?;
    me.goodbye().await;
    Ok(())
}

/// Buffered stdout, flushed when nothing else is ready (so `watch` keeps
/// up with a busy stream when piped).
struct Out(tokio::io::BufWriter<tokio::io::Stdout>);

impl Out {
    fn new() -> Out {
        Out(tokio::io::BufWriter::new(tokio::io::stdout()))
    }

    async fn line(&mut self, s: &str) -> Result<(), CliError> {
        let w = async {
            self.0.write_all(s.as_bytes()).await?;
            self.0.write_all(b"\n").await?;
            self.0.flush().await
        };
        w.await.map_err(CliError::Stdout)
    }

    async fn flush(&mut self) -> Result<(), CliError> {
        self.0.flush().await.map_err(CliError::Stdout)
    }
}

pub(crate) async fn send(
    s: &Settings,
    who: &Identity,
    to: &str,
    confirm: bool,
    json: bool,
    payload: String,
) -> Result<(), CliError> {
    let to = parse_address(to)?;
    let (me, events) = Member::connect(s.member_config(who, "send")?).await?;
    drop(events);
    // Names for the members that may miss it (a member declared failed
    // leaves the view).
    let mut names = Names::default();
    names.learn_view(&me.view().await?.1);
    let result = if confirm {
        me.send_confirmed(to.clone(), payload).await
    } else {
        me.send(to.clone(), payload)
            .await
            .map(|seq| switchboard_client::Outcome {
                seq,
                delivered: 0,
                missed: Vec::new(),
            })
    };
    me.goodbye().await;
    let o = result?;
    let to = print::address(&to);
    if json {
        let missed: Vec<_> = o
            .missed
            .iter()
            .map(|m| {
                serde_json::json!({
                    "member": names.name(m.member_id),
                    "reason": print::miss_reason(m.reason),
                })
            })
            .collect();
        let mut v = serde_json::json!({"to": to, "seq": o.seq, "acknowledged": true});
        if confirm {
            v["delivered"] = o.delivered.into();
            v["missed"] = missed.into();
        }
        println!("{v}");
    } else if !confirm {
        println!("sent to {to}; the server acknowledged it");
    } else if o.is_complete() {
        println!("delivered to {to}: {} addressee(s) got it", o.delivered);
    } else {
        println!(
            "delivered to {} addressee(s) of {to}; missed by {}",
            o.delivered,
            o.missed
                .iter()
                .map(|m| format!(
                    "{} ({})",
                    names.name(m.member_id),
                    print::miss_reason(m.reason)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !o.is_complete() {
        return Err(CliError::Missed(o.missed.len()));
    }
    Ok(())
}

pub(crate) async fn publish(
    s: &Settings,
    who: &Identity,
    topic: &str,
    json: bool,
    payload: String,
) -> Result<(), CliError> {
    let (me, events) = Member::connect(s.member_config(who, "publish")?).await?;
    drop(events);
    let result = me.publish_custom(topic, payload).await;
    me.goodbye().await;
    result?;
    if json {
        println!(
            "{}",
            serde_json::json!({"topic": topic, "acknowledged": true})
        );
    } else {
        println!("published on {topic}; the server acknowledged it");
    }
    Ok(())
}

pub(crate) async fn request(
    s: &Settings,
    who: &Identity,
    to: &str,
    timeout_ms: u64,
    json: bool,
    payload: String,
) -> Result<(), CliError> {
    let to = parse_address(to)?;
    let (me, events) = Member::connect(s.member_config(who, "request")?).await?;
    drop(events);
    let result = me
        .request(to, payload, Duration::from_millis(timeout_ms))
        .await;
    me.goodbye().await;
    let reply = result?;
    if json {
        println!("{}", print::json_message("reply", &reply));
    } else {
        println!("{}", print::text(&reply.payload));
    }
    Ok(())
}

/// How `reply` answers.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ReplyArgs {
    /// Join this group first (repeatable): requests to `group:NAME` or
    /// `anycast:NAME` reach this replier.
    #[arg(long = "join", value_name = "GROUP")]
    pub join: Vec<String>,
    /// Answer every request with this text.
    #[arg(long, conflicts_with = "command")]
    pub answer: Option<String>,
    /// Answer every request with the output of this shell command, run with
    /// `sh -c`, the request's payload on its standard input (and in
    /// `$SWITCHBOARD_SENDER` the requester's name).
    #[arg(long)]
    pub command: Option<String>,
    /// Exit after answering N requests.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Print each request answered as one JSON object per line.
    #[arg(long)]
    pub json: bool,
}

/// Output of a `--command` replier, at most.
const COMMAND_OUTPUT_MAX: usize = 1024 * 1024;

pub(crate) async fn reply(s: &Settings, who: &Identity, a: &ReplyArgs) -> Result<(), CliError> {
    if a.answer.is_none() && a.command.is_none() {
        return Err(CliError::Flag {
            flag: "answer",
            value: String::new(),
            detail: "give --answer TEXT or --command CMD".into(),
        });
    }
    let (me, mut events) = Member::connect(s.member_config(who, "reply")?).await?;
    for g in &a.join {
        me.join(g).await?;
    }
    if !a.json {
        eprintln!(
            "answering requests to {}/{}{}; stop with Ctrl-C",
            me.instance(),
            me.process(),
            if a.join.is_empty() {
                String::new()
            } else {
                format!(" and group(s) {}", a.join.join(", "))
            }
        );
    }
    let mut answered = 0u64;
    let stop = stop_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            r = &mut stop => { r?; break; }
            ev = events.next() => {
                let Some(ev) = ev else { break };
                match ev {
                    Event::Request(m) => {
                        let answer = match (&a.answer, &a.command) {
                            (Some(t), _) => t.clone().into_bytes(),
                            (None, Some(c)) => run_command(c, &m).await?,
                            (None, None) => Vec::new(),
                        };
                        me.reply(m.reply_to(), answer.clone()).await?;
                        if a.json {
                            let mut v = print::json_message("request", &m);
                            v["answer"] = print::text(&answer).into();
                            println!("{v}");
                        } else {
                            println!(
                                "{} answered {} from {}: {}",
                                print::timestamp(),
                                print::text(&m.payload),
                                m.sender(),
                                print::text(&answer)
                            );
                        }
                        answered += 1;
                        if a.count.is_some_and(|c| answered >= c) {
                            break;
                        }
                    }
                    Event::Closed => break,
                    _ => {}
                }
            }
        }
    }
    me.goodbye().await;
    Ok(())
}

/// Runs the replier's command with the request on its standard input.
async fn run_command(cmd: &str, m: &Message) -> Result<Vec<u8>, CliError> {
    use tokio::io::AsyncReadExt;
    let fail = |detail: String| CliError::Command {
        command: cmd.to_owned(),
        detail,
    };
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("SWITCHBOARD_SENDER", m.sender())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its input is fine.
        let _ = stdin.write_all(&m.payload).await;
    }
    let mut out = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        stdout
            .take(COMMAND_OUTPUT_MAX as u64)
            .read_to_end(&mut out)
            .await
            .map_err(|e| fail(e.to_string()))?;
    }
    let status = child.wait().await.map_err(|e| fail(e.to_string()))?;
    if !status.success() {
        tracing::warn!(command = cmd, %status, "the reply command failed; answering its output anyway");
    }
    if out.last() == Some(&b'\n') {
        out.pop();
    }
    Ok(out)
}
