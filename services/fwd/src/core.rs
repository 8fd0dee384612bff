//! The daemon's state: the last full set of sections, the WAN addresses
//! netd reported, and the ruleset last committed. Config applies and WAN
//! changes both go through here (behind one lock), so they never run
//! concurrently; a ruleset equal to the one committed is not sent again.

use std::time::Instant;

use bus_schema::bus::{RuleCounter, WanStatus};
use bus_schema::config::Sections;
use bus_schema::config::model::{Firewall, Network, PortForward};

use crate::batch::{self, BatchError};
use crate::kernel::{self, Kernel, KernelError};
use crate::render::{self, Input, RenderError, Rendered, WanAddress};

/// Errors of [`Core`].
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A section is not valid JSON of its model type.
    #[error("{0}")]
    Section(String),
    /// The config cannot be rendered.
    #[error("{0}")]
    Render(#[from] RenderError),
    /// The ruleset cannot be made into a batch.
    #[error("{0}")]
    Batch(#[from] BatchError),
    /// The kernel refused or could not be reached.
    #[error("{0}")]
    Kernel(#[from] KernelError),
}

/// What an apply did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A batch was committed, taking this long.
    Committed {
        /// Send to last ACK, in microseconds.
        micros: u64,
    },
    /// The rendered ruleset equals the committed one: nothing was sent.
    Unchanged,
    /// Not every section has arrived yet: nothing to apply.
    Incomplete,
}

/// The sections fwd consumes.
#[derive(Debug, Clone, Default)]
struct Config {
    networks: Option<Vec<Network>>,
    firewall: Option<Firewall>,
    port_forwards: Option<Vec<PortForward>>,
}

impl Config {
    /// This config with the sections in `sections` replaced.
    fn merged(&self, sections: &Sections) -> Result<Self, CoreError> {
        fn get<T: serde::de::DeserializeOwned>(
            sections: &Sections,
            name: &str,
        ) -> Result<Option<T>, CoreError> {
            oxwrt_daemon::section(sections, name).map_err(CoreError::Section)
        }
        Ok(Self {
            networks: get(sections, "networks")?.or_else(|| self.networks.clone()),
            firewall: get(sections, "firewall")?.or_else(|| self.firewall.clone()),
            port_forwards: get(sections, "port_forwards")?.or_else(|| self.port_forwards.clone()),
        })
    }
}

/// Published state: what `org.oxwrt.Firewall1` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// The committed ruleset in nft syntax.
    pub ruleset: String,
    /// Batches committed since start.
    pub apply_count: u64,
    /// Duration of the last commit.
    pub last_apply_micros: u64,
}

/// fwd's state.
#[derive(Debug, Default)]
pub struct Core {
    config: Config,
    /// WAN addresses netd reported (empty until it does).
    netd_wan: Vec<WanAddress>,
    /// The ruleset last committed.
    applied: Option<Rendered>,
    kernel: Option<Kernel>,
    flowtables_checked: bool,
    stats: Stats,
}

/// The IPv4 addresses of the WAN networks that are up, from netd.
pub fn wan_addresses(status: &[WanStatus]) -> Vec<WanAddress> {
    status
        .iter()
        .filter(|w| w.state == "up")
        .filter_map(|w| {
            let addr = w.address.split('/').next()?.parse().ok()?;
            Some(WanAddress {
                network: w.network.clone(),
                address: addr,
            })
        })
        .collect()
}

/// Local time minus UTC now, in seconds (for schedules; re-read at each
/// render, so a daylight-saving change takes effect at the next apply).
fn utc_offset() -> i32 {
    jiff::tz::TimeZone::system()
        .to_offset(jiff::Timestamp::now())
        .seconds()
}

impl Core {
    /// A core with nothing applied yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// What `org.oxwrt.Firewall1` publishes.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    fn kernel(&mut self) -> Result<&mut Kernel, CoreError> {
        let kernel = match self.kernel.take() {
            Some(k) => k,
            None => Kernel::open()?,
        };
        Ok(self.kernel.insert(kernel))
    }

    fn render(&self, config: &Config) -> Result<Option<Rendered>, CoreError> {
        let (Some(networks), Some(firewall), Some(port_forwards)) =
            (&config.networks, &config.firewall, &config.port_forwards)
        else {
            return Ok(None);
        };
        // netd's view of a network wins over the config's static address.
        let mut wan = self.netd_wan.clone();
        for s in render::static_wan(networks) {
            if !wan.iter().any(|w| w.network == s.network) {
                wan.push(s);
            }
        }
        let input = Input {
            networks,
            firewall,
            port_forwards,
            wan: &wan,
            utc_offset: utc_offset(),
        };
        Ok(Some(render::render(&input)?))
    }

    /// Warns once when flow offload is asked for but cannot be had.
    fn flow_offload(&mut self, firewall: Option<&Firewall>) -> Result<(), CoreError> {
        if self.flowtables_checked || !firewall.is_some_and(|f| f.defaults.flow_offload) {
            return Ok(());
        }
        self.flowtables_checked = true;
        if self.kernel()?.flowtables_supported()? {
            tracing::warn!(
                "flow_offload = true: the kernel has flowtables, but fwd does not offload flows yet; skipped"
            );
        } else {
            tracing::warn!(
                "flow_offload = true: this kernel has no flowtables (nf_flow_table); skipped"
            );
        }
        Ok(())
    }

    /// Could these sections be applied? Renders them with the rest of the
    /// current config and has the kernel check the batch; commits nothing.
    pub fn check(&mut self, sections: &Sections) -> Result<(), CoreError> {
        let config = self.config.merged(sections)?;
        self.flow_offload(config.firewall.as_ref())?;
        if let Some(rendered) = self.render(&config)? {
            let batch = batch::replace(&rendered.ruleset)?;
            self.kernel()?.check(&batch)?;
        }
        Ok(())
    }

    /// Applies these sections (the others stay as they were).
    pub fn apply(&mut self, sections: &Sections) -> Result<Outcome, CoreError> {
        let config = self.config.merged(sections)?;
        self.flow_offload(config.firewall.as_ref())?;
        let outcome = self.converge(&config)?;
        self.config = config;
        Ok(outcome)
    }

    /// netd reported new WAN state: re-renders (reflection follows the
    /// WAN address).
    pub fn set_wan(&mut self, status: &[WanStatus]) -> Result<Outcome, CoreError> {
        self.netd_wan = wan_addresses(status);
        let config = self.config.clone();
        self.converge(&config)
    }

    fn converge(&mut self, config: &Config) -> Result<Outcome, CoreError> {
        let Some(rendered) = self.render(config)? else {
            return Ok(Outcome::Incomplete);
        };
        if self.applied.as_ref() == Some(&rendered) {
            return Ok(Outcome::Unchanged);
        }
        let batch = batch::replace(&rendered.ruleset)?;
        let kernel = self.kernel()?;
        let started = Instant::now();
        kernel.commit(&batch)?;
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.stats = Stats {
            ruleset: rendered.ruleset.to_string(),
            apply_count: self.stats.apply_count + 1,
            last_apply_micros: micros,
        };
        self.applied = Some(rendered);
        Ok(Outcome::Committed { micros })
    }

    /// Counters of the rules with `counter = true`, read from the kernel.
    pub fn counters(&mut self) -> Result<Vec<RuleCounter>, CoreError> {
        let names = self
            .applied
            .as_ref()
            .map(|r| r.counted.clone())
            .unwrap_or_default();
        let rules = self.kernel()?.rules()?;
        Ok(kernel::counters(&rules, &names)
            .into_iter()
            .map(|(rule, packets, bytes)| RuleCounter {
                rule,
                packets,
                bytes,
            })
            .collect())
    }
}
