//! The audio storage client. Redirects are not followed by the HTTP client and no proxy is read
//! from the environment: each redirect hop goes back through `HostPolicy::check`, and every
//! connection goes through `GuardedResolver`, so the address dialed is an address that was checked.
//!
//! Built on hyper-util's client (the one reqwest wraps) rather than reqwest's, for one setting
//! reqwest does not expose: the most hyper reads from a connection at a time (`READ_BUF_MAX`).
//! The response goes on as a `reqwest::Response` (a wrapper over the same hyper body), so the
//! readers of it (`get.rs`, `body.rs`) are those of every other HTTP answer in the crate.

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, USER_AGENT};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use url::Url;

use crate::error::{Error, Result};
use crate::playback::policy::{guarded_resolver, redact, GuardedResolver, HostPolicy};

/// As go-camo and Next's image optimizer.
pub const MAX_REDIRECTS: usize = 3;

/// Idle connections kept per storage host. Each keeps its read buffer, so after a burst of 200
/// streams an unbounded pool held tens of MiB for its 30 s idle timeout. Sequential seeks need
/// one warm connection; a handful of listeners a few.
pub const MAX_IDLE_PER_HOST: usize = 16;

/// The most hyper reads from one upstream connection at a time, and so the most one connection's
/// read buffer holds. hyper's default (~400 KiB) is what a connection whose reader lags reaches,
/// since its socket is always full: with 200 streams that was the bulk of the process's memory
/// above the pure-JS route's (strace: most reads at hyper's 417,792-byte maximum; BENCHMARKS.md).
/// 64 KiB is what Node's own sockets read at a time, and below glibc's mmap threshold.
pub const READ_BUF_MAX: usize = 64 * 1024;

/// How often the timer anchor (see `anchor_period`) wakes the runtime's timer driver when
/// nothing else does: once per 5 s on an idle process.
pub const ANCHOR_PERIOD: Duration = Duration::from_secs(5);

/// The period of the timer anchor for an upstream timeout of `timeout`, if one is worth having.
///
/// Every upstream request arms its timeout (`timeout` from now) on tokio's timer wheel. When the
/// wheel held no earlier timer when the timer driver last parked (an idle process between seeks:
/// the previous request's timers are gone), tokio unparks the driver to re-arm its sleep: an
/// `eventfd` write on the request's path and a wake of another worker thread, which on a
/// 2-vCPU VM competes with the request itself. A task that always has a sleep pending at most
/// `ANCHOR_PERIOD` ahead keeps the driver's next wake earlier than any request's deadline, so
/// arming one never unparks it. Only worth it when the timeout is longer than that period.
pub fn anchor_period(timeout: Duration) -> Option<Duration> {
    (timeout > ANCHOR_PERIOD).then_some(ANCHOR_PERIOD)
}

type Https = HttpsConnector<HttpConnector<GuardedResolver>>;

pub struct UpstreamClient {
    http: Client<Https, http_body_util::Empty<Bytes>>,
    timeout: Duration,
    /// The timer anchor's task, started by the first request (inside the runtime), stopped on drop.
    anchor: OnceLock<Option<tokio::task::AbortHandle>>,
}

impl Drop for UpstreamClient {
    fn drop(&mut self) {
        if let Some(Some(task)) = self.anchor.get() {
            task.abort();
        }
    }
}

/// The connector: TCP through the guarded resolver (connect timeout, no Nagle: a Range request is
/// one small write that must not wait for an ACK), then TLS with rustls over the webpki roots, as
/// reqwest's `rustls-tls` does; plain `http` stays possible for the loopback exception, which
/// `HostPolicy` alone decides on.
fn connector(allow_loopback: bool, timeout: Duration) -> Result<Https> {
    let mut tcp = HttpConnector::new_with_resolver(guarded_resolver(allow_loopback));
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(connect_timeout(timeout)));
    let tls = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
        .map_err(|e| Error::Internal(format!("upstream TLS: {e}")))?
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp);
    Ok(tls)
}

/// The connect timeout for an upstream timeout of `timeout`: the same, at most 10 s.
pub fn connect_timeout(timeout: Duration) -> Duration {
    timeout.min(Duration::from_secs(10))
}

impl UpstreamClient {
    pub fn new(allow_loopback: bool, timeout: Duration) -> Result<Self> {
        let http = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
            .http1_max_buf_size(READ_BUF_MAX)
            .build(connector(allow_loopback, timeout)?);
        Ok(UpstreamClient { http, timeout, anchor: OnceLock::new() })
    }

    /// Start the timer anchor on the runtime this request runs on, once (see `anchor_period`).
    fn anchor(&self) {
        self.anchor.get_or_init(|| {
            let period = anchor_period(self.timeout)?;
            let rt = tokio::runtime::Handle::try_current().ok()?;
            Some(
                rt.spawn(async move {
                    loop {
                        tokio::time::sleep(period).await;
                    }
                })
                .abort_handle(),
            )
        });
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Send `method` to `url` (already passed `HostPolicy::check_audio_url`) with `headers`,
    /// following at most `MAX_REDIRECTS` redirects, each checked against `policy` before it is
    /// dialed. `bearer` is sent only to the first URL's host (private Vercel Blob reads).
    pub async fn fetch(
        &self,
        policy: &HostPolicy,
        method: http::Method,
        mut url: Url,
        headers: &[(String, String)],
        bearer: Option<&str>,
    ) -> Result<reqwest::Response> {
        self.anchor();
        let first_host = url.host_str().map(str::to_string);
        for hop in 0..=MAX_REDIRECTS {
            if hop > 0 {
                policy
                    .check(&url)
                    .map_err(|r| Error::UntrustedAudioHost(format!("redirect to {}: {r}", redact(&url))))?;
            }
            let bearer = bearer.filter(|_| url.host_str().map(str::to_string) == first_host);
            let req = request(&method, &url, headers, bearer)?;
            let resp = match tokio::time::timeout(self.timeout, self.http.request(req)).await {
                Err(_) => {
                    return Err(Error::UpstreamTimeout(format!(
                        "no response headers from {} within {:?}",
                        redact(&url),
                        self.timeout
                    )))
                }
                Ok(Err(e)) => return Err(classify(&url, &e)),
                Ok(Ok(resp)) => resp,
            };
            if !resp.status().is_redirection() || resp.status() == 304 {
                return Ok(reqwest::Response::from(resp.map(reqwest::Body::wrap)));
            }
            if hop == MAX_REDIRECTS {
                break;
            }
            let location = resp
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| Error::UpstreamFailed(format!("redirect without Location from {}", redact(&url))))?;
            url = url
                .join(location)
                .map_err(|_| Error::UntrustedAudioHost(format!("redirect to unparsable {location:?}")))?;
        }
        Err(Error::UpstreamFailed(format!("more than {MAX_REDIRECTS} redirects")))
    }
}

/// One hop's request: the forwarded client headers, our User-Agent, and the bearer (marked
/// sensitive, so it never appears in hyper's debug output). A header that is not valid HTTP is an
/// upstream failure, as reqwest reported it.
fn request(
    method: &http::Method,
    url: &Url,
    headers: &[(String, String)],
    bearer: Option<&str>,
) -> Result<http::Request<http_body_util::Empty<Bytes>>> {
    let invalid = |what: String| Error::UpstreamFailed(format!("request to {}: {what}", redact(url)));
    let uri: http::Uri = url.as_str().parse().map_err(|e| invalid(format!("URL: {e}")))?;
    let mut req = http::Request::builder().method(method.clone()).uri(uri);
    let Some(h) = req.headers_mut() else { return Err(invalid("request builder".into())) };
    h.insert(USER_AGENT, HeaderValue::from_static(crate::USER_AGENT));
    h.insert(ACCEPT, HeaderValue::from_static("*/*"));
    for (k, v) in headers {
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|e| invalid(format!("header {k:?}: {e}")))?;
        let value = HeaderValue::from_str(v).map_err(|e| invalid(format!("header {k:?}: {e}")))?;
        h.append(name, value);
    }
    if let Some(token) = bearer {
        let mut value =
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| invalid("unusable bearer token".into()))?;
        value.set_sensitive(true);
        h.insert(AUTHORIZATION, value);
    }
    req.body(http_body_util::Empty::new()).map_err(|e| invalid(e.to_string()))
}

fn classify(url: &Url, e: &hyper_util::client::legacy::Error) -> Error {
    // The guarded resolver's refusal surfaces as a connect error whose source chain names it.
    let chain = crate::error::chain(e);
    if chain.contains("forbidden addresses") {
        Error::UntrustedAudioHost(format!("{}: {chain}", redact(url)))
    } else if timed_out(e) {
        Error::UpstreamTimeout(format!("{}: {chain}", redact(url)))
    } else {
        Error::UpstreamFailed(format!("{}: {chain}", redact(url)))
    }
}

/// Whether an I/O timeout (the connect timeout) is anywhere in `e`'s source chain.
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        if err.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut) {
            return true;
        }
        next = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connect_timeout_is_the_upstream_timeout_capped_at_10_s() {
        let s = Duration::from_secs;
        for (timeout, want) in [(s(1), s(1)), (s(10), s(10)), (s(15), s(10)), (Duration::ZERO, Duration::ZERO)] {
            assert_eq!(connect_timeout(timeout), want, "{timeout:?}");
        }
    }

    #[test]
    fn the_timer_anchor_runs_only_for_timeouts_longer_than_its_period() {
        let s = Duration::from_secs;
        let table = [
            (s(15), Some(ANCHOR_PERIOD)),
            (ANCHOR_PERIOD + Duration::from_millis(1), Some(ANCHOR_PERIOD)),
            (ANCHOR_PERIOD, None),
            (Duration::from_millis(300), None),
            (Duration::ZERO, None),
        ];
        for (timeout, want) in table {
            assert_eq!(anchor_period(timeout), want, "{timeout:?}");
        }
    }

    #[test]
    fn a_request_carries_the_forwarded_headers_and_the_bearer_marked_sensitive() {
        let url = Url::parse("https://s.public.blob.vercel-storage.com/a.webm").unwrap();
        let fwd = vec![("range".to_string(), "bytes=0-15".to_string())];
        let req = request(&http::Method::GET, &url, &fwd, Some("tok")).unwrap();
        assert_eq!(req.uri().to_string(), url.as_str());
        assert_eq!(req.headers()["range"], "bytes=0-15");
        assert_eq!(req.headers()[USER_AGENT], crate::USER_AGENT);
        assert_eq!(req.headers()[AUTHORIZATION], "Bearer tok");
        assert!(req.headers()[AUTHORIZATION].is_sensitive());
        assert!(request(&http::Method::GET, &url, &fwd, None).unwrap().headers().get(AUTHORIZATION).is_none());
        // Not valid HTTP: refused as an upstream failure, never a panic.
        for (k, v, bearer) in [("bad name", "x", None), ("range", "a\nb", None), ("range", "x", Some("a\rb"))] {
            let err = request(&http::Method::GET, &url, &[(k.into(), v.into())], bearer).unwrap_err();
            assert!(matches!(err, Error::UpstreamFailed(_)), "{k:?} {v:?}: {err:?}");
        }
    }

    #[test]
    fn only_an_io_timeout_in_the_chain_is_a_timeout() {
        #[derive(Debug)]
        struct Wrap(std::io::Error);
        impl std::fmt::Display for Wrap {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("tcp connect error")
            }
        }
        impl std::error::Error for Wrap {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let io = |k| std::io::Error::new(k, "x");
        let table = [
            (std::io::ErrorKind::TimedOut, true),
            (std::io::ErrorKind::ConnectionRefused, false),
            (std::io::ErrorKind::ConnectionReset, false),
        ];
        for (kind, want) in table {
            assert_eq!(timed_out(&io(kind)), want, "{kind:?}");
            assert_eq!(timed_out(&Wrap(io(kind))), want, "{kind:?} wrapped");
        }
    }

    #[tokio::test]
    async fn a_name_that_resolves_inward_is_refused_at_connect_time() {
        // `localhost` passes a policy that lists it only with the loopback switch; the connector's
        // resolver is the second layer, and with the switch off it refuses the address dialed.
        let client = UpstreamClient::new(false, Duration::from_secs(2)).unwrap();
        let lenient = HostPolicy::parse(&["localhost:9".to_string()], true).unwrap();
        let url = Url::parse("http://localhost:9/a.wav").unwrap();
        let err = client.fetch(&lenient, http::Method::GET, url, &[], None).await.unwrap_err();
        assert!(matches!(err, Error::UntrustedAudioHost(_)), "{err:?}");
    }
}
