//! What a change looks like to an operator: a unified diff per section,
//! in TOML, secrets redacted.

use bus_schema::config::model;

/// One `(section, unified diff)` per section in `changed`.
pub fn sections(
    old: &model::Config,
    new: &model::Config,
    changed: &[&str],
) -> Vec<(String, String)> {
    let (old, new) = (as_table(old), as_table(new));
    changed
        .iter()
        .map(|name| {
            let (a, b) = (section_toml(&old, name), section_toml(&new, name));
            let diff = similar::TextDiff::from_lines(&a, &b)
                .unified_diff()
                .context_radius(3)
                .header(&format!("running/{name}"), &format!("new/{name}"))
                .to_string();
            (name.to_string(), diff)
        })
        .collect()
}

fn as_table(config: &model::Config) -> toml::Table {
    toml::Table::try_from(config).unwrap_or_default()
}

fn section_toml(table: &toml::Table, name: &str) -> String {
    let mut one = toml::Table::new();
    if let Some(v) = table.get(name) {
        one.insert(name.to_string(), v.clone());
    }
    toml::to_string_pretty(&one).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generation::Generation;
    use crate::store::Pair;

    #[test]
    fn a_changed_value_shows_as_a_line_pair() {
        let g = |cache: u32| {
            let pair = Pair {
                public: format!("version = 1\n[dns]\ncache_size = {cache}\n"),
                secrets: String::new(),
            };
            Generation::from_snapshot(1, pair, b"k")
                .expect("valid")
                .config
        };
        let diff = sections(&g(100), &g(200), &["dns"]);
        assert_eq!(diff.len(), 1);
        assert!(diff[0].1.contains("-cache_size = 100\n"), "{}", diff[0].1);
        assert!(diff[0].1.contains("+cache_size = 200\n"), "{}", diff[0].1);
    }
}
