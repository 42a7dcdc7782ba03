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
//! and when V8 collects chunks after that (their memory is freed only then, at a GC).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// How long no stream must run before the trim: back-to-back streams (a player's next range, the
/// next track) do not trim between them.
pub const QUIET: Duration = Duration::from_millis(250);

static ACTIVE: AtomicUsize = AtomicUsize::new(0);
static SCHEDULED: AtomicBool = AtomicBool::new(false);
/// The runtime the streams run on: a chunk is freed on the JS thread (a V8 finalizer), outside it.
static RUNTIME: OnceLock<tokio::runtime::Handle> = OnceLock::new();

/// Whether the process should trim now: nothing is streaming (so the free memory is not about to
/// be reused by a running stream).
pub fn should_trim(active: usize) -> bool {
    active == 0
}

/// Held by each running stream's pump; the last one dropped schedules the trim.
pub struct Active(());

impl Active {
    /// Must be called inside a tokio runtime (the pump's).
    pub fn start() -> Active {
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            RUNTIME.get_or_init(|| rt);
        }
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
        tokio::time::sleep(QUIET).await;
        SCHEDULED.store(false, Ordering::Release);
        if should_trim(active()) {
            tokio::task::spawn_blocking(release_free_memory);
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
}
