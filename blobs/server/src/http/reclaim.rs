//! The open connections, so that idle ones can be closed when every connection slot is taken.
//!
//! A client that opens connections and leaves them idle (keep-alive between requests) or
//! sends its headers slowly holds a slot each until the idle or header timeout: enough of
//! them and nobody else gets in. When the slots run out, the accept loop closes the
//! connections that moved no byte for a while: at once when no request's handler runs on
//! them (between requests, or a head still arriving: dropped, as hyper's graceful shutdown
//! would wait for a head begun until the header timeout), after the answer when one does (an
//! upload waiting for a write slot), so that an answer in progress is never cut.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// When a connection last moved a byte, as milliseconds since its registry began (shared
/// with the connection's stream, which updates it on every read and write that progresses).
#[derive(Clone)]
pub struct Activity {
    epoch: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    pub fn touch(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    fn idle_for(&self, now_ms: u64) -> Duration {
        Duration::from_millis(now_ms.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

struct Entry {
    activity: Activity,
    busy: Arc<AtomicUsize>,
    close: Close,
}

/// How a connection is asked to close: `now` (dropped) or `after` its answer (graceful).
#[derive(Clone, Default)]
pub struct Close {
    pub now: CancellationToken,
    pub after: CancellationToken,
}

impl Close {
    fn asked(&self) -> bool {
        self.now.is_cancelled() || self.after.is_cancelled()
    }
}

/// The open connections of one listener.
pub struct Connections {
    epoch: Instant,
    next: AtomicU64,
    open: Mutex<HashMap<u64, Entry>>,
}

/// A connection's place in the registry, given up when it is dropped.
pub struct Registered {
    id: u64,
    connections: Arc<Connections>,
    pub activity: Activity,
    /// Requests of the connection whose handler runs (see [`CountBusy`]).
    pub busy: Arc<AtomicUsize>,
    pub close: Close,
}

impl Connections {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            next: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
        })
    }

    pub fn register(self: &Arc<Self>) -> Registered {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let activity = Activity {
            epoch: self.epoch,
            last_ms: Arc::new(AtomicU64::new(0)),
        };
        activity.touch();
        let busy = Arc::new(AtomicUsize::new(0));
        let close = Close::default();
        self.open.lock().expect("not poisoned").insert(
            id,
            Entry {
                activity: activity.clone(),
                busy: busy.clone(),
                close: close.clone(),
            },
        );
        Registered {
            id,
            connections: self.clone(),
            activity,
            busy,
            close,
        }
    }

    /// Asks up to `most` connections that have been idle for at least `idle` to close, the
    /// longest idle first (at once when no handler runs on them, else after their answer);
    /// returns how many were asked.
    pub fn reclaim(&self, idle: Duration, most: usize) -> usize {
        self.reclaim_at(self.epoch.elapsed().as_millis() as u64, idle, most)
    }

    fn reclaim_at(&self, now: u64, idle: Duration, most: usize) -> usize {
        let open = self.open.lock().expect("not poisoned");
        let mut idle_ones: Vec<(Duration, &Entry)> = open
            .values()
            .filter(|e| !e.close.asked())
            .map(|e| (e.activity.idle_for(now), e))
            .filter(|(d, _)| *d >= idle)
            .collect();
        idle_ones.sort_by_key(|(d, _)| std::cmp::Reverse(*d));
        idle_ones.truncate(most);
        for (_, e) in &idle_ones {
            if e.busy.load(Ordering::Relaxed) == 0 {
                e.close.now.cancel();
            } else {
                e.close.after.cancel();
            }
        }
        idle_ones.len()
    }

    pub fn len(&self) -> usize {
        self.open.lock().expect("not poisoned").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.connections.open.lock().expect("not poisoned").remove(&self.id);
    }
}

/// A connection's service that counts its requests whose handler runs, from the call until
/// the response (its head) is ready.
#[derive(Clone)]
pub struct CountBusy<S> {
    inner: S,
    busy: Arc<AtomicUsize>,
}

impl<S> CountBusy<S> {
    pub fn new(inner: S, busy: Arc<AtomicUsize>) -> Self {
        Self { inner, busy }
    }
}

/// Counts a request out when its handler's future ends or is dropped.
struct Running(Arc<AtomicUsize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<S, R> tower_service::Service<R> for CountBusy<S>
where
    S: tower_service::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.busy.fetch_add(1, Ordering::Relaxed);
        let running = Running(self.busy.clone());
        let answer = self.inner.call(request);
        Box::pin(async move {
            let _running = running;
            answer.await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_idle_connections_are_asked_to_close_the_longest_idle_first() {
        let c = Connections::new();
        let old = c.register();
        let older = c.register();
        let busy = c.register();
        // At 1000 ms: idle for 1000 and 800 ms; the busy one moved a byte at 950.
        older.activity.last_ms.store(0, Ordering::Relaxed);
        old.activity.last_ms.store(200, Ordering::Relaxed);
        busy.activity.last_ms.store(950, Ordering::Relaxed);
        let idle = Duration::from_millis(500);
        assert_eq!(c.reclaim_at(1000, idle, 1), 1);
        assert!(older.close.now.is_cancelled() && !old.close.asked());
        // A handler runs on `old` (an upload waiting for a slot): closed after its answer.
        old.busy.store(1, Ordering::Relaxed);
        assert_eq!(c.reclaim_at(1000, idle, 5), 1, "old, not busy");
        assert!(old.close.after.is_cancelled() && !old.close.now.is_cancelled());
        assert!(!busy.close.asked());
        assert_eq!(c.reclaim_at(1000, idle, 5), 0, "nobody is asked twice");
        drop(older);
        assert_eq!(c.len(), 2);
    }
}
