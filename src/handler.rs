//! `AudioHandler`: one configured handler set, built once per configuration (by `createAudioHandlers`,
//! or at `handleAudioGet`/`handleAudioPost`'s first call with an options object) and kept.

use std::collections::HashMap;
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi_derive::napi;
use session_audio_core as core;

use crate::options::AudioOptions;
use crate::post_call::PostCall;
use crate::record::{RecordCallback, RequestRecord};
use crate::request::NativeRequest;
use crate::response::NativeResponse;

/// One configured handler set. A configuration problem does not throw: it is kept and answered as
/// `503 config_missing` / `config_invalid` on every request, so a misconfigured deployment serves
/// clear errors instead of crashing the route module. (Only misuse of the API throws: an option of
/// the wrong JS type is a `TypeError` from napi, which `createAudioHandlers` surfaces at setup.)
#[napi]
pub struct AudioHandler {
    state: std::result::Result<Arc<core::State>, Arc<core::Misconfigured>>,
}

#[napi]
impl AudioHandler {
    /// `options`: the explicit options; `env`: the values of `envKeys()` in the environment.
    /// Options win, then the environment, then the defaults (the core parses the result once).
    /// `onRequest`: called with each finished request's record (never blocks the request).
    #[napi(constructor)]
    pub fn new(
        options: AudioOptions,
        env: HashMap<String, String>,
        #[napi(ts_arg_type = "((record: RequestRecord) => void) | undefined | null")] on_request: Option<
            RecordCallback,
        >,
    ) -> Self {
        let sink: Option<core::RecordSink> = on_request.map(|tsfn| {
            let tsfn = Arc::new(tsfn);
            Arc::new(move |r: &core::RequestRecord| {
                tsfn.call(RequestRecord::from(r), ThreadsafeFunctionCallMode::NonBlocking);
            }) as core::RecordSink
        });
        // The one place options and the environment meet.
        let lookup = crate::options::lookup(&options, &env);
        let state = match core::Config::from_lookup(lookup) {
            Ok(config) => {
                let telemetry = config.telemetry.clone();
                core::State::new(config, sink.clone())
                    .map(Arc::new)
                    .map_err(|e| Arc::new(core::Misconfigured::new(e, &telemetry, sink)))
            }
            Err(rejected) => Err(Arc::new(core::Misconfigured::new(rejected.error, &rejected.telemetry, sink))),
        };
        AudioHandler { state }
    }

    /// The configuration problem, if any (`"config_missing: ..."`), for diagnostics.
    #[napi(getter)]
    pub fn config_error(&self) -> Option<String> {
        self.state.as_ref().err().map(|m| format!("{}: {}", m.error().code(), m.error().public_message()))
    }

    /// GET/HEAD: stream the session's audio to its owner.
    #[napi]
    pub async fn get(&self, req: NativeRequest) -> Result<NativeResponse> {
        let req = core::Request::from(req);
        // A panic is caught inside the core (`serve`), where it is recorded and reported too.
        let resp = match &self.state {
            Ok(state) => core::get(state, req).await,
            Err(m) => m.respond("get", &req).await,
        };
        Ok(resp.into())
    }

    /// POST: start an upload. The returned call takes the body's chunks and yields the response.
    #[napi]
    pub fn post(&self, req: NativeRequest) -> PostCall {
        let (tx, rx) = tokio::sync::mpsc::channel(core::CHANNEL_CHUNKS);
        let (done, response) = tokio::sync::oneshot::channel();
        let req = core::Request::from(req);
        let state = self.state.clone();
        napi::bindgen_prelude::spawn(async move {
            let resp = match state {
                Err(m) => m.respond("post", &req).await,
                Ok(state) => core::post(&state, req, rx).await,
            };
            // Nobody is waiting when the JS side dropped the call: the answer has nowhere to go.
            done.send(resp).ok();
        });
        PostCall::new(tx, response)
    }
}
