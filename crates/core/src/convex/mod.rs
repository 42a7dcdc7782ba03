//! Convex: the HTTP client (`client`, no policy inside) and the caller's listening session with
//! every Convex call made as the caller (`sessions`).

pub mod client;
pub mod sessions;

pub use sessions::Sessions;
