//! The registered stream: deliveries (chunked ones reassembled), events
//! and the view, receipt acks, NACKs and outcomes, heartbeats.

use super::incoming::ChunkError;
use super::types::{ClientEvent, Message, RequestError};
use super::Client;
use crate::frame::{flags, ClusterEvent, Deliver, Frame};

impl Client {
    /// A frame of the registered stream; false when the connection was
    /// dropped.
    pub(super) fn stream_frame(&mut self, f: Frame) -> bool {
        match f {
            Frame::Deliver(d) => {
                if d.flags & flags::MORE != 0 {
                    let max = self.config.message_bytes_max;
                    if self.incoming.start_chunked(d, max).is_err() {
                        self.drop_connection("bad chunked delivery".into(), true);
                        return false;
                    }
                    return true;
                }
                self.deliver(d);
            }
            Frame::Chunk(c) => match self.incoming.chunk(c) {
                Ok(Some(d)) => self.deliver(d),
                Ok(None) => {}
                Err(ChunkError::OutOfOrder | ChunkError::BadHead) => {
                    self.drop_connection("chunk out of order".into(), true);
                    return false;
                }
            },
            Frame::Notify(n) => {
                if !self.incoming.advance(n.gseq) {
                    return true;
                }
                self.view.epoch = n.epoch;
                self.apply_event(&n.event);
                if n.origin_incarnation != 0
                    && !self.incoming.admit(n.origin_incarnation, n.origin_seq)
                {
                    return true;
                }
                let handlers = self.local.handlers(&n.event);
                let origin =
                    (n.origin_incarnation != 0).then_some((n.origin_incarnation, n.origin_seq));
                self.event(ClientEvent::Event {
                    gseq: n.gseq,
                    epoch: n.epoch,
                    event: n.event,
                    handlers,
                    origin,
                });
            }
            Frame::Ack(a) => {
                let outputs = &mut self.outputs;
                self.out.on_ack(a.through, a.stable_through, |seq| {
                    outputs.push_back(super::ClientOutput::Event(ClientEvent::Acked { seq }));
                });
            }
            Frame::Nack(n) => {
                if !self.incoming.advance(n.gseq) {
                    return true;
                }
                // Only the first final status counts: a server may re-issue
                // one after the session was lost and registered again.
                let Some(refused) = self.out.finish_frame(n.seq) else {
                    return true;
                };
                if let Frame::Join(g) = &refused {
                    // The member is not in the group: a later `Hello` must
                    // not claim it.
                    self.local.groups.remove(&g.group);
                }
                if self.requests.remove(n.seq) {
                    self.event(ClientEvent::RequestFailed {
                        request: n.seq,
                        error: RequestError::Nacked(n.reason),
                    });
                }
                self.event(ClientEvent::Nacked {
                    seq: n.seq,
                    reason: n.reason,
                });
            }
            Frame::Outcome(o) => {
                if !self.incoming.advance(o.gseq) {
                    return true;
                }
                if !self.out.finish(o.seq) {
                    return true;
                }
                if !o.missed.is_empty() && self.requests.remove(o.seq) {
                    self.event(ClientEvent::RequestFailed {
                        request: o.seq,
                        error: RequestError::PartnerGone,
                    });
                }
                self.event(ClientEvent::Outcome {
                    seq: o.seq,
                    delivered: o.delivered,
                    missed: o.missed,
                });
            }
            Frame::Ping(n) => self.write_control(&Frame::Pong(n)),
            Frame::Pong(_) => {}
            Frame::Goodbye(_) => {
                self.drop_connection("server closed the session".into(), true);
                return false;
            }
            Frame::Error(e) => {
                // The server's words say why (an eviction, revoked access).
                let reason = format!("server closed the session: {}", e.text);
                self.drop_connection_with(reason, true, Some(e.code));
                return false;
            }
            other => {
                let reason = format!("unexpected {} from server", other.name());
                self.drop_connection(reason, true);
                return false;
            }
        }
        true
    }

    /// A whole delivery: handed to the application unless replayed or a
    /// duplicate; a reply closes its request.
    fn deliver(&mut self, d: Deliver) {
        if !self.incoming.advance(d.gseq) {
            return;
        }
        let fresh = self.incoming.admit(d.from_incarnation, d.seq);
        // The deliberate bug `ClientSkipDedup` hands duplicates over too.
        #[cfg(feature = "mutation")]
        let fresh = fresh || self.config.mutation == crate::mutation::Mutation::ClientSkipDedup;
        if !fresh {
            return;
        }
        let message = Message {
            gseq: d.gseq,
            from: d.from,
            from_incarnation: d.from_incarnation,
            seq: d.seq,
            flags: d.flags,
            to: d.to,
            correlation: d.correlation,
            payload: d.payload,
        };
        self.taking.handed();
        if message.flags & flags::REPLY != 0 && self.requests.remove(message.correlation) {
            self.event(ClientEvent::Reply {
                request: message.correlation,
                message,
            });
            return;
        }
        self.event(ClientEvent::Message(message));
    }

    /// Keeps the view in step with the stream; requests to a member that
    /// left the view fail.
    fn apply_event(&mut self, e: &ClusterEvent) {
        let removed = self.view.apply(e);
        let member_id = match e {
            ClusterEvent::MemberLeft { member_id } => {
                if let Some(m) = removed {
                    // It left for good: its duplicate window goes too.
                    self.incoming.forget(m.incarnation);
                }
                *member_id
            }
            ClusterEvent::MemberFailed { member_id, .. } => *member_id,
            _ => return,
        };
        let mut gone = std::mem::take(&mut self.scratch);
        gone.clear();
        self.requests.take_for_target(member_id, &mut gone);
        for request in gone.drain(..) {
            self.event(ClientEvent::RequestFailed {
                request,
                error: RequestError::PartnerGone,
            });
        }
        self.scratch = gone;
    }
}
