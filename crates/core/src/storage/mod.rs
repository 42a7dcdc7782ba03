//! The deployment's Vercel Blob store: what it is and which credential a request uses (`store`,
//! pure), the Blob API client (`blob`), and `sweepOrphanAudio` (`sweep`).

pub mod blob;
pub mod store;
pub mod sweep;
