//! G9 Liveness: once faults stop, every pending message reaches a final
//! state, every crashed member is declared failed, and every live member is
//! back in the view, within a stated bound of simulated time.
//!
//! Every `Final` (written for each live process after the heal phase) shows
//! the process ready, in the view, with an empty outbox and no unresolved
//! confirmed message.

use super::sessions::{fp, Report};
use crate::history::{Act, Bounds, History, Violation};

/// Name of the guarantee.
pub const NAME: &str = "G9 liveness";

/// Checks G9.
pub fn check(h: &History, _b: &Bounds) -> Vec<Violation> {
    let mut r = Report::new(NAME);
    for e in h.iter() {
        let Act::Final {
            proc,
            ready,
            in_view,
            outbox,
            unresolved_confirms,
        } = &e.act
        else {
            continue;
        };
        let mut wrong = Vec::new();
        if !ready {
            wrong.push("not ready".to_string());
        }
        if !in_view {
            wrong.push("not in the server's view".to_string());
        }
        if *outbox > 0 {
            wrong.push(format!("{outbox} messages left in its outbox"));
        }
        if *unresolved_confirms > 0 {
            wrong.push(format!(
                "{unresolved_confirms} confirmed messages without a final status"
            ));
        }
        if !wrong.is_empty() {
            r.add(format!(
                "{} at the end of the run (t={}): {}",
                fp(*proc),
                e.at,
                wrong.join(", ")
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
        assert_clean(&check(&happy().build(), &bounds()));
    }

    #[test]
    fn unready_live_proc_is_flagged() {
        let h = happy_run()
            .final_ok(A)
            .final_state(B, false, true, 0, 0)
            .build();
        assert_flags(&check(&h, &bounds()), "p1#200 at the end of the run (t=");
    }

    #[test]
    fn each_unfinished_state_is_flagged() {
        let cases = [
            ((false, true, 0, 0), "not ready"),
            ((true, false, 0, 0), "not in the server's view"),
            ((true, true, 3, 0), "3 messages left in its outbox"),
            (
                (true, true, 0, 2),
                "2 confirmed messages without a final status",
            ),
        ];
        for ((ready, in_view, outbox, unresolved), needle) in cases {
            let h = happy_run()
                .final_state(A, ready, in_view, outbox, unresolved)
                .build();
            let v = check(&h, &bounds());
            assert_flags(&v, needle);
            assert_eq!(v.len(), 1, "{v:#?}");
        }
    }
}
