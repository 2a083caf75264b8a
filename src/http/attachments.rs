//! Attachment uploads and downloads (protocol §7.3), beside `POST /chatkit`:
//!
//! - `POST /attachments` — direct upload (`uploadStrategy: {type: "direct", uploadUrl}`):
//!   bearer token, `multipart/form-data` with a `file` field; answers the attachment JSON.
//! - `POST /attachments/{id}/upload` — the two-phase upload URL of `attachments.create`:
//!   signed (no header needed) and/or the owner's bearer token.
//! - `GET /attachments/{id}/content` — the signed preview/download URL: raster images
//!   inline, everything else as a download, never rendered as a page.

use actix_multipart::Multipart;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chatkit_actors::attachments::PublicOrigin;
use chatkit_actors::engine::UploadAuth;
use chatkit_actors::protocol::{to_json, RequestError};
use chatkit_actors::{AttachmentId, EngineError};
use futures::StreamExt;

use super::error::ApiError;
use super::AppState;

/// Bytes a form may carry besides the file (other fields, part headers).
const FORM_OVERHEAD_BYTES: u64 = 64 * 1024;
/// Longest `signature` query value (a base64url HMAC-SHA256 is 43 characters).
const MAX_SIGNATURE_LEN: usize = 128;

/// The origin browsers reach this server at: `attachments.public_url`, or the request's
/// scheme and `Host` (actix honours `Forwarded` / `X-Forwarded-*`).
pub(super) fn public_origin(req: &HttpRequest, state: &AppState) -> Result<PublicOrigin, ApiError> {
    let configured = state.engine.attachments_public_url().map(str::to_string);
    let origin = configured.unwrap_or_else(|| {
        let info = req.connection_info();
        format!("{}://{}", info.scheme(), info.host())
    });
    PublicOrigin::parse(&origin).ok_or_else(|| {
        ApiError::BadRequest(RequestError::InvalidEnvelope(
            "the Host header is not a host name".into(),
        ))
    })
}

/// The file of an upload form.
struct UploadedFile {
    name: Option<String>,
    content_type: Option<String>,
    bytes: Vec<u8>,
}

fn bad_upload(message: impl Into<String>) -> ApiError {
    ApiError::BadUpload(message.into())
}

/// Reads the form's `file` field (at most `limit` bytes) within the upload time-out; other
/// fields are read and dropped within a small allowance.
async fn read_file(
    mut form: Multipart,
    limit: u64,
    timeout: std::time::Duration,
) -> Result<UploadedFile, ApiError> {
    let read = async {
        let mut file: Option<UploadedFile> = None;
        let mut other_bytes = 0u64;
        while let Some(field) = form.next().await {
            let mut field =
                field.map_err(|e| bad_upload(format!("the form could not be read: {e}")))?;
            let is_file = field.name() == Some("file") && file.is_none();
            let mut bytes = Vec::new();
            while let Some(chunk) = field.next().await {
                let chunk =
                    chunk.map_err(|e| bad_upload(format!("the form could not be read: {e}")))?;
                if is_file {
                    if bytes.len() as u64 + chunk.len() as u64 > limit {
                        return Err(ApiError::Engine(EngineError::AttachmentTooLarge(limit)));
                    }
                    bytes.extend_from_slice(&chunk);
                } else {
                    other_bytes += chunk.len() as u64;
                    if other_bytes > FORM_OVERHEAD_BYTES {
                        return Err(bad_upload(
                            "the form carries too much besides its file field",
                        ));
                    }
                }
            }
            if is_file {
                file = Some(UploadedFile {
                    name: field
                        .content_disposition()
                        .and_then(|d| d.get_filename())
                        .map(str::to_string),
                    content_type: field.content_type().map(|m| m.essence_str().to_string()),
                    bytes,
                });
            }
        }
        file.ok_or_else(|| bad_upload("the multipart/form-data body has no file field"))
    };
    let result = tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| ApiError::BodyTimeout)
        .and_then(|read| read);
    if let Err(ApiError::Engine(EngineError::AttachmentTooLarge(_))) = &result {
        // Refused here, before the engine sees it: counted with the engine's refusals.
        chatkit_actors::metrics::METRICS
            .attachment_uploads
            .with_label_values(&["refused_size"])
            .inc();
    }
    result
}

fn declared_length(req: &HttpRequest) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Refuses a body announced larger than a file of the largest size plus the form around it.
fn check_declared_length(req: &HttpRequest, state: &AppState) -> Result<u64, ApiError> {
    let limit = state.engine.max_attachment_bytes();
    if declared_length(req).is_some_and(|n| n > limit + FORM_OVERHEAD_BYTES) {
        return Err(ApiError::Engine(EngineError::AttachmentTooLarge(limit)));
    }
    Ok(limit)
}

fn attachment_json(attachment: &chatkit_actors::protocol::Attachment) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(to_json(attachment))
}

/// `POST /attachments`: direct upload.
pub async fn direct_upload(
    req: HttpRequest,
    form: Multipart,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = super::authenticate(&req, &state).await?;
    state
        .limits
        .check_rate(caller.user_id.as_str())
        .map_err(ApiError::RateLimited)?;
    let limit = check_declared_length(&req, &state)?;
    let origin = public_origin(&req, &state)?;
    let file = read_file(form, limit, state.engine.upload_timeout()).await?;
    let name = file
        .name
        .ok_or_else(|| bad_upload("the file field has no filename"))?;
    let attachment = state
        .engine
        .direct_upload(
            &caller.user_id,
            &name,
            file.content_type.as_deref().unwrap_or(""),
            &file.bytes,
            &origin,
        )
        .await?;
    tracing::info!(user_id = %caller.user_id, attachment_id = %attachment.id, bytes = file.bytes.len(), "attachment uploaded");
    Ok(attachment_json(&attachment))
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
    form: Multipart,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&path)?;
    let signed = signed_query(&req)?;
    let has_token = req.headers().contains_key(header::AUTHORIZATION);
    if signed.is_none() && !has_token {
        // Neither credential: as any other unauthenticated request.
        super::authenticate(&req, &state).await?;
    }
    let caller = match has_token {
        true => Some(super::authenticate(&req, &state).await?),
        false => None,
    };
    if let Some(caller) = &caller {
        state
            .limits
            .check_rate(caller.user_id.as_str())
            .map_err(ApiError::RateLimited)?;
    }
    let limit = check_declared_length(&req, &state)?;
    let origin = public_origin(&req, &state)?;
    let file = read_file(form, limit, state.engine.upload_timeout()).await?;
    let auth = UploadAuth {
        signed,
        caller: caller.map(|c| c.user_id),
    };
    let attachment = state
        .engine
        .upload_attachment(&id, auth, &file.bytes, &origin)
        .await?;
    tracing::info!(attachment_id = %attachment.id, bytes = file.bytes.len(), "attachment uploaded");
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
    Ok(HttpResponse::Ok()
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
        .body(content.bytes))
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
