//! Attachments in the model's input. History carries them as placeholders
//! ([`ContentPart::Attachment`]); just before the first model call of a turn their bytes are
//! read (one query for the whole window) and each becomes what any provider can read without
//! reaching this server: an image as a data URL, text as text with the file's name, a PDF as
//! a file part. Earlier messages' attachments are sent again, as the official bridge does.

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::media;
use crate::config::AttachmentSettings;
use crate::model::{ChatMessage, ContentPart, FileData, ImageUrl, UserContent};
use crate::protocol::Attachment;
use crate::store::{Store, StoreError};
use crate::text::clip_bytes;

/// Whether any message carries an attachment placeholder.
pub(crate) fn has_attachments(messages: &[ChatMessage]) -> bool {
    messages.iter().any(|m| placeholders(m).next().is_some())
}

fn placeholders(message: &ChatMessage) -> impl Iterator<Item = &Attachment> {
    let parts: &[ContentPart] = match message {
        ChatMessage::User {
            content: UserContent::Parts(parts),
        } => parts,
        _ => &[],
    };
    parts.iter().filter_map(|p| match p {
        ContentPart::Attachment(a) => Some(a),
        _ => None,
    })
}

/// Replaces every placeholder with its content, read from the store for `owner` (the
/// thread's user: attachments of anyone else are never read).
pub(crate) async fn put_in_place(
    store: &Store,
    owner: &str,
    settings: &AttachmentSettings,
    messages: &mut [ChatMessage],
) -> Result<(), StoreError> {
    let ids: Vec<String> = {
        let mut ids: Vec<String> = messages
            .iter()
            .flat_map(placeholders)
            .map(|a| a.id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    };
    if ids.is_empty() {
        return Ok(());
    }
    let contents: HashMap<String, Vec<u8>> = store
        .attachment_contents(owner, &ids)
        .await?
        .into_iter()
        .collect();
    for message in messages.iter_mut() {
        if let ChatMessage::User {
            content: UserContent::Parts(parts),
        } = message
        {
            for part in parts.iter_mut() {
                if let ContentPart::Attachment(attachment) = part {
                    let bytes = contents.get(&attachment.id).map(Vec::as_slice);
                    *part = model_part(attachment, bytes, settings.max_text_bytes_to_model);
                }
            }
        }
    }
    Ok(())
}

/// What the model gets for one attachment (`None`: its bytes are gone).
pub(crate) fn model_part(
    attachment: &Attachment,
    bytes: Option<&[u8]>,
    max_text: usize,
) -> ContentPart {
    let name = &attachment.name;
    let mime = attachment.mime_type.as_str();
    let Some(bytes) = bytes else {
        return ContentPart::Text {
            text: format!("[Attached file {name} is no longer available.]"),
        };
    };
    if media::is_raster_image(mime) {
        return ContentPart::ImageUrl {
            image_url: ImageUrl {
                url: data_url(mime, bytes),
            },
        };
    }
    if mime == media::PDF {
        return ContentPart::File {
            file: FileData {
                filename: name.clone(),
                file_data: data_url(mime, bytes),
            },
        };
    }
    if media::is_textual(mime) {
        let text = String::from_utf8_lossy(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes));
        let shown = clip_bytes(&text, max_text);
        let cut = if shown.len() < text.len() {
            format!(
                "\n[Cut: the first {} of {} bytes are shown.]",
                shown.len(),
                text.len()
            )
        } else {
            String::new()
        };
        return ContentPart::Text {
            text: format!("Attached file {name} ({mime}):\n{shown}{cut}"),
        };
    }
    ContentPart::Text {
        text: format!(
            "[Attached file {name} ({mime}, {} bytes): its content cannot be shown to the model.]",
            bytes.len()
        ),
    }
}

fn data_url(mime: &str, bytes: &[u8]) -> String {
    let mut url = String::with_capacity(mime.len() + 13 + bytes.len().div_ceil(3) * 4);
    url.push_str("data:");
    url.push_str(mime);
    url.push_str(";base64,");
    STANDARD.encode_string(bytes, &mut url);
    url
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::AttachmentKind;

    fn attachment(name: &str, mime: &str) -> Attachment {
        Attachment {
            id: "atc_1".into(),
            name: name.into(),
            mime_type: mime.into(),
            upload_descriptor: None,
            thread_id: None,
            kind: media::kind_of(mime),
            preview_url: None,
        }
    }

    #[test]
    fn each_type_becomes_the_part_providers_read() {
        let png = model_part(&attachment("a.png", "image/png"), Some(b"\x89PNG"), 100);
        assert_eq!(
            serde_json::to_value(&png).unwrap(),
            serde_json::json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw=="}})
        );
        let pdf = model_part(&attachment("a.pdf", "application/pdf"), Some(b"%PDF-"), 100);
        assert_eq!(
            serde_json::to_value(&pdf).unwrap(),
            serde_json::json!({"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}})
        );
        let text = model_part(
            &attachment("n.md", "text/markdown"),
            Some("# héllo".as_bytes()),
            100,
        );
        assert_eq!(
            serde_json::to_value(&text).unwrap(),
            serde_json::json!({"type": "text", "text": "Attached file n.md (text/markdown):\n# héllo"})
        );
        assert_eq!(attachment("a.png", "image/png").kind, AttachmentKind::Image);
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary_and_says_so() {
        let part = model_part(
            &attachment("n.txt", "text/plain"),
            Some("ééé".as_bytes()),
            3,
        );
        let ContentPart::Text { text } = part else {
            panic!("text part expected")
        };
        assert_eq!(
            text,
            "Attached file n.txt (text/plain):\né\n[Cut: the first 2 of 6 bytes are shown.]"
        );
    }

    #[test]
    fn missing_and_unreadable_content_is_said_in_words() {
        let gone = model_part(&attachment("a.png", "image/png"), None, 10);
        assert_eq!(
            gone,
            ContentPart::Text {
                text: "[Attached file a.png is no longer available.]".into()
            }
        );
        let zip = model_part(&attachment("a.zip", "application/zip"), Some(b"PK"), 10);
        assert!(matches!(zip, ContentPart::Text { text } if text.contains("cannot be shown")));
    }
}
