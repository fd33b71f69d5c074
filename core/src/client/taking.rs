//! What the application took from the stream, when the client reports it
//! (`ClientConfig::report_taken`): the position through which every
//! message handed over has been taken, for `Taken` frames.
//!
//! The client counts the messages it hands to the application
//! ([`ClientEvent::Message`](super::ClientEvent::Message) and
//! [`ClientEvent::Reply`](super::ClientEvent::Reply)); the driver reports how
//! many of them the application took (or the driver disposed of). After
//! each batch of input the client notes a mark: the stream position it
//! reached and how many messages it had handed over by then. Once the
//! application has taken that many, everything through the mark's position
//! is taken: the messages in it, and whatever needed no taking (events,
//! notices, duplicates of messages already handed over).

use std::collections::VecDeque;

/// The taken position's state.
#[derive(Debug, Default)]
pub(super) struct Taking {
    /// Messages handed to the application so far (this client's life).
    handed: u64,
    /// Of those, taken so far.
    taken: u64,
    /// `(position, handed then)`, positions increasing, `handed` strictly
    /// increasing from one mark to the next.
    marks: VecDeque<(u64, u64)>,
    /// Every message of the current session's stream through this
    /// position is taken.
    through: u64,
    /// The last position reported to the server.
    reported: u64,
}

impl Taking {
    /// One more message handed to the application.
    pub(super) fn handed(&mut self) {
        self.handed += 1;
    }

    /// The stream reached `position` after a batch of input.
    pub(super) fn reached(&mut self, position: u64) {
        if position <= self.through {
            return;
        }
        if self.taken == self.handed {
            // Nothing is waiting: everything so far is taken.
            self.marks.clear();
            self.through = position;
            return;
        }
        match self.marks.back_mut() {
            // Nothing handed since the last mark: it moves forward.
            Some((p, h)) if *h == self.handed => *p = (*p).max(position),
            _ => self.marks.push_back((position, self.handed)),
        }
        debug_assert!(self.marks.len() as u64 <= self.handed - self.taken + 1);
    }

    /// The application has taken `taken` messages in all.
    pub(super) fn took(&mut self, taken: u64) {
        debug_assert!(taken <= self.handed, "took more than was handed over");
        self.taken = self.taken.max(taken.min(self.handed));
        while let Some(&(p, h)) = self.marks.front() {
            if h > self.taken {
                break;
            }
            self.through = self.through.max(p);
            self.marks.pop_front();
        }
    }

    /// The position to report, when it moved.
    pub(super) fn take_report(&mut self) -> Option<u64> {
        (self.through > self.reported).then(|| {
            self.reported = self.through;
            self.through
        })
    }

    /// A fresh registration: the stream starts at `position`. Messages of
    /// an earlier session not yet taken still hold back later marks.
    pub(super) fn registered(&mut self, position: u64) {
        self.marks.clear();
        self.through = position;
        self.reported = position;
        if self.taken < self.handed {
            self.marks.push_back((position, self.handed));
            // `through` stays at `position`: nothing of this session was
            // handed over yet.
        }
    }

    /// A resumed session: report the position again.
    pub(super) fn resumed(&mut self) {
        self.reported = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::Taking;

    #[test]
    fn the_position_waits_for_the_application() {
        let mut t = Taking::default();
        t.registered(10);
        t.handed(); // message at 11
        t.reached(12); // and an event at 12
        assert_eq!(t.take_report(), None);
        t.handed(); // message at 13
        t.reached(13);
        t.took(1);
        assert_eq!(t.take_report(), Some(12));
        t.took(2);
        assert_eq!(t.take_report(), Some(13));
        // Nothing waiting: positions pass at once.
        t.reached(20);
        assert_eq!(t.take_report(), Some(20));
        assert_eq!(t.take_report(), None);
    }

    #[test]
    fn a_new_session_waits_for_the_old_sessions_messages() {
        let mut t = Taking::default();
        t.registered(0);
        t.handed();
        t.reached(5);
        // Server restart: the new stream starts at 3.
        t.registered(3);
        t.reached(4); // a duplicate of the untaken message: nothing handed
        assert_eq!(t.take_report(), None);
        t.took(1);
        assert_eq!(t.take_report(), Some(4));
    }

    #[test]
    fn a_resume_reports_again() {
        let mut t = Taking::default();
        t.registered(0);
        t.reached(7);
        assert_eq!(t.take_report(), Some(7));
        t.resumed();
        assert_eq!(t.take_report(), Some(7));
    }
}
