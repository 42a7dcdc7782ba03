//! `sweepOrphanAudio`: the orphan sweep, with its report.

use std::collections::HashMap;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use session_audio_core as core;

use crate::options::AudioOptions;

/// What `sweepOrphanAudio` found and did.
#[napi(object)]
pub struct SweepReport {
    /// Blobs under `listening-sessions/`.
    pub listed: f64,
    /// Referenced by a session.
    pub attached: f64,
    /// Unattached but younger than `olderThanMs` (or of unknown age): left alone.
    pub kept_young: f64,
    /// Unattached and older than `olderThanMs`: deleted, or in a dry run what would be.
    pub orphans: Vec<String>,
    pub deleted: f64,
    pub dry_run: bool,
}

/// Delete (or with `dryRun` only list) the blobs under `listening-sessions/` that no session
/// references and that are older than `olderThanMs`. `options`/`env` as for the handlers.
#[napi]
pub async fn sweep_orphan_audio(
    options: AudioOptions,
    env: HashMap<String, String>,
    older_than_ms: f64,
    dry_run: bool,
) -> Result<SweepReport> {
    if !(older_than_ms.is_finite() && older_than_ms >= 0.0) {
        return Err(Error::new(Status::InvalidArg, "olderThanMs must be a number of ms ≥ 0"));
    }
    let lookup = crate::options::lookup(&options, &env);
    let config = core::SweepConfig::from_lookup(lookup)
        .map_err(|e| Error::new(Status::InvalidArg, format!("{}: {}", e.code(), e.public_message())))?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let older_than = std::time::Duration::from_millis(older_than_ms as u64);
    let report = core::sweep(&config, older_than, dry_run, now_ms)
        .await
        .map_err(|e| Error::from_reason(format!("{}: {}", e.code(), core::scrub(&e.to_string()))))?;
    Ok(SweepReport {
        listed: report.listed as f64,
        attached: report.attached as f64,
        kept_young: report.kept_young as f64,
        orphans: report.orphans,
        deleted: report.deleted as f64,
        dry_run: report.dry_run,
    })
}
