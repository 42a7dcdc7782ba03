//! What a direct-to-Blob upload may do, minted for the browser: a client token for
//! `blob.generate-client-token` (sent by `upload()` from `@vercel/blob/client`, minted as
//! `handleUpload` mints it), or a presigned URL payload for `blob.generate-presigned-url` (sent by
//! `uploadPresigned()`, answered as `handleUploadPresigned` answers it). Both after the same checks
//! as a streamed upload's, and both allow exactly the same: this session's pathname with a random
//! suffix and no overwrite, the declared type, the byte limit, for `clientTokenTtlMs`.

use serde_json::json;

use crate::error::{Code, Error, Result};
use crate::http::request::Request;
use crate::http::response::{json, Response};
use crate::support::clock::now_ms;
use crate::telemetry::Phase;
use crate::upload::client_upload::{
    check_pathname, mint_client_token, parse_client_payload, request_path, TokenPayload, GENERATE_CLIENT_TOKEN,
    GENERATE_PRESIGNED_URL,
};
use crate::upload::pipeline::{admit, Ctx};
use crate::upload::presign::{Callback, PutGrant};
use crate::upload::rules::{validate_declared, Declared, UploadMeta};

/// What the browser may upload, once the caller, the session and the declaration passed.
struct Grant {
    put: PutGrant,
    valid_until_ms: u64,
    /// Who asked and what they declared (`TokenPayload`, JSON), for the webhook.
    token_payload: String,
}

/// The checks both events share, and what they allow.
async fn grant(ctx: &Ctx<'_>, req: &Request, pathname: &str, client_payload: Option<&str>) -> Result<Grant> {
    let upload = &ctx.state.config.upload;
    // 1. what the client declares, under the same rules and codes as the streamed POST's headers.
    // While recording (a recorder uploading parts as it goes) the length is not known yet: the
    // limits then apply to what is measured when the upload completes.
    let payload = parse_client_payload(client_payload)?;
    let unknown_length = payload.recording && payload.duration.is_none();
    let duration = if unknown_length { Some("1") } else { payload.duration.as_deref() };
    let (duration_ms, declared) =
        validate_declared(duration, payload.content_type.as_deref(), upload, Declared::ClientPayload)?;
    check_pathname(pathname, ctx.session_id, declared.container)?;
    // 2. the session, the user's entitlements and byte limit.
    let meta = UploadMeta { duration_ms, declared: declared.clone(), content_length: None };
    let admitted = admit(ctx, &meta).await?;
    // 3. who asked (for the webhook), where Blob sends the webhook, what it allows.
    let token_payload = TokenPayload {
        session_id: ctx.session_id.to_string(),
        user_id: ctx.who.user_id.clone(),
        clerk_session_id: ctx.who.session_id.clone(),
        duration_ms: (!unknown_length).then_some(duration_ms),
        content_type: declared.normalised.clone(),
    };
    let token_payload = serde_json::to_string(&token_payload).unwrap_or_default();
    let callback = upload
        .callback_origin
        .as_ref()
        .zip(request_path(&req.url))
        .map(|(origin, path)| Callback { url: format!("{origin}{path}"), token_payload: token_payload.clone() });
    // The declared type as sent, and its essence (browsers add `;codecs=…` or not).
    let mut allowed = vec![declared.normalised.clone()];
    if declared.normalised != declared.container.essence() {
        allowed.push(declared.container.essence().to_string());
    }
    let ttl_ms = u64::try_from(upload.client_token_ttl.as_millis()).unwrap_or(u64::MAX);
    let put = PutGrant {
        valid_until_ms: None,
        pathname: pathname.to_string(),
        allowed_content_types: allowed,
        maximum_size_in_bytes: admitted.limit,
        add_random_suffix: true,
        allow_overwrite: false,
        callback,
    };
    Ok(Grant { put, valid_until_ms: now_ms().saturating_add(ttl_ms), token_payload })
}

/// `blob.generate-client-token`: the token, keyed by the read-write token.
pub async fn client_token(
    ctx: &Ctx<'_>,
    req: &Request,
    pathname: &str,
    client_payload: Option<&str>,
) -> Result<Response> {
    // Client tokens are HMACs keyed by the read-write token: with OIDC alone there is nothing to
    // sign them with (presigned uploads replace them there). Known before any other work.
    if ctx.blob.store().read_write_token().is_none() {
        return Err(client_tokens_need_read_write_token());
    }
    let Grant { put, valid_until_ms, token_payload } = grant(ctx, req, pathname, client_payload).await?;
    let mut on_completed = json!({ "tokenPayload": token_payload });
    if let Some(callback) = &put.callback {
        on_completed["callbackUrl"] = json!(callback.url);
    }
    let constraints = json!({
        "pathname": put.pathname,
        "allowedContentTypes": put.allowed_content_types,
        "maximumSizeInBytes": put.maximum_size_in_bytes,
        "addRandomSuffix": put.add_random_suffix,
        "allowOverwrite": put.allow_overwrite,
        "validUntil": valid_until_ms,
        "onUploadCompleted": on_completed,
    });
    let store = ctx.blob.store();
    let key = store.read_write_token().ok_or_else(|| Error::Internal("no read-write token".into()))?;
    let client_token = mint_client_token(key, store.id(), &constraints);
    // The access the browser declares on every Blob request (`x-vercel-blob-access`), as the
    // streamed POST uses it (`SESSION_AUDIO_BLOB_ACCESS`).
    let access = ctx.state.config.upload.access.as_str();
    Ok(json(200, &json!({ "type": GENERATE_CLIENT_TOKEN, "clientToken": client_token, "access": access })))
}

/// The refusal of `blob.generate-client-token` on a deployment with OIDC and no read-write token.
fn client_tokens_need_read_write_token() -> Error {
    Error::BadRequest {
        code: Code::ClientTokensNeedReadWriteToken,
        message: "This deployment reaches Vercel Blob with OIDC and has no BLOB_READ_WRITE_TOKEN, so it cannot mint client tokens (they are keyed by that token). Use presigned uploads: uploadPresigned() from @vercel/blob/client, which uploadSessionAudio() from session-audio/client picks by itself (event blob.generate-presigned-url); or set BLOB_READ_WRITE_TOKEN.".into(),
    }
}

/// `blob.generate-presigned-url`: a signed token from Blob for this grant's scope (with the request's
/// credential: OIDC or the read-write token), then the URL signed with it. The signing key stays
/// here; the browser gets the delegation, the signature and the signed parameters.
pub async fn presigned_url(
    ctx: &Ctx<'_>,
    req: &Request,
    pathname: &str,
    client_payload: Option<&str>,
) -> Result<Response> {
    // A webhook Blob will send must be checkable when it comes: known before any other work.
    let upload = &ctx.state.config.upload;
    let webhook_coming = upload.callback_origin.is_some() && request_path(&req.url).is_some();
    if webhook_coming && upload.webhook_key.is_none() {
        return Err(Error::ConfigMissing(
            "BLOB_WEBHOOK_PUBLIC_KEY is not set: presigned uploads are confirmed by Vercel Blob's Ed25519-signed webhook, checked with the store's webhook public key (Vercel sets it with the store; locally, vercel env pull)".into(),
        ));
    }
    let Grant { mut put, valid_until_ms, .. } = grant(ctx, req, pathname, client_payload).await?;
    crate::upload::presign::check(&put).map_err(|why| Error::BadRequest {
        code: crate::error::Code::InvalidContentType,
        message: format!("The declared type cannot be granted: {why}."),
    })?;
    let body = crate::upload::presign::signed_token_request(&put, valid_until_ms);
    let token = ctx.trace.phase(Phase::Storage, ctx.blob.signed_token(&body)).await?;
    // What Blob signed must be what was asked for (`presign()` checks the same before signing).
    crate::upload::presign::check_scope(&token, &mut put, valid_until_ms, now_ms())
        .map_err(|why| Error::StorageFailed(format!("signed-token: {why}")))?;
    let payload = crate::upload::presign::presign_put(&token, &put);
    let access = upload.access.as_str();
    Ok(json(200, &json!({ "type": GENERATE_PRESIGNED_URL, "presignedUrlPayload": payload, "access": access })))
}
