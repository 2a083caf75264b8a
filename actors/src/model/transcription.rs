//! Dictation: audio to text through an OpenAI-compatible `/audio/transcriptions` endpoint
//! (`multipart/form-data` with `model` and `file`).

use std::time::Duration;

use serde::Deserialize;

use crate::config::TranscriptionSettings;
use crate::text::clip_chars;

/// Why a transcription failed.
#[derive(Debug, thiserror::Error)]
pub enum TranscriptionError {
    /// The provider refused the audio (4xx): its message, cut short.
    #[error("{0}")]
    Refused(String),
    /// The provider is down, slow or answered nonsense.
    #[error("transcription unavailable: {0}")]
    Unavailable(String),
}

#[derive(Deserialize)]
struct Transcript {
    text: String,
}

#[derive(Deserialize)]
struct ProviderError {
    error: ProviderErrorBody,
}

#[derive(Deserialize)]
struct ProviderErrorBody {
    message: String,
}

/// Longest provider message passed on to the client.
const MAX_MESSAGE_CHARS: usize = 200;

#[derive(Clone)]
pub struct Transcriber {
    http: reqwest::Client,
    url: String,
    model: String,
    api_key: Option<String>,
    timeout: Duration,
}

impl Transcriber {
    pub fn new(settings: &TranscriptionSettings, api_key: Option<String>) -> Self {
        Transcriber {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
            url: format!(
                "{}/audio/transcriptions",
                settings.base_url.trim_end_matches('/')
            ),
            model: settings.model.clone(),
            api_key,
            timeout: settings.timeout,
        }
    }

    /// The text of `audio` (of media type `mime`, parameters stripped).
    pub async fn transcribe(
        &self,
        audio: Vec<u8>,
        mime: &str,
    ) -> Result<String, TranscriptionError> {
        let boundary = format!("chatkit-{:032x}", rand::random::<u128>());
        let extension = extension_for(mime);
        let mut body = Vec::with_capacity(audio.len() + 512);
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n{}\r\n",
                self.model
            )
            .as_bytes(),
        );
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"audio.{extension}\"\r\nContent-Type: {mime}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(&audio);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let mut request = self
            .http
            .post(&self.url)
            .timeout(self.timeout)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = request
            .send()
            .await
            .map_err(|e| TranscriptionError::Unavailable(e.without_url().to_string()))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| TranscriptionError::Unavailable(e.without_url().to_string()))?;
        if status.is_success() {
            return serde_json::from_slice::<Transcript>(&bytes)
                .map(|t| t.text)
                .map_err(|e| TranscriptionError::Unavailable(format!("unexpected answer: {e}")));
        }
        if status.is_client_error() && status.as_u16() != 401 && status.as_u16() != 429 {
            let message = serde_json::from_slice::<ProviderError>(&bytes)
                .map(|e| {
                    clip_chars(&e.error.message, MAX_MESSAGE_CHARS)
                        .0
                        .to_string()
                })
                .unwrap_or_else(|_| "the audio could not be transcribed".into());
            return Err(TranscriptionError::Refused(message));
        }
        Err(TranscriptionError::Unavailable(format!(
            "HTTP {}",
            status.as_u16()
        )))
    }
}

/// A file extension providers recognize for a media type (they sniff by name too).
fn extension_for(mime: &str) -> &'static str {
    match mime {
        "audio/webm" | "video/webm" => "webm",
        "audio/mp4" | "audio/m4a" | "audio/x-m4a" | "video/mp4" => "mp4",
        "audio/ogg" | "audio/opus" => "ogg",
        "audio/mpeg" | "audio/mp3" => "mp3",
        "audio/wav" | "audio/x-wav" | "audio/wave" => "wav",
        "audio/flac" | "audio/x-flac" => "flac",
        _ => "bin",
    }
}
