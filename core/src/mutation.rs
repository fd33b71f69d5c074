//! Deliberate bugs that can be switched on at run time, so that tests can
//! prove the simulator's checkers catch real protocol mistakes. Compiled
//! only with the `mutation` cargo feature (the simulator turns it on): a
//! build without it has no `mutation` setting and no mutated code path.

/// A deliberate bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Mutation {
    /// No bug.
    #[default]
    None,
    /// Client: hand every delivery to the application, even duplicates.
    ClientSkipDedup,
    /// Server: report messages stable as soon as they are received, before
    /// they reach their addressees; senders forget them too early and a
    /// server crash loses them.
    ServerStableOnReceipt,
    /// Server: on resume, do not replay the stream the member missed.
    ServerSkipReplay,
}

impl Mutation {
    /// Every mutation, `None` first.
    pub const ALL: &'static [Mutation] = &[
        Mutation::None,
        Mutation::ClientSkipDedup,
        Mutation::ServerStableOnReceipt,
        Mutation::ServerSkipReplay,
    ];
}
