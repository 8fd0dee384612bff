//! `org.oxwrt.Dns1` at [`bus_schema::bus::DNS_PATH`]: cache statistics,
//! the upstreams and their health, and `Flush()` (root and ctld only).

use std::sync::Arc;
use std::time::Instant;

use bus_schema::bus::{BusError, DnsCacheStats, DnsUpstream, authorize};
use zbus::message::Header;

use crate::server::Shared;

const IFACE: &str = "org.oxwrt.Dns1";

/// The served object.
#[derive(Debug)]
pub struct Dns1 {
    shared: Arc<Shared>,
}

impl Dns1 {
    /// The object for the daemon's shared state.
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[zbus::interface(name = "org.oxwrt.Dns1")]
impl Dns1 {
    /// Cache statistics; `size` and `capacity` count records.
    fn cache_stats(&self) -> DnsCacheStats {
        let s = self.shared.lock().resolver.stats();
        DnsCacheStats {
            size: s.records,
            capacity: s.capacity,
            hits: s.hits,
            misses: s.misses,
        }
    }

    /// Every upstream in use and its health.
    fn upstreams(&self) -> Vec<DnsUpstream> {
        self.shared.lock().upstreams.status(Instant::now())
    }

    /// Empties the cache; returns how many entries were dropped.
    async fn flush(
        &self,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<u64, BusError> {
        authorize(conn, &header, IFACE, "Flush").await?;
        let n = self.shared.lock().resolver.flush();
        tracing::info!(entries = n, "cache flushed");
        Ok(n)
    }
}
