//! 日本時間 (Japan time): the one place the wall clock is read and turned into Japan's date and
//! time. Japan Standard Time is UTC+9 all year (no daylight saving). The domain never reads the
//! clock: the day a command is decided on is handed to it from here, or fixed by `--today` /
//! `DAICHO_TODAY` (tests and trials) or the web server's settings.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};

/// Japan Standard Time.
pub const JST: FixedOffset = match FixedOffset::east_opt(9 * 3600) {
    Some(offset) => offset,
    None => panic!("UTC+9 is a valid offset"),
};

/// Now in Japan.
pub fn now() -> DateTime<FixedOffset> {
    Utc::now().with_timezone(&JST)
}

/// Today's date in Japan: the recorded date of anything decided now.
pub fn today_in_japan() -> NaiveDate {
    now().date_naive()
}

/// A recorded time (microseconds since the Unix epoch) in Japan, `2026-11-22 14:03:05`.
pub fn format_recorded(us: i64) -> String {
    DateTime::from_timestamp_micros(us)
        .map(|t| t.with_timezone(&JST).format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".to_owned())
}

/// A recorded time in Japan to the minute, `2026-11-22 14:03`.
pub fn format_minute(us: i64) -> String {
    DateTime::from_timestamp_micros(us)
        .map(|t| t.with_timezone(&JST).format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "-".to_owned())
}

/// The monotonic clock that session timeouts, re-authentication windows and the login throttle
/// read: the system's, or (for tests) one that moves only when told, so no test sleeps to wait
/// for a timeout.
#[derive(Clone, Debug, Default)]
pub struct Monotonic {
    manual: Option<Arc<Mutex<Instant>>>,
}

impl Monotonic {
    /// The system's monotonic clock.
    pub fn system() -> Monotonic {
        Monotonic::default()
    }

    /// A clock standing still at the moment it is made, moved by [`Monotonic::advance`].
    pub fn manual() -> Monotonic {
        Monotonic { manual: Some(Arc::new(Mutex::new(Instant::now()))) }
    }

    /// Now.
    pub fn now(&self) -> Instant {
        match &self.manual {
            None => Instant::now(),
            Some(t) => *t.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
        }
    }

    /// Moves a manual clock forward (the system clock moves by itself: nothing happens).
    pub fn advance(&self, by: Duration) {
        if let Some(t) = &self.manual {
            let mut t = t.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            *t += by;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn japan_is_nine_hours_ahead_of_utc_all_year() {
        // 2026-12-31 15:00 UTC is already New Year's Day in Japan.
        let us = DateTime::parse_from_rfc3339("2026-12-31T15:00:00Z").map(|t| t.timestamp_micros()).unwrap();
        assert_eq!(format_recorded(us), "2027-01-01 00:00:00");
        // Summer: no daylight saving.
        let us = DateTime::parse_from_rfc3339("2026-07-01T14:59:59Z").map(|t| t.timestamp_micros()).unwrap();
        assert_eq!(format_recorded(us), "2026-07-01 23:59:59");
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = Monotonic::manual();
        let start = clock.now();
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now().duration_since(start), Duration::from_secs(90));
    }
}
