//! NUL (U+0000) in client text. PostgreSQL stores neither it in `text` nor `\u0000` in
//! `jsonb`, and the params of every op end up in one or the other (titles, message text, tag
//! data, action payloads, client tool output, attachment names and types…). So no string and
//! no object key anywhere in `params` may hold it: the request is refused with 400
//! `invalid_params` naming the field, before anything runs (specs/errors.md).

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::text::shorten_for_display;

/// Longest field path quoted back (keys are the client's own text).
const MAX_PATH_BYTES: usize = 128;

/// Why the params were refused, naming the first field holding a NUL; `None` when none does.
pub(super) fn nul_problem(params: &RawValue) -> Option<String> {
    // In valid JSON a NUL can only be written as the escape `\u0000`: without that text
    // there is nothing to find (the common case costs one scan).
    if !params.get().contains("\\u0000") {
        return None;
    }
    let mut path = Vec::new();
    let mut de = serde_json::Deserializer::from_str(params.get());
    let found = match (Walk { path: &mut path }).deserialize(&mut de) {
        Ok(found) => found?,
        // The typed parse accepted these params but a full walk cannot read them (a number
        // out of range in an ignored field): refuse them whole rather than guess.
        Err(_) => Found::Value(Vec::new()),
    };
    Some(found.message())
}

/// One step into the params: an object key or an array index.
#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

/// Where the NUL is: in a value, or in a key of the object at this path.
enum Found {
    Value(Vec<Step>),
    Key(Vec<Step>),
}

impl Found {
    fn message(&self) -> String {
        match self {
            Found::Value(path) => format!("`{}` must not contain NUL (U+0000)", render(path)),
            Found::Key(path) => {
                format!("a key of `{}` must not contain NUL (U+0000)", render(path))
            }
        }
    }
}

/// `input.content[0].text`; the whole params are `params`.
fn render(path: &[Step]) -> String {
    let mut text = String::new();
    for step in path {
        match step {
            Step::Key(key) if text.is_empty() => text.push_str(key),
            Step::Key(key) => {
                text.push('.');
                text.push_str(key);
            }
            Step::Index(i) => text.push_str(&format!("[{i}]")),
        }
    }
    if text.is_empty() {
        text.push_str("params");
    }
    shorten_for_display(&text, MAX_PATH_BYTES)
}

/// Visits every value, keeping the path to it; answers the first NUL found (the rest is
/// still read, as serde requires, and ignored).
struct Walk<'p> {
    path: &'p mut Vec<Step>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = Option<Found>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = Option<Found>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
        Ok(text.contains('\0').then(|| Found::Value(self.path.clone())))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        let mut index = 0;
        loop {
            self.path.push(Step::Index(index));
            let item = seq.next_element_seed(Walk { path: self.path });
            self.path.pop();
            match item? {
                None => return Ok(found),
                Some(inner) => found = found.or(inner),
            }
            index += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<String>()? {
            if key.contains('\0') && found.is_none() {
                found = Some(Found::Key(self.path.clone()));
            }
            self.path.push(Step::Key(key));
            let inner = map.next_value_seed(Walk { path: self.path });
            self.path.pop();
            found = found.or(inner?);
        }
        Ok(found)
    }
}
