//! The run's wall clock, a value the run is handed rather than a call to the system time, so a test can
//! say when the run is without waiting for the real minute to turn. No AWS API.

use std::time::{Instant, SystemTime};

/// Where "now" comes from. Production uses [`Clock::System`]; [`Clock::StartingAt`] is set only by the
/// test-only key `smoke.watch-signals.test-clock-start` of the environments file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Clock {
    /// The system's time.
    #[default]
    System,
    /// Reads `at` when `origin` was taken, then runs at real speed (sleeps stay real, only the date
    /// moves), so a test puts the run in the minute its data is stamped in.
    StartingAt { at: SystemTime, origin: Instant },
}

impl Clock {
    /// A clock that reads `at` now and runs on from there.
    pub fn starting_at(at: SystemTime) -> Clock {
        Clock::StartingAt {
            at,
            origin: Instant::now(),
        }
    }

    pub fn now(&self) -> SystemTime {
        match self {
            Clock::System => SystemTime::now(),
            Clock::StartingAt { at, origin } => *at + origin.elapsed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_started_clock_reads_its_start_and_runs_on() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_005);
        let c = Clock::starting_at(at);
        let first = c.now();
        assert!(
            first >= at && first < at + Duration::from_secs(1),
            "{first:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
        assert!(c.now() >= first + Duration::from_millis(20));
        let system = Clock::System.now();
        let real = SystemTime::now();
        assert!(system <= real && system + Duration::from_secs(1) > real);
    }
}
