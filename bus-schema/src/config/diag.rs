//! Diagnostics that read like a compiler's:
//! `oxwrt.toml:42:7: firewall.rules[3].dest: unknown zone "dmz" (zones: lan, wan)`.
//!
//! Validation names the offending value by its TOML path; [`SourceFile`]
//! turns that path into a line and column using the spans of a second,
//! span-keeping parse of the same text.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The config is refused.
    Error,
    /// The config is accepted, but probably not what was meant.
    Warning,
}

/// One step of a TOML path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// A table key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// A TOML path such as `firewall.rules[3].dest`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Path(Vec<Seg>);

impl Path {
    /// The document root.
    pub fn root() -> Self {
        Self::default()
    }

    /// This path extended by a key.
    pub fn key(&self, key: &str) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_owned()));
        Self(segs)
    }

    /// This path extended by an array index.
    pub fn idx(&self, index: usize) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        Self(segs)
    }

    /// The steps of the path.
    pub fn segments(&self) -> &[Seg] {
        &self.0
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    let bare = !k.is_empty()
                        && k.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                    if bare {
                        f.write_str(k)?;
                    } else {
                        write!(f, "{k:?}")?;
                    }
                }
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A finding about the config, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// File name as the operator gave it.
    pub file: String,
    /// 1-based line and column, when the finding has a place in the file.
    pub position: Option<(usize, usize)>,
    /// TOML path of the offending value; empty for file-level findings.
    pub path: String,
    /// What is wrong, lower-case, no final period.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some((line, col)) = self.position {
            write!(f, ":{line}:{col}")?;
        }
        f.write_str(": ")?;
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every finding of one load, errors first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Whether any finding is an error.
    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    /// The errors.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.severity == Severity::Error)
    }

    /// The warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.severity == Severity::Warning)
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Where a value sits in the text, and the values inside it.
#[derive(Debug, Clone)]
struct SpanNode {
    span: Range<usize>,
    /// Span of the key naming this value, when it has one.
    key_span: Option<Range<usize>>,
    children: Children,
}

#[derive(Debug, Clone)]
enum Children {
    Leaf,
    Table(BTreeMap<String, SpanNode>),
    Array(Vec<SpanNode>),
}

/// A config file's name and text, with a span index for locating paths.
#[derive(Debug, Clone)]
pub struct SourceFile {
    name: String,
    text: String,
    root: Option<SpanNode>,
}

impl SourceFile {
    /// Indexes `text`; a text that does not parse has no index (its parse
    /// error is reported by the typed parse, which has its own span).
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        let text = text.into();
        let root = DeTable::parse(&text).ok().map(|t| SpanNode {
            span: t.span(),
            key_span: None,
            children: table_children(t.get_ref()),
        });
        Self {
            name: name.into(),
            text,
            root,
        }
    }

    /// The file name given at construction.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file's text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// A diagnostic at `path`: at its value when the path exists, else at
    /// the deepest table on the way that does.
    pub fn diag_at(&self, severity: Severity, path: &Path, message: String) -> Diagnostic {
        let offset = self.root.as_ref().map(|root| {
            let mut node = root;
            for seg in path.segments() {
                let next = match (seg, &node.children) {
                    (Seg::Key(k), Children::Table(t)) => t.get(k),
                    (Seg::Index(i), Children::Array(a)) => a.get(*i),
                    _ => None,
                };
                match next {
                    Some(n) => node = n,
                    None => break,
                }
            }
            node.span.start
        });
        Diagnostic {
            severity,
            file: self.name.clone(),
            position: offset.map(|o| self.line_col(o)),
            path: path.to_string(),
            message,
        }
    }

    /// A diagnostic at the key of `path` (for findings about a name rather
    /// than its value); falls back to [`SourceFile::diag_at`].
    pub fn diag_at_key(&self, severity: Severity, path: &Path, message: String) -> Diagnostic {
        let mut node = self.root.as_ref();
        for seg in path.segments() {
            node = node.and_then(|n| match (seg, &n.children) {
                (Seg::Key(k), Children::Table(t)) => t.get(k),
                (Seg::Index(i), Children::Array(a)) => a.get(*i),
                _ => None,
            });
        }
        match node.and_then(|n| n.key_span.clone()) {
            Some(span) => Diagnostic {
                severity,
                file: self.name.clone(),
                position: Some(self.line_col(span.start)),
                path: path.to_string(),
                message,
            },
            None => self.diag_at(severity, path, message),
        }
    }

    /// A diagnostic at a byte span (from a parse error), naming the path of
    /// the innermost value that contains it.
    pub fn diag_at_span(
        &self,
        severity: Severity,
        span: Range<usize>,
        message: String,
    ) -> Diagnostic {
        let mut path = Path::root();
        if let Some(mut node) = self.root.as_ref() {
            'descend: loop {
                let found = match &node.children {
                    Children::Table(t) => t.iter().find_map(|(k, n)| {
                        n.contains(span.start).then(|| (Seg::Key(k.clone()), n))
                    }),
                    Children::Array(a) => a
                        .iter()
                        .enumerate()
                        .find_map(|(i, n)| n.contains(span.start).then_some((Seg::Index(i), n))),
                    Children::Leaf => None,
                };
                match found {
                    Some((seg, n)) => {
                        path.0.push(seg);
                        node = n;
                    }
                    None => break 'descend,
                }
            }
        }
        Diagnostic {
            severity,
            file: self.name.clone(),
            position: Some(self.line_col(span.start)),
            path: path.to_string(),
            message,
        }
    }

    /// A diagnostic about the whole file.
    pub fn diag_file(&self, severity: Severity, message: String) -> Diagnostic {
        Diagnostic {
            severity,
            file: self.name.clone(),
            position: None,
            path: String::new(),
            message,
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = self.text.get(..offset).unwrap_or_default();
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        (line, col)
    }
}

impl SpanNode {
    fn contains(&self, offset: usize) -> bool {
        self.span.contains(&offset)
            || self.key_span.as_ref().is_some_and(|k| k.contains(&offset))
            || match &self.children {
                Children::Leaf => false,
                Children::Table(t) => t.values().any(|n| n.contains(offset)),
                Children::Array(a) => a.iter().any(|n| n.contains(offset)),
            }
    }
}

fn table_children(table: &DeTable<'_>) -> Children {
    Children::Table(
        table
            .iter()
            .map(|(k, v)| {
                let mut node = value_node(v.span(), v.get_ref());
                node.key_span = Some(k.span());
                (k.get_ref().to_string(), node)
            })
            .collect(),
    )
}

fn value_node(span: Range<usize>, value: &DeValue<'_>) -> SpanNode {
    let children = match value {
        DeValue::Table(t) => table_children(t),
        DeValue::Array(a) => Children::Array(
            a.iter()
                .map(|v| value_node(v.span(), v.get_ref()))
                .collect(),
        ),
        _ => Children::Leaf,
    };
    SpanNode {
        span,
        key_span: None,
        children,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_display_quotes_odd_keys() {
        let p = Path::root().key("firewall").key("rules").idx(3).key("dest");
        assert_eq!(p.to_string(), "firewall.rules[3].dest");
        let p = Path::root()
            .key("services")
            .idx(0)
            .key("environment")
            .key("A.B");
        assert_eq!(p.to_string(), r#"services[0].environment."A.B""#);
    }

    #[test]
    fn locates_values_in_arrays_of_tables() {
        let text = "version = 1\n\n[[networks]]\nname = \"lan\"\n\n[[networks]]\nname = \"wan\"\nkind = \"wan\"\n";
        let src = SourceFile::new("oxwrt.toml", text);
        let d = src.diag_at(
            Severity::Error,
            &Path::root().key("networks").idx(1).key("kind"),
            "bad".into(),
        );
        assert_eq!(d.position, Some((8, 8)));
        assert_eq!(d.to_string(), "oxwrt.toml:8:8: networks[1].kind: bad");
    }

    #[test]
    fn missing_key_points_at_its_table() {
        let text = "version = 1\n[system]\nhostname = \"x\"\n";
        let src = SourceFile::new("f.toml", text);
        let d = src.diag_at(
            Severity::Error,
            &Path::root().key("system").key("domain"),
            "m".into(),
        );
        assert_eq!(d.position.map(|p| p.0), Some(2));
    }

    #[test]
    fn span_maps_back_to_path() {
        let text = "version = 1\n[[networks]]\nname = \"lan\"\nkind = \"bogus\"\n";
        let src = SourceFile::new("f.toml", text);
        let start = text.find("\"bogus\"").unwrap_or_default();
        let d = src.diag_at_span(Severity::Error, start..start + 7, "m".into());
        assert_eq!(d.path, "networks[0].kind");
        assert_eq!(d.position, Some((4, 8)));
    }
}
