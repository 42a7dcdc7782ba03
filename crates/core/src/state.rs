//! What lives across requests, built once per configuration: the services (`identity`: who is
//! calling; `sessions`: Convex as the caller; `completions`: client-upload completions), the audio
//! storage client, the Blob connection pool, telemetry. What State does itself: hand out this
//! request's Blob client (`blob`) and say once per episode that Convex refuses the route's attach.

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::convex::client::ConvexClient;
use crate::convex::Sessions;
use crate::error::{Error, Result};
use crate::identity::Identity;
use crate::playback::upstream::UpstreamClient;
use crate::storage::blob::BlobClient;
use crate::telemetry::{RecordSink, Telemetry};
use crate::upload::flows::complete::Completions;

/// Most session lookups held at once.
const CACHE_ENTRIES: u64 = 10_000;
/// Most blob measurements held at once (completions in flight, not history).
const MEASURED_ENTRIES: u64 = 1_000;

pub struct State {
    pub config: Config,
    /// Who is calling, and the caller's Convex token (`identity/`).
    pub identity: Arc<Identity>,
    /// The caller's session and every Convex call made as the caller (`convex/`).
    pub sessions: Sessions,
    /// Client-upload completions: one per blob at a time, each blob measured once (`upload/flows`).
    pub completions: Completions,
    pub(crate) upstream: UpstreamClient,
    /// The Blob client's connection pool, or the 503 of a deployment without a Blob store (neither
    /// `BLOB_STORE_ID` nor a read-write token): GET works without it, POST answers 503.
    blob: std::result::Result<reqwest::Client, Error>,
    /// Whether Convex is refusing the route's own attach (`attach_refused`): said once per episode.
    attach_refusing: std::sync::atomic::AtomicBool,
    pub telemetry: Arc<Telemetry>,
}

impl State {
    pub fn new(config: Config, on_record: Option<RecordSink>) -> Result<State> {
        if config.host_policy.allow_loopback() {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                tracing::warn!(target: "session_audio", "SESSION_AUDIO_ALLOW_LOOPBACK_UPSTREAM is on: http://127.0.0.1 / localhost audio URLs listed in SESSION_AUDIO_TRUSTED_HOSTS are allowed. Never enable this in production.");
                // Also when logging is off: this must not go unnoticed. Not `eprintln!`, which panics
                // when stderr refuses the write (a full pipe): a warning must never fail a request.
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr(),
                    "session-audio: SESSION_AUDIO_ALLOW_LOOPBACK_UPSTREAM is on (tests and local development only)"
                );
            });
        }
        let telemetry = Arc::new(Telemetry::new(&config.telemetry, on_record));
        // One client for the services we trust by configuration (Clerk, Convex), pooled; a separate
        // guarded client for the URLs that come from data. Neither reads proxies from the
        // environment: an inherited HTTP(S)_PROXY must not be able to redirect our traffic.
        let services = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .timeout(config.service_timeout)
            .user_agent(crate::USER_AGENT)
            .build()
            .map_err(|e| Error::Internal(format!("http client: {e}")))?;
        let identity = Arc::new(Identity::new(&config, services.clone()));
        let convex = ConvexClient::new(services, &config.convex_url);
        let sessions =
            Sessions::new(convex, identity.clone(), CACHE_ENTRIES, config.lookup_ttl, config.get_query.clone());
        let upstream = UpstreamClient::new(config.host_policy.allow_loopback(), config.upstream_timeout)?;
        let blob = match &config.store {
            None => Err(crate::storage::store::unresolved_error(crate::storage::store::Unresolved::Nothing)),
            Some(_) => {
                // Uploads stream for as long as the client sends: no whole-request timeout here.
                let http = reqwest::Client::builder()
                    .no_proxy()
                    .connect_timeout(Duration::from_secs(10))
                    .user_agent(crate::USER_AGENT)
                    .build()
                    .map_err(|e| Error::Internal(format!("blob client: {e}")))?;
                Ok(http)
            }
        };
        Ok(State {
            identity,
            sessions,
            completions: Completions::new(MEASURED_ENTRIES),
            upstream,
            blob,
            attach_refusing: std::sync::atomic::AtomicBool::new(false),
            telemetry,
            config,
        })
    }

    /// Convex refused the route's own signed attach: the two sides are set up apart (the secret
    /// differs, or the store or bounds). Said loudly once per episode (until an attach works
    /// again), not per request: the requests answer 503 unreported, their uploads kept.
    pub fn attach_refused(&self, error: &Error) {
        let why = match error {
            Error::AttachSecretMismatch => "secret mismatch: the Convex deployment refuses this route's attach signature. Set SESSION_AUDIO_CONVEX_SECRET to the same value here and in the Convex deployment (npx convex env set).",
            Error::AttachConfigMismatch(_) => "configuration mismatch: the Convex deployment refuses audio this route accepted. Its SESSION_AUDIO_BLOB_STORE_ID / SESSION_AUDIO_BLOB_HOSTS must name this route's Blob store.",
            _ => return,
        };
        if !self.attach_refusing.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::error!(target: "session_audio", code = error.code(),
                "{why} Uploads are kept and answered 503 until then; said once until an attach works again.");
        }
    }

    /// An attach went through: a later refusal of the route's attach is a new episode.
    pub fn attach_works(&self) {
        self.attach_refusing.store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// The Blob client for this request, with the credential that applies to it (OIDC tokens are
    /// read per request and never kept past it), or the 503 that says what is missing.
    pub fn blob(&self, req: &crate::http::request::Request) -> Result<BlobClient> {
        let http = self.blob.as_ref().map_err(Clone::clone)?;
        let store = self.config.store.as_ref().ok_or_else(|| Error::Internal("blob client without a store".into()))?;
        let credential = self.credential(store, req)?;
        Ok(BlobClient::new(http.clone(), store, self.config.upstream_timeout, credential))
    }

    /// This request's Blob credential (`Store::credential_for`), with its OIDC token from the
    /// `x-vercel-oidc-token` header only where the platform sets it (`trust_oidc_header`).
    pub(crate) fn credential(
        &self,
        store: &crate::storage::store::Store,
        req: &crate::http::request::Request,
    ) -> Result<crate::storage::store::Credential> {
        let oidc = crate::http::request::oidc_token(req, self.config.trust_oidc_header);
        store.credential_for(oidc, crate::support::clock::now_ms())
    }
}
