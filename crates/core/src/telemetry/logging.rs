//! The process-wide JSON log line per finished request, on stderr.

use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
}

impl LogLevel {
    pub fn parse(raw: Option<&str>) -> Result<LogLevel, String> {
        Ok(match raw.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("info") => LogLevel::Info,
            Some("off") | Some("0") | Some("none") => LogLevel::Off,
            Some("error") => LogLevel::Error,
            Some("warn") => LogLevel::Warn,
            Some("debug") | Some("trace") => LogLevel::Debug,
            Some(_) => return Err("SESSION_AUDIO_LOG must be off, error, warn, info or debug".into()),
        })
    }
}

/// Install the process-wide JSON log subscriber once. Next.js may load the addon in several
/// workers and re-create handlers on hot reload; the first configuration wins for the process
/// (a global subscriber cannot be replaced), and if the host already installed one we leave it.
pub fn install_logging(level: LogLevel) {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let max = match level {
            LogLevel::Off => return,
            LogLevel::Error => tracing::Level::ERROR,
            LogLevel::Warn => tracing::Level::WARN,
            LogLevel::Info => tracing::Level::INFO,
            LogLevel::Debug => tracing::Level::DEBUG,
        };
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_target(true)
            .with_writer(std::io::stderr)
            .with_max_level(max)
            .finish();
        // Fails only when the host installed a subscriber of its own first: theirs stays.
        tracing::subscriber::set_global_default(subscriber).ok();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_levels() {
        assert_eq!(LogLevel::parse(None).unwrap(), LogLevel::Info);
        assert_eq!(LogLevel::parse(Some("OFF")).unwrap(), LogLevel::Off);
        assert_eq!(LogLevel::parse(Some("debug")).unwrap(), LogLevel::Debug);
        assert!(LogLevel::parse(Some("loud")).is_err());
    }
}
