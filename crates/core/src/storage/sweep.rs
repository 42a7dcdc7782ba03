//! `sweepOrphanAudio`: blobs under `listening-sessions/` that no session references, older than a
//! threshold, deleted (or only listed, in a dry run).
//!
//! Orphans arise when a process dies between storing an upload and attaching it, or when the
//! attach outcome was unknown and the blob was kept (`attach`). The sweep lists the store page by
//! page, asks Convex which blobs are attached (the template query `attachedAudio`, guarded by
//! `SESSION_AUDIO_SWEEP_SECRET` because no user is behind the call), and deletes only what is
//! unattached and older than the threshold: an upload still on its way to `attachAudio` is young.
//! A blob whose upload time cannot be read is never deleted.

use std::collections::HashSet;
use std::time::Duration;

use url::Url;

use crate::convex::client::ConvexClient;
use crate::error::{Code, Error, Result};
use crate::storage::blob::{BlobClient, ListedBlob};

use crate::storage::store::PREFIX;
pub const DEFAULT_ATTACHED_QUERY: &str = "listeningSessions:attachedAudio";
/// Blobs asked about, and deleted, per call.
const BATCH: usize = 100;

/// What the sweep needs, from the same settings the handlers read (no Clerk: no user is involved).
pub struct SweepConfig {
    pub convex_url: Url,
    pub store: crate::storage::store::Store,
    /// What the sweep authenticates with, resolved once when it starts as a request's is: the
    /// option, else OIDC (env `VERCEL_OIDC_TOKEN` with `BLOB_STORE_ID`), else `BLOB_READ_WRITE_TOKEN`.
    pub credential: crate::storage::store::Credential,
    pub secret: String,
    pub attached_query: String,
    pub timeout: Duration,
    /// The smallest threshold a sweep accepts (`client_upload::sweep_floor`), from the same
    /// settings as the handlers': a blob a completion may still attach is never swept.
    pub floor: Duration,
}

impl SweepConfig {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<SweepConfig> {
        let get = |key: &str| get(key).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let need =
            |key: &str, what: &str| get(key).ok_or_else(|| Error::ConfigMissing(format!("{key} is not set ({what})")));
        // The same parsers, rules and defaults as the handlers' (`config`): one meaning per key.
        let convex_url =
            crate::config::parse_convex_url(&need("NEXT_PUBLIC_CONVEX_URL", "the Convex deployment URL")?)?;
        let blob_api_url = match get("VERCEL_BLOB_API_URL") {
            Some(raw) => crate::config::parse_http_url("VERCEL_BLOB_API_URL", &raw)?,
            None => Url::parse(crate::config::DEFAULT_BLOB_API_URL).map_err(|e| Error::Internal(e.to_string()))?,
        };
        let store = crate::config::blob_store(&get, blob_api_url, false)?
            .ok_or_else(|| crate::storage::store::unresolved_error(crate::storage::store::Unresolved::Nothing))?;
        let credential = store.credential(get("VERCEL_OIDC_TOKEN").as_deref(), crate::support::clock::now_ms())?;
        let timeout_ms = crate::config::parse_number(
            &get,
            "SESSION_AUDIO_UPSTREAM_TIMEOUT_MS",
            crate::config::DEFAULT_UPSTREAM_TIMEOUT_MS,
        )?;
        Ok(SweepConfig {
            convex_url,
            store,
            credential,
            secret: need(
                "SESSION_AUDIO_SWEEP_SECRET",
                "the secret the Convex query attachedAudio checks; set the same value in the Convex deployment",
            )?,
            attached_query: get("SESSION_AUDIO_ATTACHED_QUERY").unwrap_or_else(|| DEFAULT_ATTACHED_QUERY.into()),
            timeout: Duration::from_millis(timeout_ms.max(1)),
            floor: crate::config::sweep_floor(
                Duration::from_millis(crate::config::parse_number(
                    &get,
                    "SESSION_AUDIO_CLIENT_TOKEN_TTL_MS",
                    crate::config::DEFAULT_CLIENT_TOKEN_TTL_MS,
                )?),
                Duration::from_millis(crate::config::parse_number(
                    &get,
                    "SESSION_AUDIO_UPLOAD_TIMEOUT_MS",
                    crate::config::DEFAULT_UPLOAD_TIMEOUT_MS,
                )?),
            ),
        })
    }
}

/// What a sweep found and did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SweepReport {
    /// Blobs under the prefix.
    pub listed: u64,
    pub attached: u64,
    /// Unattached but younger than the threshold (or of unknown age): left alone.
    pub kept_young: u64,
    /// Unattached and old enough: deleted, or in a dry run, what would be.
    pub orphans: Vec<String>,
    pub deleted: u64,
    pub dry_run: bool,
}

/// The pure decision for one page: which blobs are orphans old enough to delete, and how many are
/// attached or kept for being young (or undated).
pub fn orphans<'a>(
    page: &'a [ListedBlob],
    attached: &HashSet<String>,
    now_ms: i64,
    older_than: Duration,
) -> (Vec<&'a ListedBlob>, u64, u64) {
    let cutoff = now_ms.saturating_sub(i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX));
    let (mut old, mut n_attached, mut young) = (Vec::new(), 0u64, 0u64);
    for blob in page {
        if !blob.pathname.starts_with(PREFIX) {
            continue;
        }
        if attached.contains(&blob.pathname) {
            n_attached += 1;
            continue;
        }
        match blob.uploaded_at.as_deref().and_then(crate::support::clock::parse_rfc3339_utc) {
            Some(at) if at <= cutoff => old.push(blob),
            _ => young += 1,
        }
    }
    (old, n_attached, young)
}

/// Run a sweep.
pub async fn sweep(cfg: &SweepConfig, older_than: Duration, dry_run: bool, now_ms: i64) -> Result<SweepReport> {
    // A younger threshold could delete a blob whose completion is still allowed to attach it.
    if older_than < cfg.floor {
        return Err(Error::BadRequest {
            code: Code::InvalidThreshold,
            message: format!(
                "olderThanMs (--older-than) must be at least {} min: the client-token lifetime plus the upload timeout plus 5 min, so a sweep never deletes an upload that may still be attached.",
                cfg.floor.as_secs().div_ceil(60)
            ),
        });
    }
    let http = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(10))
        .timeout(cfg.timeout.max(Duration::from_secs(1)) * 4)
        .user_agent(crate::USER_AGENT)
        .build()
        .map_err(|e| Error::Internal(format!("http client: {e}")))?;
    let blob = BlobClient::new(http.clone(), &cfg.store, cfg.timeout, cfg.credential.clone());
    let convex = ConvexClient::new(http, &cfg.convex_url);
    let mut report = SweepReport { dry_run, ..SweepReport::default() };
    let mut cursor: Option<String> = None;
    loop {
        let page = blob.list(PREFIX, cursor.as_deref()).await?;
        let blobs: Vec<ListedBlob> = page.blobs.into_iter().filter(|b| b.pathname.starts_with(PREFIX)).collect();
        report.listed += blobs.len() as u64;
        for batch in blobs.chunks(BATCH) {
            let ask: Vec<serde_json::Value> =
                batch.iter().map(|b| serde_json::json!({ "pathname": b.pathname, "url": b.url })).collect();
            let args = serde_json::json!({ "secret": cfg.secret, "blobs": ask });
            let answer = convex.query_anonymous(&cfg.attached_query, args).await?;
            let attached: HashSet<String> = serde_json::from_value::<Vec<String>>(answer)
                .map_err(|e| Error::ConvexShape { what: "the attached blobs (attachedQuery)", why: e.to_string() })?
                .into_iter()
                .collect();
            let (old, n_attached, young) = orphans(batch, &attached, now_ms, older_than);
            report.attached += n_attached;
            report.kept_young += young;
            if !dry_run && !old.is_empty() {
                let urls: Vec<String> = old.iter().map(|b| b.url.clone()).collect();
                blob.delete(&urls).await?;
                report.deleted += urls.len() as u64;
            }
            report.orphans.extend(old.iter().map(|b| b.pathname.clone()));
        }
        match page.cursor.filter(|c| page.has_more && !c.is_empty()) {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orphan_table() {
        let day = 86_400_000i64;
        let now = 30 * day;
        let at = |ms: i64| {
            let secs = ms / 1000;
            let (d, s) = (secs / 86_400, secs % 86_400);
            format!("1970-01-{:02}T{:02}:{:02}:{:02}Z", d + 1, s / 3600, s % 3600 / 60, s % 60)
        };
        let blob = |p: &str, when: Option<String>| ListedBlob {
            url: format!("https://s/{p}"),
            pathname: p.into(),
            uploaded_at: when,
        };
        let page = vec![
            blob("listening-sessions/a/attached.webm", Some(at(now - 3 * day))),
            blob("listening-sessions/b/orphan-old.webm", Some(at(now - 2 * day))),
            blob("listening-sessions/c/orphan-young.webm", Some(at(now - 3_600_000))),
            blob("listening-sessions/d/undated.webm", None),
            blob("listening-sessions/e/bad-date.webm", Some("soon".into())),
            blob("other/elsewhere.webm", Some(at(now - 9 * day))),
        ];
        let attached: HashSet<String> = ["listening-sessions/a/attached.webm".to_string()].into();
        let (old, n_attached, young) = orphans(&page, &attached, now, Duration::from_secs(24 * 3600));
        let old: Vec<&str> = old.iter().map(|b| b.pathname.as_str()).collect();
        assert_eq!(old, vec!["listening-sessions/b/orphan-old.webm"]);
        assert_eq!((n_attached, young), (1, 3));
    }
}
