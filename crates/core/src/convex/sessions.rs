//! The caller's listening session and every Convex call made as the caller: the lookup (cached
//! briefly for GET, fresh for uploads), the re-read that settles an unclear attach, and the
//! query/mutation helpers that mint the caller's Convex token.

use crate::convex::client::{parse_session, SessionDoc};
use crate::error::{Error, Result};
use crate::identity::auth::Identity;
use crate::state::State;
use crate::telemetry::{Phase, Trace};

impl State {
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
        let value = self.query_as(who, &self.config.get_query, args, Phase::Lookup, trace).await?;
        owned_by(parse_session(value)?.ok_or(Error::SessionNotFound)?, who)
    }

    /// The session re-read after an attach whose answer was lost or unclear: past the breaker, since
    /// whether a stored upload is deleted depends on it (`attach::settle`).
    pub async fn reread_session(&self, who: &Identity, session_id: &str, trace: &Trace) -> Result<SessionDoc> {
        let args = serde_json::json!({ "sessionId": session_id });
        let path = &self.config.get_query;
        let value = self
            .as_caller(who, Phase::Reread, trace, |token| async move {
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
        phase: Phase,
        trace: &Trace,
    ) -> Result<serde_json::Value> {
        self.as_caller(who, phase, trace, |token| async move { self.convex.query(path, args, &token).await }).await
    }

    /// A Convex call with the caller's token, timed as `phase`. A token Convex refuses is
    /// forgotten, so the next request mints a fresh one.
    pub(crate) async fn as_caller<T, Fut>(
        &self,
        who: &Identity,
        phase: Phase,
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
