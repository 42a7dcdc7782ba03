//! A bounded cache whose entries each carry their own lifetime, and whose concurrent misses for one
//! key wait for a single fill (single-flight): moka's `try_get_with`. Used for Convex template tokens
//! (alive until shortly before their `exp`) and session lookups (a few seconds).
//!
//! Past `max_entries` moka evicts the least useful entries one by one; errors are never cached, so
//! the next caller after a failed fill tries again.

use std::future::Future;
use std::hash::Hash;
use std::time::{Duration, Instant};

pub struct TtlCache<K, V> {
    inner: moka::future::Cache<K, (V, Duration)>,
}

/// Each entry lives as long as its fill said.
struct FillTtl;

impl<K, V> moka::Expiry<K, (V, Duration)> for FillTtl {
    fn expire_after_create(&self, _: &K, value: &(V, Duration), _: Instant) -> Option<Duration> {
        Some(value.1)
    }
}

impl<K, V> TtlCache<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub fn new(max_entries: u64) -> Self {
        TtlCache { inner: moka::future::Cache::builder().max_capacity(max_entries).expire_after(FillTtl).build() }
    }

    /// The cached value, or the result of `fill`, which returns the value and how long it may be
    /// reused (zero: hand it to the callers waiting now, keep it for nobody after).
    pub async fn get_or_fill<E, F, Fut>(&self, key: &K, fill: F) -> Result<V, E>
    where
        E: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(V, Duration), E>>,
    {
        self.inner.try_get_with(key.clone(), fill()).await.map(|(v, _)| v).map_err(|e| (*e).clone())
    }

    pub async fn invalidate(&self, key: &K) {
        self.inner.invalidate(key).await;
    }

    /// Entries held, once pending evictions have run (tests and diagnostics).
    pub async fn held(&self) -> u64 {
        self.inner.run_pending_tasks().await;
        self.inner.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

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
        cache.invalidate(&1).await;
        let v = cache.get_or_fill(&1, || async { Err::<(u32, Duration), _>("down") }).await;
        assert_eq!(v, Err("down"));
        let v = cache.get_or_fill(&1, || async { Ok::<_, ()>((3, Duration::from_secs(60))) }).await;
        assert_eq!(v, Ok(3));
        // A zero lifetime is not kept.
        let v = cache.get_or_fill(&2, || async { Ok::<_, ()>((4, Duration::ZERO)) }).await;
        assert_eq!(v, Ok(4));
        let v = cache.get_or_fill(&2, || async { Ok::<_, ()>((5, Duration::ZERO)) }).await;
        assert_eq!(v, Ok(5));
    }

    #[tokio::test]
    async fn size_stays_bounded_without_clearing_everything() {
        let cache = TtlCache::<u32, u32>::new(64);
        for k in 0..1000 {
            cache.get_or_fill(&k, || async { Ok::<_, ()>((k, Duration::from_secs(60))) }).await.unwrap();
        }
        let held = cache.held().await;
        assert!(held <= 64 && held > 16, "{held}");
    }
}
