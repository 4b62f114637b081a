//! The broker-wide bound on request bytes held in memory
//! (`queued.max.request.bytes`).
//!
//! Each connection bounds its own frames (`request-max-bytes`) and how many
//! requests it has in flight; this bounds their sum over every connection.
//! A connection reads a frame's length prefix, then takes that many bytes
//! from the budget before it reads the body; when the budget is spent it
//! waits without reading its socket (TCP back-pressure reaches the client)
//! until earlier requests have been answered and their bytes given back.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Request bytes the broker holds at once, over all connections.
pub struct RequestBudget {
    sem: Arc<Semaphore>,
    total: usize,
    /// Bytes granted now (not counting what waiters have reserved so far).
    held: Arc<AtomicUsize>,
    peak: AtomicUsize,
    waits: AtomicU64,
}

/// Bytes of one request, given back when dropped (after its response has
/// been written).
pub struct Held {
    _permit: OwnedSemaphorePermit,
    bytes: usize,
    held: Arc<AtomicUsize>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.held.fetch_sub(self.bytes, Relaxed);
    }
}

impl RequestBudget {
    pub fn new(total: usize) -> RequestBudget {
        let total = total.clamp(1, Semaphore::MAX_PERMITS);
        RequestBudget {
            sem: Arc::new(Semaphore::new(total)),
            total,
            held: Arc::new(AtomicUsize::new(0)),
            peak: AtomicUsize::new(0),
            waits: AtomicU64::new(0),
        }
    }

    /// Take `bytes` (at most the whole budget, at most u32::MAX) from the
    /// budget, waiting while it is spent.
    pub async fn take(&self, bytes: usize) -> Held {
        let n = bytes.clamp(1, self.total.min(u32::MAX as usize)) as u32;
        let permit = match self.sem.clone().try_acquire_many_owned(n) {
            Ok(p) => p,
            Err(_) => {
                self.waits.fetch_add(1, Relaxed);
                loop {
                    // The semaphore is never closed; an error cannot happen,
                    // but there is nothing better than to try again.
                    if let Ok(p) = self.sem.clone().acquire_many_owned(n).await {
                        break p;
                    }
                    tokio::task::yield_now().await;
                }
            }
        };
        let bytes = n as usize;
        let now = self.held.fetch_add(bytes, Relaxed) + bytes;
        self.peak.fetch_max(now, Relaxed);
        Held {
            _permit: permit,
            bytes,
            held: self.held.clone(),
        }
    }

    /// Bytes held now.
    pub fn in_use(&self) -> usize {
        self.held.load(Relaxed)
    }

    /// The most bytes ever held at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Relaxed)
    }

    /// Times a connection had to wait for the budget.
    pub fn waits(&self) -> u64 {
        self.waits.load(Relaxed)
    }

    pub fn total(&self) -> usize {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_spent_budget_makes_the_next_taker_wait_until_bytes_come_back() {
        let b = Arc::new(RequestBudget::new(1000));
        let first = b.take(700).await;
        assert_eq!(b.in_use(), 700);
        let b2 = b.clone();
        let waiter = tokio::spawn(async move { b2.take(400).await });
        // It cannot get its bytes while the first request holds them.
        assert!(tokio::time::timeout(Duration::from_millis(50), async {
            while b.waits() == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .is_ok());
        assert!(!waiter.is_finished());
        assert_eq!(b.in_use(), 700);
        drop(first);
        let second = waiter.await.unwrap();
        assert_eq!(b.in_use(), 400);
        assert_eq!(b.peak(), 700);
        assert_eq!(b.waits(), 1);
        drop(second);
        assert_eq!(b.in_use(), 0);
    }

    #[tokio::test]
    async fn a_request_larger_than_the_budget_takes_all_of_it() {
        let b = RequestBudget::new(100);
        let all = b.take(10_000).await;
        assert_eq!(b.in_use(), 100);
        drop(all);
        let tiny = b.take(0).await;
        assert_eq!(b.in_use(), 1);
        drop(tiny);
    }
}
