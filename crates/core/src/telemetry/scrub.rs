//! Secrets out of free text before it reaches a log line or Sentry.

/// Remove secrets from free text: JWTs, bearer values, Clerk keys, Blob tokens, cookie values and
/// URL query strings.
pub fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&scrub_word(word));
    }
    out
}

fn scrub_word(word: &str) -> String {
    let secretish = |w: &str| {
        let w = w.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_' && c != '-' && c != '.');
        w.starts_with("eyJ")
            || w.starts_with("sk_live_")
            || w.starts_with("sk_test_")
            || w.starts_with("vercel_blob_rw_")
            || w.starts_with("vercel_blob_client_")
    };
    if secretish(word) {
        return "[redacted]".into();
    }
    // URLs: keep scheme, host and path; drop the query string (signed URLs carry credentials).
    if let Some(start) = word.find("://") {
        if let Some(q) = word[start..].find('?') {
            let cut = start + q;
            let end = word[cut..].find(['"', '\'', ')', ',']).map_or(word.len(), |e| cut + e);
            return format!("{}?[redacted]{}", &word[..cut], &word[end..]);
        }
    }
    // Cookie pairs and key=value secrets.
    if let Some((k, _)) = word.split_once('=') {
        let key = k.trim_start_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_').to_ascii_lowercase();
        if key.starts_with("__session")
            || key.starts_with("__client")
            || key.contains("token")
            || key.contains("secret")
        {
            return format!("{k}=[redacted]");
        }
    }
    word.to_string()
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
            ("key sk_live_xyz", "key [redacted]"),
            ("blob vercel_blob_rw_store_secret!", "blob [redacted]"),
            ("cookie __session=abc.def", "cookie __session=[redacted]"),
            (
                "GET https://s.private.blob.vercel-storage.com/a.webm?token=xyz&sig=1 failed",
                "GET https://s.private.blob.vercel-storage.com/a.webm?[redacted] failed",
            ),
            ("\"https://x.example/a?b=c\",", "\"https://x.example/a?[redacted]\","),
            ("https://x.example/no-query", "https://x.example/no-query"),
            ("access_token=abc", "access_token=[redacted]"),
        ];
        for (input, want) in table {
            assert_eq!(scrub(input), *want, "{input}");
        }
    }
}
