//! What netd's integration tests share: a throwaway network namespace
//! (`oxwrt_lab::scratch`, named `oxd-…`) and the root check.

pub use oxwrt_lab::scratch::Netns;

/// A fresh namespace for one test.
pub fn netns() -> Netns {
    Netns::new("oxd")
}

pub use oxwrt_lab::testing::root_or_skip;
