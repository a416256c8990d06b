//! [`string_enum!`](crate::string_enum): enums of unit variants with one fixed spelling each — how
//! they are stored in the database, written in JSON and accepted from clients.
//!
//! ```
//! patchbay_core::string_enum! {
//!     /// Which way records flow.
//!     pub enum Direction {
//!         /// From the connector into the records store.
//!         Import = "import",
//!         Export = "export",
//!     }
//! }
//! assert_eq!(Direction::Import.as_str(), "import");
//! assert_eq!("export".parse::<Direction>(), Ok(Direction::Export));
//! assert_eq!(Direction::parse("sideways"), None);
//! assert_eq!(serde_json::to_string(&Direction::Export).unwrap(), "\"export\"");
//! ```

/// A spelling that names no variant of a [`string_enum!`](crate::string_enum) enum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}; expected one of: {expected}")]
pub struct UnknownVariant {
    /// The enum's name, e.g. `Direction`.
    pub what: &'static str,
    /// What was given.
    pub value: String,
    /// The accepted spellings, comma-separated.
    pub expected: String,
}

/// Declares an enum of unit variants, each spelled by a string literal, with `ALL`, `as_str`,
/// `parse`, `Display`, `FromStr` ([`UnknownVariant`]) and serde as that string.
#[macro_export]
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The variant's spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The variant spelled `s`, exactly.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::enums::UnknownVariant;

            fn from_str(s: &str) -> ::std::result::Result<Self, Self::Err> {
                Self::parse(s).ok_or_else(|| $crate::enums::UnknownVariant {
                    what: stringify!($name),
                    value: s.to_string(),
                    expected: [$($text),+].join(", "),
                })
            }
        }

        impl $crate::__serde::Serialize for $name {
            fn serialize<S: $crate::__serde::Serializer>(&self, s: S) -> ::std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> $crate::__serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::__serde::Deserializer<'de>>(d: D) -> ::std::result::Result<Self, D::Error> {
                let s = <::std::borrow::Cow<'de, str> as $crate::__serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(<D::Error as $crate::__serde::de::Error>::custom)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    crate::string_enum! {
        /// A test enum.
        enum Colour {
            Red = "red",
            /// Documented variant.
            DarkBlue = "dark-blue",
        }
    }

    #[test]
    fn spells_parses_and_serialises() {
        assert_eq!(Colour::ALL, &[Colour::Red, Colour::DarkBlue]);
        assert_eq!(Colour::DarkBlue.to_string(), "dark-blue");
        assert_eq!(Colour::parse("red"), Some(Colour::Red));
        assert_eq!(Colour::parse("Red"), None);
        let err = "blue".parse::<Colour>().err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("unknown Colour \"blue\"; expected one of: red, dark-blue"));
        assert_eq!(serde_json::to_value(Colour::DarkBlue).ok(), Some(serde_json::json!("dark-blue")));
        assert_eq!(serde_json::from_str::<Colour>("\"red\"").ok(), Some(Colour::Red));
        assert!(serde_json::from_str::<Colour>("\"green\"").is_err());
    }
}
