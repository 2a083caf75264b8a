//! Media types: which are accepted (configuration), which are images the UI previews, which
//! the model reads as text, and whether the bytes are what the upload said they are.

use crate::protocol::AttachmentKind;

/// The raster image types: previewed in the UI, sent to the model as images, served inline.
/// (Never SVG: it is a document that can run script.)
const RASTER_IMAGES: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];

/// Non-`text/*` types whose content is text the model can read.
const TEXTUAL: &[&str] = &[
    "application/json",
    "application/xml",
    "application/yaml",
    "application/x-yaml",
    "application/toml",
    "application/javascript",
    "application/x-javascript",
    "application/typescript",
    "application/x-sh",
    "application/sql",
    "application/x-ndjson",
    "application/csv",
];

pub(crate) const PDF: &str = "application/pdf";

/// Longest media type accepted from a client.
const MAX_TYPE_LEN: usize = 127;

/// A configured pattern: `type/subtype` or `type/*`, RFC 6838 characters.
pub(crate) fn valid_type_pattern(pattern: &str) -> bool {
    let Some((top, sub)) = pattern.split_once('/') else {
        return false;
    };
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(
                        b,
                        b'!' | b'#' | b'$' | b'&' | b'-' | b'^' | b'_' | b'.' | b'+'
                    )
            })
    };
    token(top) && (sub == "*" || token(sub))
}

/// The media type of an upload: the declared one without parameters, lowercase; when the
/// browser declared nothing useful (`""`, `application/octet-stream`), guessed from the file
/// name's extension. `None` when it is not a media type at all.
pub(crate) fn normalize(declared: &str, name: &str) -> Option<String> {
    let essence = declared
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence.is_empty() || essence == "application/octet-stream" {
        return Some(
            guess_from_name(name)
                .unwrap_or("application/octet-stream")
                .to_string(),
        );
    }
    (essence.len() <= MAX_TYPE_LEN && valid_type_pattern(&essence) && !essence.ends_with("/*"))
        .then_some(essence)
}

fn guess_from_name(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "pdf" => PDF,
        "txt" | "log" => "text/plain",
        "md" | "markdown" => "text/markdown",
        "csv" => "text/csv",
        "tsv" => "text/tab-separated-values",
        "json" => "application/json",
        "xml" => "application/xml",
        "yaml" | "yml" => "application/yaml",
        "toml" => "application/toml",
        "js" | "mjs" => "application/javascript",
        "ts" => "application/typescript",
        "sh" => "application/x-sh",
        "sql" => "application/sql",
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "py" => "text/x-python",
        "rs" => "text/x-rust",
        "go" => "text/x-go",
        "java" => "text/x-java",
        "c" | "h" => "text/x-c",
        "cpp" | "cc" | "hpp" => "text/x-c++",
        "rb" => "text/x-ruby",
        _ => return None,
    })
}

/// Whether `mime` matches one of the `allowed` patterns.
pub(crate) fn is_allowed(mime: &str, allowed: &[String]) -> bool {
    allowed
        .iter()
        .any(|pattern| match pattern.strip_suffix("/*") {
            Some(top) => mime.split_once('/').is_some_and(|(t, _)| t == top),
            None => pattern == mime,
        })
}

pub(crate) fn is_raster_image(mime: &str) -> bool {
    RASTER_IMAGES.contains(&mime)
}

/// Text the model can read as text.
pub(crate) fn is_textual(mime: &str) -> bool {
    mime.starts_with("text/")
        || mime.ends_with("+json")
        || mime.ends_with("+xml")
        || TEXTUAL.contains(&mime)
}

/// `image` (previewed) for raster images, `file` for everything else.
pub(crate) fn kind_of(mime: &str) -> AttachmentKind {
    if is_raster_image(mime) {
        AttachmentKind::Image
    } else {
        AttachmentKind::File
    }
}

/// What the first bytes say the content is, for the types we check.
fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else if bytes.starts_with(b"%PDF-") {
        Some(PDF)
    } else {
        None
    }
}

/// Whether text looks like markup a browser would run (the start, case-insensitively).
fn looks_like_html(text: &str) -> bool {
    let start: String = text
        .trim_start()
        .chars()
        .take(64)
        .collect::<String>()
        .to_ascii_lowercase();
    [
        "<!doctype html",
        "<html",
        "<script",
        "<svg",
        "<iframe",
        "<body",
        "<head",
    ]
    .iter()
    .any(|tag| start.starts_with(tag))
}

/// How many bytes from the start decide the format (signatures, markup).
const PREFIX_BYTES: usize = 512;

/// Checks the bytes against the declared type as they arrive: an image or a PDF must carry
/// that format's signature, text must be UTF-8 without NUL bytes (and not HTML under another
/// name), and nothing may be an image or PDF declared as something else. Errors say what is
/// wrong.
pub(crate) struct ContentCheck {
    mime: String,
    textual: bool,
    /// The first [`PREFIX_BYTES`], until the format was decided from them.
    prefix: Vec<u8>,
    prefix_checked: bool,
    /// The bytes of a character cut by the end of the previous chunk.
    utf8_pending: Vec<u8>,
}

impl ContentCheck {
    pub(crate) fn new(mime: &str) -> ContentCheck {
        ContentCheck {
            mime: mime.to_string(),
            textual: is_textual(mime),
            prefix: Vec::with_capacity(PREFIX_BYTES),
            prefix_checked: false,
            utf8_pending: Vec::new(),
        }
    }

    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Result<(), String> {
        if !self.prefix_checked {
            let take = (PREFIX_BYTES - self.prefix.len()).min(chunk.len());
            self.prefix.extend_from_slice(&chunk[..take]);
            if self.prefix.len() == PREFIX_BYTES {
                self.check_prefix()?;
            }
        }
        if !self.textual {
            return Ok(());
        }
        if chunk.contains(&0) {
            return Err(format!("the content is binary, not {}", self.mime));
        }
        let joined: Vec<u8>;
        let text: &[u8] = if self.utf8_pending.is_empty() {
            chunk
        } else {
            let mut bytes = std::mem::take(&mut self.utf8_pending);
            bytes.extend_from_slice(chunk);
            joined = bytes;
            &joined
        };
        match std::str::from_utf8(text) {
            Ok(_) => Ok(()),
            // A character cut by the end of the chunk: its first bytes wait for the next one.
            Err(e) if e.error_len().is_none() => {
                self.utf8_pending = text[e.valid_up_to()..].to_vec();
                Ok(())
            }
            Err(_) => Err(self.not_utf8()),
        }
    }

    pub(crate) fn finish(mut self) -> Result<(), String> {
        if !self.prefix_checked {
            self.check_prefix()?;
        }
        if self.textual && !self.utf8_pending.is_empty() {
            return Err(self.not_utf8());
        }
        Ok(())
    }

    fn not_utf8(&self) -> String {
        format!("the content is not UTF-8 text, as {} must be", self.mime)
    }

    fn check_prefix(&mut self) -> Result<(), String> {
        self.prefix_checked = true;
        let mime = self.mime.as_str();
        let sniffed = sniff(&self.prefix);
        if is_raster_image(mime) || mime == PDF {
            return match sniffed {
                Some(found) if found == mime => Ok(()),
                Some(found) => Err(format!("the content is {found}, not {mime}")),
                None => Err(format!("the content is not {mime}")),
            };
        }
        if let Some(found) = sniffed {
            return Err(format!("the content is {found}, not {mime}"));
        }
        let markup_declared = mime == "text/html" || mime.contains("xml");
        if self.textual && !markup_declared {
            let start = self
                .prefix
                .strip_prefix(b"\xEF\xBB\xBF")
                .unwrap_or(&self.prefix);
            if looks_like_html(&String::from_utf8_lossy(start)) {
                return Err(format!("the content is HTML, not {mime}"));
            }
        }
        Ok(())
    }
}

/// [`ContentCheck`] of a whole content at once.
#[cfg(test)]
pub(crate) fn check_content(mime: &str, bytes: &[u8]) -> Result<(), String> {
    let mut check = ContentCheck::new(mime);
    check.feed(bytes)?;
    check.finish()
}

/// How the content is served: inline with its own type for raster images (checked on
/// upload), as a download otherwise; markup is never served with a type a browser renders.
pub fn served_type(mime: &str) -> (&str, bool) {
    if is_raster_image(mime) {
        (mime, true)
    } else if mime == "text/html"
        || mime.contains("xml")
        || mime.contains("svg")
        || mime.contains("javascript")
    {
        ("application/octet-stream", false)
    } else {
        (mime, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

    #[test]
    fn declared_types_are_normalized_and_guessed_when_missing() {
        assert_eq!(
            normalize("Image/PNG; q=1", "x").as_deref(),
            Some("image/png")
        );
        assert_eq!(normalize("", "notes.MD").as_deref(), Some("text/markdown"));
        assert_eq!(
            normalize("application/octet-stream", "x.bin").as_deref(),
            Some("application/octet-stream")
        );
        assert_eq!(normalize("text/*", "x"), None);
        assert_eq!(normalize("not a type", "x"), None);
        assert_eq!(normalize("é/é", "x"), None);
        assert_eq!(normalize(&"a".repeat(200), "x"), None);
    }

    #[test]
    fn patterns_match_exactly_or_by_top_level_type() {
        let allowed = vec!["image/png".to_string(), "text/*".to_string()];
        assert!(is_allowed("image/png", &allowed));
        assert!(is_allowed("text/markdown", &allowed));
        assert!(!is_allowed("image/svg+xml", &allowed));
        assert!(!is_allowed("textual/x", &allowed));
        assert!(valid_type_pattern("application/vnd.ms-excel"));
        assert!(!valid_type_pattern("*/*"));
        assert!(!valid_type_pattern("image"));
    }

    #[test]
    fn content_must_be_what_was_declared() {
        assert_eq!(check_content("image/png", PNG), Ok(()));
        assert!(check_content("image/png", b"<html><script>alert(1)</script>").is_err());
        assert!(check_content("image/jpeg", PNG)
            .unwrap_err()
            .contains("image/png"));
        assert_eq!(check_content("application/pdf", b"%PDF-1.7\n"), Ok(()));
        assert!(check_content("application/pdf", b"hello").is_err());
        assert_eq!(check_content("text/plain", "héllo\n".as_bytes()), Ok(()));
        assert_eq!(check_content("text/plain", b"\xEF\xBB\xBFbom"), Ok(()));
        assert!(check_content("text/plain", b"\xff\xfe").is_err());
        assert!(check_content("text/plain", b"a\0b").is_err());
        assert!(check_content("text/plain", PNG).is_err());
        assert!(check_content("text/markdown", b"  <!DOCTYPE html><p>").is_err());
        assert_eq!(check_content("text/html", b"<html></html>"), Ok(()));
        assert_eq!(check_content("application/zip", b"PK\x03\x04"), Ok(()));
    }

    #[test]
    fn the_check_holds_when_bytes_arrive_one_at_a_time() {
        let one_by_one = |mime: &str, bytes: &[u8]| {
            let mut check = ContentCheck::new(mime);
            for b in bytes {
                check.feed(std::slice::from_ref(b))?;
            }
            check.finish()
        };
        let text = format!("{}é€😀 done", " ".repeat(600));
        assert_eq!(one_by_one("text/plain", text.as_bytes()), Ok(()));
        assert!(
            one_by_one("text/plain", &text.as_bytes()[..text.len() - 7]).is_err(),
            "cut inside a character"
        );
        assert!(one_by_one("text/plain", b"ok\xC3(").is_err());
        assert_eq!(one_by_one("image/png", PNG), Ok(()));
        assert!(one_by_one("image/png", b"<html>").is_err());
        let mut long_png = PNG.to_vec();
        long_png.extend(std::iter::repeat_n(0u8, 2000));
        assert_eq!(one_by_one("image/png", &long_png), Ok(()));
    }

    #[test]
    fn only_raster_images_render_inline() {
        assert_eq!(served_type("image/png"), ("image/png", true));
        assert_eq!(
            served_type("image/svg+xml"),
            ("application/octet-stream", false)
        );
        assert_eq!(
            served_type("text/html"),
            ("application/octet-stream", false)
        );
        assert_eq!(served_type("text/plain"), ("text/plain", false));
        assert_eq!(kind_of("image/svg+xml"), AttachmentKind::File);
        assert_eq!(kind_of("image/webp"), AttachmentKind::Image);
    }
}
