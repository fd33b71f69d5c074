//! G11 Bounded memory: every queue has a limit; a slow or hostile peer is
//! throttled, then evicted with a visible reason, never allowed to grow
//! memory without bound.
//!
//! Every `Memory` sample has the largest server queue at most
//! `2 * member_queue_items_max + 1` and the largest client outbox at most
//! `outbox_items_max`.

use super::sessions::Report;
use crate::history::{Act, Bounds, History, Violation};

/// Name of the guarantee.
pub const NAME: &str = "G11 bounded memory";

/// Checks G11.
pub fn check(h: &History, b: &Bounds) -> Vec<Violation> {
    let mut r = Report::new(NAME);
    let queue_limit = b.member_queue_items_max.saturating_mul(2).saturating_add(1);
    for e in h.iter() {
        let Act::Memory {
            server_queue_max,
            outbox_max,
        } = &e.act
        else {
            continue;
        };
        if *server_queue_max > queue_limit {
            r.add(format!(
                "t={}: a member's server queue held {server_queue_max} items, over the hard bound {queue_limit}",
                e.at
            ));
        }
        if *outbox_max > b.outbox_items_max {
            r.add(format!(
                "t={}: a client outbox held {outbox_max} items, over the limit {}",
                e.at, b.outbox_items_max
            ));
        }
    }
    r.finish()
}

#[cfg(test)]
mod tests {
    use super::check;
    use crate::checkers::testkit::*;

    #[test]
    fn good_history_passes() {
        // Exactly at both limits is fine.
        assert_clean(&check(&happy().memory(201, 50).build(), &bounds()));
    }

    #[test]
    fn server_queue_over_its_bound_is_flagged() {
        let v = check(&happy().memory(202, 0).build(), &bounds());
        assert_flags(&v, "held 202 items, over the hard bound 201");
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn outbox_over_its_limit_is_flagged() {
        let v = check(&happy().memory(0, 51).build(), &bounds());
        assert_flags(&v, "outbox held 51 items, over the limit 50");
        assert_eq!(v.len(), 1);
    }
}
