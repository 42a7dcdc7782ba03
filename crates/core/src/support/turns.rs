//! One at a time per key, process-wide: concurrent client-upload completions for one (session,
//! blob) take turns, so the browser's event, Blob's webhook and any replays make one storage read
//! and one attach between them; the ones after the first find the session holding the blob and
//! are answered from its record.
//!
//! Entries live only while someone holds or waits for them (weak references, pruned on each
//! call), so the map is bounded by the completions in flight, not by history.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::OwnedMutexGuard;

#[derive(Default)]
pub struct Turns {
    map: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

impl Turns {
    /// Wait for `key`'s turn; it passes on when the guard is dropped.
    pub async fn take(&self, key: String) -> OwnedMutexGuard<()> {
        let lock = {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            map.retain(|_, w| w.strong_count() > 0);
            match map.get(&key).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    map.insert(key, Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, w| w.strong_count() > 0);
        map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn one_key_takes_turns_other_keys_do_not_wait_and_nothing_is_kept() {
        let turns = Arc::new(Turns::default());
        let first = turns.take("s1 a".into()).await;
        // Another key goes at once.
        let other = tokio::time::timeout(Duration::from_secs(1), turns.take("s1 b".into())).await;
        assert!(other.is_ok());
        drop(other);
        // The same key waits until the first is done.
        let t = turns.clone();
        let second = tokio::spawn(async move {
            let _g = t.take("s1 a".into()).await;
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!second.is_finished());
        drop(first);
        second.await.unwrap();
        assert_eq!(turns.len(), 0, "no entry outlives its holders");
    }
}
