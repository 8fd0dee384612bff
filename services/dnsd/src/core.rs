//! The daemon's state: the config sections, the DHCP leases dhcpd
//! reported, the WAN's DNS servers netd reported, and the listeners.
//! Config applies, lease changes and WAN changes all go through here
//! (behind one lock), and each refreshes what it changed in the shared
//! resolver state.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bus_schema::bus::{DhcpLease, LeaseChange};
use bus_schema::config::Sections;

use crate::blocklist::{Blocklist, BlocklistError};
use crate::resolver::Policy;
use crate::server::{Listeners, ServerError, Shared};
use crate::settings::{Config, Settings, SettingsError};
use crate::upstream::{Source, Upstream};
use crate::zone::Zone;

/// Errors of [`Core`].
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The sections do not make settings.
    #[error("{0}")]
    Settings(#[from] SettingsError),
    /// A blocklist cannot be read.
    #[error("{0}")]
    Blocklist(#[from] BlocklistError),
    /// A listener cannot be bound.
    #[error("{0}")]
    Listen(#[from] ServerError),
}

/// dnsd's state.
#[derive(Debug)]
pub struct Core {
    config: Config,
    settings: Option<Settings>,
    /// Leases by MAC address.
    leases: BTreeMap<String, DhcpLease>,
    wan_dns: Vec<IpAddr>,
    shared: Arc<Shared>,
    listeners: Listeners,
    blocklist_loaded: bool,
}

impl Core {
    /// A core serving on `port` (53 but in tests), with nothing applied.
    pub fn new(shared: Arc<Shared>, port: u16) -> Self {
        Self {
            config: Config::default(),
            settings: None,
            leases: BTreeMap::new(),
            wan_dns: Vec::new(),
            shared,
            listeners: Listeners::new(port),
            blocklist_loaded: false,
        }
    }

    /// Could these sections be applied? Reads the blocklists when `dns`
    /// is among them; binds nothing.
    pub fn check(&self, sections: &Sections) -> Result<(), CoreError> {
        let config = self.config.merged(sections)?;
        if let Some(s) = config.settings()? {
            if sections.contains_key("dns") {
                Blocklist::load(&s.blocklists)?;
            }
        }
        Ok(())
    }

    /// Applies these sections (the others stay as they were). Needs a
    /// tokio runtime (it starts listeners).
    pub fn apply(&mut self, sections: &Sections) -> Result<(), CoreError> {
        let config = self.config.merged(sections)?;
        let Some(settings) = config.settings()? else {
            self.config = config;
            return Ok(());
        };
        let blocklist = if sections.contains_key("dns") || !self.blocklist_loaded {
            Some(Arc::new(Blocklist::load(&settings.blocklists)?))
        } else {
            None
        };
        let addrs: Vec<IpAddr> = settings.listen.iter().map(|l| l.address).collect();
        self.listeners.set(&addrs, &self.shared)?;
        {
            let mut st = self.shared.lock();
            if let Some(b) = blocklist {
                st.resolver.set_blocklist(b);
                self.blocklist_loaded = true;
            }
            let policy = Policy {
                rebind_protection: settings.rebind_protection,
                rebind_allow: settings.rebind_allow.clone(),
                block_response: settings.block_response,
            };
            st.resolver.set_policy(policy, settings.cache_size);
            st.subnets = settings.subnets();
        }
        self.config = config;
        self.settings = Some(settings);
        self.refresh_zone();
        self.refresh_upstreams();
        Ok(())
    }

    /// dhcpd's whole lease table (at start, or when dhcpd restarted).
    pub fn set_leases(&mut self, leases: Vec<DhcpLease>) {
        self.leases = leases.into_iter().map(|l| (l.mac.clone(), l)).collect();
        self.refresh_zone();
    }

    /// Changes dhcpd signalled.
    pub fn lease_changes(&mut self, changes: Vec<LeaseChange>) {
        for c in changes {
            match c.event.as_str() {
                "granted" | "renewed" => {
                    self.leases.insert(c.lease.mac.clone(), c.lease);
                }
                _ => {
                    // Only the lease that ended: the client may hold a
                    // newer one already.
                    if self
                        .leases
                        .get(&c.lease.mac)
                        .is_some_and(|l| l.ip == c.lease.ip)
                    {
                        self.leases.remove(&c.lease.mac);
                    }
                }
            }
        }
        self.refresh_zone();
    }

    /// The DNS servers netd learned on the WAN.
    pub fn set_wan_dns(&mut self, dns: Vec<IpAddr>) {
        if dns != self.wan_dns {
            tracing::info!(?dns, "WAN DNS servers");
            self.wan_dns = dns;
            self.refresh_upstreams();
        }
    }

    fn refresh_zone(&self) {
        if let Some(s) = &self.settings {
            let zone = Zone::build(s, self.leases.values());
            self.shared.lock().resolver.set_zone(zone);
        }
    }

    fn refresh_upstreams(&self) {
        let Some(s) = &self.settings else { return };
        let list: Vec<Upstream> = if s.upstreams.is_empty() {
            self.wan_dns
                .iter()
                .map(|ip| Upstream {
                    address: SocketAddr::new(*ip, 53),
                    tcp: false,
                    source: Source::Wan,
                })
                .collect()
        } else {
            s.upstreams
                .iter()
                .map(|u| Upstream {
                    address: u.address,
                    tcp: u.tcp,
                    source: Source::Config,
                })
                .collect()
        };
        let addrs: Vec<SocketAddr> = list.iter().map(|u| u.address).collect();
        self.shared.lock().upstreams.set(list);
        self.shared.pool.retain(&addrs);
    }
}
