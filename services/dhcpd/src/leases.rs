//! The lease table: which client (by MAC, per network) holds which address
//! until when, looked up both ways; short reservations for outstanding
//! offers; and addresses quarantined after a DHCPDECLINE.
//!
//! Times are whole seconds on one clock the caller chooses (the daemon
//! will use Unix time, so that leases survive a restart).

use std::collections::HashMap;
use std::net::Ipv4Addr;

/// A client's hardware address (chaddr; Ethernet only).
pub type Mac = [u8; 6];

/// One granted lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The client's hardware address.
    pub mac: Mac,
    /// The address it holds.
    pub ip: Ipv4Addr,
    /// Option 12 as the client sent it (or the static lease's name).
    pub hostname: Option<String>,
    /// End of the lease, in seconds.
    pub expires: u64,
    /// The LAN network the address belongs to.
    pub network: String,
}

/// Why the table refused a change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// The address is leased to another client.
    #[error("grant {ip}: leased to {holder}")]
    Grant {
        /// The address.
        ip: Ipv4Addr,
        /// The current holder's MAC, printed.
        holder: String,
    },
}

/// Formats a MAC as `02:00:00:00:00:01`.
pub fn mac_string(mac: &Mac) -> String {
    let parts: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(":")
}

/// The lease table of every network.
#[derive(Debug, Clone, Default)]
pub struct Leases {
    by_client: HashMap<(String, Mac), Lease>,
    by_ip: HashMap<Ipv4Addr, (String, Mac)>,
    /// Offered, not yet requested: address -> (client, until).
    offers: HashMap<Ipv4Addr, (Mac, u64)>,
    /// Declined: address -> until.
    quarantine: HashMap<Ipv4Addr, u64>,
    /// Per network, where the next search for a free address starts.
    cursors: HashMap<String, u32>,
}

impl Leases {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The lease of `mac` on `network`, expired or not.
    pub fn by_mac(&self, network: &str, mac: &Mac) -> Option<&Lease> {
        self.by_client.get(&(network.to_string(), *mac))
    }

    /// The lease on `ip`, expired or not.
    pub fn by_ip(&self, ip: Ipv4Addr) -> Option<&Lease> {
        self.by_ip.get(&ip).and_then(|k| self.by_client.get(k))
    }

    /// Every lease, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Lease> {
        self.by_client.values()
    }

    /// Number of leases.
    pub fn len(&self) -> usize {
        self.by_client.len()
    }

    /// Whether the table holds no lease.
    pub fn is_empty(&self) -> bool {
        self.by_client.is_empty()
    }

    /// Whether `ip` is held by a client other than `mac` at `now`: an
    /// unexpired lease or an outstanding offer.
    pub fn held_by_other(&self, ip: Ipv4Addr, mac: &Mac, now: u64) -> bool {
        let leased = self
            .by_ip(ip)
            .is_some_and(|l| l.mac != *mac && l.expires > now);
        let offered = self
            .offers
            .get(&ip)
            .is_some_and(|(m, until)| m != mac && *until > now);
        leased || offered
    }

    /// Whether `ip` has ever been leased and the record is still here
    /// (expired or not); free addresses without a record are preferred.
    pub fn has_record(&self, ip: Ipv4Addr) -> bool {
        self.by_ip.contains_key(&ip)
    }

    /// Records (or replaces) a lease. The client's previous lease on the
    /// same network, on another address, is dropped. Refused when another
    /// client holds the address unexpired at `now`.
    pub fn grant(&mut self, lease: Lease, now: u64) -> Result<(), LeaseError> {
        if let Some(holder) = self.by_ip(lease.ip)
            && holder.mac != lease.mac
            && holder.expires > now
        {
            return Err(LeaseError::Grant {
                ip: lease.ip,
                holder: mac_string(&holder.mac),
            });
        }
        self.insert(lease);
        Ok(())
    }

    /// Records a lease without checking (restoring from the journal).
    /// Whatever held the same client or address before is dropped.
    pub fn insert(&mut self, lease: Lease) {
        let key = (lease.network.clone(), lease.mac);
        if let Some(old) = self.by_client.remove(&key) {
            self.by_ip.remove(&old.ip);
        }
        if let Some(other) = self.by_ip.remove(&lease.ip) {
            self.by_client.remove(&other);
        }
        self.offers.remove(&lease.ip);
        self.by_ip.insert(lease.ip, key.clone());
        self.by_client.insert(key, lease);
    }

    /// Removes the lease of `mac` on `network` when it is on `ip`.
    pub fn release(&mut self, network: &str, mac: &Mac, ip: Ipv4Addr) -> Option<Lease> {
        let key = (network.to_string(), *mac);
        if self.by_client.get(&key)?.ip != ip {
            return None;
        }
        self.by_ip.remove(&ip);
        self.by_client.remove(&key)
    }

    /// Where the next search for a free address on `network` starts (0:
    /// the range's start).
    pub fn cursor(&self, network: &str) -> u32 {
        self.cursors.get(network).copied().unwrap_or(0)
    }

    /// Sets where the next search on `network` starts.
    pub fn set_cursor(&mut self, network: &str, ip: u32) {
        if let Some(c) = self.cursors.get_mut(network) {
            *c = ip;
        } else {
            self.cursors.insert(network.to_string(), ip);
        }
    }

    /// Reserves `ip` for `mac` until `until` (an outstanding offer).
    pub fn reserve(&mut self, ip: Ipv4Addr, mac: Mac, until: u64) {
        self.offers.insert(ip, (mac, until));
    }

    /// Drops `mac`'s offer reservations (it chose another server).
    pub fn unreserve(&mut self, mac: &Mac) {
        self.offers.retain(|_, (m, _)| m != mac);
    }

    /// Keeps `ip` from being handed out until `until`.
    pub fn quarantine(&mut self, ip: Ipv4Addr, until: u64) {
        self.quarantine.insert(ip, until);
    }

    /// Whether `ip` is quarantined at `now`.
    pub fn is_quarantined(&self, ip: Ipv4Addr, now: u64) -> bool {
        self.quarantine.get(&ip).is_some_and(|until| *until > now)
    }

    /// Removes every lease that ended at or before `now` (returned, for
    /// the "expired" signal), and stale offers and quarantines.
    pub fn expire(&mut self, now: u64) -> Vec<Lease> {
        let gone: Vec<(String, Mac)> = self
            .by_client
            .iter()
            .filter(|(_, l)| l.expires <= now)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::with_capacity(gone.len());
        for key in gone {
            if let Some(lease) = self.by_client.remove(&key) {
                self.by_ip.remove(&lease.ip);
                out.push(lease);
            }
        }
        self.offers.retain(|_, (_, until)| *until > now);
        self.quarantine.retain(|_, until| *until > now);
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn lease(mac: u8, ip: [u8; 4], expires: u64) -> Lease {
        Lease {
            mac: [2, 0, 0, 0, 0, mac],
            ip: Ipv4Addr::from(ip),
            hostname: None,
            expires,
            network: "lan".into(),
        }
    }

    #[test]
    fn grant_indexes_both_ways_and_moves_a_client() {
        let mut t = Leases::new();
        t.grant(lease(1, [10, 0, 0, 10], 100), 0).expect("grant");
        assert_eq!(
            t.by_ip(Ipv4Addr::new(10, 0, 0, 10)).map(|l| l.mac[5]),
            Some(1)
        );
        t.grant(lease(1, [10, 0, 0, 11], 100), 0).expect("move");
        assert!(t.by_ip(Ipv4Addr::new(10, 0, 0, 10)).is_none());
        assert_eq!(
            t.by_mac("lan", &[2, 0, 0, 0, 0, 1]).map(|l| l.ip),
            Some(Ipv4Addr::new(10, 0, 0, 11))
        );
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn grant_refuses_an_address_held_by_another_client() {
        let mut t = Leases::new();
        t.grant(lease(1, [10, 0, 0, 10], 100), 0).expect("grant");
        let err = t.grant(lease(2, [10, 0, 0, 10], 100), 50);
        assert!(matches!(err, Err(LeaseError::Grant { .. })));
        // Once expired, it can go to someone else.
        t.grant(lease(2, [10, 0, 0, 10], 300), 100)
            .expect("after expiry");
        assert!(t.by_mac("lan", &[2, 0, 0, 0, 0, 1]).is_none());
    }

    #[test]
    fn release_needs_the_matching_address() {
        let mut t = Leases::new();
        t.grant(lease(1, [10, 0, 0, 10], 100), 0).expect("grant");
        let mac = [2, 0, 0, 0, 0, 1];
        assert!(
            t.release("lan", &mac, Ipv4Addr::new(10, 0, 0, 99))
                .is_none()
        );
        assert!(
            t.release("lan", &mac, Ipv4Addr::new(10, 0, 0, 10))
                .is_some()
        );
        assert!(t.is_empty());
    }

    #[test]
    fn expire_returns_ended_leases_and_drops_quarantine() {
        let mut t = Leases::new();
        t.grant(lease(1, [10, 0, 0, 10], 100), 0).expect("grant");
        t.grant(lease(2, [10, 0, 0, 11], 200), 0).expect("grant");
        t.quarantine(Ipv4Addr::new(10, 0, 0, 12), 150);
        assert!(t.is_quarantined(Ipv4Addr::new(10, 0, 0, 12), 149));
        let gone = t.expire(150);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].mac[5], 1);
        assert!(!t.is_quarantined(Ipv4Addr::new(10, 0, 0, 12), 0));
    }

    #[test]
    fn offers_hold_an_address_for_their_client_only() {
        let mut t = Leases::new();
        let ip = Ipv4Addr::new(10, 0, 0, 10);
        t.reserve(ip, [2, 0, 0, 0, 0, 1], 60);
        assert!(t.held_by_other(ip, &[2, 0, 0, 0, 0, 2], 10));
        assert!(!t.held_by_other(ip, &[2, 0, 0, 0, 0, 1], 10));
        assert!(!t.held_by_other(ip, &[2, 0, 0, 0, 0, 2], 60));
        t.unreserve(&[2, 0, 0, 0, 0, 1]);
        assert!(!t.held_by_other(ip, &[2, 0, 0, 0, 0, 2], 10));
    }
}
