//! Secrets: references from the public file and values that never print.

use std::fmt;

use schemars::JsonSchema;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What prints in place of a secret value, everywhere.
pub const REDACTED: &str = "<redacted>";

/// A secret value. Debug, Display and Serialize all print `<redacted>`;
/// the value is reachable only through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the code that hands it to a peer (hostapd,
    /// pppd, a DDNS request). Never log what this returns.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if EXPOSED.get() {
            s.serialize_str(&self.0)
        } else {
            s.serialize_str(REDACTED)
        }
    }
}

/// A secret comes back from the JSON that configd handed an entitled
/// daemon.
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self)
    }
}

thread_local! {
    /// Set only inside [`with_secrets_exposed`], on this thread.
    static EXPOSED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with [`Secret`] serializing its value instead of `<redacted>`,
/// on this thread only: for configd handing a section to the daemon that is
/// entitled to its secrets. Everywhere else secrets stay redacted.
pub(crate) fn with_secrets_exposed<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            EXPOSED.set(self.0);
        }
    }
    let _reset = Reset(EXPOSED.replace(true));
    f()
}

/// A secret field as written in `oxwrt.toml`: either the correct
/// `{ secret = "NAME" }` reference, or a value written inline by mistake
/// (kept so validation can say where it belongs instead of failing to parse).
#[derive(Clone, PartialEq, Eq)]
pub enum SecretField {
    /// `{ secret = "NAME" }`: the value is `NAME` in the secrets file.
    Ref(String),
    /// A literal value in the public file: always a validation error.
    Inline(Secret),
}

impl fmt::Debug for SecretField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ref(name) => f.debug_tuple("Ref").field(name).finish(),
            Self::Inline(_) => f.debug_tuple("Inline").field(&REDACTED).finish(),
        }
    }
}

impl<'de> Deserialize<'de> for SecretField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FieldVisitor;

        impl<'de> Visitor<'de> for FieldVisitor {
            type Value = SecretField;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a secret reference { secret = "NAME" }"#)
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<SecretField, E> {
                Ok(SecretField::Inline(Secret::new(v)))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretField, A::Error> {
                let mut name = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != "secret" {
                        return Err(de::Error::unknown_field(&key, &["secret"]));
                    }
                    if name.is_some() {
                        return Err(de::Error::duplicate_field("secret"));
                    }
                    name = Some(map.next_value::<String>()?);
                }
                name.map(SecretField::Ref)
                    .ok_or_else(|| de::Error::missing_field("secret"))
            }
        }

        d.deserialize_any(FieldVisitor)
    }
}

impl Serialize for SecretField {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Self::Ref(name) => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry("secret", name)?;
                map.end()
            }
            Self::Inline(secret) => secret.serialize(s),
        }
    }
}

impl JsonSchema for SecretField {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SecretRef".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Reference to a value in oxwrt.secrets.toml.",
            "type": "object",
            "properties": { "secret": { "type": "string", "description": "Name of the secret." } },
            "required": ["secret"],
            "additionalProperties": false,
            "x-secret": true
        })
    }
}

/// Whether `name` is a valid secret name: `[A-Za-z0-9_-]`, 1–64 bytes.
pub fn valid_secret_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
