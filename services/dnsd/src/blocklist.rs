//! Blocklists: files of domains, one per line, either plain (`ads.example`)
//! or in hosts-file form (`0.0.0.0 ads.example`, several names allowed);
//! `#` starts a comment. A listed domain blocks itself and every name
//! under it.

use std::collections::HashSet;
use std::net::IpAddr;

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum BlocklistError {
    /// A file could not be read.
    #[error("read blocklist {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Names that hosts files list for the machine itself, never blocked.
const HOSTS_SELF: &[&str] = &[
    "localhost",
    "localhost.localdomain",
    "local",
    "broadcasthost",
    "ip6-localhost",
    "ip6-loopback",
    "ip6-localnet",
    "ip6-mcastprefix",
    "ip6-allnodes",
    "ip6-allrouters",
    "ip6-allhosts",
];

/// The blocked domains.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blocklist {
    domains: HashSet<Box<str>>,
}

/// A domain from a list as dnsd compares it: lower-case, no final dot,
/// no leading `*.`; `None` when it is not a plausible domain.
fn domain(token: &str) -> Option<String> {
    let d = token
        .trim_start_matches("*.")
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let ok = !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        && !HOSTS_SELF.contains(&d.as_str());
    ok.then_some(d)
}

impl Blocklist {
    /// Adds the domains of one file's text; returns how many lines gave a
    /// domain.
    pub fn add_text(&mut self, text: &str) -> usize {
        let mut added = 0;
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let tokens: Vec<&str> = line.split_whitespace().collect();
            let names = match tokens.as_slice() {
                [ip, names @ ..] if ip.parse::<IpAddr>().is_ok() => names,
                // A plain line holds one domain; anything else is skipped.
                [_] => &tokens[..],
                _ => &[],
            };
            let mut any = false;
            for t in names {
                if let Some(d) = domain(t) {
                    self.domains.insert(d.into_boxed_str());
                    any = true;
                }
            }
            added += usize::from(any);
        }
        added
    }

    /// The union of these files.
    pub fn load(paths: &[String]) -> Result<Self, BlocklistError> {
        let mut list = Self::default();
        for path in paths {
            let text = std::fs::read_to_string(path).map_err(|source| BlocklistError::Read {
                path: path.clone(),
                source,
            })?;
            let n = list.add_text(&text);
            tracing::info!(path, domains = n, "blocklist loaded");
        }
        Ok(list)
    }

    /// Number of blocked domains.
    pub fn len(&self) -> usize {
        self.domains.len()
    }

    /// Whether nothing is blocked.
    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    /// Is `name` (lower-case, no final dot) or a domain above it listed?
    pub fn blocks(&self, name: &str) -> bool {
        if self.domains.is_empty() {
            return false;
        }
        let mut rest = name;
        loop {
            if self.domains.contains(rest) {
                return true;
            }
            match rest.split_once('.') {
                Some((_, parent)) => rest = parent,
                None => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_hosts_lines_with_comments() {
        let mut b = Blocklist::default();
        let n = b.add_text(
            "# a list\nads.example\n0.0.0.0 Track.Example. other.example # two\n\
             127.0.0.1 localhost\n:: ipv6.example\n*.wild.example\n\n  # nothing\nnot a domain!\n",
        );
        assert_eq!(n, 4);
        assert_eq!(b.len(), 5);
        for blocked in [
            "ads.example",
            "x.ads.example",
            "track.example",
            "a.b.other.example",
            "ipv6.example",
            "wild.example",
        ] {
            assert!(b.blocks(blocked), "{blocked}");
        }
        for open in ["example", "notads.example", "localhost", "domain!"] {
            assert!(!b.blocks(open), "{open}");
        }
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let e = Blocklist::load(&["/nonexistent/oxwrt-blocklist".into()]);
        assert!(matches!(e, Err(BlocklistError::Read { .. })));
    }
}
