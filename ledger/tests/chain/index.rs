//! The market index: search, proof record, restart, reorg, outage; and
//! the deal lookups the provider daemon and the gateway use.

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::U256;
use dbytes_ledger::chain::deal::DealRequest;
use dbytes_ledger::chain::lookup::DealCache;
use dbytes_ledger::chain::proof::DealProof;
use dbytes_ledger::chain::units::GIB;
use dbytes_ledger::chain::{AcceptPolicy, ChainError, Commitment, ListingStatus};
use dbytes_ledger::market::{
    FollowConfig, Follower, ListingQuery, MarketError, MarketIndex, report,
};

use crate::common::*;

#[tokio::test]
async fn the_index_finds_listings_keeps_records_and_survives_restarts_reorgs_and_outages() {
    let mut market = Market::start().await;
    let consumer = market.party(CONSUMER).await;
    let cheap = market.party(PROVIDER).await;
    let pricey = market.party(PROVIDER2).await;
    let small = market.party(STRANGER).await;
    list(&cheap, &terms(AcceptPolicy::Auto, 1, "DE")).await;
    list(&pricey, &terms(AcceptPolicy::Manual, 3, "US")).await;
    let mut small_terms = terms(AcceptPolicy::Auto, 2, "DE");
    small_terms.capacity_bytes = 10 * GIB;
    small_terms.max_periods = 50;
    list(&small, &small_terms).await;

    // A deal with the cheap provider, committed over real pieces and proven once.
    let id = consumer
        .open_deal(&DealRequest {
            provider: addr(&cheap),
            capacity_bytes: 100 * GIB,
            periods: 10,
            price_per_gib_month: None,
            consumer_node_id: node_id(0xc0),
        })
        .await
        .unwrap();
    let pieces = Pieces::new(2, 16 * 1024);
    let commitment = Commitment {
        root: pieces.deal.root(),
        leaf_count: pieces.deal.leaf_count(),
        version: 1,
    };
    let signature = dbytes_ledger::chain::eip712::sign_commitment(
        cheap.signer().unwrap(),
        cheap.deployment(),
        id,
        &commitment,
    )
    .unwrap();
    consumer
        .commit(id, &commitment, None, Some(signature))
        .await
        .unwrap();
    market.go_to(&consumer, 1, 10).await;
    let anchor = cheap.anchor_seed(1).await.unwrap();
    let (head, _) = cheap.head().await.unwrap();
    market.anvil.mine(anchor + 1 - head).await.unwrap();
    let indexes = cheap.challenged_leaves(id, 1).await.unwrap();
    let proof = DealProof::build(id, &pieces.deal, &indexes, |slot| {
        Ok((
            &pieces.trees[slot as usize],
            pieces.bytes[slot as usize].as_slice(),
        ))
    })
    .unwrap();
    cheap.submit_proofs(1, &[proof]).await.unwrap();

    let path = market.dir.path().join("market.redb");
    let config = FollowConfig {
        poll_interval: Duration::from_millis(100),
        ..FollowConfig::default()
    };
    let index = Arc::new(MarketIndex::open(&path, &market.deployment).unwrap());
    let follower = Follower::new(consumer.clone(), index.clone(), config);
    let first = follower.sync().await.unwrap();
    assert!(first.logs > 10, "{first:?}");

    let search = |query: ListingQuery| {
        index
            .search(&query)
            .unwrap()
            .into_iter()
            .map(|r| r.provider)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        search(ListingQuery::default()),
        vec![addr(&cheap), addr(&small), addr(&pricey)]
    );
    assert_eq!(
        search(ListingQuery {
            max_price_per_gib_month: Some(2 * TOKEN),
            ..Default::default()
        }),
        vec![addr(&cheap), addr(&small)]
    );
    assert_eq!(
        search(ListingQuery {
            region: Some("us".parse().unwrap()),
            ..Default::default()
        }),
        vec![addr(&pricey)]
    );
    assert_eq!(
        search(ListingQuery {
            min_free_bytes: Some(950 * GIB),
            ..Default::default()
        }),
        vec![addr(&pricey)],
        "the cheap provider has 900 GiB free, the small one 10 GiB"
    );
    assert_eq!(
        search(ListingQuery {
            periods: Some(100),
            policy: Some(AcceptPolicy::Auto),
            ..Default::default()
        }),
        vec![addr(&cheap)]
    );
    let record = index.provider(addr(&cheap)).unwrap().unwrap();
    assert_eq!((record.proofs, record.missed), (1, 0));
    assert_eq!(record.used_bytes, 100 * GIB);
    assert_eq!(record.live_deals, 1);
    let deals = index.deals_of_provider(addr(&cheap)).unwrap();
    assert_eq!(deals.len(), 1);
    assert_eq!(deals[0].commitment, Some((commitment, 1)));
    assert_eq!(deals[0].proven_periods, 1);
    let page = report::provider(&record, &deals);
    assert!(page.contains("1 proven, 0 missed"), "{page}");
    assert!(page.contains("live deals (1)"), "{page}");
    assert_eq!(index.deals_of_consumer(addr(&consumer)).unwrap().len(), 1);

    // Period 2 goes unproven; after settlement the miss lowers the score.
    market.go_to(&consumer, 3, GRACE + 5).await;
    consumer.settle(id, 10).await.unwrap();
    follower.sync().await.unwrap();
    let record = index.provider(addr(&cheap)).unwrap().unwrap();
    assert_eq!((record.proofs, record.missed), (1, 1));
    // Prior (1, 0), a proof, then a miss: alpha = 0.95 * 1.95, beta = 1, score ~0.65.
    assert!(
        (record.reputation.score() - 0.6495).abs() < 0.001,
        "{:?}",
        record.reputation
    );
    assert!(
        search(ListingQuery {
            min_score: Some(0.9),
            ..Default::default()
        })
        .iter()
        .all(|p| *p != addr(&cheap))
    );

    // Restart: the cursor survives and only new events are read.
    let cursor = index.cursor().unwrap().unwrap();
    drop(follower);
    drop(index);
    let index = Arc::new(MarketIndex::open(&path, &market.deployment).unwrap());
    assert_eq!(index.cursor().unwrap(), Some(cursor));
    let follower = Follower::new(consumer.clone(), index.clone(), config);
    let mut repriced = terms(AcceptPolicy::Manual, 4, "US");
    repriced.node_id = node_id(0x22);
    pricey.update_listing(&repriced).await.unwrap();
    let resumed = follower.sync().await.unwrap();
    assert_eq!(resumed.logs, 1, "only the update is read after a restart");
    let record = index.provider(addr(&pricey)).unwrap().unwrap();
    assert_eq!(record.terms.unwrap().price_per_gib_month, 4 * TOKEN);

    // A reorg: an update is indexed, then the chain drops it for another.
    let snapshot = market.anvil.snapshot().await.unwrap();
    small.set_paused(true).await.unwrap();
    follower.sync().await.unwrap();
    assert_eq!(
        index.provider(addr(&small)).unwrap().unwrap().status,
        ListingStatus::Paused
    );
    market.anvil.revert(&snapshot).await.unwrap();
    let mut cheaper = small_terms.clone();
    cheaper.price_per_gib_month = TOKEN / 2;
    small.update_listing(&cheaper).await.unwrap();
    market.anvil.mine(3).await.unwrap();
    let after = follower.sync().await.unwrap();
    assert!(after.undone > 0, "{after:?}");
    let record = index.provider(addr(&small)).unwrap().unwrap();
    assert_eq!(
        record.status,
        ListingStatus::Active,
        "the dropped pause is undone"
    );
    assert_eq!(record.terms.unwrap().price_per_gib_month, TOKEN / 2);

    // An outage: a sync fails with the endpoint's error, the loop keeps going.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn({
        let follower = follower.clone();
        async move {
            follower
                .run(async {
                    let _ = stopped.await;
                })
                .await
        }
    });
    market.anvil.kill();
    let err = follower.sync().await.unwrap_err();
    assert!(
        matches!(err, MarketError::Chain(ChainError::Unreachable { .. })),
        "{err:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!running.is_finished(), "the follower survives the outage");
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("the follower stops when asked")
        .unwrap();
    // The index still answers from what it has.
    assert_eq!(index.search(&ListingQuery::default()).unwrap().len(), 3);
}

#[tokio::test]
async fn deal_lookups_serve_the_provider_daemon_and_the_gateway() {
    let market = Market::start().await;
    let consumer = market.party(CONSUMER).await;
    let provider = market.party(PROVIDER).await;
    let other = market.party(PROVIDER2).await;
    list(&provider, &terms(AcceptPolicy::Auto, 1, "DE")).await;
    let mut other_terms = terms(AcceptPolicy::Auto, 1, "NL");
    other_terms.node_id = node_id(0x33);
    other_terms.address_hints = alloy::primitives::Bytes::from_static(b"relay.example:443");
    list(&other, &other_terms).await;
    let request = |p| DealRequest {
        provider: p,
        capacity_bytes: GIB,
        periods: 3,
        price_per_gib_month: None,
        consumer_node_id: node_id(0xc0),
    };
    let first = consumer.open_deal(&request(addr(&provider))).await.unwrap();
    let second = consumer.open_deal(&request(addr(&other))).await.unwrap();

    let deals = consumer.consumer_deals(addr(&consumer)).await.unwrap();
    assert_eq!(deals.len(), 2);
    assert_eq!(deals[1].deal.id, second);
    assert_eq!(deals[1].provider_node_id, node_id(0x33));
    assert_eq!(&deals[1].address_hints[..], b"relay.example:443");
    assert_eq!(deals[1].start, 1);
    assert_eq!(
        consumer.provider_deal_ids(addr(&provider)).await.unwrap(),
        vec![first]
    );

    let cache = DealCache::new(provider.clone(), Duration::from_secs(60));
    let info = cache.get(first).await.unwrap().unwrap();
    assert!(info.active);
    assert_eq!(info.deal.consumer_node_id, node_id(0xc0));
    assert!(cache.get(U256::from(42)).await.unwrap().is_none());

    // Once the deal ends, it is no longer active (after the cache forgets it).
    consumer.terminate(first).await.unwrap();
    market.go_to(&consumer, 2, 1).await;
    assert!(cache.get(first).await.unwrap().unwrap().active, "cached");
    cache.invalidate(first);
    assert!(!cache.get(first).await.unwrap().unwrap().active);
}
