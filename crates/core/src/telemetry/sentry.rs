//! Sentry events over our own HTTP client: a bounded queue and one background thread, so capturing
//! never blocks a request and a Sentry outage changes nothing for users.
//!
//! Why not the `sentry` crate's `ReqwestHttpTransport`: it is built on reqwest 0.13 with its blocking
//! client, a second HTTP stack beside ours (0.12), and it reads proxies from the environment, which
//! nothing else here does. What it does well we take from the crate itself: its `RateLimiter`, fed
//! from Sentry's `X-Sentry-Rate-Limits` / `Retry-After` / `429`, so a rate-limited project is left
//! alone until Sentry says otherwise.

use std::sync::Arc;
use std::time::Duration;

use sentry::transports::{RateLimiter, RateLimitingCategory};

/// Events waiting to be sent; past this (Sentry down or slow) new ones are dropped, not queued.
const QUEUE: usize = 64;

pub struct QueueTransport {
    tx: std::sync::mpsc::SyncSender<sentry::Envelope>,
}

impl QueueTransport {
    pub fn new(dsn: &sentry::types::Dsn) -> QueueTransport {
        let (tx, rx) = std::sync::mpsc::sync_channel::<sentry::Envelope>(QUEUE);
        let url = dsn.envelope_api_url().to_string();
        let auth = dsn.to_auth(Some(crate::USER_AGENT)).to_string();
        let spawned = std::thread::Builder::new().name("session-audio-sentry".into()).spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            // Everything, the client included, inside the runtime: reqwest needs its reactor.
            rt.block_on(async move {
                let Ok(http) = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build() else {
                    return;
                };
                let mut limits = RateLimiter::new();
                while let Ok(envelope) = rx.recv() {
                    // We send error events only: while Sentry limits them, they are dropped here.
                    if !limits.is_enabled(RateLimitingCategory::Error) {
                        continue;
                    }
                    let mut body = Vec::new();
                    if envelope.to_writer(&mut body).is_err() {
                        continue;
                    }
                    let sent = http
                        .post(&url)
                        .header("X-Sentry-Auth", &auth)
                        .header("Content-Type", "application/x-sentry-envelope")
                        .body(body)
                        .send()
                        .await;
                    // Failures are dropped: reporting must never become the problem.
                    if let Ok(resp) = sent {
                        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok());
                        if let Some(h) = header("x-sentry-rate-limits") {
                            limits.update_from_sentry_header(h);
                        } else if let Some(h) = header("retry-after") {
                            limits.update_from_retry_after(h);
                        } else if resp.status() == 429 {
                            limits.update_from_429();
                        }
                    }
                }
            });
        });
        if let Err(e) = spawned {
            tracing::warn!(target: "session_audio", "Sentry reporting is off: could not start its thread: {e}");
        }
        QueueTransport { tx }
    }
}

impl sentry::Transport for QueueTransport {
    fn send_envelope(&self, envelope: sentry::Envelope) {
        // Full queue (Sentry down or slow): drop the event rather than wait.
        if self.tx.try_send(envelope).is_err() {
            tracing::debug!(target: "session_audio", "Sentry queue full: event dropped");
        }
    }
}

/// A Sentry client for `dsn` (already parsed and checked by the configuration).
pub fn client(dsn: sentry::types::Dsn, environment: Option<String>) -> Arc<sentry::Client> {
    let transport = Arc::new(QueueTransport::new(&dsn));
    let mut options = sentry::ClientOptions::default();
    options.dsn = Some(dsn);
    options.release = Some(concat!("session-audio@", env!("CARGO_PKG_VERSION")).into());
    options.environment = environment.map(Into::into);
    options.default_integrations = false;
    options.send_default_pii = false;
    options.transport = Some(Arc::new(transport));
    options.before_send = Some(Arc::new(|mut event| {
        event.message = event.message.map(|m| super::scrub(&m));
        event.request = None; // never attach request data (headers carry tokens and cookies)
        Some(event)
    }));
    Arc::new(sentry::Client::from_config(options))
}
