//! JSON exactly as Python's `json` module reads and writes it.
//!
//! Why not `serde_json::Value`: the request log must re-serialize bodies the way
//! `json.dumps(json.loads(raw), separators=(",", ":"), ensure_ascii=False)` does — keys in
//! their first-seen order (a duplicate key keeps its first position and its last value, like a
//! Python `dict`), floats in `repr()` form, `NaN`/`Infinity` accepted — and keeping key order
//! with serde_json would need its `preserve_order` feature, which Cargo would unify into every
//! other crate of the workspace built in the same invocation. A small exact parser is simpler.
//!
//! Writers: [`write_str`] is `ensure_ascii=False` (the streamed chunks and the log),
//! [`write_str_ascii`] is `json.dumps`' default `ensure_ascii=True` (aiohttp's
//! `web.json_response`, used for every non-streamed body of the reference); [`write_compact`]
//! and [`write_dumps`] write whole values with the one or the other (the extensions build their
//! bodies as [`Value`]s with [`Object::from_pairs`]).

use std::borrow::Cow;
use std::collections::HashMap;

use crate::pytext::INT_MAX_STR_DIGITS;

/// Nesting depth at which the reference fails with `RecursionError` (an unhandled exception,
/// so aiohttp answers 500). Measured against the reference under aiohttp: the exact threshold
/// depends on its interpreter stack; `mock_llm.py` under aiohttp 3.14.5 accepted 982 nested
/// containers and answered 500 from 983 on.
pub const MAX_DEPTH: usize = 982;

/// A parsed JSON value with Python semantics.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// An integer literal, kept as its canonical decimal text (arbitrary precision, like `int`).
    Int(Box<str>),
    /// A literal with a fraction or exponent (a Python `float`), including `NaN`/`Infinity`.
    Float(f64),
    Str(String),
    Array(Vec<Value>),
    Object(Object),
}

/// A JSON object in Python `dict` order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Object(Vec<(String, Value)>);

impl Object {
    /// `dict.get(key)`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// An object built in key order from distinct keys (for the bodies this mock writes).
    pub fn from_pairs<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Value)>) -> Self {
        Object(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// Appends `key` (which must not be present yet).
    pub fn push(&mut self, key: impl Into<String>, value: Value) {
        self.0.push((key.into(), value));
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

impl From<u64> for Value {
    fn from(n: u64) -> Self {
        Value::Int(n.to_string().into())
    }
}

impl From<usize> for Value {
    fn from(n: usize) -> Self {
        Value::Int(n.to_string().into())
    }
}

impl From<Object> for Value {
    fn from(o: Object) -> Self {
        Value::Object(o)
    }
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Self {
        Value::Array(items)
    }
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// Python truthiness (`bool(x)`).
    pub fn is_truthy(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Int(text) => &**text != "0",
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.0.is_empty(),
        }
    }
}

/// Why `json.loads` failed.
#[derive(Debug, PartialEq, Eq)]
pub enum ParseError {
    /// `ValueError` / `UnicodeDecodeError`: the reference treats the body as "not JSON".
    Invalid,
    /// `RecursionError`: not caught by the reference, so the request ends in an HTTP 500.
    TooDeep,
}

/// A parsed request body.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub value: Value,
    /// Python keeps lone surrogates (`"\ud800"`, or unpaired UTF-16 code units) in its `str`s;
    /// a Rust `String` cannot, so they become U+FFFD here and this flag remembers that they
    /// were there (writing them to the UTF-8 log is what makes the reference fail).
    pub has_lone_surrogate: bool,
}

/// `json.loads(raw)` for a `bytes` body, including its encoding sniffing (UTF-8 with optional
/// BOM, UTF-16 and UTF-32).
pub fn loads(raw: &[u8]) -> Result<Document, ParseError> {
    let (text, lone_code_unit) = decode(raw).ok_or(ParseError::Invalid)?;
    let (value, lone_escape) = parse(&text)?;
    Ok(Document {
        value,
        has_lone_surrogate: lone_code_unit || lone_escape,
    })
}

/// `json.loads(text)` for a `str` (no encoding sniffing). A lone surrogate escape becomes
/// U+FFFD.
pub fn loads_str(text: &str) -> Result<Value, ParseError> {
    parse(text).map(|(value, _)| value)
}

/// Parses a whole document; the flag tells whether a lone surrogate escape was replaced.
fn parse(text: &str) -> Result<(Value, bool), ParseError> {
    if text.starts_with('\u{feff}') {
        return Err(ParseError::Invalid); // "Unexpected UTF-8 BOM"
    }
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
        depth: 0,
        lone_surrogate: false,
    };
    p.skip_ws();
    let value = p.value()?;
    p.skip_ws();
    if p.i != p.s.len() {
        return Err(ParseError::Invalid);
    }
    Ok((value, p.lone_surrogate))
}

/// `json.detect_encoding` + `bytes.decode(encoding, "surrogatepass")`; the flag tells whether
/// lone surrogates were replaced. (UTF-8-encoded surrogates, which `surrogatepass` would also
/// accept, are rejected as invalid UTF-8.)
fn decode(b: &[u8]) -> Option<(Cow<'_, str>, bool)> {
    const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";
    if b.starts_with(b"\x00\x00\xfe\xff") {
        return decode_utf32(&b[4..], true);
    }
    if b.starts_with(b"\xff\xfe\x00\x00") {
        return decode_utf32(&b[4..], false);
    }
    if b.starts_with(b"\xfe\xff") {
        return decode_utf16(&b[2..], true);
    }
    if b.starts_with(b"\xff\xfe") {
        return decode_utf16(&b[2..], false);
    }
    if let Some(rest) = b.strip_prefix(UTF8_BOM) {
        return std::str::from_utf8(rest)
            .ok()
            .map(|s| (Cow::Borrowed(s), false));
    }
    if b.len() >= 4 {
        if b[0] == 0 {
            return if b[1] != 0 {
                decode_utf16(b, true)
            } else {
                decode_utf32(b, true)
            };
        }
        if b[1] == 0 {
            return if b[2] != 0 || b[3] != 0 {
                decode_utf16(b, false)
            } else {
                decode_utf32(b, false)
            };
        }
    } else if b.len() == 2 {
        if b[0] == 0 {
            return decode_utf16(b, true);
        }
        if b[1] == 0 {
            return decode_utf16(b, false);
        }
    }
    std::str::from_utf8(b)
        .ok()
        .map(|s| (Cow::Borrowed(s), false))
}

fn decode_utf16(b: &[u8], big_endian: bool) -> Option<(Cow<'_, str>, bool)> {
    if b.len() % 2 != 0 {
        return None;
    }
    let units = b.chunks_exact(2).map(|c| {
        let pair = [c[0], c[1]];
        if big_endian {
            u16::from_be_bytes(pair)
        } else {
            u16::from_le_bytes(pair)
        }
    });
    let mut lone = false;
    let text = char::decode_utf16(units)
        .map(|c| {
            c.unwrap_or_else(|_| {
                lone = true;
                char::REPLACEMENT_CHARACTER
            })
        })
        .collect();
    Some((Cow::Owned(text), lone))
}

fn decode_utf32(b: &[u8], big_endian: bool) -> Option<(Cow<'_, str>, bool)> {
    if b.len() % 4 != 0 {
        return None;
    }
    let mut text = String::with_capacity(b.len() / 4);
    let mut lone = false;
    for c in b.chunks_exact(4) {
        let quad = [c[0], c[1], c[2], c[3]];
        let n = if big_endian {
            u32::from_be_bytes(quad)
        } else {
            u32::from_le_bytes(quad)
        };
        match n {
            0xd800..=0xdfff => {
                lone = true;
                text.push(char::REPLACEMENT_CHARACTER);
            }
            _ => text.push(char::from_u32(n)?),
        }
    }
    Some((Cow::Owned(text), lone))
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
    lone_surrogate: bool,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    fn eat(&mut self, lit: &[u8]) -> bool {
        if self.s[self.i..].starts_with(lit) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Result<Value, ParseError> {
        let Some(&b) = self.s.get(self.i) else {
            return Err(ParseError::Invalid);
        };
        match b {
            b'"' => Ok(Value::Str(self.string()?)),
            b'{' => self.nested(Self::object),
            b'[' => self.nested(Self::array),
            b'n' if self.eat(b"null") => Ok(Value::Null),
            b't' if self.eat(b"true") => Ok(Value::Bool(true)),
            b'f' if self.eat(b"false") => Ok(Value::Bool(false)),
            b'N' if self.eat(b"NaN") => Ok(Value::Float(f64::NAN)),
            b'I' if self.eat(b"Infinity") => Ok(Value::Float(f64::INFINITY)),
            b'-' if self.eat(b"-Infinity") => Ok(Value::Float(f64::NEG_INFINITY)),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(ParseError::Invalid),
        }
    }

    fn nested(
        &mut self,
        f: fn(&mut Self) -> Result<Value, ParseError>,
    ) -> Result<Value, ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError::TooDeep);
        }
        let v = f(self);
        self.depth -= 1;
        v
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.s.get(self.i) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.i;
        let negative = self.eat(b"-");
        let int_start = self.i;
        match self.s.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(ParseError::Invalid),
        }
        let int_digits = self.i - int_start;
        let mut is_float = false;
        if self.s.get(self.i) == Some(&b'.') && matches!(self.s.get(self.i + 1), Some(b'0'..=b'9'))
        {
            self.i += 1;
            self.digits();
            is_float = true;
        }
        if let Some(b'e' | b'E') = self.s.get(self.i) {
            let save = self.i;
            self.i += 1;
            if let Some(b'+' | b'-') = self.s.get(self.i) {
                self.i += 1;
            }
            if self.digits() == 0 {
                self.i = save; // not part of the number: the caller then fails on it
            } else {
                is_float = true;
            }
        }
        // The literal is ASCII, so this slice is valid UTF-8.
        let text = std::str::from_utf8(&self.s[start..self.i]).map_err(|_| ParseError::Invalid)?;
        if is_float {
            return text
                .parse::<f64>()
                .map(Value::Float)
                .map_err(|_| ParseError::Invalid);
        }
        if int_digits > INT_MAX_STR_DIGITS {
            return Err(ParseError::Invalid); // int(): "Exceeds the limit (4300 digits)"
        }
        if negative && text == "-0" {
            return Ok(Value::Int("0".into()));
        }
        Ok(Value::Int(text.into()))
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let h = self.s.get(self.i..self.i + 4).ok_or(ParseError::Invalid)?;
        let mut n = 0u32;
        for &c in h {
            let d = (c as char).to_digit(16).ok_or(ParseError::Invalid)?;
            n = n * 16 + d;
        }
        self.i += 4;
        Ok(n)
    }

    fn string(&mut self) -> Result<String, ParseError> {
        self.i += 1; // opening quote
        let mut out = String::new();
        loop {
            let start = self.i;
            while let Some(&c) = self.s.get(self.i) {
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                self.i += 1;
            }
            // Split only at ASCII bytes, so the run is valid UTF-8.
            out.push_str(
                std::str::from_utf8(&self.s[start..self.i]).map_err(|_| ParseError::Invalid)?,
            );
            match self.s.get(self.i) {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    let esc = *self.s.get(self.i).ok_or(ParseError::Invalid)?;
                    self.i += 1;
                    match esc {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let mut code = hi;
                            if (0xd800..0xdc00).contains(&hi)
                                && self.s[self.i..].starts_with(b"\\u")
                            {
                                let save = self.i;
                                self.i += 2;
                                let lo = self.hex4()?;
                                if (0xdc00..0xe000).contains(&lo) {
                                    code = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
                                } else {
                                    self.i = save; // lone high surrogate; decode the next escape alone
                                }
                            }
                            out.push(char::from_u32(code).unwrap_or_else(|| {
                                self.lone_surrogate = true;
                                char::REPLACEMENT_CHARACTER
                            }));
                        }
                        _ => return Err(ParseError::Invalid),
                    }
                }
                _ => return Err(ParseError::Invalid), // control character or end of input
            }
        }
    }

    fn array(&mut self) -> Result<Value, ParseError> {
        self.i += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.eat(b"]") {
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value()?);
            self.skip_ws();
            if self.eat(b"]") {
                return Ok(Value::Array(items));
            }
            if !self.eat(b",") {
                return Err(ParseError::Invalid);
            }
        }
    }

    fn object(&mut self) -> Result<Value, ParseError> {
        self.i += 1;
        let mut entries: Vec<(String, Value)> = Vec::new();
        // Index for large objects, so duplicate detection stays linear.
        let mut index: Option<HashMap<String, usize>> = None;
        self.skip_ws();
        if self.eat(b"}") {
            return Ok(Value::Object(Object(entries)));
        }
        loop {
            self.skip_ws();
            if self.s.get(self.i) != Some(&b'"') {
                return Err(ParseError::Invalid);
            }
            let key = self.string()?;
            self.skip_ws();
            if !self.eat(b":") {
                return Err(ParseError::Invalid);
            }
            self.skip_ws();
            let value = self.value()?;
            let existing = match &index {
                Some(map) => map.get(&key).copied(),
                None => entries.iter().position(|(k, _)| *k == key),
            };
            match existing {
                Some(at) => entries[at].1 = value, // dict semantics: first position, last value
                None => {
                    if let Some(map) = &mut index {
                        map.insert(key.clone(), entries.len());
                    }
                    entries.push((key, value));
                    if index.is_none() && entries.len() > 16 {
                        index = Some(
                            entries
                                .iter()
                                .enumerate()
                                .map(|(i, (k, _))| (k.clone(), i))
                                .collect(),
                        );
                    }
                }
            }
            self.skip_ws();
            if self.eat(b"}") {
                return Ok(Value::Object(Object(entries)));
            }
            if !self.eat(b",") {
                return Err(ParseError::Invalid);
            }
        }
    }
}

/// Where the writers append: a `Vec<u8>` or the `BytesMut` of a response stream.
pub trait Sink {
    fn put(&mut self, bytes: &[u8]);

    fn put_byte(&mut self, b: u8) {
        self.put(&[b]);
    }

    /// An unsigned integer in decimal, without going through `fmt`.
    fn put_u64(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.put(&digits[at..]);
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

impl Sink for bytes::BytesMut {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_u_escape(out: &mut impl Sink, unit: u32) {
    let mut esc = *b"\\u0000";
    for (i, shift) in [12, 8, 4, 0].into_iter().enumerate() {
        esc[2 + i] = HEX[((unit >> shift) & 0xf) as usize];
    }
    out.put(&esc);
}

/// Short escapes shared by both writers (`json.encoder.ESCAPE_DCT`).
fn short_escape(c: u8) -> Option<&'static [u8]> {
    Some(match c {
        b'"' => b"\\\"",
        b'\\' => b"\\\\",
        b'\n' => b"\\n",
        b'\r' => b"\\r",
        b'\t' => b"\\t",
        0x08 => b"\\b",
        0x0c => b"\\f",
        _ => return None,
    })
}

/// A JSON string literal as `json.dumps(s, ensure_ascii=False)` writes it: only `"`, `\` and
/// C0 controls are escaped; everything else is raw UTF-8.
pub fn write_str(out: &mut impl Sink, s: &str) {
    out.put_byte(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &c) in bytes.iter().enumerate() {
        if c >= 0x20 && c != b'"' && c != b'\\' {
            continue;
        }
        out.put(&bytes[start..i]);
        match short_escape(c) {
            Some(esc) => out.put(esc),
            None => push_u_escape(out, u32::from(c)),
        }
        start = i + 1;
    }
    out.put(&bytes[start..]);
    out.put_byte(b'"');
}

/// A JSON string literal as `json.dumps(s)` writes it (`ensure_ascii=True`): everything outside
/// printable ASCII (including DEL) becomes `\uXXXX`, astral characters a surrogate pair.
pub fn write_str_ascii(out: &mut impl Sink, s: &str) {
    out.put_byte(b'"');
    for c in s.chars() {
        let n = c as u32;
        if (0x20..0x7f).contains(&n) {
            match short_escape(n as u8) {
                Some(esc) => out.put(esc),
                None => out.put_byte(n as u8),
            }
        } else if n < 0x80 {
            match short_escape(n as u8) {
                Some(esc) => out.put(esc),
                None => push_u_escape(out, n),
            }
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                push_u_escape(out, u32::from(*unit));
            }
        }
    }
    out.put_byte(b'"');
}

/// `repr(float)` as `json.dumps` writes it (`NaN`, `Infinity`, `-Infinity` for the specials).
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
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

/// `json.dumps(v)` with its defaults (`", "` / `": "` separators, `ensure_ascii=True`), as
/// aiohttp's `web.json_response` writes a body.
pub fn write_dumps(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Str(s) => write_str_ascii(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                write_dumps(out, item);
            }
            out.push(b']');
        }
        Value::Object(obj) => {
            out.push(b'{');
            for (i, (k, item)) in obj.0.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                write_str_ascii(out, k);
                out.extend_from_slice(b": ");
                write_dumps(out, item);
            }
            out.push(b'}');
        }
        scalar => write_compact(out, scalar),
    }
}

/// `json.dumps(v, separators=(",", ":"), ensure_ascii=False)`.
pub fn write_compact(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(text) => out.extend_from_slice(text.as_bytes()),
        Value::Float(f) => out.extend_from_slice(float_repr(*f).as_bytes()),
        Value::Str(s) => write_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_compact(out, item);
            }
            out.push(b']');
        }
        Value::Object(obj) => {
            out.push(b'{');
            for (i, (k, item)) in obj.0.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, k);
                out.push(b':');
                write_compact(out, item);
            }
            out.push(b'}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(raw: &str) -> String {
        let v = loads(raw.as_bytes()).expect("valid JSON");
        let mut out = Vec::new();
        write_compact(&mut out, &v.value);
        String::from_utf8(out).unwrap()
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
            (f64::INFINITY, "Infinity"),
        ];
        for (f, want) in cases {
            assert_eq!(float_repr(f), want, "{f}");
        }
    }

    #[test]
    fn reserializes_like_json_dumps() {
        assert_eq!(
            roundtrip(r#" {"b": 1, "a": [1.0, -0, 1E5, "\u00e9\ud83d\ude00\/", NaN], "b": 2} "#),
            r#"{"b":2,"a":[1.0,0,100000.0,"é😀/",NaN]}"#
        );
        assert_eq!(roundtrip("\"\\u0001\\n\u{7f}\""), "\"\\u0001\\n\u{7f}\"");
    }

    #[test]
    fn rejects_what_python_rejects() {
        for bad in [
            "",
            "[1,]",
            "{\"a\":1,}",
            "01",
            "1.",
            "\"\t\"",
            "[1] x",
            "\u{feff}\u{feff}{}",
            "'a'",
        ] {
            assert_eq!(loads(bad.as_bytes()), Err(ParseError::Invalid), "{bad:?}");
        }
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(loads(deep.as_bytes()), Err(ParseError::TooDeep));
        let long_int = "1".repeat(INT_MAX_STR_DIGITS + 1);
        assert_eq!(loads(long_int.as_bytes()), Err(ParseError::Invalid));
    }

    #[test]
    fn sniffs_encodings() {
        assert!(loads(b"\xef\xbb\xbf{}").is_ok());
        assert!(loads(b"{\x00}\x00").is_ok()); // UTF-16-LE without BOM
        assert!(loads(b"\xff\xfe{\x00}\x00").is_ok());
        assert!(
            loads(b"\xff\xfe\"\x00\x00\xd8\"\x00")
                .unwrap()
                .has_lone_surrogate
        );
        assert!(loads(br#""\ud800x""#).unwrap().has_lone_surrogate);
        assert!(!loads(br#""\ud83d\ude00""#).unwrap().has_lone_surrogate);
    }

    #[test]
    fn dumps_defaults() {
        let v = loads(br#"{"a": [1, 2.5, null, true], "\u00e9": {"b": "\u00e9"}}"#)
            .unwrap()
            .value;
        let mut out = Vec::new();
        write_dumps(&mut out, &v);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a": [1, 2.5, null, true], "\u00e9": {"b": "\u00e9"}}"#
        );
        let built = Value::from(Object::from_pairs([
            ("n", Value::from(3u64)),
            ("s", "x".into()),
        ]));
        let mut out = Vec::new();
        write_compact(&mut out, &built);
        assert_eq!(out, br#"{"n":3,"s":"x"}"#);
    }

    #[test]
    fn ascii_writer_escapes_like_json_dumps() {
        let mut out = Vec::new();
        write_str_ascii(&mut out, "é😀\u{7f}\"\u{1}");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#""\u00e9\ud83d\ude00\u007f\"\u0001""#
        );
    }
}
