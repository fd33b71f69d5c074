//! Frame decoding: never panics, never reads past the validated length,
//! never allocates more than that length, no recursion.

use bytes::{Buf, Bytes, BytesMut};

use super::error::DecodeError;
use super::limits::*;
use super::types::*;
use super::*;

type Result<T> = std::result::Result<T, DecodeError>;

/// Takes one frame off the front of `buf`.
///
/// Returns `Ok(None)` when `buf` does not yet hold a whole frame (nothing is
/// consumed), `Ok(Some(frame))` after consuming exactly that frame's bytes,
/// or an error when the bytes are invalid. The header is validated as soon
/// as it is present, so an oversized or foreign frame is refused before its
/// body arrives. Payloads are slices of `buf`'s storage: no copy.
pub fn decode(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Frame>> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if (len as usize) < HEADER_AFTER_LEN_BYTES {
        return Err(DecodeError::FrameTooShort { len });
    }
    let total = u64::from(len) + 4;
    if total > u64::from(limits.frame_bytes_max) {
        return Err(DecodeError::FrameTooLarge {
            len: total,
            max: limits.frame_bytes_max,
        });
    }
    if buf.len() >= 5 && buf[4] != PROTOCOL_VERSION {
        return Err(DecodeError::UnsupportedVersion { version: buf[4] });
    }
    if buf.len() >= 6 && !known_kind(buf[5]) {
        return Err(DecodeError::UnknownKind { kind: buf[5] });
    }
    let total = total as usize;
    if buf.len() < total {
        return Ok(None);
    }
    let kind = buf[5];
    let mut frame = buf.split_to(total).freeze();
    frame.advance(HEADER_BYTES);
    let mut r = Reader { buf: frame };
    let decoded = r.frame(kind)?;
    if !r.buf.is_empty() {
        return Err(DecodeError::TrailingBytes {
            kind: decoded.name(),
            extra: r.buf.len(),
        });
    }
    Ok(Some(decoded))
}

/// How many more bytes `buf`, which starts at a frame boundary, needs
/// before its first frame is whole (by its length prefix; 0 when it is).
/// A driver that holds the start of a frame uses it to complete that frame
/// from a new read without copying the rest of the read. It judges nothing:
/// an invalid length is [`decode`]'s to report.
pub fn bytes_missing(buf: &[u8]) -> usize {
    let Some(prefix) = buf.first_chunk::<4>() else {
        return 4 - buf.len();
    };
    let total = u64::from(u32::from_be_bytes(*prefix)) + 4;
    usize::try_from(total)
        .unwrap_or(usize::MAX)
        .saturating_sub(buf.len())
}

fn known_kind(k: u8) -> bool {
    matches!(
        k,
        kind::HELLO
            | kind::RESUME
            | kind::CHALLENGE
            | kind::AUTH
            | kind::WELCOME
            | kind::SNAPSHOT
            | kind::REJECT
            | kind::RESUMED
            | kind::GAP
            | kind::SEND
            | kind::CHUNK
            | kind::ACK
            | kind::NACK
            | kind::DELIVER
            | kind::DELIVERY_ACK
            | kind::OUTCOME
            | kind::TAKEN
            | kind::PUBLISH
            | kind::NOTIFY
            | kind::SUBSCRIBE
            | kind::UNSUBSCRIBE
            | kind::JOIN
            | kind::LEAVE
            | kind::PING
            | kind::PONG
            | kind::GOODBYE
            | kind::ERROR
    )
}

/// A cursor over one frame's body. Every read checks the remaining length.
struct Reader {
    buf: Bytes,
}

impl Reader {
    fn need(&self, n: usize, field: &'static str) -> Result<()> {
        if self.buf.remaining() < n {
            Err(DecodeError::Truncated { field })
        } else {
            Ok(())
        }
    }

    fn u8(&mut self, field: &'static str) -> Result<u8> {
        self.need(1, field)?;
        Ok(self.buf.get_u8())
    }

    fn u16(&mut self, field: &'static str) -> Result<u16> {
        self.need(2, field)?;
        Ok(self.buf.get_u16())
    }

    fn u32(&mut self, field: &'static str) -> Result<u32> {
        self.need(4, field)?;
        Ok(self.buf.get_u32())
    }

    fn u64(&mut self, field: &'static str) -> Result<u64> {
        self.need(8, field)?;
        Ok(self.buf.get_u64())
    }

    fn bool(&mut self, field: &'static str) -> Result<bool> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(DecodeError::InvalidTag { field, tag }),
        }
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N]> {
        self.need(N, field)?;
        let mut out = [0u8; N];
        self.buf.copy_to_slice(&mut out);
        Ok(out)
    }

    fn string(&mut self, field: &'static str, max: usize) -> Result<String> {
        let len = usize::from(self.u16(field)?);
        if len > max {
            return Err(DecodeError::StringTooLong { field, len, max });
        }
        self.need(len, field)?;
        let raw = self.buf.split_to(len);
        match std::str::from_utf8(&raw) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(DecodeError::InvalidUtf8 { field }),
        }
    }

    /// A string appended to a frame in a later revision: absent (no bytes
    /// left) reads as empty. An empty string on the wire is refused, so
    /// that every value has exactly one encoding.
    fn optional_string(&mut self, field: &'static str, max: usize) -> Result<String> {
        if self.buf.is_empty() {
            return Ok(String::new());
        }
        let s = self.string(field, max)?;
        if s.is_empty() {
            return Err(DecodeError::InconsistentLength {
                field,
                detail: "an optional string present on the wire must not be empty",
            });
        }
        Ok(s)
    }

    fn count(&mut self, field: &'static str, max: usize, min_elem_bytes: usize) -> Result<usize> {
        let count = usize::from(self.u16(field)?);
        if count > max {
            return Err(DecodeError::TooMany { field, count, max });
        }
        // Refuse counts the remaining bytes cannot possibly hold, before
        // allocating room for them.
        self.need(count.saturating_mul(min_elem_bytes), field)?;
        Ok(count)
    }

    fn names(&mut self, field: &'static str, max: usize, name_max: usize) -> Result<Vec<String>> {
        let count = self.count(field, max, 2)?;
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            out.push(self.string(field, name_max)?);
        }
        Ok(out)
    }

    fn payload(&mut self, field: &'static str) -> Result<Bytes> {
        let len = self.u32(field)? as usize;
        self.need(len, field)?;
        Ok(self.buf.split_to(len))
    }

    fn code<T>(&mut self, field: &'static str, from: fn(u8) -> Option<T>) -> Result<T> {
        let tag = self.u8(field)?;
        from(tag).ok_or(DecodeError::InvalidTag { field, tag })
    }

    fn address(&mut self) -> Result<Address> {
        Ok(match self.u8("address")? {
            0 => Address::MemberId(self.u64("address.member_id")?),
            1 => Address::Member {
                instance: self.string("instance", NAME_BYTES_MAX)?,
                process: self.string("process", NAME_BYTES_MAX)?,
            },
            2 => Address::Instance(self.string("instance", NAME_BYTES_MAX)?),
            3 => Address::Group(self.string("group", NAME_BYTES_MAX)?),
            4 => Address::Anycast(self.string("group", NAME_BYTES_MAX)?),
            5 => Address::Broadcast,
            tag => {
                return Err(DecodeError::InvalidTag {
                    field: "address",
                    tag,
                })
            }
        })
    }

    fn filter(&mut self) -> Result<Filter> {
        Ok(Filter {
            kinds: self.u16("kinds")?,
            topic_prefix: self.string("topic_prefix", TOPIC_BYTES_MAX)?,
        })
    }

    fn member(&mut self) -> Result<MemberInfo> {
        Ok(MemberInfo {
            member_id: self.u64("member_id")?,
            incarnation: self.u64("incarnation")?,
            instance: self.string("instance", NAME_BYTES_MAX)?,
            process: self.string("process", NAME_BYTES_MAX)?,
            services: self.names("services", SERVICES_MAX, NAME_BYTES_MAX)?,
            load: self.u32("load")?,
            groups: self.names("groups", GROUPS_PER_MEMBER_MAX, NAME_BYTES_MAX)?,
        })
    }

    fn message_lengths(
        field: &'static str,
        flags: u8,
        total_len: u32,
        payload_len: usize,
    ) -> Result<()> {
        if flags & !flags::ALL != 0 {
            return Err(DecodeError::InvalidFlags { flags });
        }
        if total_len > MESSAGE_BYTES_MAX {
            return Err(DecodeError::MessageTooLarge {
                len: u64::from(total_len),
                max: MESSAGE_BYTES_MAX,
            });
        }
        let payload_len = payload_len as u64;
        if payload_len > u64::from(total_len) {
            return Err(DecodeError::InconsistentLength {
                field,
                detail: "payload longer than total_len",
            });
        }
        let more = flags & flags::MORE != 0;
        if more != (payload_len < u64::from(total_len)) {
            return Err(DecodeError::InconsistentLength {
                field,
                detail: "MORE flag must be set exactly when payload is shorter than total_len",
            });
        }
        Ok(())
    }

    fn event_body(&mut self) -> Result<EventBody> {
        Ok(match self.u8("event")? {
            1 => EventBody::ServiceState {
                service: self.string("service", CLAIMED_NAME_BYTES_MAX)?,
                up: self.bool("up")?,
            },
            2 => EventBody::Load(self.u32("load")?),
            3 => EventBody::Custom {
                topic: self.string("topic", TOPIC_BYTES_MAX)?,
                payload: self.payload("payload")?,
            },
            tag => {
                return Err(DecodeError::InvalidTag {
                    field: "event",
                    tag,
                })
            }
        })
    }

    fn cluster_event(&mut self) -> Result<ClusterEvent> {
        Ok(match self.u8("event")? {
            1 => ClusterEvent::MemberJoined(self.member()?),
            2 => ClusterEvent::MemberLeft {
                member_id: self.u64("member_id")?,
            },
            3 => ClusterEvent::MemberFailed {
                member_id: self.u64("member_id")?,
                reason: self.code("reason", FailReason::from_code)?,
            },
            4 => ClusterEvent::InstanceUp {
                instance: self.string("instance", NAME_BYTES_MAX)?,
            },
            5 => ClusterEvent::InstanceDown {
                instance: self.string("instance", NAME_BYTES_MAX)?,
            },
            6 => ClusterEvent::GroupJoined {
                member_id: self.u64("member_id")?,
                group: self.string("group", NAME_BYTES_MAX)?,
            },
            7 => ClusterEvent::GroupLeft {
                member_id: self.u64("member_id")?,
                group: self.string("group", NAME_BYTES_MAX)?,
            },
            8 => ClusterEvent::ServiceState {
                member_id: self.u64("member_id")?,
                service: self.string("service", NAME_BYTES_MAX)?,
                up: self.bool("up")?,
            },
            9 => ClusterEvent::Load {
                member_id: self.u64("member_id")?,
                load: self.u32("load")?,
            },
            10 => ClusterEvent::Custom {
                member_id: self.u64("member_id")?,
                topic: self.string("topic", TOPIC_BYTES_MAX)?,
                payload: self.payload("payload")?,
            },
            tag => {
                return Err(DecodeError::InvalidTag {
                    field: "event",
                    tag,
                })
            }
        })
    }

    fn frame(&mut self, k: u8) -> Result<Frame> {
        Ok(match k {
            kind::HELLO => Frame::Hello(Hello {
                cluster: self.string("cluster", CLAIMED_NAME_BYTES_MAX)?,
                instance: self.string("instance", CLAIMED_NAME_BYTES_MAX)?,
                process: self.string("process", CLAIMED_NAME_BYTES_MAX)?,
                incarnation: self.u64("incarnation")?,
                capabilities: self.u32("capabilities")?,
                client_nonce: self.array("client_nonce")?,
                services: self.names("services", SERVICES_MAX, CLAIMED_NAME_BYTES_MAX)?,
                load: self.u32("load")?,
                groups: self.names("groups", GROUPS_PER_MEMBER_MAX, CLAIMED_NAME_BYTES_MAX)?,
                subscriptions: {
                    // A subscription is at least 4 + 2 + 2 bytes.
                    let count = self.count("subscriptions", SUBSCRIPTIONS_MAX, 8)?;
                    let mut subs = Vec::with_capacity(count);
                    for _ in 0..count {
                        subs.push(SubscriptionSpec {
                            sub_id: self.u32("sub_id")?,
                            filter: self.filter()?,
                        });
                    }
                    subs
                },
                credential: self.optional_string("credential", NAME_BYTES_MAX)?,
            }),
            kind::RESUME => Frame::Resume(Resume {
                cluster: self.string("cluster", NAME_BYTES_MAX)?,
                member_id: self.u64("member_id")?,
                incarnation: self.u64("incarnation")?,
                server_incarnation: self.u64("server_incarnation")?,
                delivered_through: self.u64("delivered_through")?,
                client_nonce: self.array("client_nonce")?,
                credential: self.optional_string("credential", NAME_BYTES_MAX)?,
            }),
            kind::CHALLENGE => Frame::Challenge(Challenge {
                server_incarnation: self.u64("server_incarnation")?,
                server_nonce: self.array("server_nonce")?,
                server_proof: self.array("server_proof")?,
                extra_proofs: {
                    let count = self.count("extra_proofs", EXTRA_PROOFS_MAX, PROOF_BYTES)?;
                    let mut proofs = Vec::with_capacity(count);
                    for _ in 0..count {
                        proofs.push(self.array("extra_proof")?);
                    }
                    proofs
                },
            }),
            kind::AUTH => Frame::Auth(Auth {
                client_proof: self.array("client_proof")?,
                session_proof: self.array("session_proof")?,
            }),
            kind::WELCOME => Frame::Welcome(Welcome {
                member_id: self.u64("member_id")?,
                server_incarnation: self.u64("server_incarnation")?,
                epoch: self.u64("epoch")?,
                position: self.u64("position")?,
                heartbeat_interval_ms: self.u32("heartbeat_interval_ms")?,
                heartbeat_timeout_ms: self.u32("heartbeat_timeout_ms")?,
                resume_window_ms: self.u32("resume_window_ms")?,
                frame_bytes_max: self.u32("frame_bytes_max")?,
                snapshot_members: self.u32("snapshot_members")?,
            }),
            kind::SNAPSHOT => {
                // A member is at least 8+8+2+2+2+4+2 bytes.
                let count = self.count("members", SNAPSHOT_MEMBERS_MAX, 28)?;
                let mut members = Vec::with_capacity(count);
                for _ in 0..count {
                    members.push(self.member()?);
                }
                Frame::Snapshot(Snapshot { members })
            }
            kind::REJECT => Frame::Reject(Reject {
                reason: self.code("reason", RejectReason::from_code)?,
                text: self.string("text", TEXT_BYTES_MAX)?,
            }),
            kind::RESUMED => Frame::Resumed(Resumed {
                received_through: self.u64("received_through")?,
                replay_from: self.u64("replay_from")?,
            }),
            kind::GAP => Frame::Gap(Gap {
                from: self.u64("from")?,
                through: self.u64("through")?,
            }),
            kind::SEND => {
                let seq = self.u64("seq")?;
                let flags = self.u8("flags")?;
                let to = self.address()?;
                let correlation = self.u64("correlation")?;
                let timeout_ms = self.u32("timeout_ms")?;
                let total_len = self.u32("total_len")?;
                let payload = self.payload("payload")?;
                Self::message_lengths("send", flags, total_len, payload.len())?;
                Frame::Send(Send {
                    seq,
                    flags,
                    to,
                    correlation,
                    timeout_ms,
                    total_len,
                    payload,
                })
            }
            kind::CHUNK => {
                let id = self.u64("id")?;
                let offset = self.u32("offset")?;
                let payload = self.payload("payload")?;
                let end = u64::from(offset) + payload.len() as u64;
                if end > u64::from(MESSAGE_BYTES_MAX) {
                    return Err(DecodeError::MessageTooLarge {
                        len: end,
                        max: MESSAGE_BYTES_MAX,
                    });
                }
                Frame::Chunk(Chunk {
                    id,
                    offset,
                    payload,
                })
            }
            kind::ACK => Frame::Ack(Ack {
                through: self.u64("through")?,
                stable_through: self.u64("stable_through")?,
            }),
            kind::NACK => Frame::Nack(Nack {
                gseq: self.u64("gseq")?,
                seq: self.u64("seq")?,
                reason: self.code("reason", NackReason::from_code)?,
            }),
            kind::DELIVER => {
                let gseq = self.u64("gseq")?;
                let from = self.u64("from")?;
                let from_incarnation = self.u64("from_incarnation")?;
                let seq = self.u64("seq")?;
                let flags = self.u8("flags")?;
                let to = self.address()?;
                let correlation = self.u64("correlation")?;
                let total_len = self.u32("total_len")?;
                let payload = self.payload("payload")?;
                Self::message_lengths("deliver", flags, total_len, payload.len())?;
                Frame::Deliver(Deliver {
                    gseq,
                    from,
                    from_incarnation,
                    seq,
                    flags,
                    to,
                    correlation,
                    total_len,
                    payload,
                })
            }
            kind::DELIVERY_ACK => Frame::DeliveryAck(DeliveryAck {
                through: self.u64("through")?,
            }),
            kind::TAKEN => Frame::Taken(Taken {
                through: self.u64("through")?,
            }),
            kind::OUTCOME => {
                let gseq = self.u64("gseq")?;
                let seq = self.u64("seq")?;
                let delivered = self.u32("delivered")?;
                let count = self.count("missed", OUTCOME_MISSED_MAX, 9)?;
                let mut missed = Vec::with_capacity(count);
                for _ in 0..count {
                    missed.push(Missed {
                        member_id: self.u64("missed.member_id")?,
                        reason: self.code("missed.reason", MissReason::from_code)?,
                    });
                }
                Frame::Outcome(Outcome {
                    gseq,
                    seq,
                    delivered,
                    missed,
                })
            }
            kind::PUBLISH => Frame::Publish(Publish {
                seq: self.u64("seq")?,
                event: self.event_body()?,
            }),
            kind::NOTIFY => Frame::Notify(Notify {
                gseq: self.u64("gseq")?,
                epoch: self.u64("epoch")?,
                origin_incarnation: self.u64("origin_incarnation")?,
                origin_seq: self.u64("origin_seq")?,
                event: self.cluster_event()?,
            }),
            kind::SUBSCRIBE => Frame::Subscribe(Subscribe {
                seq: self.u64("seq")?,
                sub_id: self.u32("sub_id")?,
                filter: self.filter()?,
            }),
            kind::UNSUBSCRIBE => Frame::Unsubscribe(Unsubscribe {
                seq: self.u64("seq")?,
                sub_id: self.u32("sub_id")?,
            }),
            kind::JOIN => Frame::Join(GroupOp {
                seq: self.u64("seq")?,
                group: self.string("group", CLAIMED_NAME_BYTES_MAX)?,
            }),
            kind::LEAVE => Frame::Leave(GroupOp {
                seq: self.u64("seq")?,
                group: self.string("group", CLAIMED_NAME_BYTES_MAX)?,
            }),
            kind::PING => Frame::Ping(self.u64("nonce")?),
            kind::PONG => Frame::Pong(self.u64("nonce")?),
            kind::GOODBYE => Frame::Goodbye(Goodbye {
                text: self.string("text", TEXT_BYTES_MAX)?,
            }),
            kind::ERROR => Frame::Error(ErrorFrame {
                code: self.code("code", ErrorCode::from_code)?,
                text: self.string("text", TEXT_BYTES_MAX)?,
            }),
            other => return Err(DecodeError::UnknownKind { kind: other }),
        })
    }
}
