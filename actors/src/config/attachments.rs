//! The `[attachments]` section (protocol §3.14, §7.3): limits, accepted types, URL origin,
//! signing key and lifetimes, checked into [`AttachmentSettings`].

use std::num::{NonZeroU64, NonZeroUsize};
use std::time::Duration;

use serde::Deserialize;

use super::AttachmentSettings;

#[derive(Deserialize)]
pub(super) struct AttachmentsSection {
    enabled: bool,
    max_bytes: NonZeroU64,
    max_bytes_per_user: u64,
    max_per_message: NonZeroUsize,
    allowed_types: Vec<String>,
    public_url: Option<String>,
    signing_key: Option<String>,
    upload_url_ttl_secs: NonZeroU64,
    url_ttl_secs: NonZeroU64,
    unused_ttl_secs: NonZeroU64,
    upload_timeout_secs: NonZeroU64,
    max_text_bytes_to_model: usize,
}

/// Bytes a stored attachment may have at most: what one `bytea` holds comfortably.
const MAX_ATTACHMENT_BYTES: u64 = 512 * 1024 * 1024;
/// A signing key shorter than this is refused (HMAC-SHA256 wants 32 bytes of entropy).
const MIN_SIGNING_KEY_BYTES: usize = 32;

pub(super) fn attachment_settings(
    raw: AttachmentsSection,
    problems: &mut Vec<String>,
) -> Option<AttachmentSettings> {
    let before = problems.len();
    if raw.max_bytes.get() > MAX_ATTACHMENT_BYTES {
        problems.push(format!(
            "attachments.max_bytes {} is more than {MAX_ATTACHMENT_BYTES} (512 MiB)",
            raw.max_bytes
        ));
    }
    let mut allowed_types = Vec::new();
    for pattern in raw.allowed_types {
        let lower = pattern.trim().to_ascii_lowercase();
        match crate::attachments::media::valid_type_pattern(&lower) {
            true => allowed_types.push(lower),
            false => problems.push(format!(
                "attachments.allowed_types {pattern:?} is not a media type (type/subtype or type/*)"
            )),
        }
    }
    let public_url = raw.public_url.map(|u| u.trim_end_matches('/').to_string());
    if let Some(url) = &public_url {
        let valid = url::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
        if valid.is_none() {
            problems.push(format!(
                "attachments.public_url {url:?} is not an http(s) URL"
            ));
        }
    }
    if let Some(key) = &raw.signing_key {
        if key.len() < MIN_SIGNING_KEY_BYTES {
            problems.push(format!(
                "attachments.signing_key must be at least {MIN_SIGNING_KEY_BYTES} bytes (it has {})",
                key.len()
            ));
        }
    }
    (problems.len() == before).then(|| AttachmentSettings {
        enabled: raw.enabled,
        max_bytes: raw.max_bytes.get(),
        max_bytes_per_user: raw.max_bytes_per_user,
        max_per_message: raw.max_per_message.get(),
        allowed_types,
        public_url,
        signing_key: raw.signing_key.map(String::into_bytes),
        upload_url_ttl: Duration::from_secs(raw.upload_url_ttl_secs.get()),
        url_ttl: Duration::from_secs(raw.url_ttl_secs.get()),
        unused_ttl: Duration::from_secs(raw.unused_ttl_secs.get()),
        upload_timeout: Duration::from_secs(raw.upload_timeout_secs.get()),
        max_text_bytes_to_model: raw.max_text_bytes_to_model,
    })
}
