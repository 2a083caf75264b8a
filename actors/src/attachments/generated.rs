//! Files the model makes (generated images): kept as attachments of the thread (the same
//! tables as uploads, so any instance serves them), named in items by a signed content URL of
//! this server, never by their bytes. The URL carries the attachment id, so a read re-signs
//! it and a later turn finds the bytes to show the model.

use std::sync::Arc;

use super::signing::{unix_now, windowed_expiry, PublicOrigin, Purpose, UrlSigner};
use crate::protocol::{Attachment, AttachmentKind};

/// How a turn names the content of the files it makes: signed URLs for the origin the
/// request came through (a relative URL when it had none).
#[derive(Clone)]
pub struct ContentLinks {
    signer: Arc<UrlSigner>,
    origin: Option<PublicOrigin>,
    ttl_secs: i64,
}

impl ContentLinks {
    pub(crate) fn new(signer: Arc<UrlSigner>, origin: Option<PublicOrigin>, ttl_secs: i64) -> Self {
        ContentLinks {
            signer,
            origin,
            ttl_secs,
        }
    }

    /// A content URL of attachment `id`, valid now (within the current window).
    pub(crate) fn url(&self, id: &str) -> String {
        let expires = windowed_expiry(unix_now(), self.ttl_secs);
        match &self.origin {
            Some(origin) => self.signer.url(origin, Purpose::Content, id, expires),
            None => format!(
                "/attachments/{id}/content?expires={expires}&signature={}",
                self.signer.signature(Purpose::Content, id, expires)
            ),
        }
    }
}

impl std::fmt::Debug for ContentLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentLinks")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// The attachment id in one of our content URLs (`…/attachments/{id}/content?…`).
pub(crate) fn content_url_id(url: &str) -> Option<&str> {
    let path = url.split('?').next()?;
    let rest = path.strip_suffix("/content")?;
    let (_, id) = rest.rsplit_once("/attachments/")?;
    (id.starts_with("atc_") && !id.contains('/')).then_some(id)
}

/// The attachment a generated image stands for in the model's input (read just before the
/// call, like an upload's).
pub(crate) fn image_placeholder(id: &str) -> Attachment {
    Attachment {
        id: id.to_string(),
        name: format!("{id}.png"),
        mime_type: "image/png".into(),
        upload_descriptor: None,
        thread_id: None,
        kind: AttachmentKind::Image,
        preview_url: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_content_url_names_its_attachment_and_is_signed_for_it() {
        let signer = Arc::new(UrlSigner::new(&[3u8; 32]));
        let origin = PublicOrigin::parse("https://chat.example.com").unwrap();
        let links = ContentLinks::new(signer.clone(), Some(origin), 3600);
        let url = links.url("atc_1f");
        assert!(url.starts_with("https://chat.example.com/attachments/atc_1f/content?expires="));
        assert_eq!(content_url_id(&url), Some("atc_1f"));
        let relative = ContentLinks::new(signer, None, 3600).url("atc_2");
        assert!(relative.starts_with("/attachments/atc_2/content?"));
        assert_eq!(content_url_id(&relative), Some("atc_2"));
        for other in [
            "data:image/png;base64,AAAA",
            "https://x/attachments/atc_1/upload?expires=1",
            "https://x/attachments/a/b/content",
            "https://x/content",
        ] {
            assert_eq!(content_url_id(other), None, "{other}");
        }
    }
}
