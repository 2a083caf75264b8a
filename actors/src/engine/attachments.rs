//! Attachments (protocol §3.14, §3.15, §7.3): create (two-phase), upload, direct upload,
//! delete, the bytes behind a signed URL, and the ids a message carries. Another user's
//! attachment answers exactly like a missing one on every path.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;

use super::Engine;
use crate::attachments::generated::{content_url_id, ContentLinks};
use crate::attachments::media;
use crate::attachments::signing::{unix_now, windowed_expiry, PublicOrigin, Purpose};
use crate::config::AttachmentSettings;
use crate::error::EngineError;
use crate::ids::{AttachmentId, ThreadId, UserId};
use crate::protocol::requests::CreateAttachmentParams;
use crate::protocol::{Attachment, AttachmentKind, GeneratedImage, UploadDescriptor};
use crate::store::{AttachmentRow, NewAttachment};

/// Longest file name accepted, in characters.
const MAX_NAME_CHARS: usize = 255;

/// An attachment's bytes, for the content URL.
pub struct AttachmentContent {
    pub name: String,
    pub mime_type: String,
    pub size: u64,
    /// When the URL that asked expires (Unix seconds): caches keep it no longer.
    pub expires: i64,
    /// The bytes, chunk by chunk.
    pub chunks: Pin<Box<dyn Stream<Item = Result<Bytes, EngineError>> + Send>>,
}

impl Engine {
    pub(super) fn attachment_settings(&self) -> &AttachmentSettings {
        &self.env.settings.attachments
    }

    /// The most bytes an upload may carry (the edge stops reading past it).
    pub fn max_attachment_bytes(&self) -> u64 {
        self.attachment_settings().max_bytes
    }

    /// How long the edge waits for an upload's body.
    pub fn upload_timeout(&self) -> Duration {
        self.attachment_settings().upload_timeout
    }

    /// The configured origin of attachment URLs, if any (else the edge uses the request's).
    pub fn attachments_public_url(&self) -> Option<&str> {
        self.attachment_settings().public_url.as_deref()
    }

    pub(super) fn refuse_if_disabled(&self, op: &'static str) -> Result<(), EngineError> {
        if self.attachment_settings().enabled {
            Ok(())
        } else {
            Err(EngineError::Unsupported(op))
        }
    }

    /// `attachments.create`: checks name, type and size, stores the record, and answers it
    /// with a signed, single-use upload URL (and a preview URL for images).
    pub async fn create_attachment(
        &self,
        user_id: &UserId,
        params: &CreateAttachmentParams,
        origin: &PublicOrigin,
    ) -> Result<Attachment, EngineError> {
        self.refuse_if_disabled("attachments.create")?;
        let name = checked_name(&params.name)?;
        let mime = self.accepted_type(&params.mime_type, name)?;
        if params.size < 0 {
            return Err(EngineError::InvalidInput(
                "size must not be negative".into(),
            ));
        }
        self.check_size(params.size as u64)?;
        let id = AttachmentId::generate();
        let kind = media::kind_of(&mime);
        // The declared size is reserved against the quota now; the upload must match it.
        self.insert_within_quota(&NewAttachment {
            id: id.as_str(),
            user_id: user_id.as_str(),
            name,
            mime_type: &mime,
            kind,
            declared_size: params.size,
            upload_token: None,
        })
        .await?;
        let expires = unix_now() + self.attachment_settings().upload_url_ttl.as_secs() as i64;
        let upload = UploadDescriptor {
            url: self
                .url_signer
                .url(origin, Purpose::Upload, id.as_str(), expires),
            method: "POST".into(),
            headers: Default::default(),
        };
        Ok(self.wire(id.as_str(), name, &mime, kind, None, Some(upload), origin))
    }

    /// `attachments.delete`: bytes and metadata (protocol §3.15).
    pub async fn delete_attachment(
        &self,
        user_id: &UserId,
        id: &AttachmentId,
    ) -> Result<(), EngineError> {
        self.refuse_if_disabled("attachments.delete")?;
        match self
            .env
            .store
            .delete_attachment(user_id.as_str(), id.as_str())
            .await?
        {
            true => Ok(()),
            false => Err(EngineError::AttachmentNotFound),
        }
    }

    /// The bytes behind a signed content URL (preview or download), as a stream of chunks
    /// read one at a time.
    pub async fn attachment_content(
        &self,
        id: &AttachmentId,
        expires: i64,
        signature: &str,
    ) -> Result<AttachmentContent, EngineError> {
        self.url_signer
            .verify(
                Purpose::Content,
                id.as_str(),
                expires,
                signature,
                unix_now(),
            )
            .map_err(EngineError::BadSignature)?;
        let row = self
            .env
            .store
            .attachment(id.as_str())
            .await?
            .ok_or(EngineError::AttachmentNotFound)?;
        let size = row.size.ok_or(EngineError::AttachmentNotFound)?.max(0) as u64;
        let store = self.env.store.clone();
        let id = row.id.clone();
        // (next chunk, bytes sent so far)
        let chunks = futures::stream::try_unfold((0i32, 0u64), move |(seq, sent)| {
            let store = store.clone();
            let id = id.clone();
            async move {
                if sent >= size {
                    return Ok(None);
                }
                match store.attachment_chunk(&id, seq).await? {
                    Some(data) => {
                        let sent = sent + data.len() as u64;
                        Ok(Some((Bytes::from(data), (seq + 1, sent))))
                    }
                    // Deleted meanwhile: the response ends short of its length.
                    None => Err(EngineError::AttachmentNotFound),
                }
            }
        });
        Ok(AttachmentContent {
            name: row.name,
            mime_type: row.mime_type,
            size,
            expires,
            chunks: Box::pin(chunks),
        })
    }

    /// The attachments a new message names (protocol §3.1 `input.attachments`): the caller's,
    /// uploaded, and not part of another thread; checked before anything is stored.
    pub(crate) async fn message_attachments(
        &self,
        user_id: &UserId,
        thread_id: Option<&ThreadId>,
        ids: &[String],
        origin: &PublicOrigin,
    ) -> Result<Vec<Attachment>, EngineError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        if !self.attachment_settings().enabled {
            return Err(EngineError::InvalidInput(
                "attachments are not enabled on this server".into(),
            ));
        }
        let mut unique: Vec<String> = Vec::with_capacity(ids.len());
        for id in ids {
            if !unique.contains(id) {
                unique.push(id.clone());
            }
        }
        let max = self.attachment_settings().max_per_message;
        if unique.len() > max {
            return Err(EngineError::InvalidInput(format!(
                "a message may carry at most {max} attachments"
            )));
        }
        for id in &unique {
            AttachmentId::parse(id.as_str())
                .map_err(|_| EngineError::InvalidInput("unknown attachment id".into()))?;
        }
        let rows = self
            .env
            .store
            .user_attachments(user_id.as_str(), &unique)
            .await?;
        let mut attachments = Vec::with_capacity(unique.len());
        for id in &unique {
            let row = rows
                .iter()
                .find(|r| &r.id == id)
                .ok_or_else(|| EngineError::InvalidInput(format!("unknown attachment {id}")))?;
            if !row.uploaded() {
                return Err(EngineError::InvalidInput(format!(
                    "attachment {id} has not been uploaded yet"
                )));
            }
            if let Some(linked) = &row.thread_id {
                if thread_id.is_none_or(|t| t.as_str() != linked) {
                    return Err(EngineError::InvalidInput(format!(
                        "attachment {id} belongs to another thread"
                    )));
                }
            }
            attachments.push(self.wire_row(row, origin));
        }
        Ok(attachments)
    }

    /// A fresh preview URL for an image attachment read back from a stored message.
    pub(crate) fn refresh_preview(&self, attachment: &mut Attachment, origin: &PublicOrigin) {
        if attachment.kind == AttachmentKind::Image {
            attachment.preview_url = Some(self.content_url(&attachment.id, origin));
        }
    }

    /// A fresh URL for a generated image read back from a stored item (one of ours: a URL
    /// that names no attachment is left as it is).
    pub(crate) fn refresh_generated(&self, image: &mut GeneratedImage, origin: &PublicOrigin) {
        if let Some(id) = content_url_id(&image.url) {
            image.url = self.content_url(id, origin);
        }
    }

    /// How a turn names the files the model makes, for the origin its request came through.
    pub(crate) fn content_links(&self, origin: Option<PublicOrigin>) -> ContentLinks {
        let ttl = self.attachment_settings().url_ttl.as_secs() as i64;
        ContentLinks::new(self.url_signer.clone(), origin, ttl)
    }

    fn content_url(&self, id: &str, origin: &PublicOrigin) -> String {
        let ttl = self.attachment_settings().url_ttl.as_secs() as i64;
        let expires = windowed_expiry(unix_now(), ttl);
        self.url_signer.url(origin, Purpose::Content, id, expires)
    }

    pub(super) fn wire_row(&self, row: &AttachmentRow, origin: &PublicOrigin) -> Attachment {
        self.wire(
            &row.id,
            &row.name,
            &row.mime_type,
            row.kind,
            row.thread_id.clone(),
            None,
            origin,
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn wire(
        &self,
        id: &str,
        name: &str,
        mime: &str,
        kind: AttachmentKind,
        thread_id: Option<String>,
        upload_descriptor: Option<UploadDescriptor>,
        origin: &PublicOrigin,
    ) -> Attachment {
        Attachment {
            id: id.to_string(),
            name: name.to_string(),
            mime_type: mime.to_string(),
            upload_descriptor,
            thread_id,
            kind,
            preview_url: (kind == AttachmentKind::Image).then(|| self.content_url(id, origin)),
        }
    }

    /// The normalized media type, if it is one the configuration accepts.
    pub(super) fn accepted_type(&self, declared: &str, name: &str) -> Result<String, EngineError> {
        let shown = crate::text::shorten_for_display(declared, 80);
        let mime = media::normalize(declared, name).ok_or_else(|| {
            EngineError::UnsupportedMediaType(format!("{shown:?} is not a media type"))
        })?;
        if !media::is_allowed(&mime, &self.attachment_settings().allowed_types) {
            return Err(EngineError::UnsupportedMediaType(format!(
                "files of type {mime} are not accepted"
            )));
        }
        Ok(mime)
    }

    pub(super) fn check_size(&self, size: u64) -> Result<(), EngineError> {
        let max = self.attachment_settings().max_bytes;
        if size > max {
            return Err(EngineError::AttachmentTooLarge(max));
        }
        Ok(())
    }
}

/// A file name: 1 to 255 characters, no control characters (they would reach headers and
/// logs), not only spaces.
pub(super) fn checked_name(name: &str) -> Result<&str, EngineError> {
    let chars = name.chars().count();
    if name.trim().is_empty() || chars > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(EngineError::InvalidInput(format!(
            "name must be 1 to {MAX_NAME_CHARS} characters without control characters"
        )));
    }
    Ok(name)
}

/// Deletes uploads no message used, on every instance (the delete is idempotent), until
/// the engine's arbiters stop.
pub(super) async fn clean_up_unused(env: std::sync::Arc<super::EngineEnv>) {
    let ttl = env.settings.attachments.unused_ttl;
    let period = (ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(600));
    loop {
        tokio::time::sleep(period).await;
        match env.store.delete_unused_attachments(ttl).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "deleted uploads no message used"),
            Err(error) => tracing::warn!(%error, "could not delete unused uploads"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::checked_name;

    #[test]
    fn names_are_bounded_and_free_of_control_characters() {
        assert!(checked_name("cat 🐈.png").is_ok());
        assert!(checked_name(&"é".repeat(255)).is_ok());
        assert!(checked_name(&"é".repeat(256)).is_err());
        assert!(checked_name("").is_err());
        assert!(checked_name("   ").is_err());
        assert!(checked_name("a\0b").is_err());
        assert!(checked_name("a\r\nSet-Cookie: x").is_err());
    }
}
