//! `POST /v1/audio/transcriptions`, an extension beyond the reference: reads the
//! `multipart/form-data` body (already read whole under the body limit) and "transcribes" the
//! `file` part by describing it, so a test can tell exactly what arrived.

use actix_multipart::Multipart;
use actix_web::error::PayloadError;
use actix_web::http::header::{self, HeaderMap};
use bytes::Bytes;
use futures::StreamExt;

use serde_json::json;

use crate::json;

/// What a file that "cannot be decoded" starts with.
const GARBAGE: &[u8] = b"garbage";
/// The type of a file part sent without a `Content-Type`.
const DEFAULT_TYPE: &str = "application/octet-stream";

/// The form's `file` part.
#[derive(Debug)]
pub struct FilePart {
    pub filename: Option<String>,
    /// The part's `Content-Type` as sent, or [`DEFAULT_TYPE`].
    pub content_type: String,
    pub bytes: u64,
    /// Whether the bytes start with [`GARBAGE`].
    pub garbage: bool,
}

/// What the form carried (its first `file` and `model` parts).
#[derive(Debug, Default)]
pub struct Upload {
    pub model: Option<String>,
    pub file: Option<FilePart>,
    /// The body is not a well-formed `multipart/form-data` body.
    pub malformed: bool,
}

/// A refusal: HTTP 400 with this message and `param`.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub message: &'static str,
    pub param: Option<&'static str>,
}

impl Upload {
    /// `{"_transcription":{"model":…,"filename":…,"content_type":…,"bytes":…}}` (compact; the
    /// file's fields are null when there is no file part).
    pub fn log_line(&self) -> Vec<u8> {
        let file = self.file.as_ref();
        json::compact(&json!({
            "_transcription": {
                "model": self.model,
                "filename": file.and_then(|f| f.filename.as_deref()),
                "content_type": file.map(|f| &f.content_type),
                "bytes": file.map(|f| f.bytes),
            }
        }))
    }

    /// The transcript, or why there is none.
    pub fn transcript(&self) -> Result<String, Refusal> {
        let refuse = |message, param| Err(Refusal { message, param });
        if self.malformed {
            return refuse("Could not parse the multipart form.", None);
        }
        let Some(file) = &self.file else {
            return refuse("Missing required parameter: 'file'.", Some("file"));
        };
        if file.bytes == 0 {
            return refuse("The audio file is empty.", Some("file"));
        }
        if file.garbage {
            return refuse(
                "Invalid file format: the audio could not be decoded.",
                Some("file"),
            );
        }
        Ok(format!(
            "transcribed {} bytes of {}",
            file.bytes, file.content_type
        ))
    }
}

/// Reads the form: the first `file` part (counted, not kept) and the first `model` part; the
/// other parts are skipped.
pub async fn read_form(headers: &HeaderMap, body: Bytes) -> Upload {
    let stream = futures::stream::once(async move { Ok::<_, PayloadError>(body) });
    let mut form = Multipart::new(headers, stream);
    let mut upload = Upload::default();
    while let Some(field) = form.next().await {
        let Ok(mut field) = field else {
            upload.malformed = true;
            break;
        };
        let name = field.name().unwrap_or_default().to_owned();
        let mut file = (name == "file" && upload.file.is_none()).then(|| FilePart {
            filename: field
                .content_disposition()
                .and_then(|d| d.get_filename())
                .map(str::to_owned),
            content_type: field
                .headers()
                .get(header::CONTENT_TYPE)
                .map_or(DEFAULT_TYPE.into(), |v| {
                    String::from_utf8_lossy(v.as_bytes()).into_owned()
                }),
            bytes: 0,
            garbage: false,
        });
        let mut head = Vec::with_capacity(GARBAGE.len());
        let mut model = (name == "model" && upload.model.is_none()).then(Vec::new);
        while let Some(chunk) = field.next().await {
            let Ok(chunk) = chunk else {
                upload.malformed = true;
                break;
            };
            if let Some(file) = &mut file {
                file.bytes += chunk.len() as u64;
                let take = (GARBAGE.len() - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..take]);
            }
            if let Some(model) = &mut model {
                model.extend_from_slice(&chunk);
            }
        }
        if upload.malformed {
            break;
        }
        if let Some(mut file) = file {
            file.garbage = head == GARBAGE;
            upload.file = Some(file);
        }
        if let Some(model) = model {
            upload.model = Some(String::from_utf8_lossy(&model).into_owned());
        }
    }
    upload
}
