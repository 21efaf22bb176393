//! When to try a failed transfer again: capped exponential backoff with full jitter, and a
//! limit on attempts (upstream waited 1, 11, 21 ... 60 s forever, with no jitter, so every
//! client that lost the server came back at the same instants).

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per transfer, the first included; then the blob goes to a failed state.
    pub max_attempts: u32,
    /// The first wait's upper bound; each further wait doubles it.
    pub base: Duration,
    /// Waits never exceed this.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Upper bound of the wait after `failures` failed attempts (1 = after the first).
    pub fn ceiling(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(30);
        self.base.saturating_mul(1u32 << exp).min(self.cap)
    }

    /// The wait after `failures` failed attempts: uniform in [0, ceiling] ("full jitter"),
    /// which spreads clients out best. A server's `Retry-After` is honoured, capped.
    pub fn delay(&self, failures: u32, retry_after: Option<Duration>) -> Duration {
        let ceiling = self.ceiling(failures);
        let jittered = ceiling.mul_f64(rand::random::<f64>());
        match retry_after {
            Some(ra) => ra.min(self.cap).max(jittered),
            None => jittered,
        }
    }

    /// A pause of at least half the ceiling ("equal jitter"): for work that must not come
    /// back at once, such as an incoming item a consumer just failed on.
    pub fn pause(&self, failures: u32) -> Duration {
        let half = self.ceiling(failures) / 2;
        half + half.mul_f64(rand::random::<f64>())
    }

    /// Whether another attempt follows `failures` failed ones.
    pub fn should_retry(&self, failures: u32) -> bool {
        failures < self.max_attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_exponentially_up_to_the_cap_with_jitter() {
        let p = RetryPolicy {
            max_attempts: 5,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
        };
        assert_eq!(p.ceiling(1), Duration::from_millis(100));
        assert_eq!(p.ceiling(2), Duration::from_millis(200));
        assert_eq!(p.ceiling(4), Duration::from_millis(800));
        assert_eq!(p.ceiling(5), Duration::from_secs(1));
        assert_eq!(p.ceiling(40), Duration::from_secs(1));
        let delays: Vec<Duration> = (0..200).map(|_| p.delay(3, None)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(400)));
        let distinct: std::collections::HashSet<_> = delays.iter().collect();
        assert!(distinct.len() > 150, "jitter spreads the waits");
        assert!(
            p.delay(1, Some(Duration::from_secs(5))) == Duration::from_secs(1),
            "Retry-After, capped"
        );
        assert!((0..50).all(|_| (Duration::from_millis(200)..=Duration::from_millis(400)).contains(&p.pause(3))));
        assert!(p.should_retry(4));
        assert!(!p.should_retry(5));
    }
}
