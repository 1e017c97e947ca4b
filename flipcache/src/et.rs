//! Named durations, as the Python original's `et` module has them, all integral (the
//! original's `HALF_AN_HOUR` and friends were floats that made every `set` fail). Each constant
//! is a plain [`Duration`], usable wherever one is expected:
//!
//! ```
//! use flipcache::et;
//! assert_eq!(et::HALF_AN_HOUR.as_secs(), 1800);
//! assert_eq!(et::ONE_WEEK, et::SEVEN_DAYS);
//! ```

use std::time::Duration;

const fn mins(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}
const fn hours(n: u64) -> Duration {
    Duration::from_secs(n * 3600)
}
const fn days(n: u64) -> Duration {
    Duration::from_secs(n * 86_400)
}

/// One minute.
pub const ONE_MINUTE: Duration = mins(1);
/// Three minutes.
pub const THREE_MINUTES: Duration = mins(3);
/// Five minutes.
pub const FIVE_MINUTES: Duration = mins(5);
/// Ten minutes.
pub const TEN_MINUTES: Duration = mins(10);
/// Fifteen minutes (an integral number of seconds, unlike the Python original's float).
pub const FIFTEEN_MINUTES: Duration = mins(15);
/// A quarter of an hour: fifteen minutes.
pub const QUARTER_HOUR: Duration = mins(15);
/// Thirty minutes.
pub const THIRTY_MINUTES: Duration = mins(30);
/// Half an hour: thirty minutes.
pub const HALF_AN_HOUR: Duration = mins(30);
/// One hour.
pub const ONE_HOUR: Duration = hours(1);
/// Two hours.
pub const TWO_HOURS: Duration = hours(2);
/// Three hours.
pub const THREE_HOURS: Duration = hours(3);
/// Four hours.
pub const FOUR_HOURS: Duration = hours(4);
/// Five hours.
pub const FIVE_HOURS: Duration = hours(5);
/// Six hours.
pub const SIX_HOURS: Duration = hours(6);
/// Seven hours.
pub const SEVEN_HOURS: Duration = hours(7);
/// Eight hours.
pub const EIGHT_HOURS: Duration = hours(8);
/// Nine hours.
pub const NINE_HOURS: Duration = hours(9);
/// Ten hours.
pub const TEN_HOURS: Duration = hours(10);
/// One day.
pub const ONE_DAY: Duration = days(1);
/// Two days.
pub const TWO_DAYS: Duration = days(2);
/// Three days.
pub const THREE_DAYS: Duration = days(3);
/// Four days.
pub const FOUR_DAYS: Duration = days(4);
/// Five days.
pub const FIVE_DAYS: Duration = days(5);
/// Six days.
pub const SIX_DAYS: Duration = days(6);
/// Seven days.
pub const SEVEN_DAYS: Duration = days(7);
/// One week: seven days.
pub const ONE_WEEK: Duration = days(7);
/// One month, counted as 30 days (as the Python original does).
pub const ONE_MONTH: Duration = days(30);
/// One year, counted as 365 days (as the Python original does).
pub const ONE_YEAR: Duration = days(365);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_duration_is_whole_seconds_and_matches_python() {
        let all = [
            (ONE_MINUTE, 60),
            (THREE_MINUTES, 180),
            (FIVE_MINUTES, 300),
            (TEN_MINUTES, 600),
            (FIFTEEN_MINUTES, 900),
            (QUARTER_HOUR, 900),
            (THIRTY_MINUTES, 1800),
            (HALF_AN_HOUR, 1800),
            (ONE_HOUR, 3600),
            (TWO_HOURS, 7200),
            (TEN_HOURS, 36000),
            (ONE_DAY, 86400),
            (SIX_DAYS, 6 * 86400),
            (ONE_WEEK, 604800),
            (ONE_MONTH, 2_592_000),
            (ONE_YEAR, 31_536_000),
        ];
        for (d, secs) in all {
            assert_eq!(d.as_secs(), secs);
            assert_eq!(d.subsec_nanos(), 0);
        }
    }
}
