//! The audio storage client. No redirects are followed by reqwest and no proxy is read from the
//! environment: each redirect hop goes back through `HostPolicy::check`, and every connection goes
//! through `GuardedResolver`, so the address dialed is an address that was checked.

use std::time::Duration;

use url::Url;

use crate::error::{Error, Result};
use crate::playback::policy::{guarded_resolver, redact, HostPolicy};

/// As go-camo and Next's image optimizer.
pub const MAX_REDIRECTS: usize = 3;

/// Idle connections kept per storage host. Each keeps hyper's read buffer (up to ~400 KiB once a
/// body was read fast), so after a burst of 200 streams an unbounded pool held tens of MiB for
/// its 30 s idle timeout. Sequential seeks need one warm connection; a handful of listeners a few.
pub const MAX_IDLE_PER_HOST: usize = 16;

pub struct UpstreamClient {
    http: reqwest::Client,
    timeout: Duration,
}

pub fn build_client(allow_loopback: bool, timeout: Duration) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(guarded_resolver(allow_loopback))
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
        .user_agent(crate::USER_AGENT)
        .build()
        .map_err(|e| Error::Internal(format!("upstream client: {e}")))
}

impl UpstreamClient {
    pub fn new(allow_loopback: bool, timeout: Duration) -> Result<Self> {
        Ok(UpstreamClient { http: build_client(allow_loopback, timeout)?, timeout })
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
        method: reqwest::Method,
        mut url: Url,
        headers: &[(String, String)],
        bearer: Option<&str>,
    ) -> Result<reqwest::Response> {
        let first_host = url.host_str().map(str::to_string);
        for hop in 0..=MAX_REDIRECTS {
            if hop > 0 {
                policy
                    .check(&url)
                    .map_err(|r| Error::UntrustedAudioHost(format!("redirect to {}: {r}", redact(&url))))?;
            }
            let mut req = self.http.request(method.clone(), url.clone());
            for (k, v) in headers {
                req = req.header(k, v);
            }
            if let Some(token) = bearer.filter(|_| url.host_str().map(str::to_string) == first_host) {
                req = req.bearer_auth(token);
            }
            let resp = match tokio::time::timeout(self.timeout, req.send()).await {
                Err(_) => {
                    return Err(Error::UpstreamTimeout(format!(
                        "no response headers from {} within {:?}",
                        redact(&url),
                        self.timeout
                    )))
                }
                Ok(Err(e)) => return Err(classify(&url, e)),
                Ok(Ok(resp)) => resp,
            };
            if !resp.status().is_redirection() || resp.status() == 304 {
                return Ok(resp);
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

fn classify(url: &Url, e: reqwest::Error) -> Error {
    // The guarded resolver's refusal surfaces as a connect error whose source chain names it.
    let chain = crate::error::chain(&e);
    if chain.contains("forbidden addresses") {
        Error::UntrustedAudioHost(format!("{}: {chain}", redact(url)))
    } else if e.is_timeout() {
        Error::UpstreamTimeout(format!("{}: {chain}", redact(url)))
    } else {
        Error::UpstreamFailed(format!("{}: {chain}", redact(url)))
    }
}
