//! Cutting text that came from outside (clients, models, tool servers) to a bounded size.
//!
//! Every cut of such text goes through here: slicing a `str` at a byte that falls inside a
//! multi-byte character panics, so these helpers only ever cut on character boundaries.

/// The longest prefix of `text` that is at most `max_bytes` bytes long and ends on a character
/// boundary.
pub fn clip_bytes(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The first `max_chars` characters of `text`, and whether anything was cut.
pub fn clip_chars(text: &str, max_chars: usize) -> (&str, bool) {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => (&text[..end], true),
        None => (text, false),
    }
}

/// `text` cut to at most `max_bytes` bytes, with `…` appended when something was cut (the
/// ellipsis counts toward the limit, which must leave room for it).
pub fn shorten_for_display(text: &str, max_bytes: usize) -> String {
    const ELLIPSIS: &str = "…";
    if text.len() <= max_bytes {
        return text.to_string();
    }
    let kept = clip_bytes(text, max_bytes.saturating_sub(ELLIPSIS.len()));
    format!("{kept}{ELLIPSIS}")
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn cuts_never_split_a_character() {
        // "é" is 2 bytes, "𝄞" 4: byte 3 falls inside the clef.
        assert_eq!(clip_bytes("é𝄞x", 3), "é");
        assert_eq!(clip_bytes("é𝄞x", 6), "é𝄞");
        assert_eq!(clip_bytes("abc", 10), "abc");
        assert_eq!(clip_bytes("abc", 0), "");
        assert_eq!(clip_chars("é𝄞x", 2), ("é𝄞", true));
        assert_eq!(clip_chars("é𝄞", 2), ("é𝄞", false));
        assert_eq!(shorten_for_display("ééé", 5), "é…");
        assert_eq!(shorten_for_display("éé", 4), "éé");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn any_text_any_limit(text in "\\PC{0,80}|[\\u{300}-\\u{36f}\\u{200f}\\u{1F600}-\\u{1F64F}\\x00\"]{0,80}", limit in 0usize..400) {
            let cut = clip_bytes(&text, limit);
            prop_assert!(cut.len() <= limit);
            prop_assert!(text.starts_with(cut));
            let (chars, cut_any) = clip_chars(&text, limit);
            prop_assert_eq!(chars.chars().count(), limit.min(text.chars().count()));
            prop_assert_eq!(cut_any, text.chars().count() > limit);
            let shown = shorten_for_display(&text, limit.max(3));
            prop_assert!(shown.len() <= limit.max(3));
        }
    }
}
