//! The application's commands: messages, requests and replies, events,
//! subscriptions, groups, goodbye. Each takes a sequence and waits in the
//! outbox until final.

use bytes::{Bytes, BytesMut};

use super::link::Phase;
use super::types::{ClientEvent, ClientOutput, CommandError, ReplyTo, SendOptions};
use super::Client;
use crate::frame::{
    self, flags, Address, EventBody, Filter, Frame, GroupOp, Send, Subscribe, Unsubscribe,
};
use crate::time::Tick;

/// What a message counts in the outbox beyond its payload (its frame's
/// header, bounded).
const SEND_OVERHEAD_BYTES: usize = 64;

impl Client {
    /// Sends a message. Returns its sequence; the outcome arrives as
    /// `Acked`/`Nacked` (and `Outcome` when `opts.confirm`).
    pub fn send(
        &mut self,
        now: Tick,
        to: Address,
        payload: Bytes,
        opts: SendOptions,
    ) -> Result<u64, CommandError> {
        self.now = now;
        let f = if opts.confirm { flags::CONFIRM } else { 0 };
        self.send_inner(to, payload, f, 0, 0)
    }

    /// Sends a request; the reply arrives as `Reply`, or `RequestFailed`.
    /// Returns the request id (its sequence).
    pub fn request(
        &mut self,
        now: Tick,
        to: Address,
        payload: Bytes,
        timeout_ms: u32,
    ) -> Result<u64, CommandError> {
        self.now = now;
        if self.requests.len() >= self.config.requests_max {
            return Err(CommandError::TooManyRequests(self.requests.len()));
        }
        let corr = self.out.next_seq();
        let target = match &to {
            Address::MemberId(id) => Some(*id),
            Address::Member { instance, process } => self.view.find(instance, process),
            _ => None,
        };
        let seq = self.send_inner(
            to,
            payload,
            flags::REQUEST | flags::CONFIRM,
            corr,
            timeout_ms,
        )?;
        debug_assert_eq!(seq, corr);
        let deadline = now.plus_millis(u64::from(timeout_ms));
        self.requests.insert(seq, deadline, target);
        Ok(seq)
    }

    /// Replies to a request.
    pub fn reply(&mut self, now: Tick, to: ReplyTo, payload: Bytes) -> Result<u64, CommandError> {
        self.now = now;
        self.send_inner(
            Address::MemberId(to.member_id),
            payload,
            flags::REPLY,
            to.correlation,
            0,
        )
    }

    /// Publishes an event (service state, load or custom topic).
    pub fn publish(&mut self, now: Tick, event: EventBody) -> Result<u64, CommandError> {
        self.now = now;
        self.check_open()?;
        match &event {
            EventBody::ServiceState { service, .. } => {
                if service.is_empty() || service.len() > frame::NAME_BYTES_MAX {
                    return Err(CommandError::Invalid("service name"));
                }
            }
            EventBody::Load(_) => {}
            EventBody::Custom { topic, payload } => {
                if topic.len() > frame::TOPIC_BYTES_MAX {
                    return Err(CommandError::Invalid("topic"));
                }
                if payload.len() > self.config.limits.chunk_bytes_max() as usize {
                    return Err(CommandError::TooLarge {
                        len: payload.len(),
                        max: self.config.limits.chunk_bytes_max(),
                    });
                }
            }
        }
        let bytes = match &event {
            EventBody::Custom { payload, .. } => payload.len() + 64,
            _ => 64,
        };
        let seq = self.reserve(bytes)?;
        // Local state changes only once the frame is queued.
        self.local.publish(&event);
        self.out.push(
            seq,
            Frame::Publish(frame::Publish { seq, event }),
            bytes,
            false,
            true,
        );
        Ok(seq)
    }

    /// Adds a subscription (a notification handler); returns its id, which
    /// `Event`s list when their filter matches.
    pub fn subscribe(&mut self, now: Tick, filter: Filter) -> Result<u32, CommandError> {
        self.now = now;
        self.check_open()?;
        if self.local.subscriptions.len() >= frame::SUBSCRIPTIONS_MAX {
            return Err(CommandError::Invalid("too many subscriptions"));
        }
        if filter.topic_prefix.len() > frame::TOPIC_BYTES_MAX {
            return Err(CommandError::Invalid("topic prefix"));
        }
        let seq = self.reserve(64)?;
        let sub_id = self.local.add_subscription(filter.clone());
        self.out.push(
            seq,
            Frame::Subscribe(Subscribe {
                seq,
                sub_id,
                filter,
            }),
            64,
            false,
            false,
        );
        Ok(sub_id)
    }

    /// Drops a subscription.
    pub fn unsubscribe(&mut self, now: Tick, sub_id: u32) -> Result<(), CommandError> {
        self.now = now;
        self.check_open()?;
        if !self.local.subscriptions.contains_key(&sub_id) {
            return Ok(());
        }
        let seq = self.reserve(16)?;
        self.local.subscriptions.remove(&sub_id);
        self.out.push(
            seq,
            Frame::Unsubscribe(Unsubscribe { seq, sub_id }),
            16,
            false,
            false,
        );
        Ok(())
    }

    /// Joins a group.
    pub fn join(&mut self, now: Tick, group: &str) -> Result<(), CommandError> {
        self.now = now;
        self.check_open()?;
        if group.is_empty() || group.len() > frame::NAME_BYTES_MAX {
            return Err(CommandError::Invalid("group name"));
        }
        if self.local.groups.contains(group) {
            return Ok(());
        }
        if self.local.groups.len() >= frame::GROUPS_PER_MEMBER_MAX {
            return Err(CommandError::Invalid("too many groups"));
        }
        let seq = self.reserve(64)?;
        self.local.groups.insert(group.to_owned());
        let f = Frame::Join(GroupOp {
            seq,
            group: group.to_owned(),
        });
        self.out.push(seq, f, 64, false, false);
        Ok(())
    }

    /// Leaves a group.
    pub fn leave(&mut self, now: Tick, group: &str) -> Result<(), CommandError> {
        self.now = now;
        self.check_open()?;
        if !self.local.groups.contains(group) {
            return Ok(());
        }
        let seq = self.reserve(64)?;
        self.local.groups.remove(group);
        let f = Frame::Leave(GroupOp {
            seq,
            group: group.to_owned(),
        });
        self.out.push(seq, f, 64, false, false);
        Ok(())
    }

    /// Says goodbye: pending frames are transmitted, then `Goodbye`, then
    /// the connection closes and the client stops.
    pub fn goodbye(&mut self, now: Tick) {
        self.now = now;
        if self.link.is_ready() {
            // Everything queued goes out before the goodbye (bounded by the
            // outbox).
            while let Some(data) = self.build_transmit() {
                self.outputs.push_back(ClientOutput::Transmit(data));
            }
            let mut b = BytesMut::new();
            let ok = Frame::Goodbye(frame::Goodbye {
                text: "goodbye".into(),
            })
            .encode(&mut b, &self.config.limits)
            .is_ok();
            debug_assert!(ok);
            self.outputs.push_back(ClientOutput::Transmit(b.freeze()));
            self.outputs.push_back(ClientOutput::Close);
        } else if !matches!(self.link.phase, Phase::Idle { .. } | Phase::Closed) {
            self.outputs.push_back(ClientOutput::Close);
        }
        self.link.phase = Phase::Closed;
        self.event(ClientEvent::Closed);
    }

    fn check_open(&self) -> Result<(), CommandError> {
        if matches!(self.link.phase, Phase::Closed) {
            Err(CommandError::Closed)
        } else {
            Ok(())
        }
    }

    /// True when [`send`](Client::send) of a payload of `payload_len`
    /// bytes would find room in the outbox now (else it fails with
    /// [`CommandError::OutboxFull`]): lets a driver keep a message it
    /// cannot send yet without handing it over (and copying it back).
    pub fn has_outbox_room(&self, payload_len: usize) -> bool {
        self.out.has_room(
            payload_len + SEND_OVERHEAD_BYTES,
            self.config.outbox_items_max,
            self.config.outbox_bytes_max,
        )
    }

    /// Takes the next sequence if the outbox has room for `bytes`.
    fn reserve(&mut self, bytes: usize) -> Result<u64, CommandError> {
        self.out.reserve(
            bytes,
            self.config.outbox_items_max,
            self.config.outbox_bytes_max,
        )
    }

    fn send_inner(
        &mut self,
        to: Address,
        payload: Bytes,
        fl: u8,
        correlation: u64,
        timeout_ms: u32,
    ) -> Result<u64, CommandError> {
        self.check_open()?;
        if payload.len() > self.config.message_bytes_max as usize {
            return Err(CommandError::TooLarge {
                len: payload.len(),
                max: self.config.message_bytes_max,
            });
        }
        let names_ok = match &to {
            Address::MemberId(_) | Address::Broadcast => true,
            Address::Member { instance, process } => {
                instance.len() <= frame::NAME_BYTES_MAX && process.len() <= frame::NAME_BYTES_MAX
            }
            Address::Instance(n) | Address::Group(n) | Address::Anycast(n) => {
                n.len() <= frame::NAME_BYTES_MAX
            }
        };
        if !names_ok {
            return Err(CommandError::Invalid("address name too long"));
        }
        let bytes = payload.len() + SEND_OVERHEAD_BYTES;
        let seq = self.reserve(bytes)?;
        let confirm = fl & flags::CONFIRM != 0;
        let send = Send {
            seq,
            flags: fl,
            to,
            correlation,
            timeout_ms,
            total_len: payload.len() as u32,
            payload,
        };
        self.out.push(seq, Frame::Send(send), bytes, confirm, true);
        Ok(seq)
    }
}
