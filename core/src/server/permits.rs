//! Per-credential permissions: the checks on send, join and publish, the
//! refusals they lead to, and a reload of the credentials.

use super::*;
use crate::credentials::Credentials;
use crate::frame::{Address, NackReason, RejectReason};
use types::DenialKind;

impl Server {
    /// Refuses a handshake for a credential's permissions
    /// (`Reject{NotPermitted}`), with an event for the log.
    pub(super) fn deny_handshake(
        &mut self,
        conn: ConnId,
        credential: &crate::credentials::CredentialId,
        kind: DenialKind,
        detail: String,
    ) {
        self.note_denial(Some(conn), None, credential.name.clone(), kind, &detail);
        self.reject(conn, RejectReason::NotPermitted, detail);
    }

    /// Counts a refusal and reports it.
    fn note_denial(
        &mut self,
        conn: Option<ConnId>,
        member_id: Option<u64>,
        credential: String,
        kind: DenialKind,
        detail: &str,
    ) {
        self.stats.permission_denials[kind.index()] += 1;
        self.outputs
            .push_back(Output::Event(ServerEvent::PermissionDenied {
                conn,
                member_id,
                credential,
                kind,
                detail: detail.to_owned(),
            }));
    }

    /// NACKs sequence `seq` of member `id` as `NotPermitted`, with an
    /// event for the log.
    pub(super) fn deny_frame(&mut self, id: u64, seq: u64, kind: DenialKind, detail: String) {
        let (conn, credential) = match self.members.get(&id) {
            Some(m) => (m.conn, m.credential.name.clone()),
            None => return,
        };
        self.note_denial(conn, Some(id), credential, kind, &detail);
        self.nack(id, seq, NackReason::NotPermitted);
    }

    /// Why member `id` may not send to `to`, if it may not. A member id
    /// is judged by its member's instance; a member id that names no live
    /// member is refused unless every instance is permitted (the server
    /// cannot tell whom it would reach).
    pub(super) fn send_refusal(&self, id: u64, to: &Address) -> Option<String> {
        let m = self.members.get(&id)?;
        let p = &m.permissions;
        let instance_ok = |i: &str| p.send_instances.matches(i);
        let ok = match to {
            Address::MemberId(target) => match self.members.get(target) {
                Some(t) => instance_ok(&t.info.instance),
                None => p.send_instances.is_any(),
            },
            Address::Member { instance, .. } | Address::Instance(instance) => instance_ok(instance),
            Address::Group(g) | Address::Anycast(g) => p.send_groups.matches(g),
            Address::Broadcast => p.broadcast,
        };
        (!ok).then(|| format!("credential {} may not send to {to:?}", m.credential))
    }

    /// Why member `id` may not join `group`, if it may not.
    pub(super) fn join_refusal(&self, id: u64, group: &str) -> Option<String> {
        let m = self.members.get(&id)?;
        (!m.permissions.join.matches(group))
            .then(|| format!("credential {} may not join group {group:?}", m.credential))
    }

    /// Why member `id` may not publish a custom event on `topic`, if it
    /// may not.
    pub(super) fn publish_refusal(&self, id: u64, topic: &str) -> Option<String> {
        let m = self.members.get(&id)?;
        (!m.permissions.publish.matches(topic)).then(|| {
            format!(
                "credential {} may not publish topic {topic:?}",
                m.credential
            )
        })
    }

    /// Replaces the credentials (a reload). Every member whose credential
    /// is no longer configured, or no longer permits its instance, is
    /// told why (`Error{NotPermitted}`) and removed (`MemberFailed` with
    /// `ConnectionLost`: its connection was closed); every other member
    /// keeps its session under its credential's new permissions. Returns
    /// how many were removed.
    pub fn set_credentials(&mut self, now: Tick, credentials: Credentials) -> usize {
        self.now = now;
        self.config.credentials = credentials;
        let mut revoked = Vec::new();
        for (id, m) in self.members.iter_mut() {
            let creds = &self.config.credentials;
            match creds.permissions_of(&m.credential, &m.cert_names) {
                Some(p) if p.register.matches(&m.info.instance) => {
                    let peer = m.conn.and_then(|c| self.conns.get(&c)).and_then(|c| c.peer);
                    // A group it holds that the credential may no longer
                    // join, or an address it may no longer be used from,
                    // removes it too: it is no longer allowed as it is.
                    if let Some(g) = m.info.groups.iter().find(|g| !p.join.matches(g)) {
                        revoked.push((
                            *id,
                            format!(
                                "credential {} no longer permits group {g:?} (access rules reloaded)",
                                m.credential
                            ),
                        ));
                    } else if !p.permits_source(peer) {
                        revoked.push((
                            *id,
                            format!(
                                "credential {} may no longer be used from {} (access rules reloaded)",
                                m.credential,
                                peer.map_or_else(|| "here".to_owned(), |ip| ip.to_string())
                            ),
                        ));
                    } else {
                        m.permissions = p;
                    }
                }
                Some(_) => revoked.push((
                    *id,
                    format!(
                        "credential {} no longer permits instance {:?} (access rules reloaded)",
                        m.credential, m.info.instance
                    ),
                )),
                None => revoked.push((
                    *id,
                    format!(
                        "credential {} was removed (access rules reloaded)",
                        m.credential
                    ),
                )),
            }
        }
        let n = revoked.len();
        for (id, text) in revoked {
            let (conn, credential) = match self.members.get(&id) {
                Some(m) => (m.conn, m.credential.name.clone()),
                None => continue,
            };
            self.note_denial(conn, Some(id), credential, DenialKind::Revoked, &text);
            self.violation_detail = Some((ErrorCode::NotPermitted, text));
            self.remove_member(id, Removal::Failed(FailReason::ConnectionLost));
            self.violation_detail = None;
        }
        self.settle();
        self.end_input();
        n
    }
}
