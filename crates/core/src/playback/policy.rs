//! SSRF defence for the stored audio URL, in layers (go-camo, smokescreen; see docs/ssrf-and-range.md):
//!
//! 1. `HostPolicy::check` — a pure check of the URL: https only, no userinfo, no IP literal, host on
//!    the allowlist, no port but 443 unless the pattern names one.
//! 2. `forbidden_reason` — a pure classification of an IP address, used by `GuardedResolver` at
//!    connect time, so the address checked is the address dialed (defeats DNS rebinding and
//!    allow-listed names that resolve inward).
//! 3. Redirects are not followed by the HTTP client; `upstream` re-runs the check on every hop.
//!
//! The one exception, for tests and the local demo, is `allow_loopback`
//! (`SESSION_AUDIO_ALLOW_LOOPBACK_UPSTREAM=1`): `http://127.0.0.1:PORT` / `http://localhost:PORT`
//! pass when exactly that `host:port` is on the allowlist. Off by default.

use std::net::{IpAddr, SocketAddr};

use url::{Host, Url};

#[derive(Debug, Clone, PartialEq, Eq)]
struct HostPattern {
    /// `Some("public.blob.vercel-storage.com")` for `*.public.blob.vercel-storage.com`.
    wildcard_suffix: Option<String>,
    host: String,
    port: Option<u16>,
}

#[derive(Debug, Clone)]
pub struct HostPolicy {
    patterns: Vec<HostPattern>,
    allow_loopback: bool,
}

/// Why a URL was refused. Goes to logs only; the client sees one generic message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NotAUrl,
    Scheme(String),
    Userinfo,
    IpLiteral(String),
    HostNotAllowed(String),
    Port(u16),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NotAUrl => write!(f, "not a URL"),
            Refusal::Scheme(s) => write!(f, "scheme {s:?} is not https"),
            Refusal::Userinfo => write!(f, "URL carries userinfo"),
            Refusal::IpLiteral(h) => write!(f, "IP literal host {h}"),
            Refusal::HostNotAllowed(h) => write!(f, "host {h} is not on the trusted list"),
            Refusal::Port(p) => write!(f, "port {p} is not allowed"),
        }
    }
}

impl HostPolicy {
    /// Parse `host`, `*.suffix`, optionally with `:port`. Anything else (schemes, paths, bare `*`)
    /// is a configuration error rather than a silently broader policy.
    pub fn parse(entries: &[String], allow_loopback: bool) -> Result<HostPolicy, String> {
        let mut patterns = Vec::new();
        // Entries are named by position, never quoted: configuration errors do not echo values.
        for (i, raw) in entries.iter().enumerate() {
            let n = i + 1;
            let entry = raw.trim().to_ascii_lowercase();
            if entry.contains('/') || entry.contains('@') || entry.is_empty() {
                return Err(format!("entry {n} is not a host pattern (use host, *.domain or host:port)"));
            }
            let (host_part, port) = match entry.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => {
                    let port = p.parse::<u16>().map_err(|_| format!("entry {n} has a bad port"))?;
                    (h.to_string(), Some(port))
                }
                _ => (entry.clone(), None),
            };
            let (wildcard_suffix, host) = match host_part.strip_prefix("*.") {
                Some(suffix) => (Some(suffix.to_string()), suffix.to_string()),
                None => (None, host_part.clone()),
            };
            if host.is_empty() || host.contains('*') || !host.contains('.') && host != "localhost" {
                return Err(format!("entry {n} is too broad or malformed"));
            }
            patterns.push(HostPattern { wildcard_suffix, host, port });
        }
        Ok(HostPolicy { patterns, allow_loopback })
    }

    pub fn allow_loopback(&self) -> bool {
        self.allow_loopback
    }

    fn matches(&self, host: &str, port: Option<u16>) -> bool {
        self.patterns.iter().any(|p| {
            let host_ok = match &p.wildcard_suffix {
                // Exactly one label in front: `<storeId>.public.blob.vercel-storage.com`.
                Some(suffix) => host
                    .strip_suffix(suffix.as_str())
                    .and_then(|rest| rest.strip_suffix('.'))
                    .is_some_and(|label| !label.is_empty() && !label.contains('.')),
                None => host == p.host,
            };
            host_ok && port == p.port
        })
    }

    /// The stored audio URL, parsed and checked: the GET route's step 4.
    pub fn check_audio_url(&self, raw: &str) -> Result<Url, crate::error::Error> {
        use crate::error::Error;
        let url = Url::parse(raw)
            .map_err(|_| Error::UntrustedAudioHost(format!("stored audio URL does not parse: {raw:?}")))?;
        self.check(&url).map_err(|r| Error::UntrustedAudioHost(format!("{}: {r}", redact(&url))))?;
        Ok(url)
    }

    /// The URL-level check. `Ok` means "may be dialed", still subject to the connect-time check.
    pub fn check(&self, url: &Url) -> Result<(), Refusal> {
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refusal::Userinfo);
        }
        let port = url.port(); // None when absent or the scheme's default
        let host = url.host().ok_or(Refusal::NotAUrl)?;
        if self.allow_loopback && url.scheme() == "http" {
            let loopback_name = match &host {
                Host::Domain(d) => *d == "localhost",
                Host::Ipv4(ip) => ip.is_loopback(),
                Host::Ipv6(ip) => ip.is_loopback(),
            };
            if loopback_name {
                let name = url.host_str().unwrap_or_default();
                let name = name.trim_start_matches('[').trim_end_matches(']');
                return match port {
                    Some(p) if self.matches(name, Some(p)) => Ok(()),
                    _ => Err(Refusal::HostNotAllowed(format!("{name}:{}", port.unwrap_or(80)))),
                };
            }
        }
        if url.scheme() != "https" {
            return Err(Refusal::Scheme(url.scheme().to_string()));
        }
        let name = match host {
            Host::Domain(d) => d.to_string(),
            Host::Ipv4(ip) => return Err(Refusal::IpLiteral(ip.to_string())),
            Host::Ipv6(ip) => return Err(Refusal::IpLiteral(ip.to_string())),
        };
        if name.ends_with('.') {
            // A trailing dot is a different name to the matcher but the same to DNS.
            return Err(Refusal::HostNotAllowed(name));
        }
        if !self.matches(&name, None) {
            return match port {
                Some(p) if self.matches(&name, Some(p)) => Ok(()),
                Some(p) => Err(Refusal::Port(p)),
                None => Err(Refusal::HostNotAllowed(name)),
            };
        }
        match port {
            None => Ok(()),
            Some(p) if self.matches(&name, Some(p)) => Ok(()),
            Some(p) => Err(Refusal::Port(p)),
        }
    }
}

/// Whether the URL's path is under `listening-sessions/{session_id}/`: that prefix, then at least
/// one more segment, none of them empty or a dot segment. Segments are compared decoded, so an
/// encoded `/` or `..` cannot smuggle another session's path past the check.
pub fn under_session_prefix(url: &Url, session_id: &str) -> bool {
    let segments: Vec<String> = url
        .path_segments()
        .into_iter()
        .flatten()
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    segments.len() >= 3
        && Some(segments[0].as_str()) == crate::storage::store::PREFIX.strip_suffix('/')
        && segments[1] == session_id
        && segments[2..].iter().all(|s| !s.is_empty() && !s.starts_with('.') && !s.contains(['/', '\\']))
}

/// Audio URLs can carry signatures in their query string; logs get the rest.
pub fn redact(url: &Url) -> String {
    let mut u = url.clone();
    if u.query().is_some() {
        u.set_query(Some("…"));
    }
    u.to_string()
}

/// Addresses never dialed: every row of IANA's IPv4 and IPv6 Special-Purpose Address Registries
/// (as of 2025: RFC 6890 and its updates), plus multicast and the reserved class E. Some registry
/// rows are "globally reachable" (AS112, AMT, ORCHIDv2, PCP anycast); none of them is where a
/// storage service lives, so they are refused all the same. The first matching row gives the
/// reason in logs, so the more specific rows come first where ranges nest.
const FORBIDDEN: &[(&str, &str)] = &[
    // IPv4 special-purpose registry.
    ("0.0.0.0/8", "this-network (0.0.0.0/8)"),
    ("10.0.0.0/8", "private (10/8)"),
    ("100.64.0.0/10", "carrier-grade NAT (100.64/10)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local / cloud metadata (169.254/16)"),
    ("172.16.0.0/12", "private (172.16/12)"),
    ("192.0.0.0/29", "IPv4 service continuity / DS-Lite (192.0.0.0/29)"),
    ("192.0.0.8/32", "IPv4 dummy address (192.0.0.8)"),
    ("192.0.0.9/32", "Port Control Protocol anycast (192.0.0.9)"),
    ("192.0.0.10/32", "TURN anycast (192.0.0.10)"),
    ("192.0.0.170/31", "NAT64/DNS64 discovery (192.0.0.170/31)"),
    ("192.0.0.0/24", "IETF protocol assignments (192.0.0/24)"),
    ("192.0.2.0/24", "documentation range (192.0.2/24)"),
    ("192.31.196.0/24", "AS112-v4 (192.31.196/24)"),
    ("192.52.193.0/24", "AMT (192.52.193/24)"),
    ("192.88.99.0/24", "deprecated 6to4 relay anycast (192.88.99/24)"),
    ("192.168.0.0/16", "private (192.168/16)"),
    ("192.175.48.0/24", "AS112 direct delegation (192.175.48/24)"),
    ("198.18.0.0/15", "benchmarking (198.18/15)"),
    ("198.51.100.0/24", "documentation range (198.51.100/24)"),
    ("203.0.113.0/24", "documentation range (203.0.113/24)"),
    ("224.0.0.0/4", "multicast (224/4)"),
    ("255.255.255.255/32", "limited broadcast"),
    ("240.0.0.0/4", "reserved (240/4)"),
    // IPv6 special-purpose registry.
    ("::/128", "unspecified (::)"),
    ("::1/128", "loopback (::1)"),
    // Forms that embed an IPv4 address are refused outright, whatever the embedded address: it
    // may be private, and the translation happens beyond our view.
    ("::ffff:0:0/96", "IPv4-mapped IPv6 (::ffff:0:0/96)"),
    ("::ffff:0:0:0/96", "IPv4-translated IPv6 (::ffff:0:0:0/96)"),
    ("::/96", "IPv4-compatible IPv6 (::/96)"),
    ("64:ff9b::/96", "NAT64 (64:ff9b::/96)"),
    ("64:ff9b:1::/48", "local NAT64 (64:ff9b:1::/48)"),
    ("100::/64", "discard-only (100::/64)"),
    ("100:0:0:1::/64", "dummy IPv6 prefix (100:0:0:1::/64)"),
    ("2001::/32", "Teredo (2001::/32)"),
    ("2001:1::1/128", "Port Control Protocol anycast (2001:1::1)"),
    ("2001:1::2/128", "TURN anycast (2001:1::2)"),
    ("2001:1::3/128", "DNS-SD service registration anycast (2001:1::3)"),
    ("2001:2::/48", "benchmarking (2001:2::/48)"),
    ("2001:3::/32", "AMT (2001:3::/32)"),
    ("2001:4:112::/48", "AS112-v6 (2001:4:112::/48)"),
    ("2001:10::/28", "deprecated ORCHID (2001:10::/28)"),
    ("2001:20::/28", "ORCHIDv2 (2001:20::/28)"),
    ("2001:30::/28", "drone remote ID (2001:30::/28)"),
    ("2001::/23", "IETF protocol assignments (2001::/23)"),
    ("2001:db8::/32", "documentation (2001:db8::/32)"),
    ("2002::/16", "6to4 (2002::/16)"),
    ("2620:4f:8000::/48", "AS112 direct delegation (2620:4f:8000::/48)"),
    ("3fff::/20", "documentation (3fff::/20)"),
    ("5f00::/16", "segment routing SIDs (5f00::/16)"),
    ("fc00::/7", "unique local (fc00::/7)"),
    ("fe80::/10", "link-local (fe80::/10)"),
    ("fec0::/10", "deprecated site-local (fec0::/10)"),
    ("ff00::/8", "multicast (ff00::/8)"),
];

/// `FORBIDDEN`, parsed once. A row that failed to parse would be skipped, and its range allowed:
/// `every_forbidden_row_parses` guards against that.
fn forbidden_table() -> &'static [(ipnet::IpNet, &'static str)] {
    static TABLE: std::sync::OnceLock<Vec<(ipnet::IpNet, &'static str)>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| FORBIDDEN.iter().filter_map(|(net, why)| Some((net.parse().ok()?, *why))).collect())
}

/// Classify an address that is about to be dialed. `None` means public and allowed.
pub fn forbidden_reason(ip: IpAddr) -> Option<&'static str> {
    forbidden_table().iter().find(|(net, _)| net.contains(&ip)).map(|(_, why)| *why)
}

/// The DNS resolver of the upstream's connector: drops every forbidden address after resolution, so the address
/// that is checked is the address that is dialed. With `allow_loopback` (tests, local demo) only
/// loopback addresses are additionally let through; private ranges never are.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    pub allow_loopback: bool,
}

impl GuardedResolver {
    pub fn permits(&self, ip: IpAddr) -> bool {
        match forbidden_reason(ip) {
            None => true,
            Some(_) => self.allow_loopback && ip.is_loopback(),
        }
    }

    pub async fn resolve_checked(&self, host: &str) -> Result<Vec<SocketAddr>, String> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
            .await
            .map_err(|e| format!("DNS lookup of {host} failed: {e}"))?
            .collect();
        let allowed: Vec<SocketAddr> = addrs.iter().copied().filter(|a| self.permits(a.ip())).collect();
        if allowed.is_empty() {
            let why = addrs
                .first()
                .and_then(|a| forbidden_reason(a.ip()).map(|r| format!("{} is {r}", a.ip())))
                .unwrap_or_else(|| "no addresses".into());
            return Err(format!("{host} resolves only to forbidden addresses ({why})"));
        }
        Ok(allowed)
    }
}

/// hyper-util's connector asks this for every host name it dials (IP literals never get here: the
/// URL check refuses them). Each call resolves and drops forbidden addresses (`resolve_checked`).
impl tower_service::Service<hyper_util::client::legacy::connect::dns::Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: hyper_util::client::legacy::connect::dns::Name) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.resolve_checked(name.as_str()).await?.into_iter()) })
    }
}

pub fn guarded_resolver(allow_loopback: bool) -> GuardedResolver {
    GuardedResolver { allow_loopback }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn policy(entries: &[&str], loopback: bool) -> HostPolicy {
        let v: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
        HostPolicy::parse(&v, loopback).unwrap()
    }

    pub(crate) fn default_policy() -> HostPolicy {
        policy(&["*.public.blob.vercel-storage.com", "*.private.blob.vercel-storage.com"], false)
    }

    /// The URL-policy table (default policy); the property tests check the policy against it too.
    pub(crate) const URL_TABLE: &[(&str, bool)] = &[
        ("https://abc.public.blob.vercel-storage.com/a.webm", true),
        ("https://abc.private.blob.vercel-storage.com/a.webm", true),
        ("https://ABC.Public.Blob.Vercel-Storage.com/a.webm", true),
        ("https://abc.public.blob.vercel-storage.com:443/a.webm", true),
        ("http://abc.public.blob.vercel-storage.com/a.webm", false),
        ("https://public.blob.vercel-storage.com/a.webm", false),
        ("https://a.b.public.blob.vercel-storage.com/a.webm", false),
        ("https://abc.public.blob.vercel-storage.com.evil.example/a", false),
        ("https://evilpublic.blob.vercel-storage.com/a", false),
        ("https://abc.public.blob.vercel-storage.com@evil.example/a", false),
        ("https://user:pw@abc.public.blob.vercel-storage.com/a", false),
        ("https://abc.public.blob.vercel-storage.com:8443/a", false),
        ("https://abc.public.blob.vercel-storage.com./a", false),
        ("https://127.0.0.1/a", false),
        ("https://2130706433/a", false), // decimal form of 127.0.0.1
        ("https://0x7f.1/a", false),
        ("https://[::1]/a", false),
        ("https://169.254.169.254/latest/meta-data", false),
        ("ftp://abc.public.blob.vercel-storage.com/a", false),
        ("http://127.0.0.1:9000/a", false), // loopback switch is off
        ("http://localhost:9000/a", false),
    ];

    #[test]
    fn url_policy_table() {
        let p = default_policy();
        let ok = |u: &str| p.check(&Url::parse(u).unwrap());
        let table = URL_TABLE;
        for (u, expected) in table {
            assert_eq!(ok(u).is_ok(), *expected, "{u}: {:?}", ok(u));
        }
    }

    /// The session-prefix table; the property tests check the function against it too.
    pub(crate) const SESSION_PATH_TABLE: &[(&str, bool)] = &[
        ("https://s.public.blob.vercel-storage.com/listening-sessions/abc/x.webm", true),
        ("https://s.public.blob.vercel-storage.com/listening-sessions/abc/sub/x.webm", true),
        ("https://s.public.blob.vercel-storage.com/listening-sessions/abc/x.webm?download=1", true),
        ("https://s.public.blob.vercel-storage.com/%6cistening-sessions/abc/x.webm", true),
        ("https://s.public.blob.vercel-storage.com/listening-sessions/abd/x.webm", false),
        ("https://s.public.blob.vercel-storage.com/listening-sessions/abcd/x.webm", false),
        ("https://s.public.blob.vercel-storage.com/listening-sessions/ab/x.webm", false),
        ("https://s.public.blob.vercel-storage.com/listening-sessions/abc/", false),
        ("https://s.public.blob.vercel-storage.com/listening-sessions/abc", false),
        ("https://s.public.blob.vercel-storage.com/listening-sessions//abc/x", false),
        ("https://s.public.blob.vercel-storage.com/other/listening-sessions/abc/x.webm", false),
        ("https://s.public.blob.vercel-storage.com/listening-sessions/abc/../xyz/x.webm", false),
        ("https://s.public.blob.vercel-storage.com/listening-sessions/abc/%2e%2e/xyz/x.webm", false),
        ("https://s.public.blob.vercel-storage.com/listening-sessions/abc%2Fx/y.webm", false),
        ("https://s.public.blob.vercel-storage.com/listening-sessions/abc/.hidden", false),
        ("https://s.public.blob.vercel-storage.com/listening-sessions/abc/a%2Fb", false),
        ("https://s.public.blob.vercel-storage.com/listening-sessions/abc/a%5Cb", false),
        ("https://s.public.blob.vercel-storage.com/LISTENING-SESSIONS/abc/x.webm", false),
        ("https://s.public.blob.vercel-storage.com/x.webm", false),
    ];

    #[test]
    fn session_prefix_table() {
        for (raw, want) in SESSION_PATH_TABLE {
            assert_eq!(under_session_prefix(&Url::parse(raw).unwrap(), "abc"), *want, "{raw}");
        }
    }

    #[test]
    fn loopback_switch_allows_only_listed_host_port_over_http() {
        let p = policy(&["127.0.0.1:9000", "localhost:9001"], true);
        let ok = |u: &str| p.check(&Url::parse(u).unwrap()).is_ok();
        assert!(ok("http://127.0.0.1:9000/a.wav"));
        assert!(ok("http://localhost:9001/a.wav"));
        assert!(!ok("http://127.0.0.1:9001/a.wav"));
        assert!(!ok("http://127.0.0.1/a.wav"));
        assert!(!ok("http://127.0.0.2:9000/a.wav"));
        assert!(!ok("http://10.0.0.1:9000/a.wav"));
        assert!(!ok("http://user@127.0.0.1:9000/a.wav"));
        // Without the switch the same list refuses the same URL.
        let off = policy(&["127.0.0.1:9000"], false);
        assert!(off.check(&Url::parse("http://127.0.0.1:9000/a.wav").unwrap()).is_err());
    }

    #[test]
    fn bad_patterns_are_config_errors() {
        for bad in ["https://x.example", "*", "*.com:abc", "a@b.example", "x/y", "*.*.example", "com"] {
            assert!(HostPolicy::parse(&[bad.to_string()], false).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_forbidden_row_parses() {
        assert_eq!(forbidden_table().len(), FORBIDDEN.len());
        // Nested rows: the specific row must come before the range that holds it, or its reason
        // would never show.
        let table = forbidden_table();
        for (i, (net, _)) in table.iter().enumerate() {
            for (outer, _) in &table[..i] {
                assert!(!(outer.contains(net) && outer != net), "{net} is shadowed by the earlier {outer}");
            }
        }
    }

    #[test]
    fn address_table() {
        let table: &[(&str, bool)] = &[
            ("93.184.216.34", true),
            ("8.8.8.8", true),
            ("2606:4700::1111", true),
            ("0.0.0.0", false),
            ("0.1.2.3", false),
            ("127.0.0.1", false),
            ("127.255.255.254", false),
            ("10.1.2.3", false),
            ("172.16.0.1", false),
            ("172.31.255.255", false),
            ("172.32.0.1", true),
            ("192.168.1.1", false),
            ("169.254.169.254", false),
            ("100.64.0.1", false),
            ("100.127.255.255", false),
            ("100.128.0.1", true),
            ("192.0.0.8", false),
            ("192.0.2.1", false),
            ("198.18.0.1", false),
            ("198.51.100.7", false),
            ("203.0.113.9", false),
            ("224.0.0.1", false),
            ("239.255.255.250", false),
            ("255.255.255.255", false),
            ("240.0.0.1", false),
            ("::", false),
            ("::1", false),
            ("::ffff:127.0.0.1", false),
            ("::ffff:8.8.8.8", false),
            ("::127.0.0.1", false),
            ("64:ff9b::a00:1", false),
            ("64:ff9b:1::1", false),
            ("2002:7f00:1::1", false),
            ("2001:0:4136:e378::1", false),
            ("2001:db8::1", false),
            ("fc00::1", false),
            ("fd12:3456::1", false),
            ("fe80::1", false),
            ("fec0::1", false),
            ("ff02::1", false),
            ("100::1", false),
            // The rest of the registries, row by row, and their public neighbours.
            ("192.0.0.9", false),
            ("192.0.0.170", false),
            ("192.31.196.1", false),
            ("192.52.193.1", false),
            ("192.175.48.1", false),
            ("192.88.99.1", false),
            ("192.0.1.1", true),
            ("::ffff:0:a00:1", false),
            ("::ffff:192.168.0.1", false),
            ("100:0:0:1::1", false),
            ("2001:1::1", false),
            ("2001:2::1", false),
            ("2001:2:0:ffff::1", false),
            ("2001:3::1", false),
            ("2001:4:112::1", false),
            ("2001:10::1", false),
            ("2001:1f::1", false),
            ("2001:20::1", false),
            ("2001:30::1", false),
            ("2001:1ff::1", false),
            ("2001:200::1", true),
            ("2620:4f:8000::1", false),
            ("2620:4f:8001::1", true),
            ("3fff::1", false),
            ("3fff:fff::1", false),
            ("3fff:1000::1", true),
            ("5f00::1", false),
            ("2a00:1450::1", true),
        ];
        for (addr, allowed) in table {
            let ip: IpAddr = addr.parse().unwrap();
            assert_eq!(forbidden_reason(ip).is_none(), *allowed, "{addr}: {:?}", forbidden_reason(ip));
        }
    }

    #[test]
    fn resolver_loopback_exception_is_loopback_only() {
        let r = GuardedResolver { allow_loopback: true };
        assert!(r.permits("127.0.0.1".parse().unwrap()));
        assert!(r.permits("::1".parse().unwrap()));
        assert!(!r.permits("10.0.0.1".parse().unwrap()));
        assert!(!r.permits("169.254.169.254".parse().unwrap()));
        let strict = GuardedResolver { allow_loopback: false };
        assert!(!strict.permits("127.0.0.1".parse().unwrap()));
    }

    #[tokio::test]
    async fn resolver_refuses_names_that_resolve_inward() {
        // `localhost` is an allow-listable name that resolves to loopback: the DNS-rebinding shape.
        let strict = GuardedResolver { allow_loopback: false };
        let err = strict.resolve_checked("localhost").await.unwrap_err();
        assert!(err.contains("forbidden"), "{err}");
        let lenient = GuardedResolver { allow_loopback: true };
        assert!(!lenient.resolve_checked("localhost").await.unwrap().is_empty());
    }
}
