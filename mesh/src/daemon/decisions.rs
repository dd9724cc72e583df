//! The operator's decisions on proposals, handed to the running daemon.
//!
//! `dbytes provider deals accept|decline` must not send a transaction from
//! the provider's wallet while the daemon may be sending one too (proofs,
//! claims, its listing): both would take the same nonce and one would fail.
//! So while the daemon runs, the command queues the decision as
//! `<data dir>/decisions/<deal>.json`; the deals loop sends it with the
//! daemon's own transactions, one at a time, and leaves the outcome in
//! `<deal>.outcome.json`, which the command waits for. Files are written
//! whole (temporary file, rename), so either side sees a decision or an
//! outcome entirely or not at all; a decision stays queued until its
//! outcome is written, so a daemon killed in between sends it (or finds it
//! already taken) after its restart.

use std::path::{Path, PathBuf};

use alloy_primitives::U256;
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::state::{StateError, read_json, write_json};

const DECISIONS_DIR: &str = "decisions";
const OUTCOME_SUFFIX: &str = ".outcome.json";

/// An operator's answer to a proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The proposed deal.
    pub deal: U256,
    /// Accept (true) or decline (false).
    pub accept: bool,
    /// When it was queued (unix seconds).
    pub queued_at: u64,
}

/// What became of a queued decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionOutcome {
    /// The decision.
    pub decision: Decision,
    /// Whether the transaction was sent and confirmed.
    pub sent: bool,
    /// What happened, for the operator.
    pub message: String,
    /// When the daemon dealt with it (unix seconds).
    pub decided_at: u64,
}

/// The queue under `<data dir>/decisions/`.
#[derive(Debug, Clone)]
pub struct DecisionQueue {
    dir: PathBuf,
}

impl DecisionQueue {
    /// The queue of the daemon whose data dir is `data_dir` (nothing is
    /// created until a decision is queued).
    pub fn new(data_dir: &Path) -> DecisionQueue {
        DecisionQueue {
            dir: data_dir.join(DECISIONS_DIR),
        }
    }

    fn decision_path(&self, deal: U256) -> PathBuf {
        self.dir.join(format!("{deal}.json"))
    }

    fn outcome_path(&self, deal: U256) -> PathBuf {
        self.dir.join(format!("{deal}{OUTCOME_SUFFIX}"))
    }

    /// Queues `decision`, replacing an earlier one for the same deal and
    /// forgetting that one's outcome.
    pub fn queue(&self, decision: &Decision) -> Result<(), StateError> {
        std::fs::create_dir_all(&self.dir).map_err(|source| StateError::Io {
            action: "create",
            path: self.dir.clone(),
            source,
        })?;
        let outcome = self.outcome_path(decision.deal);
        match std::fs::remove_file(&outcome) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(StateError::Io {
                    action: "remove",
                    path: outcome,
                    source,
                });
            }
        }
        write_json(&self.decision_path(decision.deal), decision)
    }

    /// The decisions waiting, oldest first. A file that does not parse is
    /// logged and skipped (it is nobody's decision).
    pub fn pending(&self) -> Result<Vec<Decision>, StateError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(StateError::Io {
                    action: "list",
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut decisions = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
                continue;
            };
            // Only `<deal>.json`: not outcomes, nor temporary files.
            if !name.ends_with(".json") || name.ends_with(OUTCOME_SUFFIX) {
                continue;
            }
            match read_json::<Decision>(&path) {
                Ok(Some(decision)) => decisions.push(decision),
                Ok(None) => {} // Taken meanwhile.
                Err(err) => warn!(error = %err, "skipping a decision file that does not parse"),
            }
        }
        decisions.sort_by_key(|decision| (decision.queued_at, decision.deal));
        Ok(decisions)
    }

    /// Records what became of a decision, then takes it off the queue.
    pub fn finish(&self, outcome: &DecisionOutcome) -> Result<(), StateError> {
        write_json(&self.outcome_path(outcome.decision.deal), outcome)?;
        let path = self.decision_path(outcome.decision.deal);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StateError::Io {
                action: "remove",
                path,
                source,
            }),
        }
    }

    /// The outcome of the decision on `deal`, once the daemon dealt with it.
    pub fn outcome(&self, deal: U256) -> Result<Option<DecisionOutcome>, StateError> {
        read_json(&self.outcome_path(deal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_wait_until_their_outcome_is_written() {
        let dir = std::env::temp_dir().join(format!(
            "dbytes-mesh-decisions-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        let queue = DecisionQueue::new(&dir);
        assert_eq!(queue.pending().unwrap(), vec![]);
        let later = Decision {
            deal: U256::from(7),
            accept: false,
            queued_at: 20,
        };
        let first = Decision {
            deal: U256::from(12),
            accept: true,
            queued_at: 10,
        };
        queue.queue(&later).unwrap();
        queue.queue(&first).unwrap();
        assert_eq!(queue.pending().unwrap(), vec![first.clone(), later.clone()]);
        let outcome = DecisionOutcome {
            decision: first.clone(),
            sent: true,
            message: "accepted".to_string(),
            decided_at: 30,
        };
        queue.finish(&outcome).unwrap();
        assert_eq!(queue.pending().unwrap(), vec![later.clone()]);
        assert_eq!(queue.outcome(first.deal).unwrap(), Some(outcome));
        // Queued again: the old outcome is forgotten until the new one.
        queue.queue(&first).unwrap();
        assert_eq!(queue.outcome(first.deal).unwrap(), None);
        // Garbage in the directory is nobody's decision.
        std::fs::write(dir.join(DECISIONS_DIR).join("9.json"), b"{").unwrap();
        assert_eq!(queue.pending().unwrap().len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
