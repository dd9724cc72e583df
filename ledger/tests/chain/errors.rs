//! Mistakes read as sentences; an endpoint that is down reads as one too.

use std::time::{Duration, Instant};

use alloy::primitives::{U256, aliases::U96};
use dbytes_ledger::chain::bindings::market::Marketplace;
use dbytes_ledger::chain::deal::DealRequest;
use dbytes_ledger::chain::units::GIB;
use dbytes_ledger::chain::{
    AcceptPolicy, ChainClient, ChainError, Commitment, RetryPolicy, revert,
};

use crate::common::*;

#[tokio::test]
async fn user_errors_are_refused_with_a_sentence_naming_the_input() {
    let market = Market::start().await;
    let consumer = market.party(CONSUMER).await;
    let provider = market.party(PROVIDER).await;
    list(&provider, &terms(AcceptPolicy::Auto, 5, "DE")).await;
    let request = DealRequest {
        provider: addr(&provider),
        capacity_bytes: GIB,
        periods: 10,
        price_per_gib_month: Some(3 * TOKEN),
        consumer_node_id: node_id(0xc0),
    };

    let err = consumer.open_deal(&request).await.unwrap_err();
    assert!(matches!(err, ChainError::Refused(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "price 3 DBS per GiB-month is below the provider's ask of 5 DBS"
    );

    // The contract says the same when the checks are bypassed.
    let market_contract = Marketplace::new(
        consumer.deployment().contracts.marketplace,
        consumer.provider(),
    );
    let reverted = market_contract
        .openDeal(
            addr(&provider),
            GIB,
            10,
            U96::from(3 * TOKEN),
            node_id(0xc0),
        )
        .from(addr(&consumer))
        .call()
        .await
        .unwrap_err();
    let data = reverted.as_revert_data().expect("a revert carries data");
    assert_eq!(
        revert::describe(&data),
        "price 3 DBS per GiB-month is below the provider's ask of 5 DBS"
    );

    let too_long = DealRequest {
        periods: 5000,
        price_per_gib_month: None,
        ..request.clone()
    };
    let err = consumer.open_deal(&too_long).await.unwrap_err();
    assert!(err.to_string().contains("outside provider"), "{err}");
    let too_big = DealRequest {
        capacity_bytes: 2000 * GIB,
        price_per_gib_month: None,
        ..request.clone()
    };
    let err = consumer.open_deal(&too_big).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("1000 GiB free, less than the 1.95 TiB"),
        "{err}"
    );

    // A wallet without tokens.
    let broke = ChainClient::connect(
        consumer.deployment().clone(),
        Some(market.anvil.endpoint()),
        Some(market.anvil.account(7)),
    )
    .await
    .unwrap();
    let affordable = DealRequest {
        price_per_gib_month: None,
        ..request.clone()
    };
    let err = broke.open_deal(&affordable).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("holds 0 DBS; get test tokens with `dbytes faucet`"),
        "{err}"
    );

    // Commitments: too large for the deal, or signed by the wrong party.
    let id = consumer.open_deal(&affordable).await.unwrap();
    let huge = Commitment {
        root: node_id(1),
        leaf_count: GIB / 256 + 1,
        version: 1,
    };
    let err = consumer.commit(id, &huge, None, None).await.unwrap_err();
    assert!(err.to_string().contains("exceed deal"), "{err}");
    let fine = Commitment {
        leaf_count: 1024,
        ..huge
    };
    let forged = dbytes_ledger::chain::eip712::sign_commitment(
        consumer.signer().unwrap(),
        consumer.deployment(),
        id,
        &fine,
    )
    .unwrap();
    let err = consumer
        .commit(id, &fine, None, Some(forged))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("the provider's signature is neither"),
        "{err}"
    );
    let err = consumer.commit(id, &fine, None, None).await.unwrap_err();
    assert!(
        err.to_string().contains("provider's signature is missing"),
        "{err}"
    );

    // Deals that do not exist, state that does not allow the call.
    let err = consumer.terminate(U256::from(99)).await.unwrap_err();
    assert!(err.to_string().contains("there is no deal 99"), "{err}");
    let err = provider.terminate(id).await.unwrap_err();
    assert!(err.to_string().contains("only deal 1's consumer"), "{err}");
    let err = consumer.settle(id, 5).await.unwrap_err();
    assert!(
        err.to_string().contains("no closed period to settle"),
        "{err}"
    );
    let err = provider
        .withdraw_collateral(U256::from(20_000 * TOKEN))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is unlocked"), "{err}");
    let err = consumer.withdraw().await.unwrap_err();
    assert!(err.to_string().contains("no credit to withdraw"), "{err}");
}

#[tokio::test]
async fn an_unreachable_endpoint_is_named_and_reads_are_retried() {
    let mut market = Market::start().await;
    let client = market.party(CONSUMER).await.with_retry(
        RetryPolicy {
            attempts: 3,
            first_delay: Duration::from_millis(200),
            max_delay: Duration::from_millis(400),
        },
        Duration::from_secs(5),
    );
    let url = market.anvil.endpoint().to_string();
    market.anvil.kill();

    let started = Instant::now();
    let err = client.token_balance(addr(&client)).await.unwrap_err();
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "reads are retried"
    );
    assert!(err.is_transient(), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("cannot reach the chain's RPC endpoint at {url}")),
        "{message}"
    );
    assert!(
        message.contains("check that the node is running"),
        "{message}"
    );

    // Connecting to nothing fails the same way (after the default retries).
    let err = ChainClient::connect(market.deployment.clone(), Some(&url), None)
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(err, ChainError::Unreachable { .. }), "{err:?}");

    // A deployment on a chain that was reset has no contracts.
    let fresh = dbytes_ledger::chain::anvil::Anvil::spawn(&Default::default()).unwrap();
    let err = ChainClient::connect(market.deployment.clone(), Some(fresh.endpoint()), None)
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(err.to_string().contains("the chain was reset"), "{err}");
}
