//! Python `str` and `re` semantics, reimplemented for the handful of operations the reply
//! script uses: `str.strip()`, `str.split()`, slicing by code points, and the six anchored,
//! case-insensitive patterns of `mock_llm.py` plus this mock's `think`, `cite` and `call` (no
//! regex crate: each pattern is a literal prefix followed by one simple tail, so a hand-written
//! matcher is both exact and fast).

use crate::unicode_tables::{DECIMAL_ZEROS, WORD};

/// Python 3.11's `int()` refuses strings of more than this many digits (`ValueError`).
pub const INT_MAX_STR_DIGITS: usize = 4300;

/// `str.isspace()` / `re`'s Unicode `\s` (`Py_UNICODE_ISSPACE`). Unlike `char::is_whitespace`
/// it includes the ASCII separators U+001C..U+001F.
pub fn is_space(c: char) -> bool {
    matches!(
        c,
        '\t'..='\r'
            | '\u{1c}'..='\u{20}'
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

/// `re`'s Unicode `\w`: `str.isalnum()` or `_`, with CPython 3.11's Unicode 14 tables.
pub fn is_word(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || c == '_';
    }
    let c = c as u32;
    WORD.binary_search_by(|&(lo, hi)| {
        if hi < c {
            std::cmp::Ordering::Less
        } else if lo > c {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    })
    .is_ok()
}

/// The value of a Unicode decimal digit (`re`'s `\d`, which `int()` also accepts).
pub fn decimal_value(c: char) -> Option<u32> {
    if c.is_ascii_digit() {
        return Some(c as u32 - '0' as u32);
    }
    let c = c as u32;
    let i = DECIMAL_ZEROS.partition_point(|&zero| zero <= c);
    let zero = *DECIMAL_ZEROS.get(i.checked_sub(1)?)?;
    (c - zero < 10).then(|| c - zero)
}

/// `str.strip()` without arguments.
pub fn strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// `len(s.split())`: the number of runs of non-whitespace.
pub fn count_words(s: &str) -> usize {
    s.split(is_space).filter(|w| !w.is_empty()).count()
}

/// `s[:n]` where `n` counts code points.
pub fn prefix_chars(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

/// Whether the text char `c` matches the lowercase ASCII pattern char `p` under
/// `re.IGNORECASE` (Unicode): `c` lowercases to `p` or is one of `re`'s extra case
/// equivalents (`_casefix.py`). The exotic members were listed by running `re.match(p, ch, re.I)`
/// over every code point for each letter of the patterns (`think` and `cite` add none).
fn eq_ignore_case(c: char, p: char) -> bool {
    if c.to_ascii_lowercase() == p {
        return true;
    }
    match p {
        'i' => matches!(c, '\u{130}' | '\u{131}'), // İ ı
        'k' => c == '\u{212a}',                    // KELVIN SIGN
        's' => c == '\u{17f}',                     // LONG S
        _ => false,
    }
}

/// Matches `^literal` case-insensitively; returns the rest of the text after the prefix.
fn strip_prefix_ignore_case<'a>(text: &'a str, literal: &str) -> Option<&'a str> {
    let mut chars = text.char_indices();
    for p in literal.chars() {
        let (_, c) = chars.next()?;
        if !eq_ignore_case(c, p) {
            return None;
        }
    }
    Some(chars.as_str())
}

/// `^literal\b` (the literal ends with a word character, so `\b` means "end of text or a
/// non-word character follows").
pub fn match_keyword(text: &str, literal: &str) -> bool {
    match strip_prefix_ignore_case(text, literal) {
        Some(rest) => rest.chars().next().is_none_or(|c| !is_word(c)),
        None => false,
    }
}

/// `^literal\b` followed by anything: returns the rest of the text after the keyword (for
/// `^think\b\s*(.*)$` with DOTALL, whose group 1 stripped is `strip(rest)`: `\s*` takes the
/// leading whitespace and the greedy `.*` everything else).
pub fn match_keyword_rest<'a>(text: &'a str, literal: &str) -> Option<&'a str> {
    let rest = strip_prefix_ignore_case(text, literal)?;
    rest.chars()
        .next()
        .is_none_or(|c| !is_word(c))
        .then_some(rest)
}

/// `^literal\s+(.+)$` with DOTALL, applied to already stripped text: returns group 1.
/// `\s+` is greedy and the text ends with a non-space, so group 1 is everything after the
/// whitespace run; `$` also matches before a final `\n`, but greedy `.+` takes that too.
pub fn match_rest<'a>(text: &'a str, literal: &str) -> Option<&'a str> {
    let rest = strip_prefix_ignore_case(text, literal)?;
    let group = rest.trim_start_matches(is_space);
    if group.len() == rest.len() || group.is_empty() {
        return None;
    }
    Some(group)
}

/// Whether `c` matches `[A-Za-z0-9_.\-]` under `re.IGNORECASE` (Unicode): the ASCII class plus
/// the four code points whose case folds into it (listed by running the pattern over every
/// code point with CPython 3.11).
fn is_call_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '_' | '.' | '-' | '\u{130}' | '\u{131}' | '\u{17f}' | '\u{212a}'
        )
}

/// `^call\s+([A-Za-z0-9_.\-]+)\s*(\{.*\})?\s*$` (case-insensitive, DOTALL) applied to already
/// stripped text: returns groups 1 and 2. Group 1 can only be the whole run of name characters
/// (a shorter one would leave a name character where `\s`, `{` or the end must follow); what
/// follows it, whitespace aside, is either nothing or, since the text ends with a non-space,
/// group 2 when it starts with `{` and the text ends with `}` (greedy `.*` reaches the last `}`).
pub fn match_call(text: &str) -> Option<(&str, Option<&str>)> {
    let rest = strip_prefix_ignore_case(text, "call")?;
    let named = rest.trim_start_matches(is_space);
    if named.len() == rest.len() {
        return None;
    }
    let end = named
        .find(|c: char| !is_call_name_char(c))
        .unwrap_or(named.len());
    if end == 0 {
        return None;
    }
    let (name, tail) = named.split_at(end);
    let tail = tail.trim_matches(is_space);
    if tail.is_empty() {
        return Some((name, None));
    }
    (tail.len() >= 2 && tail.starts_with('{') && tail.ends_with('}')).then_some((name, Some(tail)))
}

/// Outcome of `^literal\s+(\d+)` followed by `int(group 1)`.
#[derive(Debug, PartialEq, Eq)]
pub enum IntMatch {
    NoMatch,
    /// The value, saturated at `u64::MAX` (callers clamp it far lower anyway).
    Value(u64),
    /// More than [`INT_MAX_STR_DIGITS`] digits: Python's `int()` raises `ValueError`.
    TooManyDigits,
}

pub fn match_int(text: &str, literal: &str) -> IntMatch {
    let Some(rest) = strip_prefix_ignore_case(text, literal) else {
        return IntMatch::NoMatch;
    };
    let digits = rest.trim_start_matches(is_space);
    if digits.len() == rest.len() {
        return IntMatch::NoMatch;
    }
    let mut value: u64 = 0;
    let mut count = 0usize;
    for c in digits.chars() {
        let Some(d) = decimal_value(c) else { break };
        value = value.saturating_mul(10).saturating_add(u64::from(d));
        count += 1;
    }
    match count {
        0 => IntMatch::NoMatch,
        n if n > INT_MAX_STR_DIGITS => IntMatch::TooManyDigits,
        _ => IntMatch::Value(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_follow_python_re() {
        assert!(match_keyword("list tasks", "list tasks"));
        assert!(match_keyword("LIST TASKS please", "list tasks"));
        assert!(match_keyword("list tasks!", "list tasks"));
        assert!(!match_keyword("list tasksx", "list tasks"));
        assert!(!match_keyword("list tasks_", "list tasks"));
        assert!(!match_keyword("list tasks\u{e9}", "list tasks"));
        assert!(!match_keyword("fail\u{0660}", "fail"));
        assert!(match_keyword("fa\u{130}l", "fail"));
        assert!(match_keyword("list tas\u{212a}s", "list tasks"));
        assert!(match_keyword("\u{17f}low", "slow"));
        assert!(match_keyword("midfail\u{301}", "midfail")); // combining mark is not \w
        assert!(!match_keyword("fai", "fail"));
    }

    #[test]
    fn keyword_rest() {
        assert_eq!(match_keyword_rest("think", "think"), Some(""));
        assert_eq!(
            match_keyword_rest("Thin\u{212a} \n hard", "think"),
            Some(" \n hard")
        );
        assert_eq!(match_keyword_rest("think!", "think"), Some("!"));
        assert_eq!(match_keyword_rest("thinking", "think"), None);
        assert_eq!(match_keyword_rest("c\u{130}te x", "cite"), Some(" x"));
    }

    #[test]
    fn add_task_rest() {
        assert_eq!(
            match_rest("add task buy milk", "add task"),
            Some("buy milk")
        );
        assert_eq!(
            match_rest("Add Tas\u{212a}\n\t x\ny", "add task"),
            Some("x\ny")
        );
        assert_eq!(match_rest("add taskx", "add task"), None);
        assert_eq!(match_rest("add task", "add task"), None);
    }

    #[test]
    fn call_groups_follow_python_re() {
        // Expected groups from `re.match(PATTERN, text.strip(), re.I | re.S)`.
        type Groups<'a> = Option<(&'a str, Option<&'a str>)>;
        let cases: [(&str, Groups); 14] = [
            ("call foo", Some(("foo", None))),
            ("CALL Foo.bar-1_x {}", Some(("Foo.bar-1_x", Some("{}")))),
            ("call  foo {\"a\":1}", Some(("foo", Some("{\"a\":1}")))),
            ("call foo{\"a\":1}", Some(("foo", Some("{\"a\":1}")))),
            ("call foo\n{\"a\"}", Some(("foo", Some("{\"a\"}")))),
            ("call foo {a} {b}", Some(("foo", Some("{a} {b}")))),
            (
                "call foo {\"a\":\"}\"}",
                Some(("foo", Some("{\"a\":\"}\"}"))),
            ),
            ("ca\u{17f}l x", None), // ſ is not l
            ("call \u{212a}\u{130}", Some(("\u{212a}\u{130}", None))),
            ("call foo {\"a\":1} x", None),
            ("call foo bar", None),
            ("call foo {", None),
            ("callfoo", None),
            ("call", None),
        ];
        for (text, want) in cases {
            assert_eq!(match_call(text), want, "{text:?}");
        }
        assert_eq!(match_call("call {}"), None);
    }

    #[test]
    fn slow_digits() {
        assert_eq!(match_int("slow 3", "slow"), IntMatch::Value(3));
        assert_eq!(match_int("\u{17f}low  12abc", "slow"), IntMatch::Value(12));
        assert_eq!(
            match_int("slow \u{0663}\u{ff11}", "slow"),
            IntMatch::Value(31)
        );
        assert_eq!(match_int("slow", "slow"), IntMatch::NoMatch);
        assert_eq!(match_int("slow x", "slow"), IntMatch::NoMatch);
        assert_eq!(match_int("slow3", "slow"), IntMatch::NoMatch);
        let many = format!("slow {}", "9".repeat(INT_MAX_STR_DIGITS + 1));
        assert_eq!(match_int(&many, "slow"), IntMatch::TooManyDigits);
    }

    #[test]
    fn python_whitespace() {
        assert_eq!(strip("\u{1c}\u{3000} a b\u{85}"), "a b");
        assert_eq!(count_words(" a\u{1f}b  c "), 3);
        assert_eq!(prefix_chars("h\u{e9}llo", 2), "h\u{e9}");
        assert_eq!(prefix_chars("ab", 5), "ab");
    }
}
