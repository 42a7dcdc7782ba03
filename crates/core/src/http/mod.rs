//! The HTTP frame every request passes through: what a handler takes (`request`: the request and
//! its session id), what it gives (`response`), and `serve`, the frame around it (trace, the one
//! panic catch, Server-Timing, the record).

pub mod request;
pub mod response;
pub mod serve;
