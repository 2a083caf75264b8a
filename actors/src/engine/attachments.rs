//! Attachments (protocol §3.14, §3.15, §7.3): create (two-phase), upload, direct upload,
//! delete, the bytes behind a signed URL, and the ids a message carries. Another user's
//! attachment answers exactly like a missing one on every path.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};

use super::Engine;
use crate::attachments::media;
use crate::attachments::signing::{
    unix_now, windowed_expiry, PublicOrigin, Purpose, SignatureError,
};
use crate::config::AttachmentSettings;
use crate::error::EngineError;
use crate::ids::{AttachmentId, ThreadId, UserId};
use crate::metrics::METRICS;
use crate::protocol::requests::CreateAttachmentParams;
use crate::protocol::{Attachment, AttachmentKind, UploadDescriptor};
use crate::store::{AttachmentRow, Claim, NewAttachment, Store, CHUNK_BYTES};

/// Longest file name accepted, in characters.
const MAX_NAME_CHARS: usize = 255;

/// What an upload request carries to show it may send the bytes: the signed upload URL
/// handed out by `attachments.create` (no header needed), the owner's bearer token, or
/// both (then both must hold).
#[derive(Debug, Default)]
pub struct UploadAuth {
    /// `expires` and `signature` of the URL.
    pub signed: Option<(i64, String)>,
    pub caller: Option<UserId>,
}

/// An upload's bytes as they arrive (a form field, read by the edge); an error is the
/// client's (a broken form or connection), said in words.
pub type UploadBody = Pin<Box<dyn Stream<Item = Result<Bytes, String>>>>;

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

/// A claimed upload that is given up (its chunks deleted, a direct upload's row too) unless
/// [`ClaimGuard::keep`] is called: on any error, and when the request is dropped mid-way
/// (the client left or timed out).
struct ClaimGuard {
    store: Store,
    id: String,
    token: String,
    direct: bool,
    kept: bool,
}

impl ClaimGuard {
    fn new(store: &Store, id: &str, token: &str, direct: bool) -> ClaimGuard {
        ClaimGuard {
            store: store.clone(),
            id: id.to_string(),
            token: token.to_string(),
            direct,
            kept: false,
        }
    }

    fn keep(&mut self) {
        self.kept = true;
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        let (store, id, token, direct) = (
            self.store.clone(),
            std::mem::take(&mut self.id),
            std::mem::take(&mut self.token),
            self.direct,
        );
        tokio::spawn(async move {
            if let Err(error) = store.abandon_upload(&id, &token, direct).await {
                tracing::warn!(attachment_id = %id, %error, "could not remove an abandoned upload");
            }
        });
    }
}

/// A fresh upload claim token.
fn upload_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn size_mismatch(total: u64, declared: i64) -> EngineError {
    EngineError::InvalidInput(format!(
        "the upload has {}{total} bytes, but attachments.create declared {declared}",
        if total > declared as u64 {
            "at least "
        } else {
            ""
        }
    ))
}

impl Engine {
    fn attachment_settings(&self) -> &AttachmentSettings {
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

    fn refuse_if_disabled(&self, op: &'static str) -> Result<(), EngineError> {
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
        self.check_quota(user_id, params.size as u64).await?;
        let id = AttachmentId::generate();
        let kind = media::kind_of(&mime);
        self.env
            .store
            .insert_attachment(&NewAttachment {
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
                .env
                .url_signer
                .url(origin, Purpose::Upload, id.as_str(), expires),
            method: "POST".into(),
            headers: Default::default(),
        };
        Ok(self.wire(id.as_str(), name, &mime, kind, None, Some(upload), origin))
    }

    /// The bytes of a two-phase upload, sent to its upload URL: once, with the declared size,
    /// and content that is what the declared type says. Credentials and state are checked
    /// before a byte of `body` is read; the bytes are stored in chunks as they arrive.
    pub async fn upload_attachment(
        &self,
        id: &AttachmentId,
        auth: UploadAuth,
        body: UploadBody,
        origin: &PublicOrigin,
    ) -> Result<Attachment, EngineError> {
        counted(self.receive_two_phase(id, auth, body, origin).await)
    }

    async fn receive_two_phase(
        &self,
        id: &AttachmentId,
        auth: UploadAuth,
        body: UploadBody,
        origin: &PublicOrigin,
    ) -> Result<Attachment, EngineError> {
        self.refuse_if_disabled("attachment upload")?;
        match &auth.signed {
            Some((expires, signature)) => self
                .env
                .url_signer
                .verify(
                    Purpose::Upload,
                    id.as_str(),
                    *expires,
                    signature,
                    unix_now(),
                )
                .map_err(EngineError::BadSignature)?,
            None if auth.caller.is_none() => {
                return Err(EngineError::BadSignature(SignatureError::Invalid))
            }
            None => {}
        }
        let row = self
            .env
            .store
            .attachment(id.as_str())
            .await?
            .ok_or(EngineError::AttachmentNotFound)?;
        if let Some(user) = &auth.caller {
            if row.user_id != user.as_str() {
                return Err(EngineError::AttachmentNotFound);
            }
        }
        if row.uploaded() {
            return Err(EngineError::AlreadyUploaded);
        }
        let token = upload_token();
        let stale_after = self.attachment_settings().upload_timeout;
        match self
            .env
            .store
            .claim_upload(id.as_str(), &token, stale_after)
            .await?
        {
            Claim::Claimed => {}
            Claim::AlreadyUploaded => return Err(EngineError::AlreadyUploaded),
            Claim::InProgress => return Err(EngineError::UploadInProgress),
            Claim::Missing => return Err(EngineError::AttachmentNotFound),
        }
        let mut claim = ClaimGuard::new(&self.env.store, id.as_str(), &token, false);
        let size = self
            .receive(id.as_str(), &row.mime_type, Some(row.declared_size), body)
            .await?;
        if !self
            .env
            .store
            .finish_upload(id.as_str(), &token, size)
            .await?
        {
            return Err(EngineError::UploadInProgress);
        }
        claim.keep();
        METRICS.attachment_upload_bytes.inc_by(size.max(0) as u64);
        Ok(self.wire_row(&row, origin))
    }

    /// Direct upload (`uploadStrategy: {type: "direct"}`): one authenticated request creates
    /// and stores the attachment, its bytes in chunks as they arrive.
    pub async fn direct_upload(
        &self,
        user_id: &UserId,
        name: &str,
        declared_type: &str,
        body: UploadBody,
        origin: &PublicOrigin,
    ) -> Result<Attachment, EngineError> {
        counted(
            self.receive_direct(user_id, name, declared_type, body, origin)
                .await,
        )
    }

    async fn receive_direct(
        &self,
        user_id: &UserId,
        name: &str,
        declared_type: &str,
        body: UploadBody,
        origin: &PublicOrigin,
    ) -> Result<Attachment, EngineError> {
        self.refuse_if_disabled("attachment upload")?;
        let name = checked_name(name)?;
        let mime = self.accepted_type(declared_type, name)?;
        let used = self.check_quota(user_id, 0).await?;
        let id = AttachmentId::generate();
        let kind = media::kind_of(&mime);
        let token = upload_token();
        self.env
            .store
            .insert_attachment(&NewAttachment {
                id: id.as_str(),
                user_id: user_id.as_str(),
                name,
                mime_type: &mime,
                kind,
                declared_size: 0,
                upload_token: Some(&token),
            })
            .await?;
        let mut claim = ClaimGuard::new(&self.env.store, id.as_str(), &token, true);
        let size = self.receive(id.as_str(), &mime, None, body).await?;
        if let Some(quota) = self.quota() {
            if used + size as u64 > quota {
                return Err(EngineError::QuotaExceeded(quota));
            }
        }
        if !self
            .env
            .store
            .finish_upload(id.as_str(), &token, size)
            .await?
        {
            return Err(EngineError::AttachmentNotFound);
        }
        claim.keep();
        METRICS.attachment_upload_bytes.inc_by(size.max(0) as u64);
        Ok(self.wire(id.as_str(), name, &mime, kind, None, None, origin))
    }

    /// Reads `body` to its end, checking size and content as it goes and storing it in
    /// chunks; returns its size. The caller holds the upload's claim (dropped on error, which
    /// removes what was stored).
    async fn receive(
        &self,
        id: &str,
        mime: &str,
        declared: Option<i64>,
        mut body: UploadBody,
    ) -> Result<i64, EngineError> {
        let max = self.attachment_settings().max_bytes;
        let mut check = media::ContentCheck::new(mime);
        let mut buffer: Vec<u8> = Vec::with_capacity(CHUNK_BYTES);
        let mut seq: i32 = 0;
        let mut total: u64 = 0;
        while let Some(piece) = body.next().await {
            let piece = piece.map_err(EngineError::UploadInterrupted)?;
            total += piece.len() as u64;
            if total > max {
                return Err(EngineError::AttachmentTooLarge(max));
            }
            if let Some(declared) = declared {
                if total > declared as u64 {
                    return Err(size_mismatch(total, declared));
                }
            }
            check
                .feed(&piece)
                .map_err(EngineError::UnsupportedMediaType)?;
            let mut rest: &[u8] = &piece;
            while !rest.is_empty() {
                let room = CHUNK_BYTES - buffer.len();
                let (now, later) = rest.split_at(room.min(rest.len()));
                buffer.extend_from_slice(now);
                rest = later;
                if buffer.len() == CHUNK_BYTES {
                    self.env.store.insert_chunk(id, seq, &buffer).await?;
                    buffer.clear();
                    seq += 1;
                }
            }
        }
        if let Some(declared) = declared {
            if total != declared as u64 {
                return Err(size_mismatch(total, declared));
            }
        }
        check.finish().map_err(EngineError::UnsupportedMediaType)?;
        if !buffer.is_empty() {
            self.env.store.insert_chunk(id, seq, &buffer).await?;
        }
        Ok(total as i64)
    }

    /// `attachments.max_bytes_per_user`, if any.
    fn quota(&self) -> Option<u64> {
        Some(self.attachment_settings().max_bytes_per_user).filter(|q| *q > 0)
    }

    /// Refuses `more` bytes the user's attachments cannot take; answers what they take now.
    async fn check_quota(&self, user_id: &UserId, more: u64) -> Result<u64, EngineError> {
        let Some(quota) = self.quota() else {
            return Ok(0);
        };
        let used = self
            .env
            .store
            .user_attachment_bytes(user_id.as_str())
            .await?
            .max(0) as u64;
        if used + more > quota || used >= quota {
            return Err(EngineError::QuotaExceeded(quota));
        }
        Ok(used)
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
        self.env
            .url_signer
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

    fn content_url(&self, id: &str, origin: &PublicOrigin) -> String {
        let ttl = self.attachment_settings().url_ttl.as_secs() as i64;
        let expires = windowed_expiry(unix_now(), ttl);
        self.env
            .url_signer
            .url(origin, Purpose::Content, id, expires)
    }

    fn wire_row(&self, row: &AttachmentRow, origin: &PublicOrigin) -> Attachment {
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
    fn wire(
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
    fn accepted_type(&self, declared: &str, name: &str) -> Result<String, EngineError> {
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

    fn check_size(&self, size: u64) -> Result<(), EngineError> {
        let max = self.attachment_settings().max_bytes;
        if size > max {
            return Err(EngineError::AttachmentTooLarge(max));
        }
        Ok(())
    }
}

/// Counts an upload's outcome (`chatkit_attachment_uploads_total`).
fn counted(result: Result<Attachment, EngineError>) -> Result<Attachment, EngineError> {
    let outcome = match &result {
        Ok(_) => "stored",
        Err(EngineError::UnsupportedMediaType(_)) => "refused_type",
        Err(EngineError::AttachmentTooLarge(_)) => "refused_size",
        Err(EngineError::BadSignature(_)) => "refused_signature",
        Err(EngineError::AlreadyUploaded) => "refused_repeat",
        Err(EngineError::AttachmentNotFound) => "refused_not_found",
        Err(EngineError::InvalidInput(_)) => "refused_input",
        Err(EngineError::QuotaExceeded(_)) => "refused_quota",
        Err(EngineError::UploadInProgress) => "refused_in_progress",
        Err(EngineError::UploadInterrupted(_)) => "interrupted",
        Err(_) => "failed",
    };
    METRICS
        .attachment_uploads
        .with_label_values(&[outcome])
        .inc();
    result
}

/// A file name: 1 to 255 characters, no control characters (they would reach headers and
/// logs), not only spaces.
fn checked_name(name: &str) -> Result<&str, EngineError> {
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
