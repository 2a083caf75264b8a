//! Signed URLs: an upload URL (two-phase upload) and a content URL (previews in `<img>` tags,
//! downloads) work without headers, for one attachment, until they expire. The signature is
//! HMAC-SHA256 over the purpose, the attachment id and the expiry, with a key every instance
//! shares (configuration, or the one kept in the database), so a URL handed out by one
//! instance works on every other and after restarts.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// What a signed URL allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Sending the bytes of a created attachment, once.
    Upload,
    /// Reading the bytes (preview or download).
    Content,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Upload => "upload",
            Purpose::Content => "content",
        }
    }
}

/// Why a signed URL was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the link has expired")]
    Expired,
    #[error("the link's signature is not valid")]
    Invalid,
}

/// The scheme and host browsers reach this server at (`https://chat.example.com`), without a
/// trailing slash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicOrigin(String);

impl PublicOrigin {
    /// An origin from configuration or from a request's scheme and `Host`: only `http(s)://`
    /// and a host (with an optional port) are accepted, so nothing else reaches the URLs.
    ///
    /// Remembered per thread for the last text parsed: every request of a deployment names
    /// the same origin, and parsing it as a URL cost ≈ 2% of a turn's instructions.
    pub fn parse(origin: &str) -> Option<PublicOrigin> {
        thread_local! {
            static LAST: RefCell<Option<(String, Option<PublicOrigin>)>> =
                const { RefCell::new(None) };
        }
        LAST.with_borrow_mut(|last| match last {
            Some((text, parsed)) if text == origin => parsed.clone(),
            _ => {
                let parsed = Self::parse_url(origin);
                *last = Some((origin.to_string(), parsed.clone()));
                parsed
            }
        })
    }

    fn parse_url(origin: &str) -> Option<PublicOrigin> {
        let trimmed = origin.trim_end_matches('/');
        let url = url::Url::parse(trimmed).ok()?;
        let plain = matches!(url.scheme(), "http" | "https")
            && url.has_host()
            && url.username().is_empty()
            && url.password().is_none()
            && url.path() == "/"
            && url.query().is_none()
            && url.fragment().is_none();
        plain.then(|| PublicOrigin(url.origin().ascii_serialization()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Signs and checks the URLs.
#[derive(Clone)]
pub struct UrlSigner {
    key: hmac::Key,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UrlSigner(<key>)")
    }
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl UrlSigner {
    pub fn new(key: &[u8]) -> UrlSigner {
        UrlSigner {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        }
    }

    fn message(purpose: Purpose, id: &str, expires: i64) -> String {
        format!("chatkit-rs/{}\n{id}\n{expires}", purpose.as_str())
    }

    pub fn signature(&self, purpose: Purpose, id: &str, expires: i64) -> String {
        let tag = hmac::sign(&self.key, Self::message(purpose, id, expires).as_bytes());
        URL_SAFE_NO_PAD.encode(tag.as_ref())
    }

    /// Checks a URL's `expires` and `signature` at `now` (Unix seconds).
    pub fn verify(
        &self,
        purpose: Purpose,
        id: &str,
        expires: i64,
        signature: &str,
        now: i64,
    ) -> Result<(), SignatureError> {
        let tag = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| SignatureError::Invalid)?;
        hmac::verify(
            &self.key,
            Self::message(purpose, id, expires).as_bytes(),
            &tag,
        )
        .map_err(|_| SignatureError::Invalid)?;
        // Valid before the second `expires`, not during it.
        if now >= expires {
            return Err(SignatureError::Expired);
        }
        Ok(())
    }

    /// `{origin}/attachments/{id}/{upload|content}?expires=…&signature=…`. Ids are ours
    /// (`atc_` + hex), so they need no escaping.
    pub fn url(&self, origin: &PublicOrigin, purpose: Purpose, id: &str, expires: i64) -> String {
        format!(
            "{}/attachments/{id}/{}?expires={expires}&signature={}",
            origin.as_str(),
            purpose.as_str(),
            self.signature(purpose, id, expires)
        )
    }
}

/// The expiry of content URLs handed out at `now`: the end of the window after the current
/// one, so a URL is valid for between `ttl` and `2 ttl` and stays the same within a window
/// (browsers cache the image instead of fetching it again for every read).
pub(crate) fn windowed_expiry(now: i64, ttl_secs: i64) -> i64 {
    let ttl = ttl_secs.max(1);
    (now.div_euclid(ttl) + 2) * ttl
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_holds_only_for_its_purpose_id_and_expiry_until_it_expires() {
        let signer = UrlSigner::new(&[7u8; 32]);
        let sig = signer.signature(Purpose::Upload, "atc_1", 1000);
        assert_eq!(
            signer.verify(Purpose::Upload, "atc_1", 1000, &sig, 999),
            Ok(())
        );
        for late in [1000, 1001] {
            assert_eq!(
                signer.verify(Purpose::Upload, "atc_1", 1000, &sig, late),
                Err(SignatureError::Expired)
            );
        }
        for (purpose, id, expires) in [
            (Purpose::Content, "atc_1", 1000),
            (Purpose::Upload, "atc_2", 1000),
            (Purpose::Upload, "atc_1", 100_000),
        ] {
            assert_eq!(
                signer.verify(purpose, id, expires, &sig, 0),
                Err(SignatureError::Invalid)
            );
        }
        let other = UrlSigner::new(&[8u8; 32]);
        assert_eq!(
            other.verify(Purpose::Upload, "atc_1", 1000, &sig, 0),
            Err(SignatureError::Invalid)
        );
        for garbage in ["", "%%%", "é", &sig[..sig.len() - 1]] {
            assert_eq!(
                signer.verify(Purpose::Upload, "atc_1", 1000, garbage, 0),
                Err(SignatureError::Invalid)
            );
        }
    }

    #[test]
    fn origins_are_scheme_and_host_only() {
        let ok = |s: &str| PublicOrigin::parse(s).map(|o| o.as_str().to_string());
        assert_eq!(
            ok("http://127.0.0.1:8000"),
            Some("http://127.0.0.1:8000".into())
        );
        assert_eq!(
            ok("https://Chat.Example.com/"),
            Some("https://chat.example.com".into())
        );
        assert_eq!(
            ok("https://chat.example.com:443"),
            Some("https://chat.example.com".into())
        );
        for bad in [
            "ftp://x",
            "https://x/path",
            "https://u:p@x",
            "https://x/?q",
            "javascript:alert(1)",
            "http://",
            "",
        ] {
            assert_eq!(ok(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_remembered_origin_answers_as_parsing_it_again_would() {
        for text in [
            "https://a.example",
            "https://a.example",
            "https://x/path",
            "https://x/path",
        ] {
            let again = PublicOrigin::parse_url(text);
            assert_eq!(PublicOrigin::parse(text), again, "{text}");
        }
        assert_eq!(
            PublicOrigin::parse("https://b.example").unwrap().as_str(),
            "https://b.example"
        );
    }

    #[test]
    fn content_urls_stay_the_same_within_a_window() {
        assert_eq!(windowed_expiry(0, 3600), 7200);
        assert_eq!(windowed_expiry(3599, 3600), 7200);
        assert_eq!(windowed_expiry(3600, 3600), 10800);
        let expiry = windowed_expiry(5000, 3600);
        assert!(expiry - 5000 >= 3600 && expiry - 5000 <= 7200);
    }
}
