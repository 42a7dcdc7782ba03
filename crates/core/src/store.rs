//! The deployment's Vercel Blob store, defined once: its id and hosts, the local emulator's origin
//! (loopback mode only), its credentials, which URLs are its own, which of them get the bearer, and
//! where our blobs live in it (`listening-sessions/{sessionId}/…`). Pure: no I/O.

use url::Url;

use crate::error::{Error, Result};
use crate::media::Container;

/// Where every session's audio lives in the store: `listening-sessions/{sessionId}/{name}`.
pub const PREFIX: &str = "listening-sessions/";

/// `listening-sessions/{session_id}/`: the one place a session's blobs may be.
pub fn prefix(session_id: &str) -> String {
    format!("{PREFIX}{session_id}/")
}

/// A fresh pathname for an upload of `session_id` (the store adds its own random suffix too).
/// The id is already `[A-Za-z0-9_-]{1,128}` (`request::session_id`), so it goes in as it is.
pub fn new_pathname(session_id: &str, container: Container) -> String {
    format!("{}{:016x}.{}", prefix(session_id), rand::random::<u64>(), container.extension())
}

/// `vercel_blob_rw_<storeId>_<secret>` → `<storeId>` as written (the API and client tokens use it
/// so, as `@vercel/blob`'s `parseStoreIdFromReadWriteToken`). `None` unless it is a DNS label, since
/// it also names the store's hosts.
pub fn store_id_from_token(token: &str) -> Option<&str> {
    let id = token.strip_prefix("vercel_blob_rw_")?.split('_').next()?;
    let label = !id.is_empty() && id.len() <= 63 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    label.then_some(id)
}

/// The two hosts of one Vercel Blob store, its public and its private one (hosts are lowercase).
pub fn store_hosts(store_id: &str) -> [String; 2] {
    let id = store_id.to_ascii_lowercase();
    [format!("{id}.public.blob.vercel-storage.com"), format!("{id}.private.blob.vercel-storage.com")]
}

/// One Blob store and how we reach it.
#[derive(Clone)]
pub struct Store {
    /// As the token writes it (API headers, client tokens); `hosts()` lowercases it.
    id: String,
    /// `VERCEL_BLOB_API_URL`.
    api: Url,
    /// The emulator's origin (the API URL's), trusted like the store's own hosts: loopback mode only.
    local: Option<Url>,
    /// `BLOB_READ_WRITE_TOKEN`: signs client tokens and webhooks, and authorises every call.
    token: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("id", &self.id).field("api", &self.api.as_str()).finish_non_exhaustive()
    }
}

impl Store {
    /// The store a read-write token belongs to. `allow_loopback`: the API URL's own origin is this
    /// store too (the local emulator serves its blobs there).
    pub fn from_token(token: &str, api: Url, allow_loopback: bool) -> Result<Store> {
        let id = store_id_from_token(token).ok_or_else(|| {
            Error::ConfigInvalid(
                "BLOB_READ_WRITE_TOKEN is not a Vercel Blob read-write token (vercel_blob_rw_<store>_<secret>)".into(),
            )
        })?;
        let local = allow_loopback.then(|| api.clone());
        Ok(Store { id: id.to_string(), api, local, token: token.to_string() })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The Blob API base URL, without a trailing slash.
    pub fn api(&self) -> &str {
        self.api.as_str().trim_end_matches('/')
    }

    /// The read-write token (client tokens and webhook signatures are keyed by it).
    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn hosts(&self) -> [String; 2] {
        store_hosts(&self.id)
    }

    fn is_local(&self, url: &Url) -> bool {
        self.local.as_ref().is_some_and(|local| local.origin() == url.origin())
    }

    /// Whether `url` is one of this store's blobs: https on its public or private host (no port),
    /// or on the local emulator in loopback mode.
    pub fn owns(&self, url: &Url) -> bool {
        let host = url.host_str().unwrap_or_default();
        let vercel = url.scheme() == "https" && url.port().is_none() && self.hosts().iter().any(|h| h == host);
        vercel || self.is_local(url)
    }

    /// The bearer to read `url` with: the token, for this store's own private host only (https, no
    /// port), as `@vercel/blob`'s `get()` sends it; no other host ever sees it, not even another
    /// store's private host (its owner would receive our token). The emulator gets it too: it
    /// enforces private reads the way Vercel does.
    pub fn bearer_for(&self, url: &Url) -> Option<&str> {
        let host = url.host_str()?;
        let [_, private] = self.hosts();
        let own_private = url.scheme() == "https" && url.port().is_none() && host == private;
        (own_private || self.is_local(url)).then_some(self.token.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "vercel_blob_rw_Store1_secret";

    fn store(loopback: bool) -> Store {
        Store::from_token(TOKEN, Url::parse("http://127.0.0.1:9000/api/blob").unwrap(), loopback).unwrap()
    }

    #[test]
    fn store_ids_from_tokens() {
        let table: &[(&str, Option<&str>)] = &[
            ("vercel_blob_rw_Store1_secret", Some("Store1")),
            ("vercel_blob_rw_abc-123_x_y", Some("abc-123")),
            ("vercel_blob_rw__secret", None),
            ("vercel_blob_rw_a.b_secret", None),
            ("vercel_blob_rw_evil.example#_s", None),
            ("vercel_blob_client_store_x", None),
            ("token", None),
            ("", None),
        ];
        for (token, want) in table {
            assert_eq!(store_id_from_token(token), *want, "{token}");
        }
        let long = format!("vercel_blob_rw_{}_s", "a".repeat(64));
        assert_eq!(store_id_from_token(&long), None);
        assert!(Store::from_token("nope", Url::parse("https://vercel.com/api/blob").unwrap(), false).is_err());
    }

    #[test]
    fn which_urls_are_ours_and_which_get_the_bearer() {
        let url = |s: &str| Url::parse(s).unwrap();
        // (url, owns in loopback mode, owns otherwise, bearer in loopback mode, bearer otherwise)
        let table: &[(&str, bool, bool, bool, bool)] = &[
            ("https://store1.private.blob.vercel-storage.com/a.webm", true, true, true, true),
            ("https://STORE1.private.blob.vercel-storage.com/a.webm", true, true, true, true),
            ("https://store1.public.blob.vercel-storage.com/a.webm", true, true, false, false),
            ("https://store2.private.blob.vercel-storage.com/a.webm", false, false, false, false),
            ("http://store1.private.blob.vercel-storage.com/a.webm", false, false, false, false),
            ("https://store1.private.blob.vercel-storage.com:8443/a.webm", false, false, false, false),
            ("https://evil.example/store1.private.blob.vercel-storage.com", false, false, false, false),
            ("http://127.0.0.1:9000/listening-sessions/s1/a.webm", true, false, true, false),
            ("http://127.0.0.1:9001/listening-sessions/s1/a.webm", false, false, false, false),
        ];
        for (u, owns_local, owns, bearer_local, bearer) in table {
            let u = url(u);
            assert_eq!(store(true).owns(&u), *owns_local, "{u} owns (loopback)");
            assert_eq!(store(false).owns(&u), *owns, "{u} owns");
            assert_eq!(store(true).bearer_for(&u).is_some(), *bearer_local, "{u} bearer (loopback)");
            assert_eq!(store(false).bearer_for(&u).is_some(), *bearer, "{u} bearer");
        }
        assert_eq!(store(false).bearer_for(&url("https://store1.private.blob.vercel-storage.com/a")), Some(TOKEN));
    }

    #[test]
    fn layout() {
        assert_eq!(prefix("s1"), "listening-sessions/s1/");
        let p = new_pathname("s1", Container::WebM);
        assert!(p.starts_with("listening-sessions/s1/") && p.ends_with(".webm"), "{p}");
        assert_eq!(p.len(), "listening-sessions/s1/".len() + 16 + ".webm".len());
        assert_ne!(new_pathname("s1", Container::WebM), p);
    }
}
