//! `blob.generate-client-token` (sent by `upload()` from `@vercel/blob/client`): the same checks as
//! a streamed upload's, then a token for exactly this pathname, type and size, valid for
//! `clientTokenTtlMs`, minted as `handleUpload` mints it.

use serde_json::json;

use crate::client_upload::{
    check_pathname, mint_client_token, parse_client_payload, request_path, TokenPayload, GENERATE_CLIENT_TOKEN,
};
use crate::clock::now_ms;
use crate::error::Result;
use crate::request::Request;
use crate::response::{json, Response};
use crate::upload::{admit, Ctx};
use crate::upload_rules::{validate_declared, Declared, UploadMeta};

pub async fn handle(ctx: &Ctx<'_>, req: &Request, pathname: &str, client_payload: Option<&str>) -> Result<Response> {
    let upload = &ctx.state.config.upload;
    // 1. what the client declares, under the same rules and codes as the streamed POST's headers.
    let (duration, content_type) = parse_client_payload(client_payload)?;
    let (duration_ms, declared) =
        validate_declared(duration.as_deref(), content_type.as_deref(), upload, Declared::ClientPayload)?;
    check_pathname(pathname, ctx.session_id, declared.container)?;
    // 2. the session, the user's entitlements and byte limit.
    let meta = UploadMeta { duration_ms, declared: declared.clone(), content_length: None };
    let admitted = admit(ctx, &meta).await?;
    // 3. the token: who asked (for the webhook), where Blob sends the webhook, what it allows.
    let token_payload = TokenPayload {
        session_id: ctx.session_id.to_string(),
        user_id: ctx.who.user_id.clone(),
        clerk_session_id: ctx.who.session_id.clone(),
        duration_ms,
        content_type: declared.normalised.clone(),
    };
    let mut on_completed = json!({ "tokenPayload": serde_json::to_string(&token_payload).unwrap_or_default() });
    if let Some((origin, path)) = upload.callback_origin.as_ref().zip(request_path(&req.url)) {
        on_completed["callbackUrl"] = json!(format!("{origin}{path}"));
    }
    // The declared type as sent, and its essence (browsers add `;codecs=…` or not).
    let mut allowed = vec![declared.normalised.clone()];
    if declared.normalised != declared.container.essence() {
        allowed.push(declared.container.essence().to_string());
    }
    let ttl_ms = u64::try_from(upload.client_token_ttl.as_millis()).unwrap_or(u64::MAX);
    let constraints = json!({
        "pathname": pathname,
        "allowedContentTypes": allowed,
        "maximumSizeInBytes": admitted.limit,
        "addRandomSuffix": true,
        "allowOverwrite": false,
        "validUntil": now_ms().saturating_add(ttl_ms),
        "onUploadCompleted": on_completed,
    });
    let store = ctx.blob.store();
    // The route refuses this event before here when there is no read-write token.
    let key = store.read_write_token().ok_or_else(|| crate::error::Error::Internal("no read-write token".into()))?;
    let client_token = mint_client_token(key, store.id(), &constraints);
    Ok(json(200, &json!({ "type": GENERATE_CLIENT_TOKEN, "clientToken": client_token })))
}
