//! A small TTL cache whose concurrent misses for one key wait for a single fill (single-flight).
//!
//! Each key owns an async mutex: the first caller to miss holds it while it fills, the others wait
//! on it and then find the fresh value. Entries are pruned lazily when the map grows.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Slot<V> = Arc<tokio::sync::Mutex<Option<(V, Instant)>>>;

pub struct TtlCache<K, V> {
    slots: Mutex<HashMap<K, Slot<V>>>,
    max_entries: usize,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    pub fn new(max_entries: usize) -> Self {
        TtlCache { slots: Mutex::new(HashMap::new()), max_entries }
    }

    fn slot(&self, key: &K) -> Slot<V> {
        // A poisoned lock only means another thread panicked mid-insert; the map is still usable.
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if slots.len() >= self.max_entries && !slots.contains_key(key) {
            let now = Instant::now();
            slots.retain(|_, s| match s.try_lock() {
                Ok(guard) => guard.as_ref().is_some_and(|(_, until)| *until > now),
                Err(_) => true, // being filled right now
            });
            if slots.len() >= self.max_entries {
                slots.clear();
            }
        }
        slots.entry(key.clone()).or_default().clone()
    }

    /// The cached value, or the result of `fill`, which returns the value and how long it may be
    /// reused. Errors are not cached.
    pub async fn get_or_fill<E, F, Fut>(&self, key: &K, fill: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(V, Duration), E>>,
    {
        let slot = self.slot(key);
        let mut guard = slot.lock().await;
        if let Some((v, until)) = guard.as_ref() {
            if *until > Instant::now() {
                return Ok(v.clone());
            }
        }
        let (v, ttl) = fill().await?;
        if !ttl.is_zero() {
            *guard = Some((v.clone(), Instant::now() + ttl));
        }
        Ok(v)
    }

    pub fn invalidate(&self, key: &K) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_misses_fill_once() {
        let cache = Arc::new(TtlCache::<String, u32>::new(100));
        let fills = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (cache, fills) = (cache.clone(), fills.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_fill(&"k".to_string(), || async {
                        fills.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok::<_, ()>((7, Duration::from_secs(60)))
                    })
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), Ok(7));
        }
        assert_eq!(fills.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn expired_and_invalidated_entries_refill_and_errors_are_not_cached() {
        let cache = TtlCache::<u8, u32>::new(100);
        let v = cache.get_or_fill(&1, || async { Ok::<_, ()>((1, Duration::from_millis(1))) }).await;
        assert_eq!(v, Ok(1));
        tokio::time::sleep(Duration::from_millis(5)).await;
        let v = cache.get_or_fill(&1, || async { Ok::<_, ()>((2, Duration::from_secs(60))) }).await;
        assert_eq!(v, Ok(2));
        cache.invalidate(&1);
        let v = cache.get_or_fill(&1, || async { Err::<(u32, Duration), _>("down") }).await;
        assert_eq!(v, Err("down"));
        let v = cache.get_or_fill(&1, || async { Ok::<_, ()>((3, Duration::from_secs(60))) }).await;
        assert_eq!(v, Ok(3));
    }

    #[tokio::test]
    async fn map_stays_bounded() {
        let cache = TtlCache::<u32, u32>::new(8);
        for k in 0..100 {
            cache.get_or_fill(&k, || async { Ok::<_, ()>((k, Duration::from_secs(60))) }).await.unwrap();
        }
        assert!(cache.slots.lock().unwrap().len() <= 8);
    }
}
