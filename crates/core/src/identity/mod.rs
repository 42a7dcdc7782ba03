//! Who is calling: where the session token is (`auth`), the JWT itself (`jwt`, pure), the key store
//! that verifies it (`keys`), Clerk's Backend API (`clerk`: the JWKS and the caller's Convex token)
//! and what a Clerk refusal means and who pays for it (`clerk_refusal`, pure).

pub mod auth;
pub mod clerk;
pub mod clerk_refusal;
pub mod jwt;
pub mod keys;

pub use auth::Identity;
pub use jwt::Caller;
