//! `input.transcribe` (protocol §3.16): the composer's dictation. The audio (base64) goes to
//! the configured `/audio/transcriptions` endpoint; the text comes back as `{"text": …}`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::Engine;
use crate::error::EngineError;
use crate::model::TranscriptionError;
use crate::protocol::requests::TranscribeParams;

impl Engine {
    /// The largest `input.transcribe` body the edge should read (base64 of the largest audio
    /// plus the envelope), or `None` when dictation is off.
    pub fn max_transcribe_body_bytes(&self) -> Option<usize> {
        let settings = &self.env.settings.transcription;
        settings
            .enabled
            .then(|| settings.max_bytes.div_ceil(3) * 4 + 4096)
    }

    /// Requests per minute per user for dictation (0: no limit of its own).
    pub fn transcriptions_per_minute(&self) -> u32 {
        self.env.settings.transcription.requests_per_minute
    }

    /// The text of the audio. Bad audio is the client's 4xx; a failing provider is 503.
    pub async fn transcribe(&self, params: &TranscribeParams) -> Result<String, EngineError> {
        let settings = &self.env.settings.transcription;
        if !settings.enabled {
            return Err(EngineError::Unsupported("input.transcribe"));
        }
        // protocol §3.16: the media type is the part before `;` (`audio/webm;codecs=opus`).
        let mime = params
            .mime_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let audio_like = mime.starts_with("audio/") || mime == "video/webm" || mime == "video/mp4";
        if !audio_like || mime.len() > 64 {
            return Err(EngineError::UnsupportedMediaType(format!(
                "{:?} is not an audio type",
                crate::text::shorten_for_display(&params.mime_type, 64)
            )));
        }
        if params.audio_base64.len() > settings.max_bytes.div_ceil(3) * 4 + 4 {
            return Err(EngineError::AttachmentTooLarge(settings.max_bytes as u64));
        }
        let audio = STANDARD
            .decode(params.audio_base64.trim())
            .map_err(|_| EngineError::InvalidInput("audio_base64 is not base64".into()))?;
        if audio.is_empty() {
            return Err(EngineError::InvalidInput("the audio is empty".into()));
        }
        if audio.len() > settings.max_bytes {
            return Err(EngineError::AttachmentTooLarge(settings.max_bytes as u64));
        }
        match self.transcriber.transcribe(audio, &mime).await {
            Ok(text) => Ok(text),
            Err(TranscriptionError::Refused(message)) => Err(EngineError::InvalidAudio(message)),
            Err(TranscriptionError::Unavailable(detail)) => {
                Err(EngineError::Unavailable(format!("transcription: {detail}")))
            }
        }
    }
}
