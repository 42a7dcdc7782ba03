//! GET's half: the stored audio URL checked against SSRF (`policy`, pure), the audio storage client
//! that re-checks every hop and every address (`upstream`), the header allowlists and status relay
//! (`headers`, pure), and the bytes on their way to JS (`body`).

pub mod body;
pub mod headers;
pub mod policy;
pub mod upstream;
