//! A global bandwidth limit, shared by every transfer in one direction and changeable at run
//! time (upstream's throttling was per connection, fixed at 1 MB/s and set by an environment
//! variable).
//!
//! Pacing rather than a bucket refilled by a timer: each `take(n)` reserves the next `n / rate`
//! seconds of the link and sleeps until its slot begins, less a small burst allowance. Takers
//! queue in arrival order, so concurrent transfers share the rate evenly, and the sum of all
//! transfers never exceeds it by more than the burst.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Bytes that may pass at once without waiting: one read or write of a transfer.
const BURST: Duration = Duration::from_millis(50);

#[derive(Debug)]
pub struct Throttle {
    /// Bytes per second; 0 is unlimited.
    rate: AtomicU64,
    /// When the link is free again.
    free_at: Mutex<Option<Instant>>,
}

impl Throttle {
    pub fn new(rate: Option<u64>) -> Self {
        Self {
            rate: AtomicU64::new(rate.unwrap_or(0)),
            free_at: Mutex::new(None),
        }
    }

    /// The limit in bytes per second, `None` for none.
    pub fn rate(&self) -> Option<u64> {
        Some(self.rate.load(Ordering::Relaxed)).filter(|&r| r > 0)
    }

    /// Changes the limit; transfers in flight follow it from their next read or write.
    pub fn set_rate(&self, rate: Option<u64>) {
        self.rate.store(rate.unwrap_or(0), Ordering::Relaxed);
        *self.free_at.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The wait before `n` bytes may pass, reserving their slot.
    fn reserve(&self, n: usize) -> Option<Duration> {
        let rate = self.rate.load(Ordering::Relaxed);
        if rate == 0 || n == 0 {
            return None;
        }
        let now = Instant::now();
        let mut free_at = self.free_at.lock().unwrap_or_else(|e| e.into_inner());
        let start = free_at.map_or(now, |t| t.max(now));
        let end = start + Duration::from_secs_f64(n as f64 / rate as f64);
        *free_at = Some(end);
        let wait = end.saturating_duration_since(now);
        (wait > BURST).then(|| wait - BURST)
    }

    /// Waits until `n` more bytes may pass.
    pub async fn take(&self, n: usize) {
        if let Some(wait) = self.reserve(n) {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_takers_share_one_rate() {
        let t = std::sync::Arc::new(Throttle::new(Some(1_000_000)));
        let start = Instant::now();
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let t = t.clone();
                tokio::spawn(async move {
                    for _ in 0..10 {
                        t.take(10_000).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        // 400 kB at 1 MB/s: 0.4 s, less the burst allowance.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(330), "{took:?}");
        assert!(took < Duration::from_millis(1500), "{took:?}");
    }

    #[tokio::test]
    async fn the_rate_changes_at_run_time_and_can_be_lifted() {
        let t = Throttle::new(Some(100));
        assert_eq!(t.rate(), Some(100));
        t.set_rate(None);
        let start = Instant::now();
        t.take(1 << 30).await;
        // At 100 B/s this would take about 124 days; the bound only leaves room for a busy host.
        assert!(start.elapsed() < Duration::from_secs(1));
        t.set_rate(Some(10_000_000));
        let start = Instant::now();
        t.take(2_000_000).await;
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(140) && took < Duration::from_millis(1000),
            "{took:?}"
        );
    }
}
