//! Who may own which name and call which method: the one table both the
//! broker policy and each daemon's own caller check are made from.

/// uid of root: oxinit, configd and the broker run as root in this
/// release (configd must read the operator's root-owned 0600 secrets
/// file and replace files in `$ETC`); the isolation work bounds their
/// capabilities.
pub const ROOT_UID: u32 = 0;

/// A daemon on the bus: its well-known name, the uid it runs as, and the
/// config sections it consumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    /// Service name as oxinit knows it.
    pub service: &'static str,
    /// Well-known bus name, only ownable by `uid`.
    pub name: &'static str,
    /// The uid it runs as.
    pub uid: u32,
    /// Config sections it consumes: configd calls its `Daemon1` when one
    /// of them changes.
    pub sections: &'static [&'static str],
    /// Of those, the sections whose secrets it receives resolved.
    pub secret_sections: &'static [&'static str],
}

/// uid of ctld, the only non-root caller of mutating methods.
pub const CTLD_UID: u32 = 7106;

/// Every principal. uids 7100-7199 are oxwrt's; numeric, because the
/// firmware has no passwd database for them.
pub const PRINCIPALS: &[Principal] = &[
    Principal {
        service: "oxinit",
        name: "org.oxwrt.Init",
        uid: ROOT_UID,
        // Container services: `[[services]]`, and the LANs isolated ones
        // join.
        sections: &["services", "networks"],
        secret_sections: &[],
    },
    Principal {
        service: "configd",
        name: "org.oxwrt.Config",
        uid: ROOT_UID,
        sections: &[],
        secret_sections: &[],
    },
    Principal {
        service: "netd",
        name: "org.oxwrt.Net",
        uid: 7101,
        sections: &["networks", "routes", "wireguard"],
        secret_sections: &["networks", "wireguard"],
    },
    Principal {
        service: "fwd",
        name: "org.oxwrt.Firewall",
        uid: 7102,
        // `networks`: the devices behind each zone.
        sections: &["networks", "firewall", "port_forwards"],
        secret_sections: &[],
    },
    Principal {
        service: "dhcpd",
        name: "org.oxwrt.Dhcp",
        uid: 7103,
        // `networks`: each pool's subnet, server address and device.
        sections: &["networks", "dhcp"],
        secret_sections: &[],
    },
    Principal {
        service: "dnsd",
        name: "org.oxwrt.Dns",
        uid: 7104,
        // `system`: the router's name; `networks`: the LAN addresses to
        // serve and answer PTR for; `dhcp`: static leases' names.
        sections: &["system", "networks", "dhcp", "dns"],
        secret_sections: &[],
    },
    Principal {
        service: "wifid",
        name: "org.oxwrt.Wifi",
        uid: 7105,
        sections: &["wifi"],
        secret_sections: &["wifi"],
    },
    Principal {
        service: "ctld",
        name: "org.oxwrt.Control",
        uid: CTLD_UID,
        // `networks`: the addresses of the networks it listens on;
        // `system`: the hostname `status` reports.
        sections: &["control", "networks", "system"],
        secret_sections: &[],
    },
];

/// The principal of a service.
pub fn by_service(service: &str) -> Option<&'static Principal> {
    PRINCIPALS.iter().find(|p| p.service == service)
}

/// Methods closed to most uids: those that change state, and those that
/// read what only operators may see (other services' output).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restricted {
    /// Interface.
    pub interface: &'static str,
    /// Member names.
    pub members: &'static [&'static str],
    /// uids allowed to call them.
    pub callers: &'static [u32],
}

/// Every restricted method. Everything else on an oxwrt interface reads
/// and may be called by any uid allowed on the bus.
pub const RESTRICTED: &[Restricted] = &[
    Restricted {
        interface: "org.oxwrt.Init1",
        // Logs: a service's output can say more than its bus interface.
        members: &["Restart", "Stop", "Start", "Logs", "LogsSince"],
        callers: &[ROOT_UID, CTLD_UID],
    },
    Restricted {
        interface: "org.oxwrt.Config1",
        // Export: the pair with its secrets.
        members: &["Reload", "Push", "Confirm", "Rollback", "Export"],
        callers: &[ROOT_UID, CTLD_UID],
    },
    Restricted {
        interface: "org.oxwrt.Daemon1",
        members: &["Check", "Apply"],
        callers: &[ROOT_UID],
    },
    Restricted {
        interface: "org.oxwrt.Dns1",
        members: &["Flush"],
        callers: &[ROOT_UID, CTLD_UID],
    },
    Restricted {
        interface: "org.oxwrt.Dhcp1",
        members: &["RestoreLeases"],
        callers: &[ROOT_UID, CTLD_UID],
    },
    Restricted {
        // Setting a property is a mutation too; no oxwrt property is
        // writable, so nobody but root gets this far.
        interface: "org.freedesktop.DBus.Properties",
        members: &["Set"],
        callers: &[ROOT_UID],
    },
];

/// May `uid` call `member` of `interface`? Members not in [`RESTRICTED`]
/// are open to every uid on the bus.
pub fn may_call(uid: u32, interface: &str, member: &str) -> bool {
    RESTRICTED
        .iter()
        .find(|m| m.interface == interface && m.members.contains(&member))
        .is_none_or(|m| m.callers.contains(&uid))
}

/// The uids allowed to connect to the bus at all.
pub fn bus_uids() -> Vec<u32> {
    let mut uids: Vec<u32> = PRINCIPALS.iter().map(|p| p.uid).collect();
    uids.sort_unstable();
    uids.dedup();
    uids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_are_closed_and_reads_are_open() {
        assert!(may_call(ROOT_UID, "org.oxwrt.Config1", "Reload"));
        assert!(may_call(CTLD_UID, "org.oxwrt.Config1", "Reload"));
        assert!(!may_call(7101, "org.oxwrt.Config1", "Reload"));
        assert!(!may_call(CTLD_UID, "org.oxwrt.Daemon1", "Apply"));
        assert!(may_call(7101, "org.oxwrt.Config1", "GetSection"));
        assert!(!may_call(7101, "org.oxwrt.Init1", "Logs"));
        assert!(may_call(CTLD_UID, "org.oxwrt.Dns1", "Flush"));
        assert!(!may_call(7101, "org.oxwrt.Dns1", "Flush"));
        assert!(may_call(CTLD_UID, "org.oxwrt.Dhcp1", "RestoreLeases"));
        assert!(!may_call(7105, "org.oxwrt.Dhcp1", "RestoreLeases"));
        assert!(may_call(7105, "org.oxwrt.Dhcp1", "Leases"));
    }

    #[test]
    fn names_and_services_are_unique() {
        for (i, p) in PRINCIPALS.iter().enumerate() {
            for q in &PRINCIPALS[i + 1..] {
                assert_ne!(p.name, q.name);
                assert_ne!(p.service, q.service);
            }
            for s in p.secret_sections {
                assert!(p.sections.contains(s), "{}: {s}", p.service);
            }
        }
    }
}
