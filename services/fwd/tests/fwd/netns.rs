//! Network namespaces for the tests: `oxwrt_lab::scratch`'s throwaway
//! namespaces (named `oxf-…`), `nft` inside them, and the skip check.

use std::process::Command;

pub use oxwrt_lab::scratch::Netns;

/// A fresh namespace for one test.
pub fn netns() -> Netns {
    Netns::new("oxf")
}

/// `nft ARGS` inside a namespace.
pub trait Nft {
    /// Its stdout; the command must succeed.
    fn nft(&self, args: &[&str]) -> String;
}

impl Nft for Netns {
    fn nft(&self, args: &[&str]) -> String {
        self.exec_ok("nft", args)
    }
}

/// Why the kernel tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root (network namespaces, nf_tables)".into());
    }
    for tool in ["ip", "nft"] {
        if Command::new(tool).arg("-V").output().is_err() {
            return Some(format!("{tool} is not installed"));
        }
    }
    None
}

/// Returns early from a test, printing `SKIP:`, when the kernel tests
/// cannot run.
macro_rules! require_root {
    () => {
        if let Some(reason) = crate::netns::skip_reason() {
            oxwrt_lab::testing::skip(&reason);
            return;
        }
    };
}
pub(crate) use require_root;
