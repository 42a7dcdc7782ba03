//! What lives across requests, built once per configuration: the HTTP clients, the key store, the
//! caches, telemetry. Also the identity and Convex steps that GET and POST share.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::{extract_token, Identity, KeyStore};
use crate::blob::BlobClient;
use crate::cache::TtlCache;
use crate::clerk::ClerkClient;
use crate::clock::now_secs;
use crate::config::{Config, KeySource};
use crate::convex::{parse_session, ConvexClient, SessionDoc};
use crate::error::{AuthFailure, Error, Result};
use crate::telemetry::{RecordSink, Telemetry, Trace};
use crate::upstream::UpstreamClient;

/// Most session lookups and template tokens held at once.
const CACHE_ENTRIES: u64 = 10_000;

pub struct State {
    pub config: Config,
    keys: KeyStore,
    clerk: Arc<ClerkClient>,
    pub(crate) convex: ConvexClient,
    pub(crate) upstream: UpstreamClient,
    lookups: TtlCache<(String, String), SessionDoc>,
    /// Clerk session → the `exp` of the last session token verified for it: how long a refusal of
    /// that session is remembered (`clerk_refusal`).
    session_exp: moka::sync::Cache<String, i64>,
    /// An error until `BLOB_READ_WRITE_TOKEN` is configured: GET works without it, POST answers 503.
    blob: std::result::Result<BlobClient, Error>,
    /// Client-upload completions take turns per (session, blob) (`turns`).
    pub(crate) completions: crate::turns::Turns,
    pub telemetry: Arc<Telemetry>,
}

impl State {
    pub fn new(config: Config, on_record: Option<RecordSink>) -> Result<State> {
        if config.host_policy.allow_loopback() {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                tracing::warn!(target: "session_audio", "SESSION_AUDIO_ALLOW_LOOPBACK_UPSTREAM is on: http://127.0.0.1 / localhost audio URLs listed in SESSION_AUDIO_TRUSTED_HOSTS are allowed. Never enable this in production.");
                // Also when logging is off: this must not go unnoticed.
                eprintln!("session-audio: SESSION_AUDIO_ALLOW_LOOPBACK_UPSTREAM is on (tests and local development only)");
            });
        }
        let telemetry = Arc::new(Telemetry::new(&config.telemetry, on_record));
        // One client for the services we trust by configuration (Clerk, Convex), pooled; a separate
        // guarded client for the URLs that come from data. Neither reads proxies from the
        // environment: an inherited HTTP(S)_PROXY must not be able to redirect our traffic.
        let services = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .user_agent(crate::USER_AGENT)
            .build()
            .map_err(|e| Error::Internal(format!("http client: {e}")))?;
        let clerk = Arc::new(ClerkClient::new(
            services.clone(),
            config.clerk_api_url.clone(),
            config.clerk_secret_key.clone(),
            config.convex_template.clone(),
        ));
        let keys = match &config.key_source {
            KeySource::Pem(key) => KeyStore::pem(key.clone()),
            KeySource::Jwks => KeyStore::jwks(clerk.jwks_fetch()),
        }
        .accepting_pending(config.accept_pending_sessions);
        let convex = ConvexClient::new(services, &config.convex_url);
        let upstream = UpstreamClient::new(config.host_policy.allow_loopback(), config.upstream_timeout)?;
        let blob = match &config.store {
            None => Err(Error::ConfigMissing(
                "BLOB_READ_WRITE_TOKEN is not set (the Vercel Blob read-write token uploads are stored with)".into(),
            )),
            Some(store) => {
                // Uploads stream for as long as the client sends: no whole-request timeout here.
                let http = reqwest::Client::builder()
                    .no_proxy()
                    .connect_timeout(Duration::from_secs(10))
                    .user_agent(crate::USER_AGENT)
                    .build()
                    .map_err(|e| Error::Internal(format!("blob client: {e}")))?;
                Ok(BlobClient::new(http, store, config.upstream_timeout))
            }
        };
        // Session tokens live a minute by default; an hour bounds what an unusual instance holds.
        let session_exp =
            moka::sync::Cache::builder().max_capacity(CACHE_ENTRIES).time_to_live(Duration::from_secs(3600)).build();
        Ok(State {
            keys,
            clerk,
            convex,
            upstream,
            lookups: TtlCache::new(CACHE_ENTRIES),
            session_exp,
            blob,
            completions: crate::turns::Turns::default(),
            telemetry,
            config,
        })
    }

    /// The Blob client, or the 503 that says which setting it lacks.
    pub fn blob(&self) -> Result<&BlobClient> {
        self.blob.as_ref().map_err(Clone::clone)
    }

    /// Who is calling: the Clerk session token, verified.
    pub async fn authenticate(&self, headers: &[(String, String)], trace: &Trace) -> Result<Identity> {
        let (who, exp) = trace
            .phase("auth", async {
                let token = extract_token(headers).ok_or(Error::Unauthenticated(AuthFailure::Missing))?;
                self.keys.verify_with_exp(&token, now_secs(), &self.config.authorized_parties).await
            })
            .await?;
        self.session_exp.insert(who.session_id.clone(), exp);
        trace.set_user(&who.user_id);
        Ok(who)
    }

    /// The caller's Convex token (the Clerk JWT template), cached until shortly before it expires;
    /// a refusal of the session, until its session token expires.
    pub async fn convex_token(&self, who: &Identity, trace: &Trace) -> Result<String> {
        let exp = self.session_exp.get(&who.session_id);
        trace.phase("token", self.clerk.template_token(&who.session_id, now_secs(), exp)).await
    }

    /// The caller's session, from cache for a few seconds (GET: the audio URL does not change
    /// while a session is played). A foreign session is indistinguishable from a missing one.
    pub async fn cached_session(&self, who: &Identity, session_id: &str, trace: &Trace) -> Result<SessionDoc> {
        let key = (who.user_id.clone(), session_id.to_string());
        let doc = self
            .lookups
            .get_or_fill(&key, || async {
                let doc = self.fresh_session(who, session_id, trace).await?;
                Ok((doc, self.config.lookup_ttl))
            })
            .await?;
        // The key holds the user, but check the document itself all the same.
        owned_by(doc, who)
    }

    /// The caller's session as Convex has it now (POST: its state decides).
    pub async fn fresh_session(&self, who: &Identity, session_id: &str, trace: &Trace) -> Result<SessionDoc> {
        let args = serde_json::json!({ "sessionId": session_id });
        let value = self.query_as(who, &self.config.get_query, args, "lookup", trace).await?;
        owned_by(parse_session(value)?.ok_or(Error::SessionNotFound)?, who)
    }

    /// The session re-read after an attach whose answer was lost or unclear: past the breaker, since
    /// whether a stored upload is deleted depends on it (`attach::settle`).
    pub async fn reread_session(&self, who: &Identity, session_id: &str, trace: &Trace) -> Result<SessionDoc> {
        let args = serde_json::json!({ "sessionId": session_id });
        let path = &self.config.get_query;
        let value =
            self.as_caller(who, "reread", trace, |token| async move {
                self.convex.query_unguarded(path, args, &token).await
            })
            .await?;
        owned_by(parse_session(value)?.ok_or(Error::SessionNotFound)?, who)
    }

    /// Drop a cached lookup (the session just changed).
    pub async fn forget_session(&self, user_id: &str, session_id: &str) {
        self.lookups.invalidate(&(user_id.to_string(), session_id.to_string())).await;
    }

    /// Run a query as the caller, timed as `phase`.
    pub async fn query_as(
        &self,
        who: &Identity,
        path: &str,
        args: serde_json::Value,
        phase: &'static str,
        trace: &Trace,
    ) -> Result<serde_json::Value> {
        self.as_caller(who, phase, trace, |token| async move { self.convex.query(path, args, &token).await }).await
    }

    /// Run a mutation as the caller, timed as `phase`.
    pub async fn mutation_as(
        &self,
        who: &Identity,
        path: &str,
        args: serde_json::Value,
        phase: &'static str,
        trace: &Trace,
    ) -> Result<crate::convex::Outcome> {
        self.as_caller(who, phase, trace, |token| async move { self.convex.mutation(path, args, &token).await }).await
    }

    /// A Convex call with the caller's token, timed as `phase`. A token Convex refuses is
    /// forgotten, so the next request mints a fresh one.
    async fn as_caller<T, Fut>(
        &self,
        who: &Identity,
        phase: &'static str,
        trace: &Trace,
        call: impl FnOnce(String) -> Fut,
    ) -> Result<T>
    where
        Fut: std::future::Future<Output = Result<T>>,
    {
        let token = self.convex_token(who, trace).await?;
        let result = trace.phase(phase, call(token)).await;
        if let Err(Error::ConvexAuthRejected(_)) = &result {
            self.clerk.forget(&who.session_id).await;
        }
        result
    }
}

fn owned_by(doc: SessionDoc, who: &Identity) -> Result<SessionDoc> {
    if doc.user_id == who.user_id {
        Ok(doc)
    } else {
        Err(Error::SessionNotFound)
    }
}
