//! Upstream bytes on their way to JS, without ever holding the file.
//!
//! A task reads the upstream response into a channel holding at most `PREFETCH_BYTES` (hyper's own
//! chunks, not re-copied: they grow with backlog, so the bound is in bytes, not chunks — with 200
//! streams at once a chunk bound let ~1.2 MiB per stream pile up). The JS side first tries a synchronous
//! `try_next` (no thread hop when data is waiting) and only awaits `next` when the channel is empty.
//! Backpressure: when JS stops pulling, the channel fills, the task stops reading, the socket's
//! window closes. A reader that takes nothing for longer than the upstream timeout is treated as
//! gone: the upstream connection is released and the reader, if it ever comes back, finds the
//! buffered bytes and then an error (never a short body passed off as whole). Cancel (client gone)
//! or drop aborts the task, which drops the upstream response and closes its connection at once — also while the upstream is stalled mid-read, which is the
//! case napi's built-in `create_with_stream_bytes` leaks (docs/napi-streaming.md).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

const PREFETCH_BYTES: usize = 256 * 1024;
/// Enough slots that the byte budget, not the slot count, is what limits the prefetch.
const CHANNEL_SLOTS: usize = 64;
/// The least budget a chunk is charged, so that at most `CHANNEL_SLOTS - 1` chunks are ever queued
/// and one slot is always free for the error that ends a stream.
const MIN_CHARGE: usize = PREFETCH_BYTES / (CHANNEL_SLOTS - 1);

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
    /// Items the reader has taken: the pump tells a slow reader from one that stopped.
    reads: Arc<AtomicU64>,
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
        let reads = Arc::new(AtomicU64::new(0));
        let pump_reads = reads.clone();
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
                // Wait for room in the byte budget (a chunk larger than the budget takes all of it;
                // an error takes none). A reader that makes no room within the upstream timeout
                // has stopped reading: release the upstream rather than hold it for them.
                let take = if failed { 0 } else { (len as usize).clamp(MIN_CHARGE, PREFETCH_BYTES) };
                let acquired = loop {
                    let seen = pump_reads.load(Ordering::Relaxed);
                    match tokio::time::timeout(idle_timeout, pump_budget.acquire_many(take as u32)).await {
                        Ok(acquired) => break Some(acquired),
                        // Slow but reading: keep waiting. Only a reader that took nothing is gone.
                        Err(_) if pump_reads.load(Ordering::Relaxed) != seen => continue,
                        Err(_) => break None,
                    }
                };
                match acquired {
                    Some(Ok(permit)) => permit.forget(),
                    Some(Err(_)) => break,
                    None => {
                        let why = format!("the client read nothing for {idle_timeout:?}; upstream released");
                        guard.failure = Some(why.clone());
                        // A slot is free (see MIN_CHARGE); if the reader is gone, nobody needs it.
                        tx.try_send((Err(why), 0)).ok();
                        break;
                    }
                }
                if tx.send((item, take)).await.is_err() || failed {
                    break; // reader gone, or the error is delivered: stop and drop the upstream
                }
                guard.bytes += len;
            }
        })
        .abort_handle();
        BodyStream { rx, budget, reads, task, finished: false, slot }
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
        self.reads.fetch_add(1, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An HTTP server that sends a 64 MiB body as fast as it is read and reports when the client
    /// let go of the connection (a write fails).
    async fn endless_server() -> (String, tokio::sync::oneshot::Receiver<u64>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (released, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut req = [0u8; 4096];
            let _ = sock.read(&mut req).await;
            let total: u64 = 64 << 20;
            let head = format!("HTTP/1.1 200 OK\r\ncontent-type: audio/wav\r\ncontent-length: {total}\r\n\r\n");
            sock.write_all(head.as_bytes()).await.unwrap();
            let chunk = vec![7u8; 64 * 1024];
            let mut sent = 0u64;
            while sent < total {
                if sock.write_all(&chunk).await.is_err() {
                    break;
                }
                sent += chunk.len() as u64;
            }
            released.send(sent).ok();
        });
        (format!("http://{addr}/big.wav"), rx)
    }

    #[tokio::test]
    async fn a_reader_that_stops_reading_releases_the_upstream_and_then_gets_an_error() {
        let (url, released) = endless_server().await;
        let resp = reqwest::get(&url).await.unwrap();
        let mut stream = BodyStream::spawn(resp, Duration::from_millis(300));
        assert!(matches!(stream.next().await, Poll::Chunk(_)));
        // The reader goes quiet; the upstream connection is let go within the timeout (plus slack).
        let sent = tokio::time::timeout(Duration::from_secs(5), released).await.expect("upstream still held").unwrap();
        assert!(sent < 64 << 20, "the whole body was sent: {sent}");
        // The reader comes back: what was buffered, then an error, never a quiet end.
        let mut buffered = 0usize;
        let failure = loop {
            match stream.next().await {
                Poll::Chunk(c) => buffered += c.len(),
                Poll::Failed(why) => break why,
                other => panic!("a short body must not end quietly: {other:?} after {buffered} bytes"),
            }
        };
        assert!(failure.contains("read nothing"), "{failure}");
        assert!(buffered <= PREFETCH_BYTES + 64 * 1024, "{buffered}");
    }

    #[tokio::test]
    async fn a_reader_that_keeps_reading_slowly_gets_the_whole_body() {
        let (url, _released) = endless_server().await;
        let resp = reqwest::get(&url).await.unwrap();
        let mut stream = BodyStream::spawn(resp, Duration::from_millis(300));
        let mut got = 0usize;
        // Slower than the upstream, but never idle as long as the timeout.
        while got < 4 << 20 {
            match stream.next().await {
                Poll::Chunk(c) => got += c.len(),
                other => panic!("{other:?} after {got}"),
            }
            if got % (1 << 20) < 64 * 1024 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        stream.cancel();
    }
}
