//! The one way an upstream's answer is read: chunk by chunk, at most a cap, so a dependency that
//! answers too much (a proxy's error page, a runaway function, a hostile server) costs a bounded
//! amount of memory and time and is that dependency's failure. Every client reads through here with
//! its own cap (`MAX_ANSWER_BYTES` in clerk and convex, the metadata cap in blob); each maps
//! `Failed` to its own "unavailable" error.

use std::time::Duration;

/// What a capped read does with bytes past its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Past {
    /// The answer is failing: `Failed::TooLong`.
    Fail,
    /// Only the first bytes were wanted (a store may ignore Range): stop there.
    Stop,
}

/// Why an answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failed {
    /// A chunk did not arrive within the read's timeout.
    TimedOut,
    /// The connection failed mid-answer (the error chain).
    Transport(String),
    /// More than the cap (bytes).
    TooLong(u64),
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failed::TimedOut => f.write_str("timed out"),
            Failed::Transport(why) => f.write_str(why),
            Failed::TooLong(cap) if cap % (1 << 20) == 0 => write!(f, "answer over {} MiB", cap >> 20),
            Failed::TooLong(cap) if cap % 1024 == 0 => write!(f, "answer over {} KiB", cap >> 10),
            Failed::TooLong(cap) => write!(f, "answer over {cap} bytes"),
        }
    }
}

/// Read `resp`'s body, each chunk within `timeout` (none: the client's own timeout bounds it), at
/// most `cap` bytes, every byte handed to `sink` as it arrives; the rest is never read.
pub async fn read(
    resp: reqwest::Response,
    timeout: Option<Duration>,
    cap: u64,
    past: Past,
    mut sink: impl FnMut(&[u8]),
) -> Result<(), Failed> {
    let mut reader = Reader::new(resp, timeout, cap, past);
    while let Some(chunk) = reader.next().await? {
        sink(&chunk);
    }
    Ok(())
}

/// `read` pulled a chunk at a time, for a reader that awaits between chunks (the completion's
/// rewrite sends a part to the store before it reads on): the same timeout, cap and `Past`.
pub struct Reader {
    resp: reqwest::Response,
    timeout: Option<Duration>,
    cap: u64,
    past: Past,
    read: u64,
}

impl Reader {
    pub fn new(resp: reqwest::Response, timeout: Option<Duration>, cap: u64, past: Past) -> Reader {
        Reader { resp, timeout, cap, past, read: 0 }
    }

    /// The next bytes of the answer, `None` at its end (or at the cap, with `Past::Stop`).
    pub async fn next(&mut self) -> Result<Option<bytes::Bytes>, Failed> {
        if self.past == Past::Stop && self.read >= self.cap {
            return Ok(None);
        }
        let next = match self.timeout {
            Some(t) => tokio::time::timeout(t, self.resp.chunk()).await.map_err(|_| Failed::TimedOut)?,
            None => self.resp.chunk().await,
        };
        let Some(mut chunk) = next.map_err(|e| Failed::Transport(crate::error::chain(&e)))? else { return Ok(None) };
        let room = usize::try_from(self.cap - self.read).unwrap_or(usize::MAX);
        if chunk.len() > room && self.past == Past::Fail {
            return Err(Failed::TooLong(self.cap));
        }
        chunk.truncate(chunk.len().min(room));
        self.read += chunk.len() as u64;
        Ok(Some(chunk))
    }
}

/// A whole answer of at most `cap` bytes.
pub async fn read_all(resp: reqwest::Response, timeout: Option<Duration>, cap: u64) -> Result<Vec<u8>, Failed> {
    // A declared length past the cap is refused before a byte is read.
    if resp.content_length().is_some_and(|n| n > cap) {
        return Err(Failed::TooLong(cap));
    }
    let mut body = Vec::new();
    read(resp, timeout, cap, Past::Fail, |b| body.extend_from_slice(b)).await?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A loopback server answering `head` and then `body_len` bytes of `x`, streamed (chunked, no
    /// declared length unless `declare`), stopping when the client goes away.
    async fn server(body_len: usize, declare: bool) -> (String, tokio::task::JoinHandle<usize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            let head = if declare {
                format!("HTTP/1.1 200 OK\r\ncontent-length: {body_len}\r\n\r\n")
            } else {
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_string()
            };
            sock.write_all(head.as_bytes()).await.unwrap();
            let piece = vec![b'x'; 64 * 1024];
            let mut sent = 0;
            while sent < body_len {
                let n = piece.len().min(body_len - sent);
                let frame = if declare {
                    piece[..n].to_vec()
                } else {
                    [format!("{n:x}\r\n").as_bytes(), &piece[..n], b"\r\n"].concat()
                };
                if sock.write_all(&frame).await.is_err() {
                    return sent;
                }
                sent += n;
            }
            if !declare {
                let _ = sock.write_all(b"0\r\n\r\n").await;
            }
            sent
        });
        (url, task)
    }

    #[tokio::test]
    async fn an_answer_past_the_cap_fails_without_reading_it_all() {
        const CAP: u64 = 1 << 20;
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        // 256 MiB streamed: refused once past the cap; the server sees the client leave early.
        let (url, task) = server(256 << 20, false).await;
        let got = read_all(client.get(&url).send().await.unwrap(), Some(Duration::from_secs(5)), CAP).await;
        assert_eq!(got, Err(Failed::TooLong(CAP)));
        assert_eq!(got.unwrap_err().to_string(), "answer over 1 MiB");
        assert!(task.await.unwrap() < 64 << 20);
        // A declared length past the cap: refused before the body.
        let (url, _task) = server(2 << 20, true).await;
        assert_eq!(read_all(client.get(&url).send().await.unwrap(), None, CAP).await, Err(Failed::TooLong(CAP)));
        // At the cap exactly: read whole.
        let (url, _task) = server(CAP as usize, false).await;
        assert_eq!(read_all(client.get(&url).send().await.unwrap(), None, CAP).await.unwrap().len(), CAP as usize);
        // `Stop`: the first bytes only, no failure.
        let (url, _task) = server(4 << 20, false).await;
        let mut n = 0;
        read(client.get(&url).send().await.unwrap(), None, 1000, Past::Stop, |b| n += b.len()).await.unwrap();
        assert_eq!(n, 1000);
    }

    #[test]
    fn failures_name_the_cap() {
        assert_eq!(Failed::TooLong(64 * 1024).to_string(), "answer over 64 KiB");
        assert_eq!(Failed::TooLong(1000).to_string(), "answer over 1000 bytes");
        assert_eq!(Failed::TimedOut.to_string(), "timed out");
    }
}
