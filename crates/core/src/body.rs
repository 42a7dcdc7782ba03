//! Upstream bytes on their way to JS, without ever holding the file.
//!
//! A task reads the upstream response into a channel holding at most `PREFETCH_BYTES` (hyper's own
//! chunks, not re-copied: they grow with backlog, so the bound is in bytes, not chunks — with 200
//! streams at once a chunk bound let ~1.2 MiB per stream pile up). The JS side first tries a synchronous
//! `try_next` (no thread hop when data is waiting) and only awaits `next` when the channel is empty.
//! Backpressure: when JS stops pulling, the channel fills, the task stops reading, the socket's
//! window closes. Cancel (client gone) or drop aborts the task, which drops the upstream response
//! and closes its connection at once — also while the upstream is stalled mid-read, which is the
//! case napi's built-in `create_with_stream_bytes` leaks (docs/napi-streaming.md).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

const PREFETCH_BYTES: usize = 256 * 1024;
/// Enough slots that the byte budget, not the slot count, is what limits the prefetch.
const CHANNEL_SLOTS: usize = 64;

/// A chunk and the budget it holds until the reader takes it.
type Item = (Result<Bytes, String>, usize);

/// One step of the stream as seen from a synchronous poll.
#[derive(Debug, PartialEq)]
pub enum Poll {
    Chunk(Bytes),
    /// Nothing buffered yet; await `next`.
    Pending,
    End,
    Failed(String),
}

/// Called once when the stream is over: bytes handed on, and the failure if it broke.
pub type Finisher = Box<dyn FnOnce(u64, Option<String>) + Send>;

/// Meeting point of the pump's outcome and the finisher, whichever arrives first.
#[derive(Default)]
struct FinishSlot {
    finisher: Option<Finisher>,
    outcome: Option<(u64, Option<String>)>,
}

type SharedSlot = Arc<Mutex<FinishSlot>>;

/// Reports the pump's outcome when it ends for any reason — including being aborted on cancel,
/// which drops the task's future (and so this guard) without running any more of it.
struct FinishGuard {
    slot: SharedSlot,
    bytes: u64,
    failure: Option<String>,
}

impl Drop for FinishGuard {
    fn drop(&mut self) {
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        match slot.finisher.take() {
            Some(f) => {
                drop(slot);
                f(self.bytes, self.failure.take());
            }
            None => slot.outcome = Some((self.bytes, self.failure.take())),
        }
    }
}

pub struct BodyStream {
    rx: mpsc::Receiver<Item>,
    budget: Arc<tokio::sync::Semaphore>,
    task: AbortHandle,
    finished: bool,
    slot: SharedSlot,
}

impl BodyStream {
    /// Start pumping. Must be called inside a tokio runtime. `idle_timeout` bounds the wait for
    /// each chunk, so a stalled upstream cannot pin a connection forever.
    pub fn spawn(resp: reqwest::Response, idle_timeout: Duration) -> BodyStream {
        let (tx, rx) = mpsc::channel::<Item>(CHANNEL_SLOTS);
        let budget = Arc::new(tokio::sync::Semaphore::new(PREFETCH_BYTES));
        let pump_budget = budget.clone();
        let slot = SharedSlot::default();
        let guard_slot = slot.clone();
        let task = tokio::spawn(async move {
            let mut guard = FinishGuard { slot: guard_slot, bytes: 0, failure: None };
            let mut stream = resp.bytes_stream();
            loop {
                let item = match tokio::time::timeout(idle_timeout, stream.next()).await {
                    Err(_) => Err(format!("upstream stalled for {idle_timeout:?}")),
                    Ok(None) => break,
                    Ok(Some(Ok(chunk))) if chunk.is_empty() => continue,
                    Ok(Some(Ok(chunk))) => Ok(chunk),
                    Ok(Some(Err(e))) => Err(e.to_string()),
                };
                let len = item.as_ref().map_or(0, |c| c.len() as u64);
                if let Err(e) = &item {
                    guard.failure = Some(e.clone());
                }
                let failed = item.is_err();
                // Wait for room in the byte budget (a chunk larger than the budget takes all of it).
                let take = (len as usize).min(PREFETCH_BYTES);
                match pump_budget.acquire_many(take as u32).await {
                    Ok(permit) => permit.forget(),
                    Err(_) => break,
                }
                if tx.send((item, take)).await.is_err() || failed {
                    break; // reader gone, or the error is delivered: stop and drop the upstream
                }
                guard.bytes += len;
            }
        })
        .abort_handle();
        BodyStream { rx, budget, task, finished: false, slot }
    }

    /// Run `f` once the stream is over (now, if it already is).
    pub fn on_finish(&mut self, f: Finisher) {
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        match slot.outcome.take() {
            Some((bytes, failure)) => {
                drop(slot);
                f(bytes, failure);
            }
            None => slot.finisher = Some(f),
        }
    }

    /// Hand a received item on, returning its bytes to the prefetch budget.
    fn taken(&mut self, item: Result<Bytes, String>, take: usize) -> Poll {
        self.budget.add_permits(take);
        match item {
            Ok(chunk) => Poll::Chunk(chunk),
            Err(e) => {
                self.finished = true;
                Poll::Failed(e)
            }
        }
    }

    pub fn try_next(&mut self) -> Poll {
        if self.finished {
            return Poll::End;
        }
        match self.rx.try_recv() {
            Ok((item, take)) => self.taken(item, take),
            Err(mpsc::error::TryRecvError::Empty) => Poll::Pending,
            Err(mpsc::error::TryRecvError::Disconnected) => {
                self.finished = true;
                Poll::End
            }
        }
    }

    pub async fn next(&mut self) -> Poll {
        if self.finished {
            return Poll::End;
        }
        match self.rx.recv().await {
            Some((item, take)) => self.taken(item, take),
            None => {
                self.finished = true;
                Poll::End
            }
        }
    }

    /// A handle that stops the pump without holding the stream (a pending `next` borrows it).
    pub fn abort_handle(&self) -> AbortHandle {
        self.task.clone()
    }

    /// The client went away: stop reading and close the upstream connection now.
    pub fn cancel(&mut self) {
        self.finished = true;
        self.task.abort();
        self.rx.close();
    }
}

impl Drop for BodyStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}
