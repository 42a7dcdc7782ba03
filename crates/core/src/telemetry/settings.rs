//! Telemetry's own settings: log level, `Server-Timing`, Sentry. Parsed before (and apart from)
//! the rest of the configuration, so a deployment whose other settings are broken still logs and
//! reports its 503s the way it was told to. The configuration asks for them; nothing here asks for
//! the configuration.

use crate::error::Error;
use crate::telemetry::LogLevel;

/// What observability needs. Parsed before (and apart from) the rest, so that a deployment whose
/// other settings are broken still logs and reports its 503s the way it was told to.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    pub log_level: LogLevel,
    /// Send `Server-Timing` with the phase durations.
    pub server_timing: bool,
    pub sentry_dsn: Option<sentry::types::Dsn>,
    /// `SENTRY_ENVIRONMENT`, else `VERCEL_ENV` (production / preview / development).
    pub sentry_environment: Option<String>,
}

/// The telemetry settings, each falling back to its default when it does not parse, and the first
/// error met (which makes the whole configuration a 503).
pub fn parse(get: &impl Fn(&str) -> Option<String>) -> (TelemetryConfig, Option<Error>) {
    let mut error = None;
    let mut fail = |e: Error| {
        error.get_or_insert(e);
    };
    let log_level = LogLevel::parse(get("SESSION_AUDIO_LOG").as_deref()).unwrap_or_else(|e| {
        fail(Error::ConfigInvalid(e));
        LogLevel::Info
    });
    let server_timing = match get("SESSION_AUDIO_SERVER_TIMING").as_deref() {
        None | Some("1") | Some("true") | Some("on") => true,
        Some("0") | Some("false") | Some("off") => false,
        Some(_) => {
            fail(Error::ConfigInvalid("SESSION_AUDIO_SERVER_TIMING must be 1 or 0".into()));
            true
        }
    };
    let sentry_dsn = get("SENTRY_DSN").and_then(|dsn| match dsn.parse::<sentry::types::Dsn>() {
        Ok(dsn) => Some(dsn),
        Err(e) => {
            fail(Error::ConfigInvalid(format!("SENTRY_DSN is not a Sentry DSN ({e})")));
            None
        }
    });
    let sentry_environment = get("SENTRY_ENVIRONMENT").or_else(|| get("VERCEL_ENV"));
    (TelemetryConfig { log_level, server_timing, sentry_dsn, sentry_environment }, error)
}
