//! What netd's integration tests share: a throwaway network namespace
//! (`oxwrt_lab::scratch`, named `oxd-…`) and the root check.

pub use oxwrt_lab::scratch::Netns;

/// A fresh namespace for one test.
pub fn netns() -> Netns {
    Netns::new("oxd")
}

/// Whether the tests can make namespaces; prints `SKIP:` when not.
pub fn root_or_skip() -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        println!("SKIP: needs root (network namespaces)");
    }
    root
}
