//! Give memory freed by finished streams back to the OS once no stream is running.
//!
//! Upstream chunks are allocated on tokio's worker threads, so glibc serves them from those
//! threads' arenas (one 64 MiB heap each), and frees them there when V8 collects the `Buffer`s
//! that held them. glibc returns a non-main arena's memory only from the top of its heap, so
//! after a few fast streams or a burst of slow ones the process sat on ~50–60 MiB of free memory
//! per worker arena for good (measured: 105 MiB of a 174 MiB RSS after three 256 MiB streams,
//! with nothing running). `malloc_trim(0)` hands every arena's free pages back. It walks all
//! arenas under their locks, so it runs only while no stream runs (not per chunk, not while
//! others stream), after a short quiet period, on a blocking thread: when the last stream ends,
//! and when V8 collects chunks after that (their memory is freed only then, at a GC). A quiet
//! period is one in which no stream *started*, not only one at whose end none runs: sequential
//! seeks are short streams with idle gaps between them, and a timer that looked only at its end
//! trimmed between two seeks every `QUIET` (`after_quiet`).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// How long no stream must run before the trim: back-to-back streams (a player's next range, the
/// next track) do not trim between them.
pub const QUIET: Duration = Duration::from_millis(250);

static ACTIVE: AtomicUsize = AtomicUsize::new(0);
/// Streams ever started: the quiet timer compares it with what it saw when it was set.
static STARTS: AtomicU64 = AtomicU64::new(0);
static SCHEDULED: AtomicBool = AtomicBool::new(false);
/// The runtime the streams run on: a chunk is freed on the JS thread (a V8 finalizer), outside it.
static RUNTIME: OnceLock<tokio::runtime::Handle> = OnceLock::new();

/// Whether the process should trim now: nothing is streaming (so the free memory is not about to
/// be reused by a running stream).
pub fn should_trim(active: usize) -> bool {
    active == 0
}

/// What the quiet timer does when it fires.
#[derive(Debug, PartialEq, Eq)]
pub enum AfterQuiet {
    /// No stream started during the quiet period and none runs: trim now.
    Trim,
    /// Streams run: the last one to end sets the timer again.
    Busy,
    /// None runs, but some started (and ended) meanwhile — back-to-back streams such as
    /// sequential seeks: a trim now would land between two of them (it locks every arena the
    /// next one allocates from), so wait another quiet period.
    Again,
}

/// The timer's decision, with `active` streams running now, `started_then` streams ever started
/// when the timer was set and `started_now` now.
pub fn after_quiet(active: usize, started_then: u64, started_now: u64) -> AfterQuiet {
    if !should_trim(active) {
        AfterQuiet::Busy
    } else if started_now != started_then {
        AfterQuiet::Again
    } else {
        AfterQuiet::Trim
    }
}

/// Held by each running stream's pump; the last one dropped schedules the trim.
pub struct Active(());

impl Active {
    /// Must be called inside a tokio runtime (the pump's).
    pub fn start() -> Active {
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            RUNTIME.get_or_init(|| rt);
        }
        // Counted as started before it counts as running, so a timer that sees it run or end also
        // sees that it started.
        STARTS.fetch_add(1, Ordering::AcqRel);
        ACTIVE.fetch_add(1, Ordering::AcqRel);
        Active(())
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        if ACTIVE.fetch_sub(1, Ordering::AcqRel) == 1 {
            schedule();
        }
    }
}

/// A chunk handed to JS was freed (V8 collected its `Buffer`): with no stream running, that
/// memory is not about to be reused, so it goes back to the OS after the quiet period.
pub fn chunk_freed() {
    if should_trim(active()) {
        schedule();
    }
}

/// Streams running now.
pub fn active() -> usize {
    ACTIVE.load(Ordering::Acquire)
}

fn schedule() {
    // One timer at a time; it looks again when it fires. The runtime we are on (a pump ending),
    // else the streams' (a finalizer on the JS thread); none: no stream ever ran, nothing to trim.
    let Some(rt) = tokio::runtime::Handle::try_current().ok().or_else(|| RUNTIME.get().cloned()) else { return };
    if SCHEDULED.swap(true, Ordering::AcqRel) {
        return;
    }
    rt.spawn(async {
        let mut started_then = STARTS.load(Ordering::Acquire);
        loop {
            tokio::time::sleep(QUIET).await;
            // Cleared before looking, so a stream that ends after the look sets a timer of its own.
            SCHEDULED.store(false, Ordering::Release);
            let started_now = STARTS.load(Ordering::Acquire);
            match after_quiet(active(), started_then, started_now) {
                AfterQuiet::Trim => {
                    tokio::task::spawn_blocking(release_free_memory);
                    return;
                }
                AfterQuiet::Busy => return,
                AfterQuiet::Again => {
                    // Another timer was set in the meantime: it does the waiting.
                    if SCHEDULED.swap(true, Ordering::AcqRel) {
                        return;
                    }
                    started_then = started_now;
                }
            }
        }
    });
}

/// Return free heap memory to the OS (glibc only; other allocators need nothing or offer no such call).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: glibc's malloc_trim takes no pointers and is safe to call from any thread at
        // any time; it only releases pages that hold no live allocation.
        unsafe {
            malloc_trim(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_only_when_nothing_streams() {
        for (active, want) in [(0, true), (1, false), (200, false)] {
            assert_eq!(should_trim(active), want, "{active}");
        }
    }

    #[test]
    fn the_quiet_timer_trims_only_when_no_stream_started_since_it_was_set() {
        use AfterQuiet::*;
        let table = [
            // (running now, started when set, started now, decision)
            (0, 7, 7, Trim),
            (0, 0, 0, Trim),
            // Sequential seeks: each started and ended within the quiet period.
            (0, 7, 8, Again),
            (0, 7, 500, Again),
            (0, u64::MAX, 0, Again),
            // Something runs: its end sets the timer again, whatever started meanwhile.
            (1, 7, 7, Busy),
            (1, 7, 8, Busy),
            (200, 7, 207, Busy),
        ];
        for (active, then, now, want) in table {
            assert_eq!(after_quiet(active, then, now), want, "{active} running, started {then} then, {now} now");
        }
    }
}
