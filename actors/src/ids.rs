//! Identifiers. Generated ones keep the reference's prefixes (protocol §2.4) with 96 random
//! bits instead of its 32 (which collide in a shared database). Ids that come from outside
//! (request params, the token's subject) are parsed once, at the edge, into [`ThreadId`],
//! [`ItemId`] and [`UserId`]: past that point they are known to be bounded and plain.

use serde::{Deserialize, Serialize};

/// Prefixes of protocol §2.4.
pub(crate) mod prefix {
    pub const THREAD: &str = "thr";
    pub const MESSAGE: &str = "msg";
    pub const TOOL_CALL: &str = "tc";
    pub const WORKFLOW: &str = "wf";
    pub const SDK_HIDDEN_CONTEXT: &str = "shcx";
    pub const ATTACHMENT: &str = "atc";
    pub const INSTANCE: &str = "inst";
}

/// `<prefix>_` followed by 24 lowercase hex characters (96 random bits).
pub(crate) fn new_id(prefix: &str) -> String {
    let random: u128 = rand::random::<u128>() >> 32;
    format!("{prefix}_{random:024x}")
}

/// Longest identifier we accept from a client; ids are opaque but bounded so they cannot be
/// used to bloat indexes or logs.
pub const MAX_ID_LEN: usize = 128;

/// Longest user id (the token's `sub`).
pub const MAX_USER_ID_LEN: usize = 255;

/// Why an identifier from outside was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: {rule}")]
pub struct InvalidId {
    what: &'static str,
    rule: &'static str,
}

macro_rules! client_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl $name {
            /// A client-supplied id: non-empty, at most [`MAX_ID_LEN`] bytes, printable ASCII
            /// without spaces.
            pub fn parse(id: impl Into<String>) -> Result<Self, InvalidId> {
                let id = id.into();
                if !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic()) {
                    Ok($name(id))
                } else {
                    Err(InvalidId { what: $what, rule: "1 to 128 printable ASCII characters without spaces" })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(id: String) -> Result<Self, InvalidId> {
                $name::parse(id)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        #[cfg(test)]
        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                $name::parse(id).expect("a valid id in a test")
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }
    };
}

client_id!(
    /// A thread's id (`thr_…` when we made it; any plausible id in a request).
    ThreadId,
    "thread id"
);
client_id!(
    /// An item's id (`msg_…`, `tc_…`, …).
    ItemId,
    "item id"
);

client_id!(
    /// An attachment's id (`atc_…`), from a request or an upload URL.
    AttachmentId,
    "attachment id"
);

impl AttachmentId {
    /// A new attachment's id.
    pub(crate) fn generate() -> Self {
        AttachmentId(new_id(prefix::ATTACHMENT))
    }
}

impl ThreadId {
    /// A new thread's id.
    pub(crate) fn generate() -> Self {
        ThreadId(new_id(prefix::THREAD))
    }
}

impl ItemId {
    /// A new item's id, with the reference's prefix for its kind (`prefix::MESSAGE`, …).
    pub(crate) fn generate(prefix: &str) -> Self {
        ItemId(new_id(prefix))
    }
}

/// Who is asking: the verified token's subject.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UserId(String);

impl UserId {
    /// A token's `sub`: non-empty, at most [`MAX_USER_ID_LEN`] bytes, no control characters.
    pub fn parse(sub: impl Into<String>) -> Result<Self, InvalidId> {
        let sub = sub.into();
        if sub.is_empty() || sub.len() > MAX_USER_ID_LEN || sub.chars().any(char::is_control) {
            return Err(InvalidId {
                what: "user id",
                rule: "1 to 255 bytes without control characters",
            });
        }
        Ok(UserId(sub))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
impl From<&str> for UserId {
    fn from(id: &str) -> Self {
        UserId::parse(id).expect("a valid user id in a test")
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The caller's bearer token, for tool servers that receive it on their transport. Neither
/// Debug nor Display shows it; only the MCP transport reads it.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(String);

impl BearerToken {
    pub fn new(token: impl Into<String>) -> Self {
        BearerToken(token.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_prefix_and_96_bits() {
        let id = ThreadId::generate();
        assert!(id.as_str().starts_with("thr_"));
        assert_eq!(id.as_str().len(), 4 + 24);
        assert_ne!(new_id("msg"), new_id("msg"));
    }

    #[test]
    fn client_ids_are_bounded_and_plain() {
        assert!(ThreadId::parse("thr_abc").is_ok());
        assert!(ThreadId::parse("").is_err());
        assert!(ItemId::parse("a b").is_err());
        assert!(ItemId::parse("é").is_err());
        assert!(ThreadId::parse("x".repeat(200)).is_err());
        let from_json: Result<ThreadId, _> = serde_json::from_str("\"a\\u0000b\"");
        assert!(from_json.is_err());
    }

    #[test]
    fn user_ids_refuse_control_characters_and_length() {
        assert!(UserId::parse("alice@example.com").is_ok());
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("a\nb").is_err());
        assert!(UserId::parse("x".repeat(256)).is_err());
    }

    #[test]
    fn tokens_never_show() {
        let token = BearerToken::new("secret-token");
        assert!(!format!("{token:?}").contains("secret"));
    }
}

/// Identifiers go to and come from Postgres as `text`: written as they are, read back
/// checked (a row that holds no valid id is refused, never trusted).
mod sql {
    use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};

    use super::{ItemId, ThreadId, UserId};

    type BoxError = Box<dyn std::error::Error + Sync + Send>;

    macro_rules! text_id {
        ($name:ident) => {
            impl ToSql for $name {
                fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, BoxError> {
                    self.as_str().to_sql(ty, out)
                }

                fn accepts(ty: &Type) -> bool {
                    <&str as ToSql>::accepts(ty)
                }

                to_sql_checked!();
            }

            impl<'a> FromSql<'a> for $name {
                fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
                    let text = <&str as FromSql>::from_sql(ty, raw)?;
                    Ok($name::parse(text)?)
                }

                fn accepts(ty: &Type) -> bool {
                    <&str as FromSql>::accepts(ty)
                }
            }
        };
    }

    text_id!(ThreadId);
    text_id!(ItemId);
    text_id!(UserId);
}
