//! `switchboard watch`, `send`, `request`: thin commands over the client
//! library.

use std::time::Duration;

use switchboard_client::{parse_address, Event, Filter, Member};

use super::print::{text, Names};
use super::{stop_signal, CliError, Identity, Settings};

pub(crate) async fn watch(s: &Settings, who: &Identity) -> Result<(), CliError> {
    let cfg = s.member_config(who, "watch")?;
    let name = format!("{}/{}", cfg.core.instance, cfg.core.process);
    let (me, mut events) = Member::connect(cfg).await?;
    // Custom and service events arrive only for a matching subscription.
    let _all = me.events(Filter::all()).await?;
    println!("watching as {name}; send to it with: switchboard send --to {name} hello");
    let mut names = Names::default();
    let stop = stop_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            r = &mut stop => { r?; break; }
            ev = events.next() => {
                let Some(ev) = ev else { break };
                println!("{}", names.describe(&ev));
                if let Event::Request(m) = &ev {
                    // Answer requests with their own payload, so that
                    // `switchboard request` has someone to talk to.
                    let reply = format!("echo from {name}: {}", text(&m.payload));
                    if let Err(e) = me.reply(m.reply_to(), reply).await {
                        println!("reply failed: {e}");
                    }
                }
                if matches!(ev, Event::Closed) { break; }
            }
        }
    }
    me.goodbye().await;
    Ok(())
}

pub(crate) async fn send(
    s: &Settings,
    who: &Identity,
    to: &str,
    confirm: bool,
    payload: String,
) -> Result<(), CliError> {
    let to = parse_address(to)?;
    let (me, events) = Member::connect(s.member_config(who, "send")?).await?;
    drop(events);
    let result = if confirm {
        me.send_confirmed(to, payload).await.map(|o| {
            if o.is_complete() {
                println!(
                    "message {} delivered to {} addressee(s)",
                    o.seq, o.delivered
                );
            } else {
                println!(
                    "message {} delivered to {}, missed by {:?}",
                    o.seq, o.delivered, o.missed
                );
            }
        })
    } else {
        me.send(to, payload)
            .await
            .map(|seq| println!("message {seq} acknowledged by the server"))
    };
    me.goodbye().await;
    Ok(result?)
}

pub(crate) async fn request(
    s: &Settings,
    who: &Identity,
    to: &str,
    timeout_ms: u64,
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
    println!("{}", text(&reply.payload));
    Ok(())
}
