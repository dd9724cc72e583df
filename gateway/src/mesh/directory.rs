//! What the store knows of the user's deals and their providers: how to
//! reach each provider, how much room each deal has left, and how each
//! provider has been answering.
//!
//! The deal list comes from the chain ([`ChainClient::consumer_deals`]) and
//! is replaced wholesale on every refresh; room is counted from the book's
//! deal slots plus the uploads in flight, in proof-tree leaves, the unit the
//! contract checks a commitment against the deal's capacity in.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use alloy_primitives::{Address, U256};
use dbytes_ledger::book::{DealPieces, Placement};
use dbytes_ledger::chain::DealState;
use dbytes_ledger::chain::deal::MONTH_SECS;
use dbytes_ledger::chain::lookup::ConsumerDeal;
use dbytes_ledger::chain::units::GIB;
use dbytes_ledger::commitment::{LEAF_SIZE, leaf_count_for};
use dbytes_mesh::transport::peer_addr;
use iroh::{EndpointAddr, EndpointId, RelayUrl};

use dbytes_placement::Candidate;

/// Where one piece goes: a deal and its provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// The deal.
    pub deal: U256,
    /// The provider's node.
    pub node: EndpointId,
    /// How to dial it.
    pub addr: EndpointAddr,
}

impl Target {
    /// The placement the book records for a piece stored here.
    pub fn placement(&self) -> Placement {
        Placement {
            provider: hex::encode(self.node.as_bytes()),
            detail: self.deal.to_be_bytes::<32>().to_vec(),
        }
    }
}

/// The provider node and deal a placement names, if it is one of ours.
pub(crate) fn parse_placement(placement: &Placement) -> Option<(EndpointId, U256)> {
    let mut node = [0u8; 32];
    hex::decode_to_slice(&placement.provider, &mut node).ok()?;
    let node = EndpointId::from_bytes(&node).ok()?;
    let deal: [u8; 32] = placement.detail.as_slice().try_into().ok()?;
    Some((node, U256::from_be_bytes(deal)))
}

/// Socket addresses and a relay from a listing's address hints: UTF-8,
/// separated by commas or whitespace, each `ip:port` or a relay URL.
/// Anything else is skipped (the node id alone may still be dialable).
pub(crate) fn parse_hints(hints: &[u8]) -> (Vec<SocketAddr>, Option<RelayUrl>) {
    let text = String::from_utf8_lossy(hints);
    let mut addrs = Vec::new();
    let mut relay = None;
    for item in text.split(|c: char| c == ',' || c.is_whitespace()) {
        if item.is_empty() {
            continue;
        }
        if let Ok(addr) = item.parse::<SocketAddr>() {
            addrs.push(addr);
        } else if item.starts_with("http")
            && let Ok(url) = item.parse::<RelayUrl>()
        {
            relay.get_or_insert(url);
        }
    }
    (addrs, relay)
}

/// Leaves a slot of a piece of `piece_len` bytes takes: its leaf count
/// rounded up to a power of two.
pub(crate) fn slot_leaves(piece_len: u64) -> u64 {
    leaf_count_for(piece_len).max(1).next_power_of_two()
}

/// One running deal of the user's.
#[derive(Debug, Clone)]
pub(crate) struct DealEntry {
    /// The deal.
    pub deal: U256,
    /// The provider's wallet.
    pub provider: Address,
    /// The provider's node.
    pub node: EndpointId,
    /// How to dial it.
    pub addr: EndpointAddr,
    /// Its region code.
    pub region: String,
    /// Bytes the deal pays for.
    pub capacity_bytes: u64,
    /// Its price per GiB-month (worked back from its rate).
    pub price_per_gib_month: u128,
    /// Whether it takes pieces now (running, before its end).
    pub live: bool,
    /// Whether its provider let it down: it failed on chain or was slashed
    /// for a missed proof (no new deal goes to such a provider).
    pub let_down: bool,
    /// Escrow it holds, in base units.
    pub escrow: U256,
    /// The market's proof score of its provider (1 when unknown).
    pub proof_score: f64,
    /// Deal-periods its provider has proven (0 when unknown).
    pub proofs_made: u64,
}

impl DealEntry {
    /// The entry of a deal the chain listed, or `None` if its provider's
    /// node id is unknown (it left the registry).
    pub fn from_chain(deal: &ConsumerDeal, current_period: u64, period_secs: u64) -> Option<Self> {
        let node = EndpointId::from_bytes(&deal.provider_node_id.0).ok()?;
        let (addrs, relay) = parse_hints(&deal.address_hints);
        let addr = peer_addr(node.as_bytes(), addrs, relay).ok()?;
        let capacity = u128::from(deal.deal.capacity_bytes.max(1));
        let price = deal
            .deal
            .rate_per_period
            .saturating_mul(u128::from(GIB))
            .saturating_mul(u128::from(MONTH_SECS))
            / capacity.saturating_mul(u128::from(period_secs.max(1)));
        Some(DealEntry {
            deal: deal.deal.id,
            provider: deal.deal.provider,
            node,
            addr,
            region: deal.region.to_string(),
            capacity_bytes: deal.deal.capacity_bytes,
            price_per_gib_month: price,
            live: deal.deal.is_live_in(current_period),
            let_down: deal.deal.state == DealState::Failed || deal.deal.slashed > 0,
            escrow: deal.deal.escrow(),
            proof_score: 1.0,
            proofs_made: 0,
        })
    }
}

/// Pieces listed and in flight on one deal, in leaves.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    pieces: u64,
    in_flight: u64,
    /// The tallest slot ever listed or reserved.
    slot_leaves: u64,
}

impl Usage {
    /// Whether one more piece with slots of `leaves` fits `capacity_bytes`.
    fn fits(&self, leaves: u64, capacity_bytes: u64) -> bool {
        let slot = self.slot_leaves.max(leaves);
        let capacity_leaves = capacity_bytes / LEAF_SIZE as u64;
        (self.pieces + self.in_flight + 1).saturating_mul(slot) <= capacity_leaves
    }

    /// Bytes free for pieces with slots of `leaves`.
    fn free_bytes(&self, leaves: u64, capacity_bytes: u64) -> u64 {
        let slot = self.slot_leaves.max(leaves);
        let used = (self.pieces + self.in_flight).saturating_mul(slot) * LEAF_SIZE as u64;
        capacity_bytes.saturating_sub(used)
    }
}

/// How a provider has been answering.
#[derive(Debug, Clone, Copy, Default)]
struct Health {
    failures: u32,
    down_until: Option<Instant>,
    /// Until when reads ask it last: it left a read unanswered past the
    /// hedge delay (a stopped provider whose connection still looks open
    /// never errors; it only goes silent). Writes do not look at this.
    stalled_until: Option<Instant>,
    latency_ms: Option<f64>,
}

/// The user's deals, their room and their providers' health.
#[derive(Debug, Default)]
pub(crate) struct Directory {
    deals: BTreeMap<U256, DealEntry>,
    /// Every provider of any deal the user ever had, to reach old pieces.
    nodes: HashMap<EndpointId, EndpointAddr>,
    usage: HashMap<U256, Usage>,
    health: HashMap<EndpointId, Health>,
}

impl Directory {
    /// Replaces the deal list.
    pub fn set_deals(&mut self, deals: Vec<DealEntry>) {
        self.deals.clear();
        for entry in deals {
            self.nodes.insert(entry.node, entry.addr.clone());
            self.deals.insert(entry.deal, entry);
        }
    }

    /// Counts the pieces the book lists per deal (after a start or refresh;
    /// uploads in flight are kept).
    pub fn set_listed(&mut self, listed: &[DealPieces]) {
        for pieces in listed {
            let usage = self.usage.entry(pieces.deal).or_default();
            usage.pieces = pieces.pieces;
            usage.slot_leaves = usage
                .slot_leaves
                .max(pieces.max_piece_leaves.max(1).next_power_of_two());
        }
    }

    /// The running deals.
    pub fn deals(&self) -> impl Iterator<Item = &DealEntry> {
        self.deals.values()
    }

    /// Providers the user has a live deal with.
    pub fn live_providers(&self) -> impl Iterator<Item = Address> + '_ {
        self.deals
            .values()
            .filter(|entry| entry.live)
            .map(|entry| entry.provider)
    }

    /// The deal entry of `deal`.
    pub fn deal(&self, deal: U256) -> Option<&DealEntry> {
        self.deals.get(&deal)
    }

    /// How to dial `node` (its node id alone if no listing ever gave more).
    pub fn addr_of(&self, node: EndpointId) -> EndpointAddr {
        self.nodes
            .get(&node)
            .cloned()
            .unwrap_or_else(|| EndpointAddr::from_parts(node, []))
    }

    /// The live deals with room for a piece of `piece_len` bytes, one per
    /// provider node (its deal with the most room), with healthy providers
    /// only unless none is, as selection candidates and targets.
    pub fn candidates(&self, piece_len: u64, now: Instant) -> Vec<(Candidate, Target)> {
        let leaves = slot_leaves(piece_len);
        let mut best: BTreeMap<[u8; 32], (u64, &DealEntry)> = BTreeMap::new();
        for entry in self.deals.values().filter(|entry| entry.live) {
            let usage = self.usage.get(&entry.deal).copied().unwrap_or_default();
            if !usage.fits(leaves, entry.capacity_bytes) {
                continue;
            }
            let free = usage.free_bytes(leaves, entry.capacity_bytes);
            let slot = best.entry(*entry.node.as_bytes()).or_insert((free, entry));
            if free > slot.0 {
                *slot = (free, entry);
            }
        }
        best.into_values()
            .filter(|(_, entry)| !self.is_down(entry.node, now))
            .map(|(free_bytes, entry)| {
                let health = self.health.get(&entry.node).copied().unwrap_or_default();
                (
                    Candidate {
                        id: hex::encode(entry.node.as_bytes()),
                        operator: None,
                        region: entry.region.clone(),
                        free_bytes,
                        price_per_gib_month: entry.price_per_gib_month,
                        latency_ms: health.latency_ms,
                        throughput_mbps: None,
                        proof_score: entry.proof_score,
                        proofs_made: entry.proofs_made,
                        audits_failed: u64::from(health.failures),
                    },
                    Target {
                        deal: entry.deal,
                        node: entry.node,
                        addr: entry.addr.clone(),
                    },
                )
            })
            .collect()
    }

    /// Reserves room for one piece of `piece_len` bytes on `deal`; `false`
    /// if it no longer fits.
    pub fn reserve(&mut self, deal: U256, piece_len: u64) -> bool {
        let leaves = slot_leaves(piece_len);
        let capacity = self
            .deals
            .get(&deal)
            .map_or(0, |entry| entry.capacity_bytes);
        let usage = self.usage.entry(deal).or_default();
        if !usage.fits(leaves, capacity) {
            return false;
        }
        usage.in_flight += 1;
        usage.slot_leaves = usage.slot_leaves.max(leaves);
        true
    }

    /// Gives back a reservation; `listed` if its piece is now listed.
    pub fn release(&mut self, deal: U256, listed: bool) {
        let usage = self.usage.entry(deal).or_default();
        usage.in_flight = usage.in_flight.saturating_sub(1);
        if listed {
            usage.pieces += 1;
        }
    }

    /// Records that `count` pieces of `deal` were deleted.
    pub fn removed(&mut self, deal: U256, count: u64) {
        let usage = self.usage.entry(deal).or_default();
        usage.pieces = usage.pieces.saturating_sub(count);
    }

    /// Pieces listed per provider node, for the metrics.
    pub fn pieces_per_provider(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for entry in self.deals.values() {
            let pieces = self.usage.get(&entry.deal).map_or(0, |usage| usage.pieces);
            *out.entry(hex::encode(entry.node.as_bytes())).or_default() += pieces;
        }
        out
    }

    /// Whether `node` failed recently enough to be skipped.
    pub fn is_down(&self, node: EndpointId, now: Instant) -> bool {
        self.health
            .get(&node)
            .and_then(|health| health.down_until)
            .is_some_and(|until| until > now)
    }

    /// Records a request `node` answered in `elapsed`.
    pub fn answered(&mut self, node: EndpointId, elapsed: Duration) {
        let health = self.health.entry(node).or_default();
        let sample = elapsed.as_secs_f64() * 1000.0;
        health.latency_ms = Some(match health.latency_ms {
            Some(average) => average * 0.8 + sample * 0.2,
            None => sample,
        });
        health.failures = 0;
        health.down_until = None;
        health.stalled_until = None;
    }

    /// Records that `node` left a read unanswered past the hedge delay:
    /// reads ask it after the others until `until` or its next answer.
    pub fn stalled(&mut self, node: EndpointId, until: Instant) {
        let health = self.health.entry(node).or_default();
        health.stalled_until = Some(health.stalled_until.map_or(until, |old| old.max(until)));
    }

    /// Whether reads should ask `node` after the others: it is down or
    /// stalled a recent read.
    pub fn is_slow(&self, node: EndpointId, now: Instant) -> bool {
        self.is_down(node, now)
            || self
                .health
                .get(&node)
                .and_then(|health| health.stalled_until)
                .is_some_and(|until| until > now)
    }

    /// Records a request `node` failed; after two in a row it is skipped
    /// for `down_for` (longer the more it fails).
    pub fn failed(&mut self, node: EndpointId, now: Instant, down_for: Duration) {
        let health = self.health.entry(node).or_default();
        health.failures = health.failures.saturating_add(1);
        if health.failures >= 2 {
            let factor = 1u32 << (health.failures - 2).min(5);
            health.down_until = Some(now + down_for.saturating_mul(factor));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(byte: u8) -> EndpointId {
        iroh::SecretKey::from_bytes(&[byte; 32]).public()
    }

    fn entry(deal: u64, node_byte: u8, capacity_bytes: u64) -> DealEntry {
        let node = node(node_byte);
        DealEntry {
            deal: U256::from(deal),
            provider: Address::repeat_byte(node_byte),
            node,
            addr: EndpointAddr::from_parts(node, []),
            region: "EU".into(),
            capacity_bytes,
            price_per_gib_month: 1,
            live: true,
            let_down: false,
            escrow: U256::ZERO,
            proof_score: 1.0,
            proofs_made: 0,
        }
    }

    #[test]
    fn placements_round_trip_and_others_are_not_ours() {
        let target = Target {
            deal: U256::from(42),
            node: node(1),
            addr: EndpointAddr::from_parts(node(1), []),
        };
        assert_eq!(
            parse_placement(&target.placement()),
            Some((node(1), U256::from(42)))
        );
        let foreign = Placement {
            provider: "provider-0".into(),
            detail: vec![],
        };
        assert_eq!(parse_placement(&foreign), None);
    }

    #[test]
    fn hints_give_addresses_and_a_relay() {
        let (addrs, relay) =
            parse_hints(b"127.0.0.1:4433, [::1]:9 https://relay.example.org./ junk");
        assert_eq!(addrs.len(), 2);
        assert!(relay.is_some());
        assert_eq!(parse_hints(b""), (vec![], None));
    }

    #[test]
    fn room_is_counted_in_slots_with_reservations() {
        let mut directory = Directory::default();
        // Room for 4 slots of 4 leaves (a 1000-byte piece).
        directory.set_deals(vec![entry(1, 1, 4 * 4 * 256), entry(2, 2, 1 << 20)]);
        assert_eq!(slot_leaves(1000), 4);
        for _ in 0..4 {
            assert!(directory.reserve(U256::from(1), 1000));
        }
        assert!(!directory.reserve(U256::from(1), 1000));
        let now = Instant::now();
        let candidates = directory.candidates(1000, now);
        assert_eq!(candidates.len(), 1, "the full deal is no candidate");
        directory.release(U256::from(1), true);
        directory.release(U256::from(1), false);
        assert_eq!(directory.candidates(1000, now).len(), 2);
        directory.removed(U256::from(1), 1);
        assert_eq!(
            directory.pieces_per_provider()[&hex::encode(node(1).as_bytes())],
            0
        );
    }

    #[test]
    fn failing_providers_are_skipped_for_a_while() {
        let mut directory = Directory::default();
        directory.set_deals(vec![entry(1, 1, 1 << 20)]);
        let now = Instant::now();
        directory.failed(node(1), now, Duration::from_secs(10));
        assert!(!directory.is_down(node(1), now));
        directory.failed(node(1), now, Duration::from_secs(10));
        assert!(directory.is_down(node(1), now));
        assert!(directory.candidates(10, now).is_empty());
        assert!(!directory.is_down(node(1), now + Duration::from_secs(11)));
        directory.answered(node(1), Duration::from_millis(3));
        assert!(!directory.is_down(node(1), now));
    }

    #[test]
    fn stalled_providers_are_read_last_but_still_written_to() {
        let mut directory = Directory::default();
        directory.set_deals(vec![entry(1, 1, 1 << 20)]);
        let now = Instant::now();
        assert!(!directory.is_slow(node(1), now));
        directory.stalled(node(1), now + Duration::from_secs(10));
        assert!(directory.is_slow(node(1), now));
        assert!(!directory.is_down(node(1), now));
        assert_eq!(
            directory.candidates(10, now).len(),
            1,
            "writes still use it"
        );
        assert!(!directory.is_slow(node(1), now + Duration::from_secs(11)));
        directory.answered(node(1), Duration::from_millis(3));
        assert!(!directory.is_slow(node(1), now));
    }
}
