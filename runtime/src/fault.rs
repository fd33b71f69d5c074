//! Deliberate bugs for the production-path simulator to catch (feature
//! `fault-injection`, off in every shipped build). A fault is armed per
//! thread: a simulation runs on one thread, so parallel runs and ordinary
//! tests never see each other's faults.

use std::cell::Cell;

/// A deliberate bug in the adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The write loop holds one transmit back and writes it after the
    /// next batch (two transmits swapped on the wire).
    ReorderWrites,
    /// The client driver drops an application message instead of queueing
    /// it when the event stream is full.
    DropEventWhenFull,
    /// The client driver, once its full event stream has room again,
    /// hands over the second waiting event before the first.
    ReorderWhenFull,
    /// The client driver stops reading its connection while a
    /// subscription is full, instead of dropping that subscription's
    /// events (the "watch freeze": one unread stream stalls the member).
    StallOnLaggingSubscription,
    /// The server's core task measures what it holds but never cuts off a
    /// member for the memory budget.
    IgnoreMemoryBudget,
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

/// The state of [`Fault::ReorderWrites`] in one write loop: the 20th batch's
/// first transmit is held back and written after the next batch.
#[derive(Debug, Default)]
pub struct Reorder {
    batches: u32,
    held: Option<bytes::Bytes>,
}

impl Reorder {
    /// Applies the fault (when armed) to the batch about to be written.
    pub fn apply(&mut self, batch: &mut Vec<bytes::Bytes>) {
        if !armed(Fault::ReorderWrites) {
            return;
        }
        self.batches += 1;
        if let Some(h) = self.held.take() {
            batch.push(h);
        } else if self.batches % 20 == 0 && !batch.is_empty() {
            self.held = Some(batch.remove(0));
        }
    }
}
