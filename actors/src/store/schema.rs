//! The Postgres schema name: validated once, so it can be spliced into SQL safely.

use std::fmt;

/// A plain identifier `^[a-z_][a-z0-9_]{0,62}$`; nothing else can reach SQL text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaName(String);

impl SchemaName {
    pub fn parse(name: &str) -> Result<Self, String> {
        let mut bytes = name.bytes();
        let valid_first = matches!(bytes.next(), Some(b'a'..=b'z' | b'_'));
        let valid_rest = bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'));
        if valid_first && valid_rest && name.len() <= 63 {
            Ok(SchemaName(name.to_string()))
        } else {
            Err(format!(
                "database.schema {name:?} is not a plain identifier (^[a-z_][a-z0-9_]{{0,62}}$)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SchemaName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::SchemaName;

    #[test]
    fn accepts_only_plain_identifiers() {
        assert!(SchemaName::parse("chatkit").is_ok());
        assert!(SchemaName::parse("_a9").is_ok());
        assert!(SchemaName::parse("9a").is_err());
        assert!(SchemaName::parse("Chatkit").is_err());
        assert!(SchemaName::parse("a;drop table x").is_err());
        assert!(SchemaName::parse("").is_err());
        assert!(SchemaName::parse(&"a".repeat(64)).is_err());
    }
}
