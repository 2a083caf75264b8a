//! Attachment uploads and downloads (protocol §7.3), beside `POST /chatkit`:
//!
//! - `POST /attachments` — direct upload (`uploadStrategy: {type: "direct", uploadUrl}`):
//!   bearer token, `multipart/form-data` with a `file` field; answers the attachment JSON.
//! - `POST /attachments/{id}/upload` — the two-phase upload URL of `attachments.create`:
//!   signed (no header needed) and/or the owner's bearer token.
//! - `GET /attachments/{id}/content` — the signed preview/download URL: raster images
//!   inline, everything else as a download, never rendered as a page.

use actix_multipart::{Field, Multipart};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chatkit_actors::attachments::PublicOrigin;
use chatkit_actors::engine::{UploadAuth, UploadBody};
use chatkit_actors::protocol::{to_json, Attachment, RequestError};
use chatkit_actors::{AttachmentId, EngineError};
use futures::StreamExt;

use super::error::ApiError;
use super::AppState;

/// Bytes a form may carry besides the file (other fields, part headers).
const FORM_OVERHEAD_BYTES: u64 = 64 * 1024;
/// Longest `signature` query value (a base64url HMAC-SHA256 is 43 characters).
const MAX_SIGNATURE_LEN: usize = 128;

/// The origin browsers reach this server at: `attachments.public_url`, or the request's
/// scheme and `Host` (`Forwarded` / `X-Forwarded-*` from `server.trusted_proxies` only).
pub(super) fn public_origin(req: &HttpRequest, state: &AppState) -> Result<PublicOrigin, ApiError> {
    let configured = state.engine.attachments_public_url().map(str::to_string);
    let origin =
        configured.unwrap_or_else(|| super::forwarded::request_origin(req, &state.trusted_proxies));
    PublicOrigin::parse(&origin).ok_or_else(|| {
        ApiError::BadRequest(RequestError::InvalidEnvelope(
            "the Host header is not a host name".into(),
        ))
    })
}

/// A NUL in the file's name or type is refused as in `/chatkit` params: PostgreSQL cannot
/// store it (specs/errors.md).
fn refuse_nul(field: &str, value: &str) -> Result<(), ApiError> {
    if !value.contains('\0') {
        return Ok(());
    }
    Err(ApiError::BadRequest(RequestError::InvalidParams {
        op: "upload".into(),
        message: format!("`{field}` must not contain NUL (U+0000)"),
    }))
}

fn bad_upload(message: impl Into<String>) -> ApiError {
    ApiError::BadUpload(message.into())
}

/// The form's `file` field (its name and type read, its bytes still to come); fields before
/// it are read and dropped within a small allowance.
async fn file_field(form: &mut Multipart) -> Result<Field, ApiError> {
    let mut skipped = 0u64;
    while let Some(field) = form.next().await {
        let mut field =
            field.map_err(|e| bad_upload(format!("the form could not be read: {e}")))?;
        if field.name() == Some("file") {
            return Ok(field);
        }
        while let Some(chunk) = field.next().await {
            let chunk =
                chunk.map_err(|e| bad_upload(format!("the form could not be read: {e}")))?;
            skipped += chunk.len() as u64;
            if skipped > FORM_OVERHEAD_BYTES {
                return Err(bad_upload(
                    "the form carries too much besides its file field",
                ));
            }
        }
    }
    Err(bad_upload("the multipart/form-data body has no file field"))
}

/// The field's bytes as the engine reads them.
fn body_of(field: Field) -> UploadBody {
    Box::pin(field.map(|chunk| chunk.map_err(|e| format!("the form broke off: {e}"))))
}

/// Counts a refusal made here, before the engine saw the upload, with the engine's.
fn count_edge_refusal(error: &ApiError) {
    let outcome = match error {
        ApiError::Engine(EngineError::AttachmentTooLarge(_)) => "refused_size",
        ApiError::BadUpload(_) => "interrupted",
        ApiError::BodyTimeout => "timed_out",
        _ => return,
    };
    chatkit_actors::metrics::METRICS
        .attachment_uploads
        .with_label_values(&[outcome])
        .inc();
}

/// Refuses a body announced larger than a file of the largest size plus the form around it.
fn check_declared_length(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    let limit = state.engine.max_attachment_bytes();
    if super::declared_length(req).is_some_and(|n| n > limit + FORM_OVERHEAD_BYTES) {
        let error = ApiError::Engine(EngineError::AttachmentTooLarge(limit));
        count_edge_refusal(&error);
        return Err(error);
    }
    Ok(())
}

fn attachment_json(attachment: &Attachment) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(to_json(attachment))
}

/// `POST /attachments`: direct upload.
pub async fn direct_upload(
    req: HttpRequest,
    mut form: Multipart,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = super::authenticate(&req, &state).await?;
    state.check_rate(&caller)?;
    check_declared_length(&req, &state)?;
    let origin = public_origin(&req, &state)?;
    let engine = &state.engine;
    let upload = async {
        let field = file_field(&mut form).await?;
        let name = field
            .content_disposition()
            .and_then(|d| d.get_filename())
            .map(str::to_string)
            .ok_or_else(|| bad_upload("the file field has no filename"))?;
        let declared_type = field
            .content_type()
            .map(|m| m.essence_str().to_string())
            .unwrap_or_default();
        refuse_nul("filename", &name)?;
        refuse_nul("content-type", &declared_type)?;
        Ok::<_, ApiError>(
            engine
                .direct_upload(
                    &caller.user_id,
                    &name,
                    &declared_type,
                    body_of(field),
                    &origin,
                )
                .await?,
        )
    };
    let attachment = within_upload_timeout(engine, upload).await?;
    tracing::info!(user_id = %caller.user_id, attachment_id = %attachment.id, "attachment uploaded");
    Ok(attachment_json(&attachment))
}

/// Runs an upload within `attachments.upload_timeout_secs` (a slower one gets 408; what it
/// stored is removed), counting refusals made at the edge.
async fn within_upload_timeout(
    engine: &chatkit_actors::Engine,
    upload: impl std::future::Future<Output = Result<Attachment, ApiError>>,
) -> Result<Attachment, ApiError> {
    let result = tokio::time::timeout(engine.upload_timeout(), upload)
        .await
        .map_err(|_| ApiError::BodyTimeout)
        .and_then(|done| done);
    if let Err(error) = &result {
        count_edge_refusal(error);
    }
    result
}

/// `expires` and `signature` from the query string, if both are there.
fn signed_query(req: &HttpRequest) -> Result<Option<(i64, String)>, ApiError> {
    let mut expires = None;
    let mut signature = None;
    for (key, value) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        match key.as_ref() {
            "expires" => expires = Some(value.into_owned()),
            "signature" => signature = Some(value.into_owned()),
            _ => {}
        }
    }
    let invalid = || {
        ApiError::Engine(EngineError::BadSignature(
            chatkit_actors::attachments::signing::SignatureError::Invalid,
        ))
    };
    match (expires, signature) {
        (None, None) => Ok(None),
        (Some(expires), Some(signature)) => {
            let expires: i64 = expires.parse().map_err(|_| invalid())?;
            if signature.len() > MAX_SIGNATURE_LEN {
                return Err(invalid());
            }
            Ok(Some((expires, signature)))
        }
        _ => Err(invalid()),
    }
}

/// An id from the path; one that cannot be ours is simply not found.
fn path_id(raw: &str) -> Result<AttachmentId, ApiError> {
    AttachmentId::parse(raw).map_err(|_| ApiError::Engine(EngineError::AttachmentNotFound))
}

/// `POST /attachments/{id}/upload`: the two-phase upload URL.
pub async fn upload(
    req: HttpRequest,
    path: web::Path<String>,
    mut form: Multipart,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&path)?;
    let signed = signed_query(&req)?;
    // A token, if any, must hold; with neither a token nor a signature the request is as
    // any other unauthenticated one (401).
    let has_token = req.headers().contains_key(header::AUTHORIZATION);
    let caller = match has_token || signed.is_none() {
        true => Some(super::authenticate(&req, &state).await?),
        false => None,
    };
    if let Some(caller) = &caller {
        state.check_rate(caller)?;
    }
    check_declared_length(&req, &state)?;
    let origin = public_origin(&req, &state)?;
    let auth = UploadAuth {
        signed,
        caller: caller.map(|c| c.user_id),
    };
    let engine = &state.engine;
    let upload = async {
        let field = file_field(&mut form).await?;
        Ok::<_, ApiError>(
            engine
                .upload_attachment(&id, auth, body_of(field), &origin)
                .await?,
        )
    };
    let attachment = within_upload_timeout(engine, upload).await?;
    tracing::info!(attachment_id = %attachment.id, "attachment uploaded");
    Ok(attachment_json(&attachment))
}

/// `GET /attachments/{id}/content`: the bytes behind a signed URL.
pub async fn content(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&path)?;
    let (expires, signature) = signed_query(&req)?.ok_or(ApiError::Engine(
        EngineError::BadSignature(chatkit_actors::attachments::signing::SignatureError::Invalid),
    ))?;
    let content = state
        .engine
        .attachment_content(&id, expires, &signature)
        .await?;
    let (served_type, inline) = chatkit_actors::attachments::served_type(&content.mime_type);
    let now = chrono::Utc::now().timestamp();
    let max_age = (content.expires - now).max(0);
    let disposition = if inline {
        "inline".to_string()
    } else {
        attachment_disposition(&content.name)
    };
    let size = content.size;
    let body = content
        .chunks
        .map(|chunk| chunk.map_err(|e| std::io::Error::other(e.to_string())));
    Ok(HttpResponse::Ok()
        .no_chunking(size)
        .content_type(served_type.to_string())
        .insert_header((header::CONTENT_DISPOSITION, disposition))
        .insert_header((header::CACHE_CONTROL, format!("private, max-age={max_age}")))
        .insert_header(("x-content-type-options", "nosniff"))
        .insert_header((
            "content-security-policy",
            "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox",
        ))
        .insert_header(("cross-origin-resource-policy", "cross-origin"))
        .insert_header(("referrer-policy", "no-referrer"))
        .streaming(body))
}

/// `attachment; filename="<ASCII fallback>"; filename*=UTF-8''<percent-encoded>` (RFC 6266).
fn attachment_disposition(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '_',
        })
        .collect();
    let encoded: String = url::form_urlencoded::byte_serialize(name.as_bytes())
        .collect::<String>()
        .replace('+', "%20");
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::attachment_disposition;

    #[test]
    fn download_names_are_quoted_safely() {
        assert_eq!(
            attachment_disposition("rapport été \"final\".pdf"),
            "attachment; filename=\"rapport _t_ _final_.pdf\"; filename*=UTF-8''rapport%20%C3%A9t%C3%A9%20%22final%22.pdf"
        );
    }
}
