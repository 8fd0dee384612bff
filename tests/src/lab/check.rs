//! Checking a running lab end to end, from inside its namespaces.

use std::time::{Duration, Instant};

use super::{Lab, LabError};
use crate::exec;
use crate::isp::{self, PAGE_MARKER};
use crate::netns;
use crate::plan::{DNS_NAME, ISP_ADDR, ROUTER_LAN_ADDR, ROUTER_WAN_IF, in_wan_pool};
use crate::wait::wait_until;

/// Deadline of each command of [`Lab::check`].
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Results of [`Lab::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabCheck {
    /// The router's WAN address, from the ISP's DHCP pool.
    pub wan_address: String,
    /// The page the router fetched from the ISP.
    pub http_url: String,
    /// The name the router resolved through the ISP's DNS server.
    pub dns_name: String,
    /// What it resolved to.
    pub dns_answer: String,
    /// The LAN client namespaces that pinged the router's LAN address.
    pub lan_pinged: Vec<String>,
}

impl Lab {
    /// Checks the lab end to end from the router: the WAN lease is from the
    /// ISP's pool, the ISP's page comes over HTTP, the ISP's DNS answers;
    /// and, with a static router LAN address, every LAN client pings it.
    pub fn check(&self) -> Result<LabCheck, LabError> {
        let fail = |what: &str, detail: String| LabError::Check {
            what: what.to_owned(),
            detail,
        };
        let router = &self.plan.router;
        let wan_address = netns::ipv4_addrs(router, ROUTER_WAN_IF)?
            .into_iter()
            .next()
            .ok_or_else(|| fail("router WAN lease", "wan0 has no IPv4 address".into()))?;
        if !wan_address.parse().is_ok_and(in_wan_pool) {
            return Err(fail(
                "router WAN lease",
                format!("{wan_address} is not from the ISP's pool"),
            ));
        }

        let http_url = isp::page_url();
        let curl = self.tool_argv(&self.tools.curl, &["-sS", "--max-time", "5", &http_url]);
        let page = self.ns_exec(router, &curl, CHECK_TIMEOUT)?;
        let body = String::from_utf8_lossy(&page.stdout);
        let own_page = format!("lab {}", self.plan.name);
        if !page.status.success() || !body.contains(PAGE_MARKER) || !body.contains(&own_page) {
            return Err(fail(
                "HTTP from the router",
                format!(
                    "{http_url}: {} {}",
                    page.status,
                    String::from_utf8_lossy(&page.stderr).trim()
                ),
            ));
        }

        let server = format!("@{ISP_ADDR}");
        let dig = self.tool_argv(
            &self.tools.dig,
            &[&server, DNS_NAME, "A", "+short", "+time=2", "+tries=2"],
        );
        let answer = self.ns_exec(router, &dig, CHECK_TIMEOUT)?;
        let dns_answer = String::from_utf8_lossy(&answer.stdout).trim().to_owned();
        if !answer.status.success() || dns_answer != ISP_ADDR.to_string() {
            return Err(fail(
                "DNS from the router",
                format!("{DNS_NAME} resolved to {dns_answer:?}, expected {ISP_ADDR}"),
            ));
        }

        let mut lan_pinged = Vec::new();
        if self.manual_router {
            for ns in &self.plan.lan {
                self.wait_ping(ns, &ROUTER_LAN_ADDR.to_string())
                    .map_err(|e| fail(&format!("ping from {ns}"), e.to_string()))?;
                lan_pinged.push(ns.clone());
            }
        }
        Ok(LabCheck {
            wan_address,
            http_url,
            dns_name: DNS_NAME.to_owned(),
            dns_answer,
            lan_pinged,
        })
    }

    /// Waits until `ns` gets an answer to a ping of `addr` (ARP and bridge
    /// learning may take a moment on a fresh link).
    pub fn wait_ping(&self, ns: &str, addr: &str) -> Result<(), LabError> {
        self.check_ns(ns)?;
        let ping = self.tool_argv(&self.tools.busybox, &["ping", "-c", "1", "-W", "1", addr]);
        wait_until(
            &format!("{addr} to answer a ping from {ns}"),
            Instant::now() + CHECK_TIMEOUT,
            || exec::ns_exec(ns, &ping, Duration::from_secs(3)).is_ok_and(|o| o.status.success()),
        )
        .map_err(|source| LabError::Ready {
            source,
            log: self.dir.join("logs"),
        })
    }
}
