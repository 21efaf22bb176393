//! Verdicts on count-round series (instructions under Valgrind, `contract::metrics::is_counted`):
//! one value per side and no rounds to test. Two counts of the same code differ only by
//! what the timing of the two processes' exchanges changes (how a socket splits the data,
//! whether a pooled connection is free yet), measured at 0.001% to 8% by scenario
//! (`harness/RESULTS.md`). So a count is judged by its own series' spread, not by a test:
//!
//! - a change within [`COUNT_FLOOR`], or of fewer than [`COUNT_ABSOLUTE_FLOOR`] instructions,
//!   is no change;
//! - with enough history, the series' noise floor (the same fence as the timed series',
//!   `noise_floor`) is the spread: beyond it and the floor, a change; within it, noisy;
//! - without history, only a change beyond [`UNKNOWN_SPREAD`], larger than any spread
//!   measured, is called; smaller ones are noisy.

use super::noise_floor::NoiseFloor;
use super::verdict::{Direction, Verdict};

/// Smallest relative change of a count worth reporting. Counts of scenarios that move
/// megabytes repeat within 0.01-0.3%; a change under half a percent is left alone.
pub const COUNT_FLOOR: f64 = 0.005;

/// Fewer instructions than this (some 30 microseconds of one core) are not worth reporting
/// however large a share of a small count they are. The counts of a few hundred thousand
/// instructions are the ones timing moves most: the server's 100,000 instructions of a sync
/// that moves nothing differed by 23% between identical runs.
pub const COUNT_ABSOLUTE_FLOOR: f64 = 100_000.0;

/// How far a client count must move to be called a change when its series has no noise
/// floor yet: above the largest relative spread measured between identical runs (7.9%: the
/// client's 4.6 million instructions of a sync that moves nothing).
pub const UNKNOWN_SPREAD: f64 = 0.10;

/// The same for a server count, which follows the machine's load through how the socket
/// splits the data: 13% between a quiet run and one beside a compilation, with nothing
/// changed in proportion (`docs/statistics.md`, "A known cost, injected").
pub const UNKNOWN_SERVER_SPREAD: f64 = 0.25;

/// The spread assumed for `metric` while its series has no history.
pub fn unknown_spread(metric: &str) -> f64 {
    if metric.starts_with("server_") {
        UNKNOWN_SERVER_SPREAD
    } else {
        UNKNOWN_SPREAD
    }
}

/// The relative change a count had to exceed and what it was judged to be, for a count that
/// went from `old` to `new`; `unknown` is the spread assumed without a noise floor
/// ([`unknown_spread`]).
pub fn count_verdict(
    old: f64,
    new: f64,
    floor: Option<&NoiseFloor>,
    unknown: f64,
    direction: Direction,
) -> (f64, Verdict) {
    let relative = if old != 0.0 {
        (new - old) / old.abs()
    } else {
        f64::INFINITY
    };
    let spread = floor.map_or(unknown, |f| f.threshold);
    let threshold = spread.max(COUNT_FLOOR);
    let verdict = if relative.abs() <= COUNT_FLOOR || (new - old).abs() <= COUNT_ABSOLUTE_FLOOR {
        Verdict::Unchanged
    } else if relative.abs() > threshold {
        direction.judge(relative > 0.0)
    } else {
        Verdict::Noisy
    };
    (threshold, verdict)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statistics::noise_floor::noise_floor;

    #[test]
    fn counts_are_judged_by_their_spread() {
        let lower = Direction::Lower;
        let base = 1e8;
        let at = |change: f64| base * (1.0 + change);
        // Without history: small moves are unchanged, middling ones cannot be told, large
        // ones are changes in the metric's direction.
        assert_eq!(
            count_verdict(base, at(0.004), None, UNKNOWN_SPREAD, lower),
            (UNKNOWN_SPREAD, Verdict::Unchanged)
        );
        assert_eq!(
            count_verdict(base, at(0.05), None, UNKNOWN_SPREAD, lower).1,
            Verdict::Noisy
        );
        assert_eq!(
            count_verdict(base, at(0.15), None, UNKNOWN_SPREAD, lower).1,
            Verdict::Regression
        );
        assert_eq!(
            count_verdict(base, at(-0.15), None, UNKNOWN_SPREAD, lower).1,
            Verdict::Improvement
        );
        // A steady series (0.05% apart): its floor is under COUNT_FLOOR, so a 1% change is
        // called.
        let steady: Vec<f64> = (0..31).map(|i| base * (1.0 + 0.0005 * (i % 2) as f64)).collect();
        let floor = noise_floor(&steady).expect("31 points");
        assert_eq!(
            count_verdict(base, at(0.01), Some(&floor), UNKNOWN_SPREAD, lower),
            (COUNT_FLOOR, Verdict::Regression)
        );
        // A series that moves 2% by itself: a 1% change cannot be told from that.
        let loose: Vec<f64> = (0..31).map(|i| base * (1.0 + 0.02 * (i % 2) as f64)).collect();
        let floor = noise_floor(&loose).expect("31 points");
        assert_eq!(
            count_verdict(base, at(0.01), Some(&floor), UNKNOWN_SPREAD, lower).1,
            Verdict::Noisy
        );
        assert_eq!(
            count_verdict(base, at(0.1), Some(&floor), UNKNOWN_SPREAD, Direction::Higher).1,
            Verdict::Improvement
        );
        // A small count: 23% of 100,000 instructions is no change worth a reader's time.
        assert_eq!(
            count_verdict(1e5, 1.23e5, None, UNKNOWN_SPREAD, lower).1,
            Verdict::Unchanged
        );
        assert_eq!(
            count_verdict(1e5, 3e5, None, UNKNOWN_SPREAD, lower).1,
            Verdict::Regression
        );
        assert_eq!(
            count_verdict(0.0, 3e5, None, UNKNOWN_SPREAD, lower).1,
            Verdict::Regression
        );
        // Server counts follow the machine's load: 13% without history is not yet a change.
        let server = unknown_spread("server_instructions");
        assert_eq!(count_verdict(base, at(0.13), None, server, lower).1, Verdict::Noisy);
        let client = unknown_spread("client_instructions");
        assert_eq!(
            count_verdict(base, at(0.13), None, client, lower).1,
            Verdict::Regression
        );
    }
}
