//! Who transfers next: at most `limit` transfers run at once, and a free slot goes to the
//! waiting transfer of the highest *effective* priority, its own priority plus one level per
//! `aging` interval it has waited (so low priority work is never starved; upstream had no
//! aging). Waiting time counts from when the blob was queued, which is persisted, so aging
//! survives restarts.
//!
//! One extra slot is kept for urgent transfers: an on-demand `get` that the application is
//! waiting for (key material, message headers) starts at once even when every regular slot
//! is busy with long background transfers, instead of waiting for one of them to end.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::store::Priority;

/// Slots beyond the limit that only urgent transfers may use.
const URGENT_LANE: usize = 1;

pub struct Scheduler {
    state: Mutex<State>,
    aging: Duration,
}

struct State {
    limit: usize,
    running: usize,
    urgent_running: usize,
    waiters: Vec<Waiter>,
    next_seq: u64,
}

struct Waiter {
    seq: u64,
    priority: Priority,
    since: Instant,
    tx: oneshot::Sender<Permit>,
}

/// A place in the queue.
pub struct Ticket(oneshot::Receiver<Permit>);

impl Ticket {
    pub async fn wait(self) -> Permit {
        self.0.await.expect("the scheduler outlives its waiters")
    }
}

/// A running transfer's slot; dropping it hands the slot on.
pub struct Permit {
    sched: Arc<Scheduler>,
    urgent_lane: bool,
    released: bool,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let mut st = self.sched.lock();
        if self.urgent_lane {
            st.urgent_running -= 1;
        } else {
            st.running -= 1;
        }
        self.sched.dispatch(&mut st);
    }
}

impl Scheduler {
    pub fn new(limit: usize, aging: Duration) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                limit: limit.max(1),
                running: 0,
                urgent_running: 0,
                waiters: Vec::new(),
                next_seq: 0,
            }),
            aging: aging.max(Duration::from_millis(1)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the number of concurrent transfers; running ones finish.
    pub fn set_limit(self: &Arc<Self>, limit: usize) {
        let mut st = self.lock();
        st.limit = limit.max(1);
        self.dispatch(&mut st);
    }

    pub fn limit(&self) -> usize {
        self.lock().limit
    }

    /// Priority plus aging, in levels.
    fn effective(&self, w: &Waiter, now: Instant) -> f64 {
        w.priority as u8 as f64 + now.saturating_duration_since(w.since).as_secs_f64() / self.aging.as_secs_f64()
    }

    /// The index of the waiter to run next, optionally among urgent ones only.
    fn best(&self, st: &State, urgent_only: bool, now: Instant) -> Option<usize> {
        st.waiters
            .iter()
            .enumerate()
            .filter(|(_, w)| !urgent_only || w.priority == Priority::Urgent)
            .max_by(|(_, a), (_, b)| {
                self.effective(a, now)
                    .total_cmp(&self.effective(b, now))
                    .then(b.since.cmp(&a.since))
                    .then(b.seq.cmp(&a.seq))
            })
            .map(|(i, _)| i)
    }

    fn dispatch(self: &Arc<Self>, st: &mut State) {
        let now = Instant::now();
        loop {
            let lane = if st.running < st.limit {
                false
            } else if st.urgent_running < URGENT_LANE {
                true
            } else {
                return;
            };
            let Some(i) = self.best(st, lane, now) else {
                return;
            };
            let w = st.waiters.swap_remove(i);
            if lane {
                st.urgent_running += 1;
            } else {
                st.running += 1;
            }
            let permit = Permit {
                sched: self.clone(),
                urgent_lane: lane,
                released: false,
            };
            if let Err(mut permit) = w.tx.send(permit) {
                // The waiter gave up: the slot is free again.
                permit.released = true;
                if lane {
                    st.urgent_running -= 1;
                } else {
                    st.running -= 1;
                }
            }
        }
    }

    /// Waits for a slot. `since` is when the transfer was queued, the base of its aging.
    pub async fn acquire(self: &Arc<Self>, priority: Priority, since: Instant) -> Permit {
        self.enqueue(priority, since).wait().await
    }

    /// Joins the queue now, to wait for the slot later: a sync enqueues all its transfers in
    /// order before any of them starts, so the first slots go to the highest priorities.
    pub fn enqueue(self: &Arc<Self>, priority: Priority, since: Instant) -> Ticket {
        let mut st = self.lock();
        let (tx, rx) = oneshot::channel();
        let seq = st.next_seq;
        st.next_seq += 1;
        st.waiters.push(Waiter {
            seq,
            priority,
            since,
            tx,
        });
        self.dispatch(&mut st);
        Ticket(rx)
    }

    /// Transfers waiting and running.
    pub fn load(&self) -> (usize, usize) {
        let st = self.lock();
        (st.waiters.len(), st.running + st.urgent_running)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Queues transfers while the only slot is busy, then records the order they run in.
    async fn order(sched: &Arc<Scheduler>, waiters: Vec<(&'static str, Priority, Instant)>) -> Vec<&'static str> {
        let blocker = sched.acquire(Priority::Medium, Instant::now()).await;
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (name, prio, since) in waiters {
            let (s, log) = (sched.clone(), log.clone());
            tasks.push(tokio::spawn(async move {
                let _p = s.acquire(prio, since).await;
                log.lock().unwrap().push(name);
            }));
            tokio::task::yield_now().await;
        }
        while sched.load().0 < tasks.len() {
            tokio::task::yield_now().await;
        }
        drop(blocker);
        for t in tasks {
            t.await.unwrap();
        }
        Arc::try_unwrap(log).unwrap().into_inner().unwrap()
    }

    #[tokio::test]
    async fn higher_priority_first_then_longest_waiting() {
        let s = Scheduler::new(1, Duration::from_secs(3600));
        let now = Instant::now();
        let got = order(
            &s,
            vec![
                ("low", Priority::Low, now),
                ("medium-new", Priority::Medium, now),
                ("high", Priority::High, now),
                ("medium-old", Priority::Medium, now - Duration::from_secs(1)),
            ],
        )
        .await;
        assert_eq!(got, ["high", "medium-old", "medium-new", "low"]);
    }

    #[tokio::test]
    async fn waiting_raises_priority_so_low_is_never_starved() {
        let s = Scheduler::new(1, Duration::from_secs(10));
        let now = Instant::now();
        // Waiting 25 s lifts low (1) to 3.5: above high (3), below urgent (4).
        let got = order(
            &s,
            vec![
                ("high", Priority::High, now),
                ("aged-low", Priority::Low, now - Duration::from_secs(25)),
                ("medium", Priority::Medium, now),
            ],
        )
        .await;
        assert_eq!(got, ["aged-low", "high", "medium"]);
    }

    #[tokio::test]
    async fn urgent_work_does_not_wait_for_running_transfers() {
        let s = Scheduler::new(1, Duration::from_secs(10));
        let _busy = s.acquire(Priority::Low, Instant::now()).await;
        let queued = {
            let s = s.clone();
            tokio::spawn(async move { s.acquire(Priority::High, Instant::now()).await })
        };
        tokio::task::yield_now().await;
        let urgent = tokio::time::timeout(Duration::from_secs(5), s.acquire(Priority::Urgent, Instant::now()))
            .await
            .expect("urgent work gets the urgent lane at once");
        // The lane holds one: a second urgent transfer waits like the others.
        let second =
            tokio::time::timeout(Duration::from_millis(100), s.acquire(Priority::Urgent, Instant::now())).await;
        assert!(second.is_err());
        assert!(!queued.is_finished());
        drop(urgent);
        drop(_busy);
        tokio::time::timeout(Duration::from_secs(5), queued)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_does_not_leak_its_slot() {
        let s = Scheduler::new(1, Duration::from_secs(10));
        let busy = s.acquire(Priority::Low, Instant::now()).await;
        let gave_up = tokio::time::timeout(Duration::from_millis(20), s.acquire(Priority::Low, Instant::now())).await;
        assert!(gave_up.is_err());
        drop(busy);
        tokio::time::timeout(Duration::from_secs(5), s.acquire(Priority::Low, Instant::now()))
            .await
            .expect("the slot is free");
        assert_eq!(s.load(), (0, 0));
    }
}
