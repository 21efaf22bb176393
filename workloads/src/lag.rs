//! The loop-lag probe: how late a timer fires on the client's own async runtime. A task
//! that blocks a worker thread (crypto or disk IO on the event loop) shows up here, which is
//! how Soledad found its reactor stalls.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// Summary of the lag samples of one measured part.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LagSummary {
    pub samples: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

pub struct LagProbe {
    stop: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<Vec<f64>>,
}

impl LagProbe {
    /// Starts ticking every `interval` on the current runtime.
    pub fn start(interval: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = tokio::spawn(async move {
            let mut lags = Vec::new();
            loop {
                let due = Instant::now() + interval;
                tokio::time::sleep_until(due).await;
                lags.push(Instant::now().saturating_duration_since(due).as_secs_f64() * 1e3);
                if flag.load(Ordering::Relaxed) {
                    return lags;
                }
            }
        });
        Self { stop, handle }
    }

    /// Stops the probe (after its current tick) and summarises what it saw.
    pub async fn stop(self) -> LagSummary {
        self.stop.store(true, Ordering::Relaxed);
        let mut lags = self.handle.await.unwrap_or_default();
        lags.sort_by(f64::total_cmp);
        let at = |q: f64| lags[((q * lags.len() as f64).ceil() as usize).clamp(1, lags.len()) - 1];
        if lags.is_empty() {
            return LagSummary::default();
        }
        LagSummary {
            samples: lags.len() as u64,
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            max_ms: *lags.last().unwrap(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_blocked_runtime_shows_as_lag() {
        let probe = LagProbe::start(Duration::from_millis(5));
        tokio::time::sleep(Duration::from_millis(30)).await;
        // Block the only worker thread, as synchronous crypto on the event loop would.
        std::thread::sleep(Duration::from_millis(200));
        tokio::time::sleep(Duration::from_millis(30)).await;
        let lag = probe.stop().await;
        assert!(lag.samples >= 3, "{lag:?}");
        // The tick due during the block fires at least 190 ms late; scheduling on a busy
        // machine may add more, never less.
        assert!(lag.max_ms >= 190.0, "{lag:?}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_idle_runtime_shows_less_lag_than_a_blocked_one() {
        let probe = LagProbe::start(Duration::from_millis(5));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let lag = probe.stop().await;
        assert!(lag.samples >= 3, "{lag:?}");
        assert!(lag.p50_ms < 190.0, "{lag:?}");
    }
}
