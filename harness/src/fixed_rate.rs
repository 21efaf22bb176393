//! A thread that does one small thing at a fixed rate while a round runs: the ping and the
//! memory sampler. A late tick skips ahead instead of bursting, so a stall on the host shows
//! as a gap, not as a cluster of samples that would over-weight the moment after it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running fixed-rate thread that yields a `T` when stopped.
pub struct FixedRate<T> {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<T>,
}

impl<T: Send + 'static> FixedRate<T> {
    /// Spawns a thread named `name` that builds its state with `setup`, calls `tick` at once
    /// and then every `interval`, and after a stop is asked ticks once more and returns
    /// `finish(state)`. So there is always a tick, and the last one began after the stop was
    /// asked.
    pub fn spawn<S: 'static>(
        name: &str,
        interval: Duration,
        setup: impl FnOnce() -> S + Send + 'static,
        mut tick: impl FnMut(&mut S) + Send + 'static,
        finish: impl FnOnce(S) -> T + Send + 'static,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let mut state = setup();
                let mut next = Instant::now();
                loop {
                    // Read before the tick, so that the tick that ends the thread began after
                    // the stop was asked.
                    let stopping = flag.load(Ordering::Acquire);
                    tick(&mut state);
                    if stopping {
                        return finish(state);
                    }
                    if flag.load(Ordering::Acquire) {
                        // Asked during this tick: the last one follows at once.
                        continue;
                    }
                    next += interval;
                    let now = Instant::now();
                    if next > now {
                        std::thread::sleep(next - now);
                    } else {
                        next = now;
                    }
                }
            })
            .expect("spawning a thread");
        Self { stop, handle }
    }

    /// Asks the thread to stop after one more tick, and returns what it finished with;
    /// `None` if a tick panicked.
    pub fn stop(self) -> Option<T> {
        self.stop.store(true, Ordering::Release);
        self.handle.join().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_at_its_rate_and_once_after_the_stop() {
        let began = Instant::now();
        let ticker = FixedRate::spawn(
            "test-ticker",
            Duration::from_millis(20),
            Vec::new,
            |ticks: &mut Vec<Instant>| ticks.push(Instant::now()),
            |ticks| ticks,
        );
        std::thread::sleep(Duration::from_millis(300));
        let asked = Instant::now();
        let ticks = ticker.stop().unwrap();
        let elapsed = began.elapsed();
        // At least the one after the stop, however slow the host; at most one per interval
        // besides the first and the last (a late wake-up skips ahead instead of bursting).
        let most = elapsed.as_millis() as usize / 20 + 3;
        assert!(
            (1..=most).contains(&ticks.len()),
            "{} ticks in {elapsed:?}",
            ticks.len()
        );
        assert!(*ticks.last().unwrap() >= asked, "the last tick began before the stop");
        assert!(ticks.windows(2).all(|w| w[1] >= w[0]));
    }
}
