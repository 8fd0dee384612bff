//! The apply transaction: which daemons a change concerns, their checks,
//! their applies, and the revert when one fails.
//!
//! Pure of D-Bus: daemons are reached through [`Participants`], which the
//! bus layer implements with `Daemon1` proxies and the tests with fakes.

use std::future::Future;
use std::time::Duration;

use bus_schema::bus::policy::{PRINCIPALS, Principal};
use bus_schema::config::{SECTIONS, Sections};

use crate::generation::Generation;

/// The daemons of the system, as the transaction sees them.
pub trait Participants: Sync {
    /// Does a process own this well-known name right now?
    fn online(&self, name: &'static str) -> impl Future<Output = bool> + Send;
    /// `Daemon1.Check`.
    fn check(
        &self,
        name: &'static str,
        generation: u64,
        sections: Sections,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// `Daemon1.Apply`.
    fn apply(
        &self,
        name: &'static str,
        generation: u64,
        sections: Sections,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// How long a daemon may take.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// For a check.
    pub check: Duration,
    /// For an apply (and each revert).
    pub apply: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            check: Duration::from_secs(10),
            apply: Duration::from_secs(30),
        }
    }
}

/// One daemon's part of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The daemon.
    pub principal: &'static Principal,
    /// The changed sections it consumes.
    pub sections: Vec<&'static str>,
}

/// What a new generation changes, and for whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Changed sections, in file order.
    pub changed: Vec<&'static str>,
    /// One step per daemon that consumes a changed section, in the order
    /// of [`PRINCIPALS`] (netd first: others depend on its links).
    pub steps: Vec<Step>,
}

impl Plan {
    /// Compares two generations section by section (secrets included, so a
    /// changed passphrase is a change).
    pub fn between(old: &Generation, new: &Generation) -> Self {
        let (a, b) = (&old.exposed, &new.exposed);
        let changed: Vec<&'static str> = SECTIONS
            .iter()
            .copied()
            .filter(|s| a.get(*s) != b.get(*s))
            .collect();
        Self::for_sections(changed)
    }

    /// Every section: what a daemon converging from nothing needs.
    pub fn everything() -> Self {
        Self::for_sections(SECTIONS.to_vec())
    }

    fn for_sections(changed: Vec<&'static str>) -> Self {
        let steps = PRINCIPALS
            .iter()
            .filter_map(|p| {
                let sections: Vec<&'static str> = p
                    .sections
                    .iter()
                    .copied()
                    .filter(|s| changed.contains(s))
                    .collect();
                (!sections.is_empty()).then_some(Step {
                    principal: p,
                    sections,
                })
            })
            .collect();
        Self { changed, steps }
    }
}

/// What a daemon receives: its sections, secrets resolved only where it
/// is entitled to them.
pub fn payload(generation: &Generation, step: &Step) -> Sections {
    let (redacted, exposed) = (&generation.redacted, &generation.exposed);
    step.sections
        .iter()
        .map(|s| {
            let from = if step.principal.secret_sections.contains(s) {
                &exposed
            } else {
                &redacted
            };
            (s.to_string(), from.get(*s).cloned().unwrap_or_default())
        })
        .collect()
}

/// Why a transaction failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `check` or `apply`.
    pub stage: &'static str,
    /// The daemon's service name.
    pub service: &'static str,
    /// What it said.
    pub error: String,
    /// Daemons whose revert failed, with their errors (empty: all reverted
    /// or nothing was applied).
    pub revert_errors: Vec<String>,
    /// The generation the daemons were reverted to.
    pub reverted_to: u64,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}; ", self.stage, self.service, self.error)?;
        if self.stage == "check" {
            write!(f, "nothing was applied")
        } else if self.revert_errors.is_empty() {
            write!(f, "reverted to generation {}", self.reverted_to)
        } else {
            write!(
                f,
                "revert to generation {} failed: {}",
                self.reverted_to,
                self.revert_errors.join("; ")
            )
        }
    }
}

async fn bounded<F: Future<Output = Result<(), String>>>(
    limit: Duration,
    f: F,
) -> Result<(), String> {
    tokio::time::timeout(limit, f)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} s", limit.as_secs_f32())))
}

/// The steps whose daemon is on the bus: a daemon that is not running
/// converges when it starts.
pub async fn online<P: Participants>(plan: &Plan, participants: &P) -> Vec<Step> {
    let mut out = Vec::new();
    for step in &plan.steps {
        if participants.online(step.principal.name).await {
            out.push(step.clone());
        }
    }
    out
}

/// Asks every daemon in `steps` whether it can apply `new`.
pub async fn check<P: Participants>(
    steps: &[Step],
    new: &Generation,
    participants: &P,
    timeouts: Timeouts,
) -> Result<(), Failure> {
    for step in steps {
        let name = step.principal.name;
        bounded(
            timeouts.check,
            participants.check(name, new.number, payload(new, step)),
        )
        .await
        .map_err(|error| Failure {
            stage: "check",
            service: step.principal.service,
            error,
            revert_errors: Vec::new(),
            reverted_to: 0,
        })?;
    }
    Ok(())
}

/// Applies `new` daemon by daemon; on the first failure, every daemon
/// already touched (the failing one included: it may be half-applied) is
/// given `old` again, in reverse order.
pub async fn apply<P: Participants>(
    steps: &[Step],
    old: &Generation,
    new: &Generation,
    participants: &P,
    timeouts: Timeouts,
) -> Result<(), Failure> {
    for (i, step) in steps.iter().enumerate() {
        let name = step.principal.name;
        let result = bounded(
            timeouts.apply,
            participants.apply(name, new.number, payload(new, step)),
        )
        .await;
        if let Err(error) = result {
            let touched: Vec<Step> = steps[..=i].iter().rev().cloned().collect();
            let revert_errors = converge(&touched, old, participants, timeouts).await;
            return Err(Failure {
                stage: "apply",
                service: step.principal.service,
                error,
                revert_errors,
                reverted_to: old.number,
            });
        }
    }
    Ok(())
}

/// Gives every daemon in `steps` its sections of `generation`, in that
/// order; returns the failures.
pub async fn converge<P: Participants>(
    steps: &[Step],
    generation: &Generation,
    participants: &P,
    timeouts: Timeouts,
) -> Vec<String> {
    let mut errors = Vec::new();
    for step in steps {
        let sections = payload(generation, step);
        let result = bounded(
            timeouts.apply,
            participants.apply(step.principal.name, generation.number, sections),
        )
        .await;
        if let Err(e) = result {
            errors.push(format!("{}: {e}", step.principal.service));
        }
    }
    errors
}

#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
mod tests;
