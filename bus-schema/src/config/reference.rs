//! The config reference (`docs/config.md`), generated from the JSON Schema
//! so that the documentation can never drift from the wire structs: a test
//! compares the committed file with this output.

use std::fmt::Write as _;

use serde_json::Value;

use super::json_schema;

const INTRO: &str = "\
# Config reference

<!-- Generated from the schema by `oxctl schema --markdown`; a test fails when this file is stale. -->

The router is described by two files in `/etc/oxwrt`:

- `oxwrt.toml`, everything that may be published, starting with `version = 1`;
- `oxwrt.secrets.toml`, mode 0600 (or 0400): a flat table of `NAME = \"value\"`
  secrets. Fields that take a secret are written `{ secret = \"NAME\" }` in
  `oxwrt.toml`; a secret value written there directly is an error that says
  where it belongs. Secrets print as `<redacted>` everywhere.

`oxctl validate` reports every error at once as `FILE:LINE:COL: PATH: MESSAGE`.
`oxctl schema` prints the JSON Schema for editors. The annotated cookbook
`config/oxwrt.toml` uses every section.
";

/// Renders the reference as Markdown.
pub fn reference_markdown() -> String {
    let schema = json_schema();
    let mut out = String::from(INTRO);
    let mut queue: Vec<(String, Value)> = vec![(String::new(), schema.clone())];
    while !queue.is_empty() {
        let (path, obj) = queue.remove(0);
        render_table(&mut out, &path, &obj, &schema, &mut queue);
    }
    out
}

/// Follows a `$ref` into `$defs`.
fn resolve<'a>(v: &'a Value, root: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .strip_prefix("#/$defs/")
            .and_then(|name| root.get("$defs").and_then(|d| d.get(name)))
            .unwrap_or(v),
        None => v,
    }
}

/// Strips `Option`'s `null` alternative.
fn non_null<'a>(v: &'a Value, root: &'a Value) -> &'a Value {
    if let Some(alts) = v.get("anyOf").and_then(Value::as_array) {
        let rest: Vec<&Value> = alts
            .iter()
            .filter(|a| a.get("type").and_then(Value::as_str) != Some("null"))
            .collect();
        if let [only] = rest.as_slice() {
            return resolve(only, root);
        }
    }
    resolve(v, root)
}

fn is_table(v: &Value) -> bool {
    v.get("properties").is_some()
}

fn one_line(s: &str) -> String {
    s.split("\n\n")
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

fn type_name(v: &Value, root: &Value) -> String {
    let v = non_null(v, root);
    if let Some(values) = v.get("enum").and_then(Value::as_array) {
        return values
            .iter()
            .map(|e| format!("`{}`", e.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(" \\| ");
    }
    if let Some(alts) = v
        .get("oneOf")
        .or_else(|| v.get("anyOf"))
        .and_then(Value::as_array)
    {
        return alts
            .iter()
            .map(|a| match a.get("const") {
                Some(Value::String(c)) => format!("`{c}`"),
                _ => type_name(a, root),
            })
            .collect::<Vec<_>>()
            .join(" \\| ");
    }
    if v.get("x-secret").is_some() {
        return "secret".into();
    }
    if is_table(v) {
        return "table".into();
    }
    // `Option<T>` of a plain type is `"type": [T, "null"]`.
    let ty = match v.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("value"),
        _ => "value",
    };
    match ty {
        "array" => match v.get("items").map(|i| non_null(i, root)) {
            Some(i) if is_table(i) && i.get("x-secret").is_none() => "array of tables".into(),
            Some(i) => format!("array of {}", type_name(i, root)),
            None => "array".into(),
        },
        "object" => "table of strings".into(),
        other => other.to_string(),
    }
}

fn render_table(
    out: &mut String,
    path: &str,
    obj: &Value,
    root: &Value,
    queue: &mut Vec<(String, Value)>,
) {
    let Some(props) = obj.get("properties").and_then(Value::as_object) else {
        return;
    };
    let heading = if path.is_empty() {
        "top level".to_string()
    } else {
        format!("`{path}`")
    };
    let _ = writeln!(out, "\n## {heading}\n");
    if let Some(d) = obj
        .get("description")
        .and_then(Value::as_str)
        .filter(|_| !path.is_empty())
    {
        let _ = writeln!(out, "{}\n", one_line(d));
    }
    let required: Vec<&str> = obj
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    out.push_str("| key | type | default | description |\n|---|---|---|---|\n");
    let bare = path
        .trim_start_matches("[[")
        .trim_end_matches("]]")
        .trim_start_matches('[')
        .trim_end_matches(']');
    for (key, prop) in props {
        let target = non_null(prop, root);
        let default = match prop.get("default") {
            Some(d)
                if !(d.is_null()
                    || d.is_object()
                    || d.as_array().is_some_and(|a| !a.is_empty())) =>
            {
                format!("`{}`", toml_literal(d))
            }
            _ if required.contains(&key.as_str()) => "required".into(),
            _ => String::new(),
        };
        let desc = prop
            .get("description")
            .or_else(|| target.get("description"))
            .and_then(Value::as_str)
            .map(one_line)
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| `{key}` | {} | {default} | {desc} |",
            type_name(prop, root)
        );
        let child = if bare.is_empty() {
            key.clone()
        } else {
            format!("{bare}.{key}")
        };
        if is_table(target) && target.get("x-secret").is_none() {
            queue.push((format!("[{child}]"), target.clone()));
        } else if let Some(item) = target
            .get("items")
            .map(|i| non_null(i, root))
            .filter(|i| is_table(i))
        {
            queue.push((format!("[[{child}]]"), item.clone()));
        }
    }
}

fn toml_literal(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(toml_literal).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}
