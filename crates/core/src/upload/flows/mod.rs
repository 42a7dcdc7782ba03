//! The three things a POST can be, each as its README list reads: streamed audio (`stream`), a
//! client-upload token request (`token`), and a client upload's completion, from the browser or
//! from Blob's webhook (`complete`). `post` decides which; all of them end in `upload`'s pipeline.

pub mod complete;
pub mod stream;
pub mod token;
