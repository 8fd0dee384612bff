//! configd's state and operations: the running generation, reload, push,
//! confirm, rollback and the commit-confirm revert. The bus layer calls
//! these with the transaction lock held and publishes what they return.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bus_schema::bus::{ApplyReport, BusError, SnapshotInfo};
use bus_schema::config::read_secrets;

use crate::generation::Generation;
use crate::store::{Meta, Pair, Provisional, Store, StoreError};
use crate::transaction::{self, Participants, Plan, Timeouts};

/// Snapshots kept besides the running and the pending ones.
pub const RING: usize = 10;

/// What the bus should announce after an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    /// The running generation.
    pub generation: u64,
    /// Its hash.
    pub hash: String,
    /// Sections that changed (on a revert: those the failed generation
    /// touched, which the daemons converged back).
    pub changed: Vec<String>,
}

/// Who asks, and why.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Stop after the checks.
    pub dry_run: bool,
    /// Seconds to confirm within; 0: permanent at once.
    pub confirm_secs: u32,
    /// Who (for the snapshot ring).
    pub who: String,
    /// The caller's comment.
    pub comment: String,
}

/// configd's state.
#[derive(Debug)]
pub struct Core {
    store: Store,
    key: Vec<u8>,
    running: Generation,
    provisional: Option<Provisional>,
    timeouts: Timeouts,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn store_err(e: StoreError) -> BusError {
    BusError::Failed(e.to_string())
}

/// Why configd cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The config to start from is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Core {
    /// Comes up in the last confirmed generation. A generation left
    /// unconfirmed by a crash or reboot is dropped (the daemons converge
    /// back when configd publishes); an interrupted copy to `$ETC` is
    /// completed. On first boot, `$ETC`'s pair becomes generation 1.
    pub fn start(store: Store, timeouts: Timeouts) -> Result<Self, StartError> {
        let key = store.hash_key()?;
        let committed = match store.committed()? {
            Some(c) => c,
            None => first_boot(&store, &key)?,
        };
        if let Some(p) = store.provisional()?.filter(|p| p.generation != committed) {
            tracing::warn!(
                "generation {} was never confirmed: coming up in generation {}",
                p.generation,
                p.fallback
            );
            // As when the timer fires: `$ETC` goes back to the confirmed
            // pair, the unconfirmed one is kept beside it.
            store.restore_etc(committed)?;
        }
        store.set_provisional(None)?;
        store.finish_etc_sync()?;
        // Snapshots newer than the committed one were never confirmed.
        for g in store.generations()? {
            if g > committed {
                store.remove_snapshot(g)?;
            }
        }
        let (pair, _) = store.snapshot(committed)?;
        let running =
            Generation::from_snapshot(committed, pair, &key).map_err(StartError::Invalid)?;
        Ok(Self {
            store,
            key,
            running,
            provisional: None,
            timeouts,
        })
    }

    /// The running generation.
    pub fn running(&self) -> &Generation {
        &self.running
    }

    /// Unix time the running generation is reverted at, 0 when confirmed.
    pub fn confirm_deadline(&self) -> u64 {
        self.provisional.map_or(0, |p| p.deadline)
    }

    /// The generation awaiting confirmation.
    #[cfg(test)]
    pub fn provisional(&self) -> Option<Provisional> {
        self.provisional
    }

    /// Gives every daemon on the bus its sections of the running
    /// generation: after configd (re)starts, so that a transaction a crash
    /// interrupted ends consistent. Unconditional, because a daemon may
    /// still be applying what the dead configd sent; its apply queue puts
    /// this one after it, and a daemon that is already right changes
    /// nothing.
    pub async fn converge<P: Participants>(&self, participants: &P) -> Vec<String> {
        let steps = transaction::online(&Plan::everything(), participants).await;
        transaction::converge(&steps, &self.running, participants, self.timeouts).await
    }

    /// Validates `$ETC`'s pair, or the pushed candidate when there is one,
    /// and applies it.
    pub async fn reload<P: Participants>(
        &mut self,
        participants: &P,
        request: &Request,
    ) -> Result<(ApplyReport, Option<Announce>), BusError> {
        let (pair, names, from_candidate) = match self.store.candidate().map_err(store_err)? {
            Some(pair) => (
                pair,
                (
                    "candidate/oxwrt.toml".into(),
                    "candidate/oxwrt.secrets.toml".into(),
                ),
                true,
            ),
            None => (
                read_etc(&self.store).map_err(BusError::Invalid)?,
                etc_names(&self.store),
                false,
            ),
        };
        let result = self
            .apply_pair(participants, pair, (&names.0, &names.1), request)
            .await;
        // A candidate is tried once, whatever the outcome: one that failed
        // must not shadow `$ETC` for every later reload.
        if from_candidate && !request.dry_run {
            if let Err(e) = self.store.set_candidate(None) {
                tracing::error!("drop the pushed candidate: {e}");
            }
        }
        result
    }

    /// Validates a pushed pair and keeps it as the candidate.
    pub fn push(&mut self, pair: Pair) -> Result<String, BusError> {
        let g = Generation::validate(
            0,
            pair,
            ("pushed oxwrt.toml", "pushed oxwrt.secrets.toml"),
            &self.key,
        )
        .map_err(BusError::Invalid)?;
        self.store.set_candidate(Some(&g.pair)).map_err(store_err)?;
        Ok(g.warnings)
    }

    /// Makes the provisional generation permanent.
    pub fn confirm(&mut self) -> Result<(), BusError> {
        let p = self
            .provisional
            .ok_or_else(|| BusError::NotFound("no generation awaits confirmation".into()))?;
        // Committed first: from then on a restart comes up in it, and the
        // timer (which checks `committed`) leaves it alone.
        self.commit(p.generation).map_err(store_err)?;
        self.provisional = None;
        if let Err(e) = self.store.set_provisional(None) {
            tracing::warn!("clear the provisional record (ignored at the next start): {e}");
        }
        tracing::info!(generation = p.generation, "confirmed");
        Ok(())
    }

    /// Reverts the provisional generation `generation` (the confirm timer
    /// fired). Does nothing when it was confirmed meanwhile.
    pub async fn expire<P: Participants>(
        &mut self,
        participants: &P,
        generation: u64,
    ) -> Result<Option<Announce>, BusError> {
        let Some(p) = self.provisional.filter(|p| p.generation == generation) else {
            return Ok(None);
        };
        if self.store.committed().map_err(store_err)? == Some(p.generation) {
            // Confirmed, even if clearing `provisional` failed afterwards.
            self.provisional = None;
            return Ok(None);
        }
        let (pair, _) = self.store.snapshot(p.fallback).map_err(store_err)?;
        let fallback =
            Generation::from_snapshot(p.fallback, pair, &self.key).map_err(BusError::Failed)?;
        let plan = Plan::between(&self.running, &fallback);
        let steps = transaction::online(&plan, participants).await;
        let errors = transaction::converge(&steps, &fallback, participants, self.timeouts).await;
        if !errors.is_empty() {
            tracing::error!("revert to generation {}: {}", p.fallback, errors.join("; "));
        }
        self.store.set_provisional(None).map_err(store_err)?;
        self.provisional = None;
        self.store
            .remove_snapshot(p.generation)
            .map_err(store_err)?;
        // `$ETC` must not keep the config that was just rejected (the next
        // reload, or a boot reading the hostname, would take it up again):
        // it is kept beside it as `*.rejected`.
        if let Err(e) = self.store.restore_etc(p.fallback) {
            tracing::error!("put generation {} back into $ETC: {e}", p.fallback);
        }
        self.running = fallback;
        tracing::warn!(
            "generation {} was not confirmed in time: reverted to generation {}",
            p.generation,
            p.fallback
        );
        Ok(Some(self.announce(&plan)))
    }

    /// Applies snapshot `to` (0: the generation before the running one) as
    /// a new generation.
    pub async fn rollback<P: Participants>(
        &mut self,
        participants: &P,
        to: u32,
        request: &Request,
    ) -> Result<(ApplyReport, Option<Announce>), BusError> {
        let snapshots = self.list_snapshots().map_err(store_err)?;
        let target = snapshots.get(to as usize).ok_or_else(|| {
            BusError::NotFound(format!("no snapshot {to} (have {})", snapshots.len()))
        })?;
        let (pair, _) = self.store.snapshot(target.generation).map_err(store_err)?;
        let mut request = request.clone();
        request.comment = format!(
            "rollback to generation {}: {}",
            target.generation, request.comment
        )
        .trim_end_matches([':', ' '])
        .to_string();
        let names = (
            format!("snapshot {}/oxwrt.toml", target.generation),
            format!("snapshot {}/oxwrt.secrets.toml", target.generation),
        );
        self.apply_pair(participants, pair, (&names.0, &names.1), &request)
            .await
    }

    /// The snapshot ring without the running generation, newest first.
    pub fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>, StoreError> {
        list_snapshots(&self.store, self.running.number)
    }

    /// The store, for readers that must not wait for a transaction.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The transaction, for any source of a candidate pair.
    async fn apply_pair<P: Participants>(
        &mut self,
        participants: &P,
        pair: Pair,
        names: (&str, &str),
        request: &Request,
    ) -> Result<(ApplyReport, Option<Announce>), BusError> {
        if let Some(p) = self.provisional {
            return Err(BusError::Busy(format!(
                "generation {} awaits confirmation: confirm it or let it revert first",
                p.generation
            )));
        }
        let mut new = Generation::validate(self.running.number, pair, names, &self.key)
            .map_err(BusError::Invalid)?;
        let plan = Plan::between(&self.running, &new);
        let mut report = ApplyReport {
            generation: self.running.number,
            hash: self.running.hash.clone(),
            changed: plan.changed.iter().map(|s| s.to_string()).collect(),
            diff: crate::diff::sections(&self.running.config, &new.config, &plan.changed),
            confirm_deadline: 0,
            warnings: new.warnings.clone(),
        };
        // Nothing to do (or only comments and layout changed): no new
        // generation, so the ring keeps real changes only.
        if plan.changed.is_empty() {
            return Ok((report, None));
        }
        // A dry run checks as the next generation without using up a
        // number; a real one takes it now, so a crash never reuses it.
        let number = if request.dry_run {
            self.running.number + 1
        } else {
            self.store.next_generation().map_err(store_err)?
        };
        new.number = number;
        let steps = transaction::online(&plan, participants).await;
        transaction::check(&steps, &new, participants, self.timeouts)
            .await
            .map_err(|f| BusError::ApplyFailed(f.to_string()))?;
        if request.dry_run {
            return Ok((report, None));
        }
        if let Err(failure) =
            transaction::apply(&steps, &self.running, &new, participants, self.timeouts).await
        {
            tracing::warn!(generation = number, "{failure}");
            // The daemons are back on the running generation: say so, so
            // that one that missed the revert converges too.
            return Err(BusError::ApplyFailed(failure.to_string()));
        }
        if let Err(e) = self.persist(&new, request, &mut report) {
            // Not committed: the daemons go back to the running generation.
            let errors =
                transaction::converge(&steps, &self.running, participants, self.timeouts).await;
            let revert = if errors.is_empty() {
                format!("reverted to generation {}", self.running.number)
            } else {
                format!("revert failed: {}", errors.join("; "))
            };
            return Err(BusError::ApplyFailed(format!(
                "store generation {number}: {e}; {revert}"
            )));
        }
        tracing::info!(generation = number, changed = ?plan.changed, "generation {number} is running");
        self.running = new;
        report.generation = number;
        report.hash = self.running.hash.clone();
        Ok((report, Some(self.announce(&plan))))
    }

    /// Records an applied generation: its snapshot, then either the
    /// provisional record or the commit. An error means it is not
    /// committed.
    fn persist(
        &mut self,
        new: &Generation,
        request: &Request,
        report: &mut ApplyReport,
    ) -> Result<(), StoreError> {
        self.store
            .write_snapshot(&new.pair, &meta(new, &request.who, &request.comment))?;
        if request.confirm_secs == 0 {
            return self.commit(new.number);
        }
        let p = Provisional {
            generation: new.number,
            deadline: now() + u64::from(request.confirm_secs),
            fallback: self.running.number,
        };
        self.store.set_provisional(Some(&p))?;
        self.provisional = Some(p);
        report.confirm_deadline = p.deadline;
        Ok(())
    }

    /// Makes `generation` (already in the ring) the committed one. The
    /// `$ETC` copy is announced first, so that a crash right after the
    /// commit still ends with `$ETC` holding it; failures after the commit
    /// point are logged, never returned: the generation is committed.
    fn commit(&self, generation: u64) -> Result<(), StoreError> {
        self.store.mark_etc_sync(generation)?;
        self.store.set_committed(generation)?;
        if let Err(e) = self.store.finish_etc_sync() {
            tracing::error!(
                "copy generation {generation} to $ETC (retried at the next start): {e}"
            );
        }
        if let Err(e) = self.store.prune(RING + 1, &[generation]) {
            tracing::warn!("prune the snapshot ring: {e}");
        }
        Ok(())
    }

    fn announce(&self, plan: &Plan) -> Announce {
        Announce {
            generation: self.running.number,
            hash: self.running.hash.clone(),
            changed: plan.changed.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// How long until the provisional generation expires.
    pub fn time_to_deadline(&self) -> Option<(u64, Duration)> {
        self.provisional.map(|p| {
            (
                p.generation,
                Duration::from_secs(p.deadline.saturating_sub(now())),
            )
        })
    }
}

fn first_boot(store: &Store, key: &[u8]) -> Result<u64, StartError> {
    let pair = read_etc(store).map_err(StartError::Invalid)?;
    let names = etc_names(store);
    let number = store.next_generation()?;
    let g = Generation::validate(number, pair, (&names.0, &names.1), key)
        .map_err(StartError::Invalid)?;
    store.write_snapshot(&g.pair, &meta(&g, "configd", "first boot"))?;
    store.set_committed(number)?;
    tracing::info!("first boot: {} is generation {number}", names.0);
    Ok(number)
}

fn meta(g: &Generation, who: &str, comment: &str) -> Meta {
    Meta {
        generation: g.number,
        time: now(),
        who: who.to_string(),
        comment: comment.to_string(),
        hash: g.hash.clone(),
    }
}

fn etc_names(store: &Store) -> (String, String) {
    let (p, s) = store.etc_paths();
    (p.display().to_string(), s.display().to_string())
}

/// Reads `$ETC`'s pair; the secrets file must exist with mode 0600/0400.
fn read_etc(store: &Store) -> Result<Pair, String> {
    let (public, secrets) = store.etc_paths();
    let public = std::fs::read_to_string(&public)
        .map_err(|e| format!("{}: cannot read: {e}", public.display()))?;
    let secrets = read_secrets(&secrets)
        .map_err(|d| d.to_string())?
        .ok_or_else(|| format!("{}: does not exist", secrets.display()))?;
    Ok(Pair { public, secrets })
}

#[cfg(test)]
mod tests;

/// The snapshot ring without generation `running`, newest first.
pub fn list_snapshots(store: &Store, running: u64) -> Result<Vec<SnapshotInfo>, StoreError> {
    let mut out = Vec::new();
    for g in store.generations()? {
        if g == running {
            continue;
        }
        // Pruned by a transaction meanwhile (this runs without its lock).
        let Ok((_, meta)) = store.snapshot(g) else {
            continue;
        };
        out.push(SnapshotInfo {
            index: out.len() as u32,
            generation: g,
            time: meta.time,
            who: meta.who,
            comment: meta.comment,
            hash: meta.hash,
        });
    }
    Ok(out)
}
