//! GET's half: the stored audio URL checked against SSRF (`policy`, pure), the audio storage client
//! that re-checks every hop and every address (`upstream`), the header allowlists and status relay
//! (`headers`, pure), the bytes on their way to JS (`body`), and the memory they leave (`trim`).

pub mod body;
pub mod headers;
pub mod policy;
pub mod trim;
pub mod upstream;
