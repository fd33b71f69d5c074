//! Time for the core: [`Tick`]s are microseconds since a tokio [`Instant`]
//! taken when the driver started.

use std::time::Duration;

use switchboard_core::time::Tick;
use tokio::time::Instant;

/// How far ahead an unreachable deadline is put (a `Tick` too large for the
/// platform's `Instant`).
const FAR_FUTURE: Duration = Duration::from_secs(86_400);

/// Maps tokio's monotonic clock to core ticks. Each driver has its own
/// origin; ticks of different clocks are not comparable.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// A clock whose origin is now.
    pub fn new() -> Clock {
        Clock {
            origin: Instant::now(),
        }
    }

    /// The current tick.
    pub fn now(&self) -> Tick {
        Tick(u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    /// The instant of a tick, for `sleep_until`. Rounds up so that the
    /// clock reads at least `t` once the instant has passed.
    pub fn instant(&self, t: Tick) -> Instant {
        self.origin
            .checked_add(Duration::from_micros(t.as_micros()))
            .unwrap_or_else(|| Instant::now() + FAR_FUTURE)
    }
}

/// Sleeps until `deadline`, or forever when there is none.
pub async fn sleep_until(clock: Clock, deadline: Option<Tick>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(clock.instant(t)).await,
        None => std::future::pending::<()>().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn sleeping_until_a_tick_reaches_it() {
        let clock = Clock::new();
        let t = clock.now().plus_millis(250);
        sleep_until(clock, Some(t)).await;
        assert!(clock.now() >= t);
    }
}
