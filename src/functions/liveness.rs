//! Reads of container groups' state, shared by the creates of this instance.
//!
//! At `MAX_RUNNERS`, each waiting create must know which listed groups still run (the list has
//! no instance view). A batch of creates waiting at once would each read the same groups; here
//! a read that began after a create's own list began is as good as the create's own read, so
//! the batch shares it (a read under way is awaited, not repeated). A group read as ended stays
//! ended (a container group of ours never runs again once its container exited), so it is
//! never read twice. The sweeper's reads are recorded too.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::OnceCell;

/// What this instance read of each group lately, by name.
#[derive(Debug, Default)]
pub struct Liveness {
    reads: Mutex<HashMap<String, Arc<Read>>>,
}

#[derive(Debug)]
struct Read {
    /// When the read began.
    began: Instant,
    /// Live (`true`), or ended or gone (`false`), once read.
    live: OnceCell<bool>,
}

impl Liveness {
    /// Is `name` live, as read after `since` (or ended at any time)? Reads it with `get` when
    /// nothing recorded is fresh enough, sharing a read under way. A failed read is not recorded:
    /// the next asker reads again.
    pub async fn live<F, Fut, E>(&self, name: &str, since: Instant, get: F) -> Result<bool, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<bool, E>>,
    {
        let read = {
            let mut reads = self.reads.lock().unwrap_or_else(PoisonError::into_inner);
            match reads.get(name) {
                Some(r) if r.live.get() == Some(&false) || r.began >= since => r.clone(),
                _ => {
                    let r = Arc::new(Read {
                        began: Instant::now(),
                        live: OnceCell::new(),
                    });
                    reads.insert(name.to_string(), r.clone());
                    r
                }
            }
        };
        read.live.get_or_try_init(get).await.copied()
    }

    /// A read of `name` that began at `began` said it is live or not.
    pub fn record(&self, name: &str, live: bool, began: Instant) {
        let mut reads = self.reads.lock().unwrap_or_else(PoisonError::into_inner);
        if reads.get(name).is_some_and(|r| r.began > began || r.live.get() == Some(&false)) {
            return;
        }
        reads.insert(
            name.to_string(),
            Arc::new(Read {
                began,
                live: OnceCell::new_with(Some(live)),
            }),
        );
    }

    /// Forgets every name not listed (its group was deleted; the name may be made anew).
    pub fn keep_only(&self, listed: &[&str]) {
        self.reads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|n, _| listed.contains(&n.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    async fn ask(l: &Liveness, name: &str, since: Instant, answer: Result<bool, ()>, reads: &AtomicUsize) -> Result<bool, ()> {
        l.live(name, since, || async {
            reads.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            answer
        })
        .await
    }

    #[tokio::test]
    async fn creates_whose_lists_began_before_a_read_share_it() {
        let l = Liveness::default();
        let reads = AtomicUsize::new(0);
        let listed = Instant::now();
        let all = futures::future::join_all((0..8).map(|_| ask(&l, "g", listed, Ok(true), &reads))).await;
        assert!(all.iter().all(|r| *r == Ok(true)));
        assert_eq!(reads.load(Ordering::SeqCst), 1, "one read for the batch");
    }

    #[tokio::test]
    async fn a_live_read_older_than_the_list_is_read_again() {
        let l = Liveness::default();
        let reads = AtomicUsize::new(0);
        ask(&l, "g", Instant::now(), Ok(true), &reads).await.unwrap();
        let later = Instant::now() + Duration::from_millis(1);
        assert_eq!(
            ask(&l, "g", later, Ok(false), &reads).await,
            Ok(false),
            "the container exited since"
        );
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_ended_group_is_never_read_again() {
        let l = Liveness::default();
        let reads = AtomicUsize::new(0);
        ask(&l, "g", Instant::now(), Ok(false), &reads).await.unwrap();
        let later = Instant::now() + Duration::from_secs(3600);
        assert_eq!(ask(&l, "g", later, Ok(true), &reads).await, Ok(false));
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        l.keep_only(&[]);
        assert_eq!(
            ask(&l, "g", later, Ok(true), &reads).await,
            Ok(true),
            "a name gone from the list is forgotten"
        );
    }

    #[tokio::test]
    async fn a_failed_read_is_not_remembered() {
        let l = Liveness::default();
        let reads = AtomicUsize::new(0);
        let listed = Instant::now();
        assert_eq!(ask(&l, "g", listed, Err(()), &reads).await, Err(()));
        assert_eq!(ask(&l, "g", listed, Ok(true), &reads).await, Ok(true));
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn the_sweepers_reads_count() {
        let l = Liveness::default();
        let reads = AtomicUsize::new(0);
        let listed = Instant::now();
        l.record("g", true, listed);
        assert_eq!(ask(&l, "g", listed, Ok(false), &reads).await, Ok(true));
        assert_eq!(reads.load(Ordering::SeqCst), 0);
    }
}
