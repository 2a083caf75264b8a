//! Literal `type` fields that must sit in a specific key position (protocol §1.5 key order), where
//! serde's internally tagged enums would put the tag first.

/// Declares a unit struct that serializes as one fixed string and only deserializes from it.
#[macro_export]
macro_rules! literal_tag {
    ($(#[$meta:meta])* $name:ident = $value:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name;

        impl $name {
            pub const VALUE: &'static str = $value;
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str($value)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                if text == $value {
                    Ok($name)
                } else {
                    Err(serde::de::Error::custom(concat!("expected \"", $value, "\"")))
                }
            }
        }
    };
}
