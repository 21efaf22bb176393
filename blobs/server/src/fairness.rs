//! Each user's share of the write slots. The slots for uploads (and deliveries) and for flag
//! changes (and deletions) are shared by all users; without a bound of their own, one user's
//! slow uploads (a client trickling bytes, or a malicious one) would hold every slot and make
//! everyone else wait, then get 503. A user takes a slot of their share before a slot of
//! the global bound, so a user who fills their share waits (and after `write_wait` gets 503)
//! without holding a global slot, and the others keep the rest.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::storage::{self, StorageError};

/// The shares of one kind of slot, one per user with a write in flight or waiting.
pub struct Shares {
    per_user: usize,
    wait: Duration,
    users: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// A slot of a user's share, given back when dropped.
pub struct Share {
    permit: Option<OwnedSemaphorePermit>,
    user: String,
    shares: Arc<Shares>,
}

impl Shares {
    pub fn new(per_user: usize, wait: Duration) -> Arc<Self> {
        Arc::new(Self {
            per_user: per_user.max(1),
            wait,
            users: Mutex::new(HashMap::new()),
        })
    }

    /// A slot of `user`'s share: waits up to `wait`, then `Busy` (503 with `Retry-After`).
    pub async fn take(self: &Arc<Self>, user: &str) -> Result<Share, StorageError> {
        let semaphore = self
            .users
            .lock()
            .expect("not poisoned")
            .entry(user.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_user)))
            .clone();
        let taken = storage::slot(self.wait, semaphore.acquire_owned()).await;
        match taken {
            Ok(permit) => Ok(Share {
                permit: Some(permit),
                user: user.to_owned(),
                shares: self.clone(),
            }),
            Err(e) => {
                self.forget_if_idle(user);
                Err(e)
            }
        }
    }

    /// Drops a user's entry once nothing of theirs is in flight or waiting, so that the map
    /// holds only active users.
    fn forget_if_idle(&self, user: &str) {
        let mut users = self.users.lock().expect("not poisoned");
        if let Some(s) = users.get(user)
            && Arc::strong_count(s) == 1
            && s.available_permits() == self.per_user
        {
            users.remove(user);
        }
    }

    /// Users with a write in flight or waiting.
    #[cfg(test)]
    fn active(&self) -> usize {
        self.users.lock().expect("not poisoned").len()
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        drop(self.permit.take());
        self.shares.forget_if_idle(&self.user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_user_who_fills_their_share_waits_and_the_others_do_not() {
        let shares = Shares::new(2, Duration::from_millis(50));
        let a1 = shares.take("alice").await.unwrap();
        let _a2 = shares.take("alice").await.unwrap();
        assert!(matches!(shares.take("alice").await, Err(StorageError::Busy)));
        let b = shares.take("bob").await.unwrap();
        assert_eq!(shares.active(), 2);
        // A slot given back is alice's again.
        drop(a1);
        let _a3 = shares.take("alice").await.unwrap();
        drop(b);
        assert_eq!(shares.active(), 1, "bob has nothing in flight");
    }

    #[tokio::test]
    async fn a_waiting_user_is_not_forgotten() {
        let shares = Shares::new(1, Duration::from_secs(5));
        let first = shares.take("alice").await.unwrap();
        let waiting = {
            let shares = shares.clone();
            tokio::spawn(async move { shares.take("alice").await.map(|_| ()) })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(first);
        waiting.await.unwrap().unwrap();
        assert_eq!(shares.active(), 0);
    }
}
