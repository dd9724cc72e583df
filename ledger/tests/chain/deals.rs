//! Deals end to end on a real chain: opened three ways, co-signed
//! commitments, storage proofs from real piece bytes, settlement.

use alloy::primitives::U256;
use dbytes_ledger::chain::bindings::market::Marketplace;
use dbytes_ledger::chain::bindings::{proofs::StorageProofs, registry::ProviderRegistry};
use dbytes_ledger::chain::deal::{DealRequest, rate_for};
use dbytes_ledger::chain::eip712::{self, Renewal};
use dbytes_ledger::chain::proof::DealProof;
use dbytes_ledger::chain::units::GIB;
use dbytes_ledger::chain::{AcceptPolicy, Commitment, DealState};

use crate::common::*;

/// Open, commit (co-signed, relayed by a third party), prove from piece
/// bytes, miss a period, settle, withdraw: every amount as the contract says.
#[tokio::test]
async fn a_deal_is_committed_proven_settled_and_paid() {
    let market = Market::start().await;
    let consumer = market.party(CONSUMER).await;
    let provider = market.party(PROVIDER).await;
    let stranger = market.party(STRANGER).await;
    list(&provider, &terms(AcceptPolicy::Auto, 1, "DE")).await;

    let periods = 10;
    let id = consumer
        .open_deal(&DealRequest {
            provider: addr(&provider),
            capacity_bytes: GIB,
            periods,
            price_per_gib_month: None,
            consumer_node_id: node_id(0xc0),
        })
        .await
        .unwrap();
    let deal = consumer.deal(id).await.unwrap().unwrap();
    let rate = rate_for(TOKEN, GIB, PERIOD);
    assert_eq!(U256::from(deal.rate_per_period), rate);
    assert_eq!(deal.state, DealState::Active);
    assert_eq!(deal.settled_to, 1, "an auto deal starts at the next period");
    assert_eq!(U256::from(deal.collateral), rate * U256::from(2 * periods));

    // A commitment over real pieces, signed by both, sent by a stranger.
    let pieces = Pieces::new(3, 64 * 1024);
    let commitment = Commitment {
        root: pieces.deal.root(),
        leaf_count: pieces.deal.leaf_count(),
        version: 1,
    };
    let deployment = consumer.deployment();
    let digest = eip712::commitment_digest(deployment, id, &commitment);
    let on_chain = StorageProofs::new(deployment.contracts.proofs, consumer.provider())
        .hashCommitment(
            id,
            commitment.root,
            commitment.leaf_count,
            commitment.version,
        )
        .call()
        .await
        .unwrap();
    assert_eq!(digest, on_chain, "the commitment digest is the contract's");
    let by_consumer =
        eip712::sign_commitment(consumer.signer().unwrap(), deployment, id, &commitment).unwrap();
    let by_provider =
        eip712::sign_commitment(provider.signer().unwrap(), deployment, id, &commitment).unwrap();
    let from = stranger
        .commit(id, &commitment, Some(by_consumer), Some(by_provider))
        .await
        .unwrap();
    assert_eq!(from, 1);
    let state = consumer.commitments(id).await.unwrap();
    assert_eq!(state.at(1), Some(commitment));

    // The provider daemon's view of the deal.
    let info = provider.deal_info(id).await.unwrap().unwrap();
    assert!(info.active);
    assert_eq!(info.deal.consumer, addr(&consumer));
    assert_eq!(info.consumer_node_id(), [0xc0; 32]);
    assert_eq!(info.deal.capacity_bytes, GIB);
    assert_eq!(info.commitments.latest(), Some(commitment));

    // Period 1: anchor the seed, derive the challenges, prove from the bytes.
    market.go_to(&consumer, 1, 10).await;
    let anchor = provider.anchor_seed(1).await.unwrap();
    let (head, _) = provider.head().await.unwrap();
    market.anvil.mine(anchor + 1 - head).await.unwrap();
    let indexes = provider.challenged_leaves(id, 1).await.unwrap();
    assert_eq!(indexes.len(), 4);
    let contract_indexes = StorageProofs::new(deployment.contracts.proofs, provider.provider())
        .challengeIndexes(id, U256::from(1))
        .call()
        .await
        .unwrap();
    let contract_indexes: Vec<u64> = contract_indexes.iter().map(|i| i.to::<u64>()).collect();
    assert_eq!(
        indexes, contract_indexes,
        "challenges are derived as the contract does"
    );
    let proof = DealProof::build(id, &pieces.deal, &indexes, |slot| {
        Ok((
            &pieces.trees[slot as usize],
            pieces.bytes[slot as usize].as_slice(),
        ))
    })
    .unwrap();
    assert_eq!(
        provider
            .submit_proofs(1, std::slice::from_ref(&proof))
            .await
            .unwrap(),
        1
    );
    assert!(provider.is_proven(id, 1).await.unwrap());
    // A second submission of the same period changes nothing.
    assert_eq!(stranger.submit_proofs(1, &[proof]).await.unwrap(), 0);

    // Period 2 goes unproven. Once it closes, a stranger settles both.
    market.go_to(&consumer, 3, GRACE + 5).await;
    let consumer_credit = consumer.credit(addr(&consumer)).await.unwrap();
    let settlement = stranger.settle(id, 10).await.unwrap();
    assert_eq!((settlement.from_period, settlement.to_period), (1, 3));
    let held = rate * U256::from(2_000) / U256::from(10_000);
    let slash = rate * U256::from(3); // max(3 x rate, 5% of 20 x rate)
    let reward = slash * U256::from(1_000) / U256::from(10_000); // below the cap of one rate
    assert_eq!(settlement.paid, rate);
    assert_eq!(settlement.held_back, held);
    assert_eq!(settlement.slashed, slash);
    assert_eq!(settlement.reporter_reward, reward);
    assert_eq!(settlement.refunded, rate + slash - reward);
    assert_eq!(
        consumer.credit(addr(&consumer)).await.unwrap() - consumer_credit,
        rate + slash - reward
    );
    assert_eq!(stranger.credit(addr(&stranger)).await.unwrap(), reward);

    // The provider withdraws its pay, less the share held back to the end.
    let before = provider.token_balance(addr(&provider)).await.unwrap();
    let withdrawn = provider.withdraw().await.unwrap();
    assert_eq!(withdrawn, rate - held);
    assert_eq!(
        provider.token_balance(addr(&provider)).await.unwrap() - before,
        rate - held
    );
    let pool = provider.pool(addr(&provider)).await.unwrap();
    assert_eq!(
        U256::from(pool.deposited),
        U256::from(10_000 * TOKEN) - slash
    );
}

/// Proposal + acceptance, a declined and a cancelled proposal, a signed
/// quote, renewals (automatic and signed) and both kinds of notice.
#[tokio::test]
async fn deals_open_three_ways_and_end_with_notice() {
    let market = Market::start().await;
    let consumer = market.party(CONSUMER).await;
    let manual = market.party(PROVIDER).await;
    let quoting = market.party(PROVIDER2).await;
    list(&manual, &terms(AcceptPolicy::Manual, 2, "US")).await;
    list(&quoting, &terms(AcceptPolicy::SignedQuote, 1, "DE")).await;
    let deployment = consumer.deployment().clone();
    let request = |provider, periods| DealRequest {
        provider,
        capacity_bytes: 10 * GIB,
        periods,
        price_per_gib_month: None,
        consumer_node_id: node_id(0xc1),
    };

    // 1. Propose, accept.
    let proposed = consumer
        .propose_deal(&request(addr(&manual), 5), None)
        .await
        .unwrap();
    assert_eq!(
        consumer.deal(proposed).await.unwrap().unwrap().state,
        DealState::Proposed
    );
    manual.accept_deal(proposed).await.unwrap();
    assert_eq!(
        consumer.deal(proposed).await.unwrap().unwrap().state,
        DealState::Active
    );
    // Automatic opening is refused with a reason.
    let refused = consumer
        .open_deal(&request(addr(&manual), 5))
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("does not accept deals automatically"),
        "{refused}"
    );

    // Declined and cancelled proposals refund the escrow to the consumer's credit.
    let credit = consumer.credit(addr(&consumer)).await.unwrap();
    let declined = consumer
        .propose_deal(&request(addr(&manual), 3), None)
        .await
        .unwrap();
    manual.decline_deal(declined).await.unwrap();
    let cancelled = consumer
        .propose_deal(&request(addr(&manual), 3), None)
        .await
        .unwrap();
    consumer.cancel_proposal(cancelled).await.unwrap();
    let escrow = rate_for(2 * TOKEN, 10 * GIB, PERIOD) * U256::from(3);
    assert_eq!(
        consumer.credit(addr(&consumer)).await.unwrap() - credit,
        escrow * U256::from(2)
    );
    assert_eq!(
        consumer.deal(declined).await.unwrap().unwrap().state,
        DealState::Closed
    );

    // 2. A signed quote opens a deal in one transaction.
    let quote = quoting
        .make_quote(Some(addr(&consumer)), 10 * GIB, 4, 600)
        .await
        .unwrap();
    let registry = ProviderRegistry::new(deployment.contracts.registry, consumer.provider());
    let typed = ProviderRegistry::Quote {
        provider: quote.quote.provider,
        consumer: addr(&consumer),
        capacityBytes: quote.quote.capacity_bytes,
        periods: quote.quote.periods,
        pricePerGiBMonth: alloy::primitives::aliases::U96::from(quote.quote.price_per_gib_month),
        collateral: quote.quote.collateral,
        parentDealId: U256::ZERO,
        root: Default::default(),
        leafCount: 0,
        validUntil: quote.quote.valid_until,
        nonce: quote.quote.nonce,
    };
    assert_eq!(
        registry.hashQuote(typed).call().await.unwrap(),
        eip712::quote_digest(&deployment, &quote.quote),
        "the quote digest is the registry's"
    );
    let quoted = consumer
        .open_deal_with_quote(&quote, node_id(0xc1))
        .await
        .unwrap();
    assert_eq!(
        consumer.deal(quoted).await.unwrap().unwrap().state,
        DealState::Active
    );
    let reused = consumer
        .open_deal_with_quote(&quote, node_id(0xc1))
        .await
        .unwrap_err();
    assert!(reused.to_string().contains("already used"), "{reused}");

    // A signed renewal extends the quoted deal.
    let deal = consumer.deal(quoted).await.unwrap().unwrap();
    let renewal = Renewal {
        deal_id: quoted,
        end: deal.end as u32,
        new_end: deal.end as u32 + 3,
        valid_until: consumer.now().await.unwrap() + 600,
    };
    let market_contract = Marketplace::new(deployment.contracts.marketplace, consumer.provider());
    assert_eq!(
        market_contract
            .hashRenewal(quoted, renewal.end, renewal.new_end, renewal.valid_until)
            .call()
            .await
            .unwrap(),
        eip712::renewal_digest(&deployment, &renewal),
        "the renewal digest is the marketplace's"
    );
    // Without consent a signed-quote provider does not renew.
    let unconsented = consumer.renew(quoted, 3, None).await.unwrap_err();
    assert!(
        unconsented
            .to_string()
            .contains("does not renew automatically"),
        "{unconsented}"
    );
    let consent = eip712::sign_renewal(quoting.signer().unwrap(), &deployment, renewal).unwrap();
    assert_eq!(
        consumer.renew(quoted, 3, Some(&consent)).await.unwrap(),
        deal.end + 3
    );

    // 3. Automatic: open, renew without consent, terminate with notice.
    let auto = market.party(STRANGER).await;
    list(&auto, &terms(AcceptPolicy::Auto, 1, "FR")).await;
    let opened = consumer.open_deal(&request(addr(&auto), 6)).await.unwrap();
    assert_eq!(consumer.renew(opened, 2, None).await.unwrap(), 1 + 6 + 2);
    let end = consumer.terminate(opened).await.unwrap();
    assert_eq!(end, 2, "a deal not started yet runs its first period");
    assert_eq!(
        consumer.deal(opened).await.unwrap().unwrap().state,
        DealState::Terminating
    );

    // The manual provider gives notice on its deal.
    market.go_to(&consumer, 1, 5).await;
    let exit_end = manual.exit_gracefully(proposed).await.unwrap();
    assert_eq!(exit_end, 2 + deployment.parameters.exit_notice_periods);
    assert_eq!(
        consumer.deal(proposed).await.unwrap().unwrap().state,
        DealState::Exiting
    );
}

/// Missed proofs fail a deal; the consumer reassigns its commitment to a
/// new provider (a signed repair quote), which proves against the same root
/// from the same piece bytes.
#[tokio::test]
async fn a_failed_deal_is_reassigned_and_the_new_provider_proves_the_same_data() {
    let market = Market::start().await;
    let consumer = market.party(CONSUMER).await;
    let lost = market.party(PROVIDER).await;
    let rescuer = market.party(PROVIDER2).await;
    let stranger = market.party(STRANGER).await;
    list(&lost, &terms(AcceptPolicy::Auto, 1, "DE")).await;
    list(&rescuer, &terms(AcceptPolicy::SignedQuote, 1, "NL")).await;

    let id = consumer
        .open_deal(&DealRequest {
            provider: addr(&lost),
            capacity_bytes: GIB,
            periods: 10,
            price_per_gib_month: None,
            consumer_node_id: node_id(0xc0),
        })
        .await
        .unwrap();
    let pieces = Pieces::new(2, 32 * 1024);
    let commitment = Commitment {
        root: pieces.deal.root(),
        leaf_count: pieces.deal.leaf_count(),
        version: 1,
    };
    let signature = eip712::sign_commitment(
        lost.signer().unwrap(),
        consumer.deployment(),
        id,
        &commitment,
    )
    .unwrap();
    consumer
        .commit(id, &commitment, None, Some(signature))
        .await
        .unwrap();

    // Periods 1 to 3 go unproven: a stranger reports the first, then settles.
    market.go_to(&consumer, 4, GRACE + 5).await;
    let err = stranger.report_missed(id, 4).await.unwrap_err();
    assert!(err.to_string().contains("still open to proofs"), "{err}");
    let reported = stranger.report_missed(id, 1).await.unwrap();
    assert_eq!((reported.from_period, reported.to_period), (1, 2));
    let failed = stranger.settle(id, 10).await.unwrap();
    assert_eq!(failed.state, DealState::Failed);
    let parent = consumer.deal(id).await.unwrap().unwrap();
    assert_eq!(parent.state, DealState::Failed);

    // The rescuer quotes for the parent's commitment; the consumer reassigns.
    let quote = rescuer
        .make_repair_quote(id, addr(&consumer), 600)
        .await
        .unwrap();
    assert_eq!(quote.quote.root, commitment.root);
    let child = consumer.reassign(id, &quote).await.unwrap();
    let child_deal = consumer.deal(child).await.unwrap().unwrap();
    assert_eq!(child_deal.provider, addr(&rescuer));
    assert_eq!(
        child_deal.settled_to, 5,
        "the child starts at the next period"
    );
    assert_eq!(child_deal.end, parent.term_end);
    assert_eq!(
        consumer.commitments(child).await.unwrap().at(5),
        Some(commitment)
    );
    assert_eq!(
        consumer.deal(id).await.unwrap().unwrap().state,
        DealState::Closed
    );

    // The same piece bytes prove the child's first period.
    market.go_to(&consumer, 5, 10).await;
    let anchor = rescuer.anchor_seed(5).await.unwrap();
    let (head, _) = rescuer.head().await.unwrap();
    market.anvil.mine(anchor + 1 - head).await.unwrap();
    let indexes = rescuer.challenged_leaves(child, 5).await.unwrap();
    let proof = DealProof::build(child, &pieces.deal, &indexes, |slot| {
        Ok((
            &pieces.trees[slot as usize],
            pieces.bytes[slot as usize].as_slice(),
        ))
    })
    .unwrap();
    assert_eq!(rescuer.submit_proofs(5, &[proof]).await.unwrap(), 1);

    // Once the period closes, settling pays the rescuer its repair reward.
    market.go_to(&consumer, 6, GRACE + 5).await;
    let before = rescuer.credit(addr(&rescuer)).await.unwrap();
    consumer.settle(child, 1).await.unwrap();
    let earned = rescuer.credit(addr(&rescuer)).await.unwrap() - before;
    let rate = U256::from(child_deal.rate_per_period);
    let held = rate * U256::from(2_000) / U256::from(10_000);
    assert!(parent.repair_reward > 0);
    assert_eq!(
        earned,
        rate - held + U256::from(parent.repair_reward),
        "pay and the repair reward"
    );
}
