//! The member's own registration state: groups, subscriptions, services
//! and load. Commands change it as soon as their frame is queued; every
//! `Hello` carries all of it, so a fresh registration restores it.

use std::collections::{BTreeMap, BTreeSet};

use super::config::ClientConfig;
use crate::frame::{
    capabilities, ClusterEvent, EventBody, Filter, Hello, SubscriptionSpec, NONCE_BYTES,
};

/// Groups, subscriptions, services and load, as the application set them.
#[derive(Debug)]
pub(super) struct Local {
    pub(super) groups: BTreeSet<String>,
    pub(super) subscriptions: BTreeMap<u32, Filter>,
    next_sub_id: u32,
    services: BTreeSet<String>,
    load: u32,
}

impl Local {
    pub(super) fn new(config: &ClientConfig) -> Local {
        Local {
            groups: BTreeSet::new(),
            subscriptions: BTreeMap::new(),
            next_sub_id: 1,
            services: config.services.iter().cloned().collect(),
            load: config.load,
        }
    }

    /// The `Hello` of a fresh registration, carrying all of the state.
    pub(super) fn hello(&self, config: &ClientConfig, nonce: [u8; NONCE_BYTES]) -> Hello {
        Hello {
            cluster: config.cluster.clone(),
            instance: config.instance.clone(),
            process: config.process.clone(),
            incarnation: config.incarnation,
            capabilities: capabilities::CHUNKING
                | capabilities::OUTCOMES
                | if config.report_taken {
                    capabilities::TAKEN
                } else {
                    0
                },
            client_nonce: nonce,
            services: self.services.iter().cloned().collect(),
            load: self.load,
            groups: self.groups.iter().cloned().collect(),
            subscriptions: self
                .subscriptions
                .iter()
                .map(|(id, f)| SubscriptionSpec {
                    sub_id: *id,
                    filter: f.clone(),
                })
                .collect(),
            credential: config.credential.clone(),
        }
    }

    /// The subscriptions whose filter matches an event.
    pub(super) fn handlers(&self, event: &ClusterEvent) -> Vec<u32> {
        self.subscriptions
            .iter()
            .filter(|(_, f)| f.matches(event))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Adds a subscription under the next id.
    pub(super) fn add_subscription(&mut self, filter: Filter) -> u32 {
        let id = self.next_sub_id;
        self.next_sub_id += 1;
        self.subscriptions.insert(id, filter);
        id
    }

    /// Applies a published event to the member's own description.
    pub(super) fn publish(&mut self, event: &EventBody) {
        match event {
            EventBody::ServiceState { service, up: true } => {
                self.services.insert(service.clone());
            }
            EventBody::ServiceState { service, up: false } => {
                self.services.remove(service);
            }
            EventBody::Load(l) => self.load = *l,
            EventBody::Custom { .. } => {}
        }
    }
}
