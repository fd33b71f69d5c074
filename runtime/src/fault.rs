//! Deliberate bugs for the production-path simulator to catch (feature
//! `fault-injection`, off in every shipped build). A fault is armed per
//! thread: a simulation runs on one thread, so parallel runs and ordinary
//! tests never see each other's faults.

use std::cell::Cell;

/// A deliberate bug in the adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The write loop swaps the first two transmits of a batch.
    ReorderWrites,
    /// The client driver drops an application message instead of queueing
    /// it when the event stream is full.
    DropEventWhenFull,
    /// The server core task never reopens a reader it paused.
    GateStaysShut,
}

thread_local! {
    static ARMED: Cell<Option<Fault>> = const { Cell::new(None) };
}

/// Arms `fault` on this thread (or none).
pub fn arm(fault: Option<Fault>) {
    ARMED.with(|a| a.set(fault));
}

/// True when `fault` is armed on this thread.
pub fn armed(fault: Fault) -> bool {
    ARMED.with(|a| a.get() == Some(fault))
}
