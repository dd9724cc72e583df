//! An in-memory [`PieceStore`]: a **test double** standing in for the mesh.
//!
//! It keeps pieces in a map, spreads them over named fake providers, counts
//! what it is asked, and can inject faults (a lost piece, a corrupted piece,
//! a failing provider, failing stores). Only compiled for tests and with the
//! `test-support` feature; the gateway binary never uses it.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use bytes::Bytes;
use dbytes_ledger::book::Placement;
use dbytes_ledger::piece::PieceId;

use super::{PieceRequest, PieceStore, PieceStoreError};
use crate::codec::{EncodedSegment, SegmentLayout};

#[derive(Default)]
struct State {
    /// (provider, piece) -> bytes.
    pieces: HashMap<(String, PieceId), Bytes>,
    next_provider: usize,
    down: HashSet<String>,
    failing_stores: usize,
    pieces_fetched: usize,
    bytes_fetched: u64,
    pieces_deleted: usize,
}

/// A piece store in memory over `providers` fake providers (test double).
pub struct MemoryPieceStore {
    providers: usize,
    state: Mutex<State>,
}

impl std::fmt::Debug for MemoryPieceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryPieceStore")
            .field("providers", &self.providers)
            .finish_non_exhaustive()
    }
}

/// What a [`MemoryPieceStore`] was asked, for assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryStats {
    /// Pieces held now.
    pub pieces_held: usize,
    /// Piece reads (whole or ranges) served.
    pub pieces_fetched: usize,
    /// Bytes served.
    pub bytes_fetched: u64,
    /// Pieces deleted.
    pub pieces_deleted: usize,
}

impl MemoryPieceStore {
    /// A store with `providers` providers named `provider-0`, `provider-1`, …
    /// A segment's pieces go to consecutive providers, round robin.
    pub fn new(providers: usize) -> Self {
        MemoryPieceStore {
            providers: providers.max(1),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock poisons it; the counters stay usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What the store was asked so far.
    pub fn stats(&self) -> MemoryStats {
        let state = self.state();
        MemoryStats {
            pieces_held: state.pieces.len(),
            pieces_fetched: state.pieces_fetched,
            bytes_fetched: state.bytes_fetched,
            pieces_deleted: state.pieces_deleted,
        }
    }

    /// Every piece id held, with its provider.
    pub fn held(&self) -> Vec<(String, PieceId)> {
        self.state().pieces.keys().cloned().collect()
    }

    /// Loses a piece (as a provider that dropped it). Returns whether it was held.
    pub fn lose_piece(&self, id: &PieceId) -> bool {
        let mut state = self.state();
        let before = state.pieces.len();
        state.pieces.retain(|(_, held), _| held != id);
        state.pieces.len() < before
    }

    /// Flips a byte of a piece (bit rot, a lying provider). Returns whether it was held.
    pub fn corrupt_piece(&self, id: &PieceId) -> bool {
        let mut state = self.state();
        let mut found = false;
        for ((_, held), bytes) in state.pieces.iter_mut() {
            if held == id && !bytes.is_empty() {
                let mut altered = bytes.to_vec();
                altered[0] ^= 0x5A;
                *bytes = Bytes::from(altered);
                found = true;
            }
        }
        found
    }

    /// Takes a provider offline: it serves and stores nothing until back.
    pub fn set_provider_down(&self, provider: &str, down: bool) {
        let mut state = self.state();
        if down {
            state.down.insert(provider.to_owned());
        } else {
            state.down.remove(provider);
        }
    }

    /// Makes the next `count` calls to `store_segment` fail.
    pub fn fail_next_stores(&self, count: usize) {
        self.state().failing_stores = count;
    }
}

#[async_trait::async_trait]
impl PieceStore for MemoryPieceStore {
    async fn store_segment(
        &self,
        segment: &EncodedSegment,
        layout: &SegmentLayout,
    ) -> Result<Vec<Option<Placement>>, PieceStoreError> {
        let mut state = self.state();
        if state.failing_stores > 0 {
            state.failing_stores -= 1;
            return Err(PieceStoreError::Failed("injected store failure".into()));
        }
        let first = state.next_provider;
        state.next_provider = (first + segment.piece_count()) % self.providers;
        let mut placements = Vec::with_capacity(segment.piece_count());
        for (index, (id, bytes)) in segment.ids().iter().zip(segment.pieces()).enumerate() {
            let provider = format!("provider-{}", (first + index) % self.providers);
            if state.down.contains(&provider) {
                placements.push(None);
                continue;
            }
            state
                .pieces
                .insert((provider.clone(), *id), Bytes::copy_from_slice(bytes));
            placements.push(Some(Placement {
                provider,
                detail: Vec::new(),
            }));
        }
        let stored = placements.iter().flatten().count();
        let needed = usize::from(layout.policy().success_threshold());
        if stored < needed {
            return Err(PieceStoreError::NotEnoughStored {
                stored,
                needed,
                reason: "providers are down".into(),
            });
        }
        Ok(placements)
    }

    async fn fetch_pieces(
        &self,
        requests: &[PieceRequest],
        needed: usize,
    ) -> Result<Vec<Option<Bytes>>, PieceStoreError> {
        let mut state = self.state();
        let mut out = Vec::with_capacity(requests.len());
        let mut served = 0;
        for request in requests {
            if served >= needed || state.down.contains(&request.placement.provider) {
                out.push(None);
                continue;
            }
            let bytes = state
                .pieces
                .get(&(request.placement.provider.clone(), request.id))
                .cloned();
            let bytes = match (bytes, &request.range) {
                (Some(bytes), Some(range)) => {
                    let (start, end) = (range.start as usize, range.end as usize);
                    (end <= bytes.len() && start <= end).then(|| bytes.slice(start..end))
                }
                (bytes, None) => bytes,
                (None, Some(_)) => None,
            };
            if let Some(bytes) = &bytes {
                served += 1;
                state.pieces_fetched += 1;
                state.bytes_fetched += bytes.len() as u64;
            }
            out.push(bytes);
        }
        Ok(out)
    }

    async fn delete_pieces(&self, pieces: &[(PieceId, Placement)]) -> Result<(), PieceStoreError> {
        let mut state = self.state();
        for (_, placement) in pieces {
            if state.down.contains(&placement.provider) {
                return Err(PieceStoreError::Failed(format!(
                    "{} is down",
                    placement.provider
                )));
            }
        }
        for (id, placement) in pieces {
            if state
                .pieces
                .remove(&(placement.provider.clone(), *id))
                .is_some()
            {
                state.pieces_deleted += 1;
            }
        }
        Ok(())
    }
}
