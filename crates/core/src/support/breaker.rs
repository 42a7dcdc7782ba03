//! One failing upstream costs one call per window, not one per request.
//!
//! When Clerk or Convex is down (a timeout, a 5xx, a 429), every request that reaches it would
//! otherwise wait out its own failing call: a burst of N requests is N serial failures, and N more
//! calls against a service that is already struggling. A `Breaker` per service remembers the
//! failure for a short window (longer if the service sent `Retry-After`) and answers the same error
//! at once meanwhile. When the window ends, exactly one request probes; the others keep failing
//! fast until the probe says the service is back.
//!
//! Only outage-shaped errors trip it. A refusal that is about one request (a session that is not
//! active, a function that threw) says the service is up. For Clerk's template tokens the caller
//! decides first (`clerk_refusal::decide`): a refusal of one session, and a 429 one session got,
//! are remembered for that session and reach the breaker as answers; only timeouts, 5xx and a 429
//! while several distinct sessions are throttled reach it as failures.
//!
//! Calls already in flight when the outage starts are not recalled: the window starts at the first
//! failure that comes back. Concurrent calls for the same key are coalesced before they reach here
//! (the caches' single-flight).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How long a failure is remembered when the service does not say.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(5);
/// The most a `Retry-After` can stretch the window.
const MAX_WINDOW: Duration = Duration::from_secs(60);
/// A probe that has not reported back in this long (its request was dropped) lets another go.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
enum Phase {
    Closed,
    /// Failing fast until `until`.
    Open {
        until: Instant,
        error: Error,
    },
    /// One probe is out; the rest fail fast with the last error.
    Probing {
        since: Instant,
        error: Error,
    },
}

/// What to do with a call now.
#[derive(Debug)]
enum Admit {
    Go,
    Probe,
    Refuse(Error),
}

/// Whether an error says the service itself is failing.
pub fn is_outage(e: &Error) -> bool {
    matches!(e, Error::ClerkUnavailable(_) | Error::ClerkRateLimited { .. } | Error::ConvexUnavailable(_))
}

/// The pure decision for a call arriving at `now`.
fn admit(phase: &Phase, now: Instant) -> Admit {
    match phase {
        Phase::Closed => Admit::Go,
        Phase::Open { until, error } if now < *until => Admit::Refuse(fail_fast(error, *until - now)),
        Phase::Open { .. } => Admit::Probe,
        Phase::Probing { since, .. } if now.saturating_duration_since(*since) >= PROBE_TIMEOUT => Admit::Probe,
        Phase::Probing { error, .. } => Admit::Refuse(fail_fast(error, Duration::from_secs(1))),
    }
}

/// The phase after a call that was let through finished with `result`.
fn after(result: std::result::Result<(), &Error>, now: Instant, window: Duration) -> Phase {
    match result {
        Err(e) if is_outage(e) => {
            let asked = match e {
                Error::ClerkRateLimited { retry_after_secs } => Duration::from_secs(*retry_after_secs).min(MAX_WINDOW),
                _ => Duration::ZERO,
            };
            Phase::Open { until: now + window.max(asked), error: e.clone() }
        }
        _ => Phase::Closed,
    }
}

/// The remembered error, as told to a request that did not make the call: same status and code,
/// and for a rate limit the time actually left.
fn fail_fast(error: &Error, left: Duration) -> Error {
    let left_secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    match error {
        Error::ClerkRateLimited { .. } => Error::ClerkRateLimited { retry_after_secs: left_secs.max(1) },
        Error::ClerkUnavailable(m) => Error::ClerkUnavailable(format!("{m} (failing fast for {left_secs}s)")),
        Error::ConvexUnavailable(m) => Error::ConvexUnavailable(format!("{m} (failing fast for {left_secs}s)")),
        other => other.clone(),
    }
}

pub struct Breaker {
    window: Duration,
    phase: Mutex<Phase>,
}

impl Breaker {
    pub fn new(window: Duration) -> Breaker {
        Breaker { window, phase: Mutex::new(Phase::Closed) }
    }

    fn with_phase<T>(&self, f: impl FnOnce(&mut Phase) -> T) -> T {
        // A poisoned lock only means a panic elsewhere mid-update; the phase is still a valid value.
        f(&mut self.phase.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Run `call` unless the service is known to be down; remember how it went.
    pub async fn call<T>(&self, call: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        let now = Instant::now();
        let probing = self.with_phase(|phase| match admit(phase, now) {
            Admit::Go => Ok(false),
            Admit::Probe => {
                let error = match phase {
                    Phase::Open { error, .. } | Phase::Probing { error, .. } => error.clone(),
                    Phase::Closed => Error::Internal("probe without a failure".into()),
                };
                *phase = Phase::Probing { since: now, error };
                Ok(true)
            }
            Admit::Refuse(e) => Err(e),
        })?;
        // A probe dropped before it reports (the request went away) reopens the window at once,
        // so the next call probes instead of waiting out PROBE_TIMEOUT.
        let mut guard = ProbeGuard { breaker: self, armed: probing };
        let result = call.await;
        guard.armed = false;
        let next = after(result.as_ref().map(|_| ()), Instant::now(), self.window);
        self.with_phase(|phase| match (&*phase, &next) {
            // A slow success from before the outage must not close a breaker another call opened.
            (Phase::Open { .. } | Phase::Probing { .. }, Phase::Closed) if !probing => {}
            _ => *phase = next,
        });
        result
    }

    /// True while calls are refused without being made (tests and diagnostics).
    pub fn is_open(&self) -> bool {
        self.with_phase(|phase| !matches!(phase, Phase::Closed))
    }
}

struct ProbeGuard<'a> {
    breaker: &'a Breaker,
    armed: bool,
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.breaker.with_phase(|phase| {
                if let Phase::Probing { error, .. } = phase {
                    *phase = Phase::Open { until: Instant::now(), error: error.clone() };
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn down() -> Error {
        Error::ConvexUnavailable("HTTP 503".into())
    }

    #[test]
    fn decision_table() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let open = Phase::Open { until: t0 + s(5), error: down() };
        let probing = Phase::Probing { since: t0, error: down() };
        let cases: Vec<(&Phase, Instant, &str)> = vec![
            (&Phase::Closed, t0, "go"),
            (&open, t0, "refuse"),
            (&open, t0 + s(4), "refuse"),
            (&open, t0 + s(5), "probe"),
            (&probing, t0 + s(1), "refuse"),
            (&probing, t0 + s(29), "refuse"),
            (&probing, t0 + s(30), "probe"),
        ];
        for (phase, now, want) in cases {
            let got = match admit(phase, now) {
                Admit::Go => "go",
                Admit::Probe => "probe",
                Admit::Refuse(e) => {
                    assert_eq!(e.code(), "convex_unavailable");
                    "refuse"
                }
            };
            assert_eq!(got, want, "{phase:?} at +{:?}", now - t0);
        }
    }

    #[test]
    fn what_trips_and_for_how_long() {
        let t0 = Instant::now();
        let w = DEFAULT_WINDOW;
        let until = |p: Phase| match p {
            Phase::Open { until, .. } => Some(until - t0),
            _ => None,
        };
        assert_eq!(until(after(Ok(()), t0, w)), None);
        assert_eq!(until(after(Err(&down()), t0, w)), Some(w));
        assert_eq!(until(after(Err(&Error::ClerkUnavailable("x".into())), t0, w)), Some(w));
        let limited = |secs| Error::ClerkRateLimited { retry_after_secs: secs };
        assert_eq!(until(after(Err(&limited(2)), t0, w)), Some(w));
        assert_eq!(until(after(Err(&limited(30)), t0, w)), Some(Duration::from_secs(30)));
        // A hostile Retry-After cannot park the service for a day (nor overflow).
        assert_eq!(until(after(Err(&limited(u64::MAX)), t0, w)), Some(MAX_WINDOW));
        // Per-request refusals say the service is up.
        for e in [Error::SessionNotFound, Error::ConvexFunction("threw".into()), Error::ConvexAuthRejected("x".into())]
        {
            assert_eq!(until(after(Err(&e), t0, w)), None, "{e:?}");
        }
        // A rate limit told to a request that did not make the call carries the time left.
        match fail_fast(&limited(30), Duration::from_millis(12_300)) {
            Error::ClerkRateLimited { retry_after_secs } => assert_eq!(retry_after_secs, 13),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_burst_during_an_outage_makes_one_call_per_window() {
        let breaker = Arc::new(Breaker::new(Duration::from_millis(300)));
        let calls = Arc::new(AtomicUsize::new(0));
        let failing = |calls: Arc<AtomicUsize>| async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Err::<(), _>(down())
        };
        // The first failure opens it; 50 serial and 50 concurrent requests then make no call.
        assert!(breaker.call(failing(calls.clone())).await.is_err());
        for _ in 0..50 {
            let e = breaker.call(failing(calls.clone())).await.unwrap_err();
            assert_eq!(e.code(), "convex_unavailable");
        }
        let burst: Vec<_> = (0..50)
            .map(|_| {
                let (b, c) = (breaker.clone(), calls.clone());
                tokio::spawn(async move { b.call(failing(c)).await })
            })
            .collect();
        for t in burst {
            assert!(t.await.unwrap().is_err());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // After the window: one probe among a concurrent burst, then closed once it succeeds.
        tokio::time::sleep(Duration::from_millis(320)).await;
        let ok = |calls: Arc<AtomicUsize>| async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok::<_, Error>(7)
        };
        let burst: Vec<_> = (0..20)
            .map(|_| {
                let (b, c) = (breaker.clone(), calls.clone());
                tokio::spawn(async move { b.call(ok(c)).await })
            })
            .collect();
        let mut succeeded = 0;
        for t in burst {
            succeeded += usize::from(t.await.unwrap().is_ok());
        }
        assert_eq!((calls.load(Ordering::SeqCst), succeeded), (2, 1));
        assert!(!breaker.is_open());
        assert_eq!(breaker.call(ok(calls.clone())).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn a_dropped_probe_lets_the_next_call_probe() {
        let breaker = Breaker::new(Duration::from_millis(1));
        assert!(breaker.call(async { Err::<(), _>(down()) }).await.is_err());
        tokio::time::sleep(Duration::from_millis(5)).await;
        // The probe's request goes away mid-call.
        let probe = breaker.call(async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, Error>(())
        });
        assert!(tokio::time::timeout(Duration::from_millis(20), probe).await.is_err());
        assert_eq!(breaker.call(async { Ok::<_, Error>(1) }).await.unwrap(), 1);
        assert!(!breaker.is_open());
    }
}
