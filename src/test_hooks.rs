//! Test builds only (`--features test-hooks`): the route's header writer on a whole body, so that
//! `__test__/finalise-agreement.spec.ts` can hold it to `client/finalise`'s `finish()`.

use napi::bindgen_prelude::*;
use napi_derive::napi;

/// The final header region the completion would write for `body` (a blob declared as `essence`,
/// e.g. `audio/webm`), or null when it would store the blob as it is.
#[napi(js_name = "testFinalHeader", skip_typescript)]
pub fn test_final_header(body: Uint8Array, essence: String) -> Option<Buffer> {
    let container = session_audio_core::container_of(&essence)?;
    session_audio_core::final_header_of(container, &body).map(Buffer::from)
}
