//! JSON read with serde_json and written the way Python's `json.dumps` writes it.
//!
//! Reading: serde_json with the workspace's `preserve_order`, so an object keeps a Python
//! `dict`'s order (a duplicate key keeps its first position and its last value). Writing: two
//! styles of one [`Formatter`], with floats in Python's `repr()` form:
//! * [`compact`] is `json.dumps(v, separators=(",", ":"), ensure_ascii=False)`: the streamed
//!   chunks and events, tool arguments and the request log;
//! * [`dumps`] is `json.dumps(v)` with its defaults (`", "` and `": "`, non-ASCII as `\uXXXX`),
//!   as aiohttp's `web.json_response` writes every non-streamed body of the reference.
//!
//! Python reads a little more than serde_json (the README lists the difference).

use std::io;

use serde::Serialize;
use serde_json::ser::Formatter;
pub use serde_json::Value;

/// A JSON object, in the order its keys first appeared.
pub type Object = serde_json::Map<String, Value>;

/// `json.loads(raw)`; `None` when the body is not JSON (the reference then logs it raw).
pub fn loads(raw: &[u8]) -> Option<Value> {
    serde_json::from_slice(raw).ok()
}

/// Python truthiness (`bool(x)`).
pub fn is_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// `json.dumps(v, separators=(",", ":"), ensure_ascii=False)`.
pub fn compact<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    write_compact(&mut out, v);
    out
}

/// `json.dumps(v)`.
pub fn dumps<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write(&mut out, v, Python::Dumps);
    out
}

/// [`compact`], appended to `out` (a string literal when `v` is a `str`).
pub fn write_compact<W: io::Write, T: Serialize + ?Sized>(out: W, v: &T) {
    write(out, v, Python::Compact);
}

fn write<W: io::Write, T: Serialize + ?Sized>(out: W, v: &T, style: Python) {
    let mut ser = serde_json::Serializer::with_formatter(out, style);
    v.serialize(&mut ser)
        .expect("JSON values and strings serialize into memory");
}

/// The two `json.dumps` styles the reference uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Python {
    /// `separators=(",", ":"), ensure_ascii=False`: only `"`, `\` and C0 controls are escaped.
    Compact,
    /// The defaults: `", "` and `": "`, and `ensure_ascii=True`: everything outside printable
    /// ASCII (DEL included) as `\uXXXX`, astral characters as a surrogate pair.
    Dumps,
}

impl Formatter for Python {
    fn write_f64<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f64) -> io::Result<()> {
        w.write_all(float_repr(value).as_bytes())
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        if *self == Python::Compact {
            return w.write_all(fragment.as_bytes());
        }
        // serde_json has already escaped `"`, `\` and the C0 controls, as Python does.
        let bytes = fragment.as_bytes();
        let mut start = 0;
        for (at, c) in fragment.char_indices() {
            if (' '..='~').contains(&c) {
                continue;
            }
            w.write_all(&bytes[start..at])?;
            for unit in c.encode_utf16(&mut [0u16; 2]) {
                write!(w, "\\u{unit:04x}")?;
            }
            start = at + c.len_utf8();
        }
        w.write_all(&bytes[start..])
    }

    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.separator(w, first)
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.separator(w, first)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(match self {
            Python::Compact => b":",
            Python::Dumps => b": ",
        })
    }
}

impl Python {
    fn separator<W: ?Sized + io::Write>(self, w: &mut W, first: bool) -> io::Result<()> {
        match (first, self) {
            (true, _) => Ok(()),
            (false, Python::Compact) => w.write_all(b","),
            (false, Python::Dumps) => w.write_all(b", "),
        }
    }
}

/// `repr(f)` of a finite float (serde_json writes no other: a `Value` cannot hold NaN or an
/// infinity).
fn float_repr(f: f64) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // Rust's `{:e}` gives the shortest round-tripping digits, like Python's repr.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').expect("{:e} always has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let decpt = exp + 1; // position of the decimal point relative to the digits
    let mut out = String::with_capacity(digits.len() + 8);
    if f < 0.0 {
        out.push('-');
    }
    if !(-4 < decpt && decpt <= 16) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.abs()));
    } else if decpt <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-decpt) as usize));
        out.push_str(&digits);
    } else if decpt as usize >= digits.len() {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', decpt as usize - digits.len()));
        out.push_str(".0");
    } else {
        out.push_str(&digits[..decpt as usize]);
        out.push('.');
        out.push_str(&digits[decpt as usize..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn floats_print_like_python_repr() {
        let cases = [
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e300, "1.5e+300"),
            (-0.0, "-0.0"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (0.1 + 0.2, "0.30000000000000004"),
            (2.5, "2.5"),
            (-1e-7, "-1e-07"),
        ];
        for (f, want) in cases {
            assert_eq!(float_repr(f), want, "{f}");
        }
    }

    #[test]
    fn reserializes_like_json_dumps() {
        let v = loads(
            br#" {"b": 1, "a": [1.0, -1, 1E5, "\u00e9\ud83d\ude00\/\u0001\u007f"], "b": 2} "#,
        )
        .unwrap();
        assert_eq!(
            text(compact(&v)),
            "{\"b\":2,\"a\":[1.0,-1,100000.0,\"é😀/\\u0001\u{7f}\"]}"
        );
        assert_eq!(
            text(dumps(&v)),
            r#"{"b": 2, "a": [1.0, -1, 100000.0, "\u00e9\ud83d\ude00/\u0001\u007f"]}"#
        );
    }

    #[test]
    fn dumps_defaults() {
        let v = json!({"a": [1, 2.5, null, true], "é": {"b": "\"\n"}, "": []});
        assert_eq!(
            text(dumps(&v)),
            r#"{"a": [1, 2.5, null, true], "\u00e9": {"b": "\"\n"}, "": []}"#
        );
        assert_eq!(text(compact("é😀\u{7f}")), "\"é😀\u{7f}\"");
        assert_eq!(text(dumps("é😀\u{7f}")), r#""\u00e9\ud83d\ude00\u007f""#);
    }

    #[test]
    fn reads_what_serde_json_reads() {
        for bad in [
            "",
            "[1,]",
            "{\"a\":1,}",
            "01",
            "1.",
            "\"\t\"",
            "[1] x",
            "'a'",
        ] {
            assert_eq!(loads(bad.as_bytes()), None, "{bad:?}");
        }
        assert!(!is_truthy(&json!(0.0)) && !is_truthy(&json!("")) && is_truthy(&json!([0])));
    }
}
