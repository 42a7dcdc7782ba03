//! The process-wide JSON log line per finished request, on stderr, written so that logging can
//! never fail or slow a request.
//!
//! Node makes fd 2 non-blocking; when stderr is a pipe nobody reads fast enough, a write answers
//! `EAGAIN`, and `tracing-subscriber` reports a failed write with `eprintln!`, which panics. So the
//! subscriber never touches fd 2: each line is handed to one writer thread through a bounded queue
//! (`try_send`, never a wait). A full queue drops the line and counts it (`dropped_lines`, in every
//! request record as `logLinesDropped`); the writer thread waits out `EAGAIN` and drops a line
//! stderr refuses for good (`EPIPE`, …), counting it too.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::OnceLock;
use std::time::Duration;

/// Lines waiting for the writer thread; past this, new lines are dropped (and counted).
const QUEUE_LINES: usize = 128;
/// How long the writer thread waits before trying a non-blocking stderr again, at most.
const MAX_BACKOFF: Duration = Duration::from_millis(50);

/// Log lines dropped in this process so far: the queue was full, or stderr refused them.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// How many log lines this process dropped so far (process-wide, since it loaded the addon).
pub fn dropped_lines() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// The subscriber's writer: each event is formatted into a `Line`, queued whole when it is done.
struct LossyStderr {
    queue: Option<SyncSender<Vec<u8>>>,
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LossyStderr {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line { buf: Vec::new(), queue: self.queue.as_ref(), dropped: &DROPPED }
    }
}

/// One log line being formatted. Writing never fails; dropping it queues it, or counts it dropped.
struct Line<'a> {
    buf: Vec<u8>,
    queue: Option<&'a SyncSender<Vec<u8>>>,
    dropped: &'a AtomicU64,
}

impl Write for Line<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let line = std::mem::take(&mut self.buf);
        if self.queue.is_none_or(|queue| queue.try_send(line).is_err()) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Write one whole line to `out` (non-blocking stderr): `EAGAIN` is waited out (the line stays
/// whole, later lines queue or are dropped meanwhile); any other failure drops the line, counted.
fn write_line(out: &mut impl Write, line: &[u8], dropped: &AtomicU64, sleep: &mut impl FnMut(Duration)) {
    let mut rest = line;
    let mut backoff = Duration::from_millis(1);
    while !rest.is_empty() {
        match out.write(rest) {
            Ok(0) => break,
            Ok(n) => {
                rest = &rest[n..];
                backoff = Duration::from_millis(1);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(_) => break,
        }
    }
    if !rest.is_empty() {
        dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// The writer thread: every queued line to stderr, in order, until the process ends.
fn drain(queue: Receiver<Vec<u8>>) {
    let mut stderr = std::io::stderr();
    while let Ok(line) = queue.recv() {
        write_line(&mut stderr, &line, &DROPPED, &mut std::thread::sleep);
    }
}

/// The queue to the writer thread, started now; `None` (every line dropped) if it cannot start.
fn start_writer() -> Option<SyncSender<Vec<u8>>> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(QUEUE_LINES);
    std::thread::Builder::new().name("session-audio-log".into()).spawn(move || drain(rx)).ok().map(|_| tx)
}

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
            .with_writer(LossyStderr { queue: start_writer() })
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

    /// A stderr that answers what it is told to, in turn, and keeps what it took.
    struct Scripted {
        answers: Vec<std::io::Result<usize>>,
        took: Vec<u8>,
    }

    impl Write for Scripted {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let answer = if self.answers.is_empty() { Ok(bytes.len()) } else { self.answers.remove(0) };
            if let Ok(n) = answer {
                self.took.extend_from_slice(&bytes[..n.min(bytes.len())]);
            }
            answer
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn eagain_is_waited_out_and_a_refusing_stderr_drops_the_line() {
        use std::io::{Error, ErrorKind};
        let would_block = || Err(Error::from(ErrorKind::WouldBlock));
        let dropped = AtomicU64::new(0);
        let mut slept = Vec::new();
        let mut sleep = |d: Duration| slept.push(d);
        // EAGAIN, a partial write, EAGAIN again, EINTR: the line still arrives whole.
        let mut out = Scripted {
            answers: vec![would_block(), would_block(), Ok(3), would_block(), Err(Error::from(ErrorKind::Interrupted))],
            took: Vec::new(),
        };
        write_line(&mut out, b"{\"a\":1}\n", &dropped, &mut sleep);
        assert_eq!(out.took, b"{\"a\":1}\n");
        assert_eq!(dropped.load(Ordering::Relaxed), 0);
        assert_eq!(slept, [Duration::from_millis(1), Duration::from_millis(2), Duration::from_millis(1)]);
        // EPIPE (nobody reads any more) and a zero-length write: dropped and counted, no panic.
        for answer in [Err(Error::from(ErrorKind::BrokenPipe)), Ok(0)] {
            let mut out = Scripted { answers: vec![answer], took: Vec::new() };
            write_line(&mut out, b"line\n", &dropped, &mut |_| {});
        }
        assert_eq!(dropped.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_full_queue_drops_the_line_and_counts_it() {
        let dropped = AtomicU64::new(0);
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(1);
        for text in ["one\n", "two\n", ""] {
            let mut line = Line { buf: Vec::new(), queue: Some(&tx), dropped: &dropped };
            line.write_all(text.as_bytes()).unwrap();
        }
        assert_eq!(rx.try_recv().unwrap(), b"one\n");
        assert!(rx.try_recv().is_err());
        assert_eq!(dropped.load(Ordering::Relaxed), 1); // "two": the queue was full; "" is no line
        let mut line = Line { buf: Vec::new(), queue: None, dropped: &dropped };
        line.write_all(b"x").unwrap();
        drop(line);
        assert_eq!(dropped.load(Ordering::Relaxed), 2); // no writer thread: dropped, counted
    }
}
