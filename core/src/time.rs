//! Virtual time. The core never reads a clock: every input carries the
//! current [`Tick`], and every timer is a `Tick` the caller must honour.

use std::ops::{Add, Sub};

/// A point in time, in microseconds since an arbitrary origin chosen by the
/// driver (the simulator starts at zero; the tokio adapter uses the time it
/// started). Ticks from different drivers are not comparable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Tick(pub u64);

impl Tick {
    /// The origin.
    pub const ZERO: Tick = Tick(0);

    /// `ms` milliseconds after the origin.
    pub fn from_millis(ms: u64) -> Tick {
        Tick(ms.saturating_mul(1000))
    }

    /// Microseconds since the origin.
    pub fn as_micros(self) -> u64 {
        self.0
    }

    /// Milliseconds since the origin (rounded down).
    pub fn as_millis(self) -> u64 {
        self.0 / 1000
    }

    /// This tick plus `ms` milliseconds, saturating.
    pub fn plus_millis(self, ms: u64) -> Tick {
        Tick(self.0.saturating_add(ms.saturating_mul(1000)))
    }

    /// Milliseconds from `earlier` to `self`, zero if `earlier` is later.
    pub fn millis_since(self, earlier: Tick) -> u64 {
        self.0.saturating_sub(earlier.0) / 1000
    }
}

impl Add<u64> for Tick {
    type Output = Tick;
    /// Adds microseconds, saturating.
    fn add(self, micros: u64) -> Tick {
        Tick(self.0.saturating_add(micros))
    }
}

impl Sub for Tick {
    type Output = u64;
    /// Microseconds between two ticks, zero if `rhs` is later.
    fn sub(self, rhs: Tick) -> u64 {
        self.0.saturating_sub(rhs.0)
    }
}

/// The earlier of two optional deadlines.
pub fn earliest(a: Option<Tick>, b: Option<Tick>) -> Option<Tick> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}
