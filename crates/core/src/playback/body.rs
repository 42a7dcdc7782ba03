//! Upstream bytes on their way to JS, without ever holding the file.
//!
//! A task reads the upstream response into a channel holding at most the stream's prefetch budget
//! in bytes (hyper's chunks grow with backlog, up to ~400 KiB each, so the bound is in bytes, not
//! chunks — with 200 streams at once a chunk bound let ~1.2 MiB per stream pile up). The budget is
//! adaptive: a stream starts with `PREFETCH_START` and doubles up to its share of `PREFETCH_TOTAL`
//! (at most `PREFETCH_MAX`) only while its reader keeps up (see `next_budget`), so 200 slow readers
//! each hold little while one fast reader gets the full read-ahead. A reader at the full budget
//! takes hyper's chunks as they are, shared with JS; any other gets pieces of at most
//! `HANDOVER_MAX` that JS copies into its own memory as they cross (see `handover`: where the
//! memory of 200 streams went before). The task waits for room in the budget
//! *before* it asks for the next chunk, so a slow reader's next bytes wait in the kernel's socket
//! buffer, not in this process. The JS side first tries a synchronous `try_next` (no thread hop
//! when data is waiting) and only awaits `next` when the channel is empty.
//! Backpressure: when JS stops pulling, the channel fills, the task stops reading, the socket's
//! window closes. A reader that takes nothing for longer than the upstream timeout is treated as
//! gone: the upstream connection is released and the reader, if it ever comes back, finds the
//! buffered bytes and then an error (never a short body passed off as whole). Cancel (client gone)
//! or drop aborts the task, which drops the upstream response and closes its connection at once — also while the upstream is stalled mid-read, which is the
//! case napi's built-in `create_with_stream_bytes` leaks (docs/napi-streaming.md).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{mpsc, Semaphore, TryAcquireError};
use tokio::task::AbortHandle;

/// The prefetch budget every stream starts with: what each of many slow readers holds.
pub const PREFETCH_START: usize = 32 * 1024;
/// The most a stream's budget grows to, for a reader that keeps up.
pub const PREFETCH_MAX: usize = 256 * 1024;
/// Enough slots that the byte budget, not the slot count, is what limits the prefetch.
const CHANNEL_SLOTS: usize = 64;
/// The least budget a chunk is charged, and the room the task waits for before it reads on, so
/// that at most `CHANNEL_SLOTS - 1` chunks are ever queued and one slot is always free for the
/// error that ends a stream.
const MIN_CHARGE: usize = PREFETCH_MAX / (CHANNEL_SLOTS - 1);
/// A reader that made room within this long after the budget ran out keeps up: the budget doubles.
pub const KEEPS_UP: Duration = Duration::from_millis(2);
/// A reader that took longer than this to make room is slow: the budget halves (not below the start).
pub const FALLS_BEHIND: Duration = Duration::from_millis(50);

/// The read-ahead all streams of the process may grow to together: each stream's budget grows to
/// at most its share (`budget_cap`). One or a few fast readers get the full `PREFETCH_MAX`; with
/// 200 streams at once each stays at `PREFETCH_START`, where 200 budgets at the most would hold
/// 50 MiB that only waits for the one JS thread that serves them all.
pub const PREFETCH_TOTAL: usize = 1024 * 1024;

/// The most one stream's budget may grow to while `streams` streams run (this one included).
pub fn budget_cap(streams: usize) -> usize {
    (PREFETCH_TOTAL / streams.max(1)).clamp(PREFETCH_START, PREFETCH_MAX)
}

/// The budget after the task waited `waited` for the reader to make room in a full budget, with
/// the budget's share of the total at `cap`. A prompt reader is limited by the budget (it would
/// take more if it were there): double it, up to the cap. A slow reader is limited by itself, so
/// more read-ahead would only sit in memory: halve it. In between, keep it (within the cap, which
/// falls as more streams start).
pub fn next_budget(budget: usize, waited: Duration, cap: usize) -> usize {
    let next = if waited <= KEEPS_UP {
        budget * 2
    } else if waited >= FALLS_BEHIND {
        budget / 2
    } else {
        budget
    };
    next.min(cap).clamp(PREFETCH_START, PREFETCH_MAX)
}

/// The most a chunk handed to a reader that does not keep up holds (see `handover`): 64 KiB, what
/// Node's own sockets read at a time, below glibc's mmap threshold, and what hyper reads at most
/// (`READ_BUF_MAX` in `upstream.rs`), so a chunk is seldom split.
pub const HANDOVER_MAX: usize = 64 * 1024;

/// How a chunk crosses into JS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crossing {
    /// As an external `Buffer` over hyper's own bytes: no copy. The bytes live until V8 collects
    /// the `Buffer`, and with them the whole read buffer they are a view of.
    Shared,
    /// Copied, on the JS thread as it is handed over, into a `Buffer` V8 allocates; the Rust
    /// bytes are dropped at once, so hyper's read buffer is free for its next read.
    Copied,
}

/// One chunk on its way to JS, and how it crosses.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub bytes: Bytes,
    pub crossing: Crossing,
}

/// What to hand on now of `chunk` (hyper's view of its read buffer), and how, and what is left for
/// later, for a stream whose budget is `limit`.
///
/// A reader at the full budget keeps up and is one of few streams (`budget_cap`): it takes the
/// view whole and shared, no copy (copying costs CPU on every byte, and a few streams' read
/// buffers are little memory). Any other reader gets at most `HANDOVER_MAX`, copied into memory V8
/// allocates when it crosses; the rest waits here, still a view, for room in the budget.
///
/// Why copy for the many: a view handed to JS as an external `Buffer` keeps hyper's whole read
/// buffer allocated until V8 collects the `Buffer`, while V8 counts only the view's length. With
/// many slow streams V8 then collected late over far more memory than it saw. Copies made here, on
/// tokio's workers (as before), were exactly counted but lived in the workers' glibc arenas and
/// were freed there from the JS thread, whenever V8 collected them: with 200 streams those arenas
/// grew to ~107 MiB at the burst's peak (smaps). Copied on the JS thread into V8's own memory, what
/// JS holds is allocated and freed by the JS thread, V8 counts it as array buffers, and the
/// workers' arenas hold only hyper's read buffers and the prefetch (~27–41 MiB at the peak).
pub fn handover(mut chunk: Bytes, limit: usize) -> (Chunk, Option<Bytes>) {
    if limit >= PREFETCH_MAX {
        return (Chunk { bytes: chunk, crossing: Crossing::Shared }, None);
    }
    let now = chunk.split_to(chunk.len().min(HANDOVER_MAX));
    (Chunk { bytes: now, crossing: Crossing::Copied }, Some(chunk).filter(|rest| !rest.is_empty()))
}

/// A chunk and the budget it holds until the reader takes it.
type Item = (Result<Chunk, String>, usize);

/// One step of the stream as seen from a synchronous poll.
#[derive(Debug, PartialEq)]
pub enum Poll {
    Chunk(Chunk),
    /// Nothing buffered yet; await `next`.
    Pending,
    End,
    Failed(String),
}

/// The most bytes one hand-over to JS gathers (it stops at the first chunk that reaches it, so a
/// batch holds less than this plus one chunk). Each hand-over costs the JS thread a napi call and a
/// `pull`, and an awaited one a hop to tokio and back; handing on what is already buffered in one
/// go spares those. Half of `PREFETCH_MAX`: what the pump reads ahead once a full budget drains to
/// its low-water mark, so a fast reader takes a refill at a time, and a batch never holds more
/// than the stream's own budget (a slow stream's channel holds at most `PREFETCH_START`).
pub const BATCH_MAX: usize = PREFETCH_MAX / 2;

/// What one hand-over to JS carries: one or more chunks, in order.
#[derive(Debug)]
pub enum Batch {
    Chunks(Vec<Chunk>),
    /// Nothing buffered yet; await `next_batch`.
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
    budget: Arc<Semaphore>,
    /// Items the reader has taken: the pump tells a slow reader from one that stopped.
    reads: Arc<AtomicU64>,
    task: AbortHandle,
    finished: bool,
    /// A failure met while gathering a batch: handed on after the chunks that came before it.
    deferred: Option<String>,
    slot: SharedSlot,
}

impl BodyStream {
    /// Start pumping. Must be called inside a tokio runtime. `idle_timeout` bounds the wait for
    /// each chunk, so a stalled upstream cannot pin a connection forever.
    pub fn spawn(resp: reqwest::Response, idle_timeout: Duration) -> BodyStream {
        let (tx, rx) = mpsc::channel::<Item>(CHANNEL_SLOTS);
        let budget = Arc::new(Semaphore::new(PREFETCH_START));
        let pump_budget = budget.clone();
        let reads = Arc::new(AtomicU64::new(0));
        let pump_reads = reads.clone();
        let slot = SharedSlot::default();
        let guard_slot = slot.clone();
        let task = tokio::spawn(async move {
            let mut guard = FinishGuard { slot: guard_slot, bytes: 0, failure: None };
            // Dropped with the task (ended or aborted): the last stream out trims the heap.
            let _active = super::trim::Active::start();
            let mut stream = resp.bytes_stream();
            let mut limit = PREFETCH_START;
            let mut pending: Option<Bytes> = None;
            loop {
                // Room first: nothing more is read from the upstream until the reader has made room
                // for at least a small chunk. Once the budget is full, the task waits for half of
                // it to be free (`low_water`), not for the first few KiB: each wake-up is a thread
                // hand-off, and the socket meanwhile gathers a bigger chunk for the next read.
                // A reader that makes no room within the upstream timeout has stopped reading:
                // release the upstream rather than hold it for them.
                let (room, held) = match pump_budget.try_acquire_many(MIN_CHARGE as u32) {
                    Ok(permit) => (Some(Ok(permit)), MIN_CHARGE),
                    Err(TryAcquireError::Closed) => break,
                    Err(TryAcquireError::NoPermits) => {
                        let waiting = Instant::now();
                        let want = low_water(limit);
                        let room = wait_for_room(&pump_budget, want, &pump_reads, idle_timeout).await;
                        let next = next_budget(limit, waiting.elapsed(), budget_cap(super::trim::active()));
                        limit = resize(&pump_budget, limit, next);
                        (room, want)
                    }
                };
                match room {
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
                // What hyper read last and is not handed on yet; read more only when it is all out.
                let item = match pending.take() {
                    Some(rest) => Ok(rest),
                    None => match tokio::time::timeout(idle_timeout, stream.next()).await {
                        Err(_) => Err(format!("upstream stalled for {idle_timeout:?}")),
                        Ok(None) => break,
                        Ok(Some(Ok(chunk))) if chunk.is_empty() => {
                            pump_budget.add_permits(MIN_CHARGE);
                            continue;
                        }
                        Ok(Some(Ok(chunk))) => Ok(chunk),
                        Ok(Some(Err(e))) => Err(e.to_string()),
                    },
                };
                // A reader that keeps up gets hyper's bytes shared; any other gets at most
                // `HANDOVER_MAX`, copied as it crosses (see `handover`), the rest waiting for room.
                let item = item.map(|chunk| {
                    let (now, rest) = handover(chunk, limit);
                    pending = rest;
                    now
                });
                let len = item.as_ref().map_or(0, |c| c.bytes.len() as u64);
                if let Err(e) = &item {
                    guard.failure = Some(e.clone());
                }
                let failed = item.is_err();
                // Charge the chunk its size, within what the budget has left (a chunk larger than
                // the budget takes all of it); the room taken above is part of the charge, and
                // what it took beyond the charge goes back.
                let charge = if failed { held } else { (len as usize).clamp(MIN_CHARGE, limit) };
                let held = if charge > held {
                    let extra = (charge - held).min(pump_budget.available_permits());
                    match pump_budget.try_acquire_many(extra as u32) {
                        Ok(permit) => {
                            permit.forget();
                            held + extra
                        }
                        Err(_) => held,
                    }
                } else {
                    pump_budget.add_permits(held - charge);
                    charge
                };
                if tx.send((item, held)).await.is_err() || failed {
                    break; // reader gone, or the error is delivered: stop and drop the upstream
                }
                guard.bytes += len;
            }
        })
        .abort_handle();
        BodyStream { rx, budget, reads, task, finished: false, deferred: None, slot }
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
    fn taken(&mut self, item: Result<Chunk, String>, take: usize) -> Poll {
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
        if let Some(e) = self.deferred.take() {
            return Poll::Failed(e);
        }
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
        if let Some(e) = self.deferred.take() {
            return Poll::Failed(e);
        }
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

    /// Every chunk already buffered, up to `BATCH_MAX` bytes (see there), or what `try_next` says.
    pub fn try_next_batch(&mut self) -> Batch {
        match self.try_next() {
            Poll::Chunk(first) => Batch::Chunks(self.gather(first)),
            Poll::Pending => Batch::Pending,
            Poll::End => Batch::End,
            Poll::Failed(e) => Batch::Failed(e),
        }
    }

    /// The next chunk and whatever else is buffered by then, up to `BATCH_MAX` bytes.
    pub async fn next_batch(&mut self) -> Batch {
        match self.next().await {
            Poll::Chunk(first) => {
                // The pump that sent `first` is often about to send the next chunk: one turn of
                // the scheduler lets it, so this wake-up of the JS thread carries both.
                tokio::task::yield_now().await;
                Batch::Chunks(self.gather(first))
            }
            Poll::Pending | Poll::End => Batch::End,
            Poll::Failed(e) => Batch::Failed(e),
        }
    }

    /// `first` and the chunks queued behind it, while the batch is under `BATCH_MAX`. A failure
    /// found here waits for the next call, so the chunks before it are not lost.
    fn gather(&mut self, first: Chunk) -> Vec<Chunk> {
        let mut total = first.bytes.len();
        let mut out = vec![first];
        while total < BATCH_MAX {
            match self.try_next() {
                Poll::Chunk(c) => {
                    total += c.bytes.len();
                    out.push(c);
                }
                Poll::Failed(e) => {
                    self.deferred = Some(e);
                    break;
                }
                Poll::Pending | Poll::End => break,
            }
        }
        out
    }

    /// A handle that stops the pump without holding the stream (a pending `next` borrows it).
    pub fn abort_handle(&self) -> AbortHandle {
        self.task.clone()
    }

    /// The client went away: stop reading and close the upstream connection now.
    pub fn cancel(&mut self) {
        self.finished = true;
        self.deferred = None;
        self.task.abort();
        self.rx.close();
    }
}

impl Drop for BodyStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The room the task waits for once a budget of `limit` is full: half of it (at least `MIN_CHARGE`).
pub fn low_water(limit: usize) -> usize {
    (limit / 2).max(MIN_CHARGE)
}

/// Wait for `want` of room in the budget. `None`: the reader took nothing for `idle_timeout`
/// (a slow reader that keeps taking is waited for as long as it takes).
async fn wait_for_room<'a>(
    budget: &'a Semaphore,
    want: usize,
    reads: &AtomicU64,
    idle_timeout: Duration,
) -> Option<Result<tokio::sync::SemaphorePermit<'a>, tokio::sync::AcquireError>> {
    loop {
        let seen = reads.load(Ordering::Relaxed);
        match tokio::time::timeout(idle_timeout, budget.acquire_many(want as u32)).await {
            Ok(acquired) => return Some(acquired),
            // Slow but reading: keep waiting. Only a reader that took nothing is gone.
            Err(_) if reads.load(Ordering::Relaxed) != seen => continue,
            Err(_) => return None,
        }
    }
}

/// Move the budget from `limit` to `next` bytes: growing adds room at once; shrinking takes room
/// back only if it is free now (otherwise the budget stays as it is until the next wait). Returns
/// the budget in force.
fn resize(budget: &Semaphore, limit: usize, next: usize) -> usize {
    if next > limit {
        budget.add_permits(next - limit);
        next
    } else if next < limit {
        match budget.try_acquire_many((limit - next) as u32) {
            Ok(permit) => {
                permit.forget();
                next
            }
            Err(_) => limit,
        }
    } else {
        limit
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

    #[test]
    fn the_budget_grows_for_a_reader_that_keeps_up_and_shrinks_for_a_slow_one() {
        let ms = Duration::from_millis;
        let table = [
            // (budget, waited for room, next budget)
            (PREFETCH_START, Duration::ZERO, 2 * PREFETCH_START),
            (PREFETCH_START, KEEPS_UP, 2 * PREFETCH_START),
            (2 * PREFETCH_START, ms(1), 4 * PREFETCH_START),
            (PREFETCH_MAX / 2, ms(1), PREFETCH_MAX),
            (PREFETCH_MAX, ms(1), PREFETCH_MAX),
            (PREFETCH_MAX, KEEPS_UP + ms(1), PREFETCH_MAX),
            (PREFETCH_START, ms(10), PREFETCH_START),
            (4 * PREFETCH_START, FALLS_BEHIND - ms(1), 4 * PREFETCH_START),
            (4 * PREFETCH_START, FALLS_BEHIND, 2 * PREFETCH_START),
            (PREFETCH_MAX, Duration::from_secs(5), PREFETCH_MAX / 2),
            (PREFETCH_START, Duration::from_secs(5), PREFETCH_START),
        ];
        for (budget, waited, want) in table {
            assert_eq!(next_budget(budget, waited, PREFETCH_MAX), want, "{budget} after {waited:?}");
        }
        // Whatever happens, the budget stays between the start and the most.
        for waited in [0, 1, 2, 3, 49, 50, 51, 10_000].map(ms) {
            let mut b = PREFETCH_START;
            for _ in 0..20 {
                b = next_budget(b, waited, PREFETCH_MAX);
                assert!((PREFETCH_START..=PREFETCH_MAX).contains(&b), "{b}");
            }
        }
    }

    #[test]
    fn with_many_streams_a_budget_grows_only_to_its_share() {
        assert_eq!(budget_cap(0), PREFETCH_MAX);
        assert_eq!(budget_cap(1), PREFETCH_MAX);
        assert_eq!(budget_cap(PREFETCH_TOTAL / PREFETCH_MAX), PREFETCH_MAX);
        assert_eq!(budget_cap(PREFETCH_TOTAL / PREFETCH_MAX + 1), PREFETCH_TOTAL / (PREFETCH_TOTAL / PREFETCH_MAX + 1));
        assert_eq!(budget_cap(PREFETCH_TOTAL / PREFETCH_START), PREFETCH_START);
        assert_eq!(budget_cap(200), PREFETCH_START);
        assert_eq!(budget_cap(usize::MAX), PREFETCH_START);
        let ms = Duration::from_millis;
        let table = [
            // (budget, waited for room, cap, next budget)
            (PREFETCH_START, ms(1), PREFETCH_START, PREFETCH_START),
            (PREFETCH_START, ms(1), 2 * PREFETCH_START, 2 * PREFETCH_START),
            (2 * PREFETCH_START, ms(1), 3 * PREFETCH_START, 3 * PREFETCH_START),
            // More streams started: a prompt reader's budget falls to its share at once.
            (PREFETCH_MAX, ms(1), PREFETCH_START, PREFETCH_START),
            (PREFETCH_MAX, ms(10), 2 * PREFETCH_START, 2 * PREFETCH_START),
            (PREFETCH_MAX, FALLS_BEHIND, PREFETCH_START, PREFETCH_START),
        ];
        for (budget, waited, cap, want) in table {
            assert_eq!(next_budget(budget, waited, cap), want, "{budget} after {waited:?} capped at {cap}");
        }
    }

    #[test]
    fn a_reader_at_the_full_budget_shares_hyper_s_bytes_whole_any_other_gets_pieces_of_at_most_64_kib_to_copy() {
        let big = Bytes::from(vec![7u8; 400 * 1024]);
        // Keeps up: the view itself, shared, nothing left.
        let (now, rest) = handover(big.clone(), PREFETCH_MAX);
        assert_eq!(now.bytes.as_ptr(), big.as_ptr());
        assert_eq!((now.bytes.len(), now.crossing, rest), (big.len(), Crossing::Shared, None));
        // Does not: at most HANDOVER_MAX to copy as it crosses, the rest a view of the same bytes.
        for limit in [PREFETCH_START, PREFETCH_MAX / 2] {
            let (now, rest) = handover(big.clone(), limit);
            assert_eq!((now.bytes.len(), now.crossing), (HANDOVER_MAX, Crossing::Copied));
            let rest = rest.expect("the rest waits");
            assert_eq!(rest.len(), big.len() - HANDOVER_MAX);
            assert_eq!(rest.as_ptr(), big[HANDOVER_MAX..].as_ptr());
        }
        // A small chunk goes whole, nothing left; handing a chunk on piece by piece loses nothing.
        let small = Bytes::from_static(b"0123456789");
        assert_eq!(handover(small.clone(), PREFETCH_START), (Chunk { bytes: small, crossing: Crossing::Copied }, None));
        let data: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
        let (mut out, mut left) = (Vec::new(), Some(Bytes::from(data.clone())));
        while let Some(chunk) = left.take() {
            let (now, rest) = handover(chunk, PREFETCH_START);
            assert!(!now.bytes.is_empty() && now.bytes.len() <= HANDOVER_MAX);
            out.extend_from_slice(&now.bytes);
            left = rest;
        }
        assert_eq!(out, data);
    }

    #[test]
    fn a_full_budget_waits_for_half_of_itself_before_reading_on() {
        for (limit, want) in [
            (PREFETCH_START, PREFETCH_START / 2),
            (PREFETCH_MAX, PREFETCH_MAX / 2),
            (MIN_CHARGE, MIN_CHARGE),
            (MIN_CHARGE + 1, MIN_CHARGE),
        ] {
            assert_eq!(low_water(limit), want, "{limit}");
            assert!(low_water(limit) >= MIN_CHARGE);
        }
    }

    #[test]
    fn resizing_keeps_the_permits_equal_to_the_budget_in_force() {
        let s = Semaphore::new(PREFETCH_START);
        assert_eq!(resize(&s, PREFETCH_START, 2 * PREFETCH_START), 2 * PREFETCH_START);
        assert_eq!(s.available_permits(), 2 * PREFETCH_START);
        assert_eq!(resize(&s, 2 * PREFETCH_START, PREFETCH_START), PREFETCH_START);
        assert_eq!(s.available_permits(), PREFETCH_START);
        // Room not free (the reader holds the chunks): the shrink waits for a later turn.
        let s = Semaphore::new(0);
        assert_eq!(resize(&s, 2 * PREFETCH_START, PREFETCH_START), 2 * PREFETCH_START);
        assert_eq!(s.available_permits(), 0);
    }

    /// A stream over `items` already queued, as the pump would have sent them, and then ended.
    fn queued(items: Vec<Item>) -> BodyStream {
        let (tx, rx) = mpsc::channel::<Item>(CHANNEL_SLOTS);
        for item in items {
            tx.try_send(item).unwrap();
        }
        drop(tx);
        let task = tokio::spawn(async {}).abort_handle();
        let (budget, reads) = (Arc::new(Semaphore::new(0)), Arc::new(AtomicU64::new(0)));
        BodyStream { rx, budget, reads, task, finished: false, deferred: None, slot: SharedSlot::default() }
    }

    fn shared(bytes: Vec<u8>) -> Chunk {
        Chunk { bytes: Bytes::from(bytes), crossing: Crossing::Shared }
    }

    fn sizes(batch: Batch) -> Vec<usize> {
        match batch {
            Batch::Chunks(c) => c.iter().map(|c| c.bytes.len()).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_hand_over_takes_every_buffered_chunk_up_to_the_batch_bound_and_a_failure_after_them() {
        let k = |n: usize| n * 1024;
        let table: [(&[usize], &[&[usize]]); 5] = [
            // (chunks queued, batches handed over)
            (&[k(64)], &[&[k(64)]]),
            (&[k(64), k(32), k(16)], &[&[k(64), k(32), k(16)]]),
            // The batch stops at the chunk that reaches the bound.
            (&[k(64), k(64), k(64)], &[&[k(64), k(64)], &[k(64)]]),
            (&[k(100), k(20), k(30), k(1)], &[&[k(100), k(20), k(30)], &[k(1)]]),
            (&[BATCH_MAX + 1, 1], &[&[BATCH_MAX + 1], &[1]]),
        ];
        for (queued_sizes, want) in table {
            let items = queued_sizes.iter().map(|&n| (Ok(shared(vec![1u8; n])), n)).collect();
            let mut stream = queued(items);
            for want in want {
                assert_eq!(sizes(stream.try_next_batch()), *want, "{queued_sizes:?}");
            }
            assert!(matches!(stream.try_next_batch(), Batch::End), "{queued_sizes:?}");
            // Everything taken went back to the budget.
            assert_eq!(stream.budget.available_permits(), queued_sizes.iter().sum::<usize>());
        }
        // A failure behind chunks: the chunks first, then the failure, then the end; awaited alike.
        for awaited in [false, true] {
            let mut stream =
                queued(vec![(Ok(shared(b"ab".to_vec())), 2), (Ok(shared(b"c".to_vec())), 1), (Err("cut".into()), 0)]);
            let mut seen = Vec::new();
            for _ in 0..3 {
                seen.push(if awaited { stream.next_batch().await } else { stream.try_next_batch() });
            }
            let mut seen = seen.into_iter();
            assert_eq!(seen.next().map(sizes), Some(vec![2, 1]), "awaited: {awaited}");
            assert!(matches!(seen.next(), Some(Batch::Failed(e)) if e == "cut"), "awaited: {awaited}");
            assert!(matches!(seen.next(), Some(Batch::End)), "awaited: {awaited}");
        }
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
                Poll::Chunk(c) => buffered += c.bytes.len(),
                Poll::Failed(why) => break why,
                other => panic!("a short body must not end quietly: {other:?} after {buffered} bytes"),
            }
        };
        assert!(failure.contains("read nothing"), "{failure}");
        assert!(buffered <= PREFETCH_MAX + 64 * 1024, "{buffered}");
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
                Poll::Chunk(c) => got += c.bytes.len(),
                other => panic!("{other:?} after {got}"),
            }
            if got % (1 << 20) < 64 * 1024 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        stream.cancel();
    }
}
