//! A validated config cut into its top-level sections, the unit that
//! configd diffs and hands to daemons.

use std::collections::BTreeMap;

use super::model;
use super::secret::with_secrets_exposed;

/// Every section, in file order: the top-level keys of `oxwrt.toml`
/// (without `version`).
pub const SECTIONS: &[&str] = &[
    "system",
    "networks",
    "routes",
    "firewall",
    "port_forwards",
    "dhcp",
    "dns",
    "wifi",
    "wireguard",
    "ntp",
    "ddns",
    "control",
    "services",
];

/// Section name -> its JSON text.
pub type Sections = BTreeMap<String, String>;

/// Parses section `name` of `sections` into its model type (for example
/// `Vec<model::Network>` for `networks`); `None` when it is not there.
pub fn section<T: serde::de::DeserializeOwned>(
    sections: &Sections,
    name: &str,
) -> Result<Option<T>, String> {
    sections
        .get(name)
        .map(|json| serde_json::from_str(json).map_err(|e| format!("section {name}: {e}")))
        .transpose()
}

/// The sections of `config` as JSON, secrets redacted unless `expose`.
/// Serializing the model cannot fail (plain data, string keys); a section
/// that somehow did is returned as `null` rather than dropped.
pub fn sections(config: &model::Config, expose: bool) -> Sections {
    let value = if expose {
        with_secrets_exposed(|| serde_json::to_value(config))
    } else {
        serde_json::to_value(config)
    };
    let mut object = match value {
        Ok(serde_json::Value::Object(o)) => o,
        _ => serde_json::Map::new(),
    };
    SECTIONS
        .iter()
        .map(|name| {
            let v = object.remove(*name).unwrap_or(serde_json::Value::Null);
            (name.to_string(), v.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SecretsFile, SourceFile, check_pair};

    #[test]
    fn every_section_is_a_model_field() {
        let public = SourceFile::new("oxwrt.toml", include_str!("../../../config/oxwrt.toml"));
        let loaded = check_pair(&public, SecretsFile::Unchecked("oxwrt.secrets.toml"))
            .expect("cookbook validates");
        let value = serde_json::to_value(&loaded.config).expect("serializes");
        let keys: Vec<&str> = value
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, SECTIONS);
    }

    #[test]
    fn sections_parse_back_into_the_model() {
        let public = SourceFile::new("oxwrt.toml", include_str!("../../../config/oxwrt.toml"));
        let secrets = SourceFile::new(
            "oxwrt.secrets.toml",
            include_str!("../../../config/oxwrt.secrets.toml.example"),
        );
        let Ok(loaded) = check_pair(&public, SecretsFile::Present(&secrets)) else {
            panic!("cookbook invalid");
        };
        let exposed = sections(&loaded.config, true);
        // One section by its own type, as a daemon reads it...
        let networks: Vec<model::Network> = section(&exposed, "networks")
            .expect("parses")
            .expect("present");
        assert_eq!(networks.len(), loaded.config.networks.len());
        assert_eq!(section::<u32>(&exposed, "nope"), Ok(None));
        // ...and all of them: the round trip loses nothing, secrets included.
        let whole = format!(
            "{{{}}}",
            exposed
                .iter()
                .map(|(k, v)| format!("{k:?}:{v}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let back: model::Config = serde_json::from_str(&whole).expect("parses");
        assert_eq!(sections(&back, true), exposed);
    }

    #[test]
    fn secrets_show_only_when_exposed() {
        let public = SourceFile::new("oxwrt.toml", include_str!("../../../config/oxwrt.toml"));
        let secrets = SourceFile::new(
            "oxwrt.secrets.toml",
            include_str!("../../../config/oxwrt.secrets.toml.example"),
        );
        let loaded = check_pair(&public, SecretsFile::Present(&secrets));
        let Ok(loaded) = loaded else {
            panic!("{loaded:?}");
        };
        let value = "correct horse battery staple";
        assert!(secrets.text().contains(value), "example secret changed");
        assert!(!sections(&loaded.config, false)["wifi"].contains(value));
        assert!(sections(&loaded.config, true)["wifi"].contains(value));
        assert!(!sections(&loaded.config, false)["wifi"].contains(value));
    }
}
