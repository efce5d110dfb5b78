//! Identifiers: UUIDv7, so ids sort by creation time and index well.

use crate::clock::Clock;
use std::time::UNIX_EPOCH;
use uuid::{Timestamp, Uuid};

/// A new UUIDv7 whose timestamp comes from `clock`.
pub fn new_id(clock: &dyn Clock) -> Uuid {
    let since_epoch = clock.now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let ts = Timestamp::from_unix(
        uuid::NoContext,
        since_epoch.as_secs(),
        since_epoch.subsec_nanos(),
    );
    Uuid::new_v7(ts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::time::Duration;

    #[test]
    fn ids_are_v7_and_sort_by_clock_time() {
        let clock = ManualClock::new();
        let first = new_id(&clock);
        clock.advance(Duration::from_millis(2));
        let second = new_id(&clock);
        assert_eq!(first.get_version_num(), 7);
        assert!(second > first);
    }
}
