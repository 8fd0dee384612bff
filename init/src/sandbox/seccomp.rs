//! The seccomp policies of `init/sandbox/seccomp.toml`, compiled into BPF
//! at build time (`init/build.rs`), looked up by name.

use seccompiler::sock_filter;

#[allow(clippy::unreadable_literal)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/seccomp.rs"));
}

/// Is `name` a policy of `seccomp.toml`? (Also on an architecture
/// seccompiler cannot compile for, where [`program`] finds nothing.)
pub fn exists(name: &str) -> bool {
    generated::NAMES.contains(&name)
}

/// Are the policies compiled for this architecture?
pub fn compiled() -> bool {
    !generated::POLICIES.is_empty()
}

/// The compiled program of policy `name` for this architecture.
pub fn program(name: &str) -> Option<&'static [sock_filter]> {
    generated::POLICIES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, p)| *p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_declared_policy_is_compiled_for_this_architecture() {
        let compiled: Vec<_> = generated::POLICIES.iter().map(|(n, _)| *n).collect();
        assert_eq!(compiled, generated::NAMES);
        for name in generated::NAMES {
            let p = program(name).expect("compiled");
            // A real allow-list: dozens of syscalls, each a few instructions.
            assert!(p.len() > 50, "{name}: {} instructions", p.len());
        }
        assert!(!exists("nope"));
    }
}
