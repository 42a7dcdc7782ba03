//! The caller's listening session and every Convex call made as the caller: the lookup (cached
//! briefly for GET, fresh for uploads), the re-read that settles an unclear attach, and the
//! query/mutation helpers that mint the caller's Convex token (`Identity::convex_token`).

use std::sync::Arc;
use std::time::Duration;

use crate::convex::client::{parse_session, ConvexClient, Outcome, SessionDoc};
use crate::error::{Error, Result};
use crate::identity::{Caller, Identity};
use crate::support::cache::TtlCache;
use crate::telemetry::{Phase, Trace};

/// Convex as the caller, for every request of one configuration: the client, the brief cache of
/// session lookups, and the identity service that mints the caller's Convex token. `State.sessions`.
pub struct Sessions {
    convex: ConvexClient,
    identity: Arc<Identity>,
    lookups: TtlCache<(String, String), SessionDoc>,
    /// How long a GET's lookup is reused (`SESSION_AUDIO_LOOKUP_TTL_MS`).
    lookup_ttl: Duration,
    /// The template query that reads a session (`SESSION_AUDIO_GET_QUERY`).
    get_query: String,
}

impl Sessions {
    /// `lookups_held`: the most session lookups cached at once.
    pub fn new(
        convex: ConvexClient,
        identity: Arc<Identity>,
        lookups_held: u64,
        lookup_ttl: Duration,
        get_query: String,
    ) -> Sessions {
        Sessions { convex, identity, lookups: TtlCache::new(lookups_held), lookup_ttl, get_query }
    }

    /// The caller's session, from cache for a few seconds (GET: the audio URL does not change
    /// while a session is played). A foreign session is indistinguishable from a missing one.
    pub async fn cached(&self, who: &Caller, session_id: &str, trace: &Trace) -> Result<SessionDoc> {
        let key = (who.user_id.clone(), session_id.to_string());
        let doc = self
            .lookups
            .get_or_fill(&key, || async {
                let doc = self.fresh(who, session_id, trace).await?;
                Ok((doc, self.lookup_ttl))
            })
            .await?;
        // The key holds the user, but check the document itself all the same.
        owned_by(doc, who)
    }

    /// The caller's session as Convex has it now (POST: its state decides).
    pub async fn fresh(&self, who: &Caller, session_id: &str, trace: &Trace) -> Result<SessionDoc> {
        let args = serde_json::json!({ "sessionId": session_id });
        let value = self.query(who, &self.get_query, args, Phase::Lookup, trace).await?;
        owned_by(parse_session(value)?.ok_or(Error::SessionNotFound)?, who)
    }

    /// The session re-read after an attach whose answer was lost or unclear: past the breaker, since
    /// whether a stored upload is deleted depends on it (`attach::settle`).
    pub async fn reread(&self, who: &Caller, session_id: &str, trace: &Trace) -> Result<SessionDoc> {
        let args = serde_json::json!({ "sessionId": session_id });
        let path = &self.get_query;
        let value = self
            .as_caller(who, Phase::Reread, trace, |token| async move {
                self.convex.query_unguarded(path, args, &token).await
            })
            .await?;
        owned_by(parse_session(value)?.ok_or(Error::SessionNotFound)?, who)
    }

    /// Drop a cached lookup (the session just changed).
    pub async fn forget(&self, user_id: &str, session_id: &str) {
        self.lookups.invalidate(&(user_id.to_string(), session_id.to_string())).await;
    }

    /// Run a query as the caller, timed as `phase`.
    pub async fn query(
        &self,
        who: &Caller,
        path: &str,
        args: serde_json::Value,
        phase: Phase,
        trace: &Trace,
    ) -> Result<serde_json::Value> {
        self.as_caller(who, phase, trace, |token| async move { self.convex.query(path, args, &token).await }).await
    }

    /// Run a mutation as the caller (timed as `Phase::Mutation`); a thrown error is an `Outcome`,
    /// for the caller to interpret.
    pub async fn mutation(&self, who: &Caller, path: &str, args: serde_json::Value, trace: &Trace) -> Result<Outcome> {
        let call = |token: String| async move { self.convex.mutation(path, args, &token).await };
        self.as_caller(who, Phase::Mutation, trace, call).await
    }

    /// A Convex call with the caller's token, timed as `phase`. A token Convex refuses is
    /// forgotten, so the next request mints a fresh one.
    async fn as_caller<T, Fut>(
        &self,
        who: &Caller,
        phase: Phase,
        trace: &Trace,
        call: impl FnOnce(String) -> Fut,
    ) -> Result<T>
    where
        Fut: std::future::Future<Output = Result<T>>,
    {
        let token = self.identity.convex_token(who, trace).await?;
        let result = trace.phase(phase, call(token)).await;
        if let Err(Error::ConvexAuthRejected(_)) = &result {
            self.identity.forget_convex_token(who).await;
        }
        result
    }
}

fn owned_by(doc: SessionDoc, who: &Caller) -> Result<SessionDoc> {
    if doc.user_id == who.user_id {
        Ok(doc)
    } else {
        Err(Error::SessionNotFound)
    }
}
