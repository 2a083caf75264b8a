//! Attachments (protocol §7.3): `id, name, mime_type, upload_descriptor, thread_id, type,
//! preview_url` in that key order. The reference's server-only `metadata` field is never
//! serialized (protocol §1.5), so this type does not have one: what only the server needs
//! (owner, size, bytes) lives in the `attachments` table.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    pub id: String,
    /// The file's original name.
    pub name: String,
    pub mime_type: String,
    /// Where and how the bytes go (two-phase upload); absent once uploaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_descriptor: Option<UploadDescriptor>,
    /// Stamped when a message carrying the attachment is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    #[serde(rename = "type")]
    pub kind: AttachmentKind,
    /// Images only: a signed URL of this server that works in an `<img>` tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_url: Option<String>,
}

/// `file` or `image` (an image has a `preview_url`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachmentKind {
    File,
    Image,
}

impl AttachmentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AttachmentKind::File => "file",
            AttachmentKind::Image => "image",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "file" => Some(AttachmentKind::File),
            "image" => Some(AttachmentKind::Image),
            _ => None,
        }
    }
}

/// protocol §7.3: `{"url", "method", "headers"}`, `headers` always present.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UploadDescriptor {
    pub url: String,
    pub method: String,
    #[serde(default)]
    pub headers: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_reference_order_and_nulls_are_omitted() {
        let image = Attachment {
            id: "atc_1".into(),
            name: "cat.png".into(),
            mime_type: "image/png".into(),
            upload_descriptor: Some(UploadDescriptor {
                url: "https://x.example/u".into(),
                method: "POST".into(),
                headers: Map::new(),
            }),
            thread_id: Some("thr_1".into()),
            kind: AttachmentKind::Image,
            preview_url: Some("https://x.example/p".into()),
        };
        assert_eq!(
            serde_json::to_string(&image).unwrap(),
            r#"{"id":"atc_1","name":"cat.png","mime_type":"image/png","upload_descriptor":{"url":"https://x.example/u","method":"POST","headers":{}},"thread_id":"thr_1","type":"image","preview_url":"https://x.example/p"}"#
        );
        let file = Attachment {
            upload_descriptor: None,
            thread_id: None,
            kind: AttachmentKind::File,
            preview_url: None,
            ..image
        };
        assert_eq!(
            serde_json::to_string(&file).unwrap(),
            r#"{"id":"atc_1","name":"cat.png","mime_type":"image/png","type":"file"}"#
        );
    }

    #[test]
    fn server_only_metadata_in_input_is_dropped() {
        let parsed: Attachment = serde_json::from_str(
            r#"{"id":"atc_1","name":"a.txt","mime_type":"text/plain","metadata":{"secret":1},"type":"file"}"#,
        )
        .unwrap();
        assert!(!serde_json::to_string(&parsed).unwrap().contains("secret"));
    }
}
