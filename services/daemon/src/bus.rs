//! The daemon's side of the bus: `org.oxwrt.Daemon1` for configd's
//! transaction, and following configd's generations.
//!
//! One task owns the [`Domain`]; bus calls and generation signals reach it
//! through a channel, so check and apply never run concurrently.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bus_schema::bus::policy::Principal;
use bus_schema::bus::{BusError, Config1Proxy, DAEMON_PATH, authorize};
use bus_schema::config::Sections;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};
use zbus::message::Header;

use crate::{Domain, Env, RunError};

/// What the domain task is asked to do.
enum Request {
    Check(Sections, oneshot::Sender<Result<(), String>>),
    Apply {
        generation: u64,
        sections: Sections,
        /// For a catch-up: the generation that was applied when the fetch
        /// began. The apply is skipped unless that is still the applied one
        /// (configd may have applied a newer one meanwhile) and differs
        /// from `generation`; decided in the task, after any apply in
        /// flight.
        catch_up_from: Option<u64>,
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// `org.oxwrt.Daemon1`, served at [`DAEMON_PATH`].
struct Daemon1 {
    requests: mpsc::Sender<Request>,
    applied: Arc<AtomicU64>,
}

impl Daemon1 {
    /// The interface, and the receiving end its requests reach the
    /// domain task ([`serve`]) by.
    fn new() -> (Self, mpsc::Receiver<Request>) {
        let (requests, rx) = mpsc::channel(8);
        let applied = Arc::new(AtomicU64::new(0));
        (Self { requests, applied }, rx)
    }
}

const IFACE: &str = "org.oxwrt.Daemon1";

/// Hands a request to the domain task and waits for its answer.
async fn ask(
    requests: &mpsc::Sender<Request>,
    make: impl FnOnce(oneshot::Sender<Result<(), String>>) -> Request,
) -> Result<(), String> {
    let (tx, rx) = oneshot::channel();
    let gone = || "the daemon is shutting down".to_string();
    requests.send(make(tx)).await.map_err(|_| gone())?;
    rx.await.map_err(|_| gone())?
}

#[zbus::interface(name = "org.oxwrt.Daemon1")]
impl Daemon1 {
    async fn check(
        &self,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(header)] header: Header<'_>,
        generation: u64,
        sections: HashMap<String, String>,
    ) -> Result<(), BusError> {
        authorize(conn, &header, IFACE, "Check").await?;
        tracing::debug!(generation, "check");
        ask(&self.requests, |tx| {
            Request::Check(sections.into_iter().collect(), tx)
        })
        .await
        .map_err(BusError::Failed)
    }

    async fn apply(
        &self,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(header)] header: Header<'_>,
        generation: u64,
        sections: HashMap<String, String>,
    ) -> Result<(), BusError> {
        authorize(conn, &header, IFACE, "Apply").await?;
        ask(&self.requests, |reply| Request::Apply {
            generation,
            sections: sections.into_iter().collect(),
            catch_up_from: None,
            reply,
        })
        .await
        .map_err(BusError::Failed)
    }

    #[zbus(property)]
    fn applied_generation(&self) -> u64 {
        self.applied.load(Ordering::SeqCst)
    }
}

/// Serves `domain` as `org.oxwrt.Daemon1` on a connection being built,
/// for a process that joins the bus its own way: oxinit, whose name is on
/// the bus before configd is. configd's start-up apply and its
/// transactions reach the domain there; nothing is fetched or followed.
pub fn serve_domain<D: Domain>(
    builder: zbus::connection::Builder<'static>,
    domain: D,
) -> zbus::connection::Builder<'static> {
    let (iface, rx) = Daemon1::new();
    tokio::spawn(serve(domain, rx, iface.applied.clone()));
    builder.serve_at(DAEMON_PATH, iface)
}

/// A daemon on the bus, converged to the running generation.
pub(crate) struct Joined {
    /// configd; it holds the connection, which the object server keeps
    /// serving `Daemon1` on.
    config: Config1Proxy<'static>,
    /// Subscribed before the first fetch, so no generation is missed.
    generations: bus_schema::bus::NewGenerationStream,
    principal: &'static Principal,
    requests: mpsc::Sender<Request>,
    applied: Arc<AtomicU64>,
}

impl Joined {
    /// Connects, serves `Daemon1`, owns the name, and applies the running
    /// generation's sections.
    pub(crate) async fn join<D: Domain>(
        env: &Env,
        principal: &'static Principal,
        mut domain: D,
        serve_more: crate::Serve,
    ) -> Result<Self, RunError> {
        let (iface, rx) = Daemon1::new();
        let (requests, applied) = (iface.requests.clone(), iface.applied.clone());
        let builder =
            zbus::connection::Builder::address(env.bus.as_str()).serve_at(DAEMON_PATH, iface);
        let conn = serve_more(builder)
            .name(principal.name)
            .build()
            .await
            .map_err(RunError::Connect)?;
        domain.connected(&conn);
        tokio::spawn(serve(domain, rx, applied.clone()));
        let config = Config1Proxy::new(&conn).await.map_err(RunError::Connect)?;
        let generations = config
            .receive_new_generation()
            .await
            .map_err(RunError::Connect)?;
        let joined = Self {
            generations,
            config,
            principal,
            requests,
            applied,
        };
        joined
            .converge(principal.sections)
            .await
            .map_err(|e| match e {
                Converge::Fetch(e) => RunError::Fetch(e),
                Converge::Apply(e) => RunError::Converge(e),
            })?;
        Ok(joined)
    }

    /// Fetches `names` from configd and applies them, unless this daemon
    /// already applied that generation.
    async fn converge(&self, names: &[&str]) -> Result<(), Converge> {
        let seen = self.applied.load(Ordering::SeqCst);
        // A section fetched while a new generation starts could mix two
        // generations: fetch again until they agree.
        let (generation, sections) = loop {
            let mut sections = Sections::new();
            let mut generations = Vec::new();
            for name in names {
                let (g, json) = self
                    .config
                    .get_section(name)
                    .await
                    .map_err(Converge::Fetch)?;
                generations.push(g);
                sections.insert((*name).to_string(), json);
            }
            let first = generations.first().copied().unwrap_or_default();
            if generations.iter().all(|g| *g == first) {
                break (first, sections);
            }
        };
        if sections.is_empty() || generation == seen {
            return Ok(());
        }
        ask(&self.requests, |reply| Request::Apply {
            generation,
            sections,
            catch_up_from: Some(seen),
            reply,
        })
        .await
        .map_err(Converge::Apply)?;
        tracing::info!(generation, "converged to the running generation");
        Ok(())
    }

    /// Follows configd's generations: one this daemon missed (it was
    /// restarting during a transaction) is fetched and applied. Returns
    /// when the bus connection is gone.
    pub(crate) async fn follow(mut self) {
        while let Some(signal) = self.generations.next().await {
            let Ok(args) = signal.args() else { continue };
            let ours: Vec<&str> = self
                .principal
                .sections
                .iter()
                .copied()
                .filter(|s| args.changed.iter().any(|c| c == s))
                .collect();
            if ours.is_empty() || args.generation == self.applied.load(Ordering::SeqCst) {
                continue;
            }
            if let Err(e) = self.converge(&ours).await {
                tracing::warn!("generation {}: {e}", args.generation);
            }
        }
        tracing::warn!("bus connection lost");
    }
}

enum Converge {
    Fetch(zbus::Error),
    Apply(String),
}

impl std::fmt::Display for Converge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fetch(e) => write!(f, "fetch: {e}"),
            Self::Apply(e) => write!(f, "apply: {e}"),
        }
    }
}

/// The domain task: one request at a time.
async fn serve<D: Domain>(mut domain: D, mut rx: mpsc::Receiver<Request>, applied: Arc<AtomicU64>) {
    while let Some(request) = rx.recv().await {
        match request {
            Request::Check(sections, reply) => {
                let _ = reply.send(domain.check(&sections).await);
            }
            Request::Apply {
                generation,
                sections,
                catch_up_from,
                reply,
            } => {
                let now = applied.load(Ordering::SeqCst);
                if catch_up_from.is_some_and(|seen| now != seen || now == generation) {
                    let _ = reply.send(Ok(()));
                    continue;
                }
                let names: Vec<&String> = sections.keys().collect();
                let result = domain.apply(&sections).await;
                match &result {
                    Ok(()) => {
                        applied.store(generation, Ordering::SeqCst);
                        tracing::info!(generation, ?names, "applied");
                    }
                    Err(e) => tracing::warn!(generation, ?names, "apply failed: {e}"),
                }
                let _ = reply.send(result);
            }
        }
    }
}
