//! Secrets out of free text before it reaches a log line or Sentry.
//!
//! The text is an error message: it may quote an upstream's body (often JSON), a header, a URL.
//! Three passes, each a scan of the whole text (never a split on spaces, so a tab, a newline or a
//! JSON quote in front of a secret hides nothing):
//! 1. URL query strings (signed URLs carry credentials);
//! 2. values of secret-named keys: `key=value`, `key: value`, `"key": "value"` (JSON);
//! 3. anything shaped like a credential wherever it stands: JWTs, Clerk keys, Blob tokens, and
//!    the word after `Bearer`.
//!
//! And bounded: what comes out is at most `MAX_DETAIL_BYTES`, however much an upstream said, so
//! a log line or a Sentry event stays small.

const REDACTED: &str = "[redacted]";

/// The most of a detail (an error's text, an upstream's words) a log line or a Sentry event carries.
pub const MAX_DETAIL_BYTES: usize = 2048;
/// Ends a detail that was cut.
const CUT: &str = "…[truncated]";

/// Remove secrets from free text: JWTs, bearer values, Clerk keys, Blob tokens, cookie values,
/// secret-named fields (also inside JSON) and URL query strings; then cut it to `MAX_DETAIL_BYTES`.
/// Only the first few KiB are scanned (the rest is cut anyway), so the work is bounded too.
pub fn scrub(text: &str) -> String {
    let text = redact_queries(prefix(text, 8 * MAX_DETAIL_BYTES));
    let text = redact_secret_fields(&text);
    let text = redact_credentials(&text);
    if text.len() <= MAX_DETAIL_BYTES {
        return text;
    }
    format!("{}{CUT}", prefix(&text, MAX_DETAIL_BYTES - CUT.len()))
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn prefix(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A character that can be part of a credential: base64url, JWT dots, key underscores.
fn credential_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// Where a URL's query ends: whitespace, quotes, brackets, or a JSON escape.
fn query_end(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | ')' | ',' | '<' | '>' | '\\' | '}' | ']')
}

fn redact_queries(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("://") {
        let after = start + 3;
        // The URL runs to the next whitespace or quote; a `?` inside it starts the query.
        let url_len = rest[after..].find(query_end).unwrap_or(rest.len() - after);
        let url = &rest[after..after + url_len];
        match url.find('?') {
            Some(q) => {
                out.push_str(&rest[..after + q]);
                out.push('?');
                out.push_str(REDACTED);
            }
            None => out.push_str(&rest[..after + url_len]),
        }
        rest = &rest[after + url_len..];
    }
    out.push_str(rest);
    out
}

fn secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.starts_with("__session")
        || k.starts_with("__client")
        || ["token", "secret", "password", "authorization", "cookie", "api_key", "apikey", "signature"]
            .iter()
            .any(|s| k.contains(s))
}

fn key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-')
}

fn redact_secret_fields(text: &str) -> String {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let byte = |i: usize| chars.get(i).map_or(text.len(), |&(b, _)| b);
    let mut out = String::with_capacity(text.len());
    let mut copied = 0; // bytes of `text` already in `out`
    let mut i = 0;
    while i < chars.len() {
        // A key: a run of key characters, at a word start.
        if !at(i).is_some_and(key_char) || i > 0 && at(i - 1).is_some_and(key_char) {
            i += 1;
            continue;
        }
        let key_start = i;
        while at(i).is_some_and(key_char) {
            i += 1;
        }
        let key = &text[byte(key_start)..byte(i)];
        let quoted_key = key_start > 0 && at(key_start - 1) == Some('"') && at(i) == Some('"');
        let mut j = if quoted_key { i + 1 } else { i };
        while at(j).is_some_and(|c| c == ' ' || c == '\t') {
            j += 1;
        }
        let separator = at(j);
        if !matches!(separator, Some('=') | Some(':')) || !secret_key(key) {
            continue;
        }
        j += 1;
        while at(j).is_some_and(char::is_whitespace) {
            j += 1;
        }
        // The value: a JSON string to its closing quote, or a bare word (for an auth scheme such
        // as `Bearer x`, the scheme is kept and the word after it is the value).
        let (value_start, value_end) = if at(j) == Some('"') {
            let start = j + 1;
            let mut k = start;
            while let Some(c) = at(k) {
                match c {
                    '\\' => k += 2,
                    '"' => break,
                    _ => k += 1,
                }
            }
            (start, k.min(chars.len()))
        } else {
            let mut start = j;
            let word_end = |from: usize| {
                let mut k = from;
                while at(k).is_some_and(|c| !c.is_whitespace() && !matches!(c, ';' | '&' | ',' | '"' | '\'' | '}')) {
                    k += 1;
                }
                k
            };
            let mut end = word_end(start);
            let word = &text[byte(start)..byte(end)];
            if ["bearer", "basic", "token"].contains(&word.to_ascii_lowercase().as_str())
                && at(end).is_some_and(|c| c == ' ')
            {
                start = end + 1;
                end = word_end(start);
            }
            (start, end)
        };
        if value_end > value_start {
            out.push_str(&text[copied..byte(value_start)]);
            out.push_str(REDACTED);
            copied = byte(value_end);
        }
        i = value_end.max(i + 1);
    }
    out.push_str(&text[copied..]);
    out
}

fn redact_credentials(text: &str) -> String {
    const PREFIXES: &[&str] = &["eyJ", "sk_live_", "sk_test_", "vercel_blob_rw_", "vercel_blob_client_"];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut after_bearer = false;
    while !rest.is_empty() {
        let run = rest.find(|c: char| !credential_char(c)).unwrap_or(rest.len());
        if run == 0 {
            // One separator character.
            let c = rest.chars().next().map_or(1, char::len_utf8);
            if !rest[..c].chars().all(char::is_whitespace) {
                after_bearer = false;
            }
            out.push_str(&rest[..c]);
            rest = &rest[c..];
            continue;
        }
        let word = &rest[..run];
        if after_bearer || PREFIXES.iter().any(|p| word.starts_with(p)) {
            out.push_str(REDACTED);
            after_bearer = false;
        } else {
            out.push_str(word);
            after_bearer = word.eq_ignore_ascii_case("bearer");
        }
        rest = &rest[run..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_table() {
        let table: &[(&str, &str)] = &[
            ("plain words stay", "plain words stay"),
            ("token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1In0.sig here", "token [redacted] here"),
            ("Authorization: Bearer sk_test_abc123", "Authorization: Bearer [redacted]"),
            ("authorization: Bearer opaque-value", "authorization: Bearer [redacted]"),
            ("key sk_live_xyz", "key [redacted]"),
            ("blob vercel_blob_rw_store_secret!", "blob [redacted]!"),
            ("cookie __session=abc.def", "cookie __session=[redacted]"),
            ("Cookie: __session=abc; __client_uat=1", "Cookie: [redacted]; __client_uat=[redacted]"),
            (
                "GET https://s.private.blob.vercel-storage.com/a.webm?token=xyz&sig=1 failed",
                "GET https://s.private.blob.vercel-storage.com/a.webm?[redacted] failed",
            ),
            ("\"https://x.example/a?b=c\",", "\"https://x.example/a?[redacted]\","),
            ("https://x.example/no-query", "https://x.example/no-query"),
            ("access_token=abc", "access_token=[redacted]"),
            // The attach secret by its variable's name, and the signature it makes.
            ("SESSION_AUDIO_CONVEX_SECRET=0123abcd rest", "SESSION_AUDIO_CONVEX_SECRET=[redacted] rest"),
            (r#"{"signature":"ab12","ok":1}"#, r#"{"signature":"[redacted]","ok":1}"#),
            // After any whitespace, not only a space.
            ("failed:\teyJhbGciOiJIUzI1NiJ9.e30.sig", "failed:\t[redacted]"),
            ("line one\nsk_live_abc\r\nnext", "line one\n[redacted]\r\nnext"),
            ("x\u{a0}vercel_blob_rw_a_b", "x\u{a0}[redacted]"),
            ("GET\nhttps://h.example/p?sig=1\tok", "GET\nhttps://h.example/p?[redacted]\tok"),
            // Inside JSON: secret-named fields and credential-shaped values wherever they stand.
            (r#"{"token":"abc","ok":1}"#, r#"{"token":"[redacted]","ok":1}"#),
            (r#"{"clientToken": "vercel_blob_client_x_y"}"#, r#"{"clientToken": "[redacted]"}"#),
            (r#"{"jwt":"eyJhbGciOi.e30.s"}"#, r#"{"jwt":"[redacted]"}"#),
            (r#"{"secret":"a \"quoted\" b","x":"y"}"#, r#"{"secret":"[redacted]","x":"y"}"#),
            (r#"{"password":""}"#, r#"{"password":""}"#),
            (r#"{"url":"https://s.example/a.webm?x=1"}"#, r#"{"url":"https://s.example/a.webm?[redacted]"}"#),
            (r#"body: {"error":{"message":"bad sk_test_zzz"}}"#, r#"body: {"error":{"message":"bad [redacted]"}}"#),
            // The Vercel OIDC token: a JWT wherever it stands, and by its header's or variable's name.
            ("x-vercel-oidc-token: eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjF9.c2ln", "x-vercel-oidc-token: [redacted]"),
            ("VERCEL_OIDC_TOKEN=opaque-value rest", "VERCEL_OIDC_TOKEN=[redacted] rest"),
            ("PUT p: Bearer eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjF9.c2ln", "PUT p: Bearer [redacted]"),
            // Names that are not secrets stay readable.
            ("sessionId=s1 userId: u1", "sessionId=s1 userId: u1"),
        ];
        for (input, want) in table {
            assert_eq!(scrub(input), *want, "{input:?}");
        }
    }

    #[test]
    fn details_are_cut_to_two_kib_after_scrubbing() {
        let long = format!("{}é{}", "a".repeat(2030), "b".repeat(1 << 20));
        let out = scrub(&long);
        assert!(out.len() <= MAX_DETAIL_BYTES, "{}", out.len());
        assert!(out.starts_with("aaaa") && out.ends_with("…[truncated]"), "{out}");
        // A secret at the cut is redacted, not left half.
        let secret = format!("eyJhbGciOiJSUzI1NiJ9.{}.c2ln", "e".repeat(4000));
        let out = scrub(&format!("{} {secret}", "x".repeat(2000)));
        assert!(!out.contains("eyJhbGci") && out.len() <= MAX_DETAIL_BYTES, "{out}");
        assert_eq!(scrub(&"z".repeat(MAX_DETAIL_BYTES)), "z".repeat(MAX_DETAIL_BYTES));
    }

    #[test]
    fn no_secret_survives_any_separator() {
        let secrets = ["eyJhbGciOiJSUzI1NiJ9.e30.c2ln", "sk_live_abc", "vercel_blob_rw_s_t", "vercel_blob_client_s_t"];
        for secret in secrets {
            for sep in
                [" ", "\t", "\n", "\r\n", "\u{a0}", "\u{2003}", "\"", "'", "(", "[", "{", ",", ":", "=", "/", "|"]
            {
                let text = format!("before{sep}{secret}{sep}after");
                let out = scrub(&text);
                assert!(!out.contains(secret), "{text:?} → {out:?}");
            }
        }
    }
}
