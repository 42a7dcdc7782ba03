//! What a handler returns: status, headers and a body the binding turns into a Web `Response`.

use bytes::Bytes;

use crate::playback::body::BodyStream;

pub enum Body {
    Empty,
    Bytes(Bytes),
    /// Upstream bytes, pulled chunk by chunk; dropping it closes the upstream connection.
    Stream(BodyStream),
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = match &self.body {
            Body::Empty => "empty".to_string(),
            Body::Bytes(b) => format!("{} bytes", b.len()),
            Body::Stream(_) => "stream".to_string(),
        };
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &body)
            .finish()
    }
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A JSON answer (`201` attached, `200` already attached or an event's reply), never cached.
pub fn json(status: u16, value: &serde_json::Value) -> Response {
    Response {
        status,
        headers: vec![
            ("content-type".into(), "application/json; charset=utf-8".into()),
            ("cache-control".into(), "no-store".into()),
        ],
        body: Body::Bytes(value.to_string().into_bytes().into()),
    }
}
