//! The landlock ruleset of a service, built before fork from its files
//! profile; the child only calls `landlock_restrict_self` on it.

use std::{os::fd::OwnedFd, path::Path};

use landlock::{
    ABI, Access, AccessFs, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetError, Scope,
};

/// The newest ABI whose rights the profiles were written and tested
/// against. An older kernel enforces what it knows (best effort); a
/// newer one's extra rights stay unhandled, so they cannot deny what a
/// profile never mentions.
const ABI_FS: ABI = ABI::V5;
/// Scopes (ABI 6): no signals to processes outside the sandbox, no
/// connecting to abstract unix sockets made outside it.
const ABI_SCOPE: ABI = ABI::V6;

/// The ruleset's descriptor, or `None` on a kernel without landlock.
pub fn ruleset(
    read: &[&Path],
    execute: &[&Path],
    write: &[&Path],
) -> Result<Option<OwnedFd>, RulesetError> {
    let mut created = Ruleset::default()
        .handle_access(AccessFs::from_all(ABI_FS))?
        .scope(Scope::from_all(ABI_SCOPE))?
        .create()?;
    // Writable, but nothing written there can be run.
    let write_rights = AccessFs::from_all(ABI_FS) & !AccessFs::Execute;
    let rights = [
        (read, AccessFs::ReadFile | AccessFs::ReadDir),
        (execute, AccessFs::from_read(ABI_FS)),
        (write, write_rights),
    ];
    for (paths, access) in rights {
        for path in paths {
            // A path this system lacks (no /lib64, no /etc/localtime) is
            // skipped: there is nothing there to reach.
            let Ok(fd) = PathFd::new(path) else { continue };
            created = created.add_rule(PathBeneath::new(fd, access))?;
        }
    }
    Ok(created.into())
}
