//! Receiving attachment bytes (protocol §7.3): the two-phase upload to its signed URL and
//! the direct upload. An upload is claimed first (one at a time per attachment), read and
//! checked as it arrives, stored a chunk at a time, and only the final write makes it usable;
//! one that fails or is abandoned leaves nothing behind (`ClaimGuard`).

use std::pin::Pin;

use bytes::Bytes;
use futures::{Stream, StreamExt};

use super::attachments::checked_name;
use super::Engine;
use crate::attachments::media;
use crate::attachments::signing::{unix_now, PublicOrigin, Purpose, SignatureError};
use crate::error::EngineError;
use crate::ids::{AttachmentId, UserId};
use crate::metrics::METRICS;
use crate::protocol::Attachment;
use crate::store::{Claim, NewAttachment, Store, CHUNK_BYTES};

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

    /// Makes the received upload usable (the durable write); `lost` when the claim was
    /// taken over meanwhile (giving up, keyed by our token, then touches nothing of theirs).
    async fn finish(mut self, size: i64, lost: EngineError) -> Result<(), EngineError> {
        if !self
            .store
            .finish_upload(&self.id, &self.token, size)
            .await?
        {
            return Err(lost);
        }
        self.kept = true;
        METRICS.attachment_upload_bytes.inc_by(size.max(0) as u64);
        Ok(())
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

/// What an upload's bytes must match, and where they go.
struct Target<'a> {
    id: &'a str,
    /// The declared type, which the content must be.
    mime: &'a str,
    /// The size `attachments.create` declared (and reserved): the upload must have it.
    declared: Option<i64>,
    /// A direct upload's quota, against which its bytes are reserved as they are written.
    reserve: Option<Reservation<'a>>,
}

struct Reservation<'a> {
    user_id: &'a str,
    /// The upload's claim.
    token: &'a str,
    quota: u64,
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
        let claim = ClaimGuard::new(&self.env.store, id.as_str(), &token, false);
        let target = Target {
            id: id.as_str(),
            mime: &row.mime_type,
            declared: Some(row.declared_size),
            reserve: None,
        };
        let size = self.receive(&target, body).await?;
        claim.finish(size, EngineError::UploadInProgress).await?;
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
        let id = AttachmentId::generate();
        let kind = media::kind_of(&mime);
        let token = upload_token();
        // Created claimed, with no bytes reserved: refused only when the user is at the quota.
        self.insert_within_quota(&NewAttachment {
            id: id.as_str(),
            user_id: user_id.as_str(),
            name,
            mime_type: &mime,
            kind,
            declared_size: 0,
            upload_token: Some(&token),
        })
        .await?;
        let claim = ClaimGuard::new(&self.env.store, id.as_str(), &token, true);
        let target = Target {
            id: id.as_str(),
            mime: &mime,
            declared: None,
            reserve: self.quota().map(|quota| Reservation {
                user_id: user_id.as_str(),
                token: &token,
                quota,
            }),
        };
        let size = self.receive(&target, body).await?;
        claim.finish(size, EngineError::AttachmentNotFound).await?;
        Ok(self.wire(id.as_str(), name, &mime, kind, None, None, origin))
    }

    /// Reads `body` to its end, checking size and content as it goes and storing it in
    /// chunks; returns its size. The caller holds the upload's claim (dropped on error, which
    /// removes what was stored).
    async fn receive(&self, target: &Target<'_>, mut body: UploadBody) -> Result<i64, EngineError> {
        let max = self.attachment_settings().max_bytes;
        let mut check = media::ContentCheck::new(target.mime);
        let mut buffer: Vec<u8> = Vec::with_capacity(CHUNK_BYTES);
        let mut seq: i32 = 0;
        let mut total: u64 = 0;
        while let Some(piece) = body.next().await {
            let piece = piece.map_err(EngineError::UploadInterrupted)?;
            total += piece.len() as u64;
            if total > max {
                return Err(EngineError::AttachmentTooLarge(max));
            }
            if let Some(declared) = target.declared {
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
                    self.write_chunk(target, seq, &buffer).await?;
                    buffer.clear();
                    seq += 1;
                }
            }
        }
        if let Some(declared) = target.declared {
            if total != declared as u64 {
                return Err(size_mismatch(total, declared));
            }
        }
        check.finish().map_err(EngineError::UnsupportedMediaType)?;
        if !buffer.is_empty() {
            self.write_chunk(target, seq, &buffer).await?;
        }
        Ok(total as i64)
    }

    /// Writes chunk `seq`. A direct upload first reserves the bytes stored with it against
    /// the user's quota, so they never exceed it, even while other uploads run.
    async fn write_chunk(
        &self,
        target: &Target<'_>,
        seq: i32,
        chunk: &[u8],
    ) -> Result<(), EngineError> {
        if let Some(reserve) = &target.reserve {
            let stored = seq as i64 * CHUNK_BYTES as i64 + chunk.len() as i64;
            let reserved = self
                .env
                .store
                .reserve_upload(
                    target.id,
                    reserve.token,
                    reserve.user_id,
                    stored,
                    as_i64(reserve.quota),
                )
                .await?;
            // (False also when the claim was lost, which the final write would report.)
            if !reserved {
                return Err(EngineError::QuotaExceeded(reserve.quota));
            }
        }
        self.env.store.insert_chunk(target.id, seq, chunk).await?;
        Ok(())
    }

    /// `attachments.max_bytes_per_user`, if any.
    pub(super) fn quota(&self) -> Option<u64> {
        Some(self.attachment_settings().max_bytes_per_user).filter(|q| *q > 0)
    }

    /// Stores a new attachment, within the user's quota if there is one: the count and the
    /// insert are one step (`store/quota.rs`), so concurrent requests cannot both fit.
    pub(super) async fn insert_within_quota(
        &self,
        new: &NewAttachment<'_>,
    ) -> Result<(), EngineError> {
        let Some(quota) = self.quota() else {
            return Ok(self.env.store.insert_attachment(new).await?);
        };
        if self
            .env
            .store
            .insert_attachment_within(new, as_i64(quota))
            .await?
        {
            Ok(())
        } else {
            Err(EngineError::QuotaExceeded(quota))
        }
    }
}

fn as_i64(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
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
