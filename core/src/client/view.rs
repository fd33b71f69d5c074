//! The view as this member knows it from its stream.

use std::collections::BTreeMap;

use crate::frame::{ClusterEvent, MemberInfo};

/// Members by id, and the view epoch.
#[derive(Debug, Default)]
pub(super) struct View {
    pub(super) members: BTreeMap<u64, MemberInfo>,
    pub(super) epoch: u64,
}

impl View {
    /// A fresh registration: the snapshot.
    pub(super) fn reset(&mut self, epoch: u64, members: &[MemberInfo]) {
        self.epoch = epoch;
        self.members = members.iter().map(|m| (m.member_id, m.clone())).collect();
    }

    /// The member registered as `instance/process`, if in the view.
    pub(super) fn find(&self, instance: &str, process: &str) -> Option<u64> {
        self.members
            .values()
            .find(|m| m.instance == instance && m.process == process)
            .map(|m| m.member_id)
    }

    /// Keeps the view in step with an event of the stream. Returns the
    /// member removed from it, if any.
    pub(super) fn apply(&mut self, e: &ClusterEvent) -> Option<MemberInfo> {
        match e {
            ClusterEvent::MemberJoined(m) => {
                self.members.insert(m.member_id, m.clone());
            }
            ClusterEvent::MemberLeft { member_id }
            | ClusterEvent::MemberFailed { member_id, .. } => {
                return self.members.remove(member_id);
            }
            ClusterEvent::GroupJoined { member_id, group } => {
                if let Some(m) = self.members.get_mut(member_id) {
                    if let Err(pos) = m.groups.binary_search(group) {
                        m.groups.insert(pos, group.clone());
                    }
                }
            }
            ClusterEvent::GroupLeft { member_id, group } => {
                if let Some(m) = self.members.get_mut(member_id) {
                    m.groups.retain(|g| g != group);
                }
            }
            ClusterEvent::ServiceState {
                member_id,
                service,
                up,
            } => {
                if let Some(m) = self.members.get_mut(member_id) {
                    m.services.retain(|s| s != service);
                    if *up {
                        m.services.push(service.clone());
                        m.services.sort();
                    }
                }
            }
            ClusterEvent::Load { member_id, load } => {
                if let Some(m) = self.members.get_mut(member_id) {
                    m.load = *load;
                }
            }
            _ => {}
        }
        None
    }
}
