//! How many rounds a scenario gets, and the rule that decides when measuring stops.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Fewer measured rounds than this cannot give a useful confidence interval.
pub const MIN_ROUNDS: u32 = 5;

/// At least `min_rounds`, then more until the headline metric's confidence interval is
/// narrow enough, up to `max_rounds` or `max_time`.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    pub warmup_rounds: u32,
    pub min_rounds: u32,
    pub max_rounds: u32,
    /// Measured time (per build) after which no new round starts, once `min_rounds` are done.
    pub max_time: Duration,
    /// Relative half-width of the 95% CI of the headline metric's median to stop at.
    pub target_ci: f64,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            warmup_rounds: 1,
            min_rounds: MIN_ROUNDS,
            max_rounds: 30,
            max_time: Duration::from_secs(120),
            target_ci: 0.02,
        }
    }
}

/// Why a scenario stopped measuring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The headline metric's interval reached the target on every build.
    Converged,
    /// `max_rounds` measured rounds are done.
    MaxRounds,
    /// The measured time reached `max_time` per build.
    TimeBudget,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Converged => "converged",
            Self::MaxRounds => "max_rounds",
            Self::TimeBudget => "time_budget",
        }
    }
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a scenario's measuring stands after a round.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Measured rounds done (per build).
    pub rounds: u32,
    /// Measured time so far, all builds together.
    pub elapsed: Duration,
    /// The relative CI half-width of the headline metric the target applies to (infinite
    /// when it cannot be computed yet): a plain run's own; for two builds interleaved, that of
    /// their paired ratio (`compare`, `run --baseline`).
    pub worst_ci: f64,
    /// How many builds run interleaved (1 for a plain run).
    pub builds: u32,
}

impl Budget {
    /// The stopping rule: whether measuring stops after this round, and why. Never before
    /// `min_rounds`; then when the interval reached the target, else when
    /// `max_rounds` are done, else when the time is spent. The time budget is per build, so
    /// that interleaving two builds does not halve each side's rounds.
    pub fn stop(&self, p: &Progress) -> Option<StopReason> {
        if p.rounds < self.min_rounds {
            None
        } else if p.worst_ci <= self.target_ci {
            Some(StopReason::Converged)
        } else if p.rounds >= self.max_rounds {
            Some(StopReason::MaxRounds)
        } else if p.elapsed >= self.max_time * p.builds.max(1) {
            Some(StopReason::TimeBudget)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stopping_rule() {
        let budget = Budget {
            warmup_rounds: 1,
            min_rounds: 5,
            max_rounds: 10,
            max_time: Duration::from_secs(60),
            target_ci: 0.02,
        };
        let s = Duration::from_secs;
        // (rounds, elapsed, worst CI, builds) -> decision
        let table = [
            (4, s(1), 0.001, 1, None),                          // converged, but too few rounds
            (5, s(1), 0.02, 1, Some(StopReason::Converged)),    // at the target counts
            (5, s(1), 0.021, 1, None),                          // just short: go on
            (7, s(1), f64::INFINITY, 1, None),                  // no interval yet
            (10, s(1), 0.05, 1, Some(StopReason::MaxRounds)),   // rounds spent
            (10, s(999), 0.01, 1, Some(StopReason::Converged)), // converged wins over spent
            (6, s(60), 0.05, 1, Some(StopReason::TimeBudget)),  // time spent
            (6, s(60), 0.05, 2, None),                          // two builds: twice the time
            (6, s(120), 0.05, 2, Some(StopReason::TimeBudget)),
            (4, s(999), 0.05, 1, None), // the minimum comes first
        ];
        for (rounds, elapsed, worst_ci, builds, want) in table {
            let p = Progress {
                rounds,
                elapsed,
                worst_ci,
                builds,
            };
            assert_eq!(budget.stop(&p), want, "{p:?}");
        }
    }

    #[test]
    fn stop_reasons_keep_their_names() {
        for r in [StopReason::Converged, StopReason::MaxRounds, StopReason::TimeBudget] {
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{r}\""));
        }
    }
}
