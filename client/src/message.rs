//! A received message with its sender's name.

use std::ops::Deref;

/// A message, request or reply as a member receives it: the wire fields
/// (readable through `Deref`: `m.payload`, `m.from`, `m.reply_to()`) and the
/// name of the member that sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The sender's instance name (empty if the sender was not in this
    /// member's view, which the server's ordering rules out).
    pub from_instance: String,
    /// The sender's process name.
    pub from_process: String,
    /// The message as it came off the wire.
    pub wire: switchboard_core::client::Message,
}

impl Message {
    /// The sender as `instance/process`, or `#ID` when its name is unknown.
    pub fn sender(&self) -> String {
        if self.from_instance.is_empty() {
            format!("#{}", self.wire.from)
        } else {
            format!("{}/{}", self.from_instance, self.from_process)
        }
    }
}

impl Deref for Message {
    type Target = switchboard_core::client::Message;
    fn deref(&self) -> &Self::Target {
        &self.wire
    }
}
