//! The provider daemon end to end: anvil, the contracts, `dbytes provider
//! run` child processes on 127.0.0.1 and a consumer with its own wallet and
//! node key. Needs the `dbytes` binary built (`cargo build --bin dbytes`).

mod network;

use std::time::Duration;

use alloy_primitives::{Bytes, U256};
use dbytes_ledger::chain::deal::DealRequest;
use dbytes_ledger::chain::{AcceptPolicy, Commitment as ChainCommitment, DealState, eip712};
use dbytes_ledger::piece::PieceId;
use dbytes_mesh::audit::check_audit;
use dbytes_mesh::chain::{ChainDeals, ChainSigner};
use dbytes_mesh::client::ClientError;
use dbytes_mesh::commitment::{Commitment, CommitmentSigner, PieceSlot};
use dbytes_mesh::deal::{DealAuthority, DealId};
use dbytes_mesh::wire::{Refusal, StoredPiece};
use network::{
    CONSUMER, Consumer, Network, ProviderProcess, ProviderSpec, TOKEN, metric, piece_bytes,
    piece_client, wait_for, wait_for_listing,
};

fn refusal(result: Result<StoredPiece, ClientError>) -> Refusal {
    match result {
        Err(ClientError::Refused { refusal, .. }) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pieces_round_trip_over_a_chain_deal_and_strangers_are_refused() {
    let network = Network::start("round-trip", 3600, 600).await;
    let provider = ProviderProcess::spawn(&network, "provider", ProviderSpec::new(2)).await;
    let consumer = Consumer::new(&network, CONSUMER).await;
    let deal = consumer.open_deal(&provider, 96 << 10, 4).await;
    let addr = provider.addr();

    // put, get, range, audit.
    let bytes = piece_bytes(40_000, 1);
    let piece = PieceId::of(&bytes);
    let stored = consumer
        .pieces
        .put_piece(&addr, deal, piece, &bytes)
        .await
        .unwrap();
    assert_eq!(stored.length, bytes.len() as u64);
    let got = consumer.pieces.get_piece(&addr, deal, piece).await.unwrap();
    assert_eq!(got, bytes);
    let range = consumer
        .pieces
        .get_range(&addr, deal, piece, 1000, 4096)
        .await
        .unwrap();
    assert_eq!(range, bytes[1000..5096]);
    let leaves = vec![0, 77, stored.leaf_count - 1];
    let audit = consumer
        .pieces
        .audit(&addr, deal, piece, leaves.clone())
        .await
        .unwrap();
    check_audit(&bytes, &stored, &leaves, &audit).unwrap();

    // A node that is not the deal's consumer may neither write nor read.
    let stranger = piece_client(&dbytes_ledger::keys::NodeSecret::from_bytes(rand::random())).await;
    let other = piece_bytes(1000, 2);
    assert!(matches!(
        refusal(
            stranger
                .put_piece(&addr, deal, PieceId::of(&other), &other)
                .await
        ),
        Refusal::NotConsumer(id) if id == deal
    ));
    assert!(matches!(
        stranger.get_piece(&addr, deal, piece).await,
        Err(ClientError::Refused {
            refusal: Refusal::NotAuthorisedReader(_),
            ..
        })
    ));

    // Bytes that do not match their id, and a piece over the deal's capacity.
    let mismatched = piece_bytes(1000, 3);
    assert!(matches!(
        refusal(
            consumer
                .pieces
                .put_piece(&addr, deal, PieceId::of(b"something else"), &mismatched)
                .await
        ),
        Refusal::PieceIdMismatch { .. }
    ));
    let too_much = piece_bytes(60_000, 4);
    assert!(matches!(
        refusal(
            consumer
                .pieces
                .put_piece(&addr, deal, PieceId::of(&too_much), &too_much)
                .await
        ),
        Refusal::OverDealCapacity { .. }
    ));
    // A deal that does not exist.
    assert!(matches!(
        refusal(
            consumer
                .pieces
                .put_piece(&addr, DealId::from(999), PieceId::of(&other), &other)
                .await
        ),
        Refusal::UnknownDeal(_)
    ));

    // The metrics endpoint counts what happened.
    let body = provider.metrics().await;
    assert_eq!(
        metric(
            &body,
            "dbytes_provider_requests_total{kind=\"put\",result=\"ok\"}"
        ),
        Some(1.0),
        "{body}"
    );
    assert_eq!(metric(&body, "dbytes_provider_pieces"), Some(1.0), "{body}");
    assert_eq!(
        metric(&body, "dbytes_provider_capacity_bytes"),
        Some((64u64 << 20) as f64)
    );

    // `status` reads the running daemon's files and the chain.
    let status = wait_for("status reports the stored piece", 20, || async {
        let output = provider.command(&["status"]);
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        (output.status.success() && text.contains("1 pieces")).then_some(text)
    })
    .await;
    assert!(status.contains("listing     active"), "{status}");
    assert!(status.contains("0 made, 0 missed"), "{status}");
    assert!(
        status.contains(&format!("deal {:>4}  active", deal.to_string())),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_killed_midway_leaves_no_corrupt_piece() {
    let network = Network::start("kill", 3600, 600).await;
    let mut provider = ProviderProcess::spawn(&network, "provider", ProviderSpec::new(2)).await;
    let consumer = Consumer::new(&network, CONSUMER).await;
    let deal = consumer.open_deal(&provider, 16 << 20, 4).await;
    let addr = provider.addr();
    let bytes = piece_bytes(8 << 20, 5);
    let piece = PieceId::of(&bytes);

    let put = {
        let pieces = consumer.pieces.clone();
        let bytes = bytes.clone();
        let addr = addr.clone();
        tokio::spawn(async move { pieces.put_piece(&addr, deal, piece, &bytes).await })
    };
    // Kill once a MiB of the upload is on disk (in the store's tmp/).
    let data_dir = provider.dir.join("data");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !walk(&data_dir).iter().any(|path| {
        path.extension().is_some_and(|ext| ext == "part")
            && std::fs::metadata(path).is_ok_and(|meta| meta.len() >= 1 << 20)
    }) {
        assert!(
            !put.is_finished(),
            "the put ended before it could be interrupted"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the upload never started"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    provider.kill();
    // Over UDP the client learns of the death only at its idle timeout.
    put.abort();

    provider.start().await;
    assert!(
        !walk(&data_dir)
            .iter()
            .any(|path| path.extension().is_some_and(|ext| ext == "part")),
        "the interrupted upload's file is left after the restart"
    );
    let addr = provider.addr();
    consumer.pieces.disconnect(addr.id);
    match consumer.pieces.get_piece(&addr, deal, piece).await {
        Ok(got) => assert!(got == bytes, "a restarted provider served a corrupt piece"),
        Err(ClientError::Refused {
            refusal: Refusal::NotFound { .. },
            ..
        }) => {}
        Err(other) => panic!("unexpected answer after the restart: {other}"),
    }
    // The index agrees with the files: the piece can be stored (again) whole.
    let stored = consumer
        .pieces
        .put_piece(&addr, deal, piece, &bytes)
        .await
        .unwrap();
    assert_eq!(stored.length, bytes.len() as u64);
    let got = consumer.pieces.get_piece(&addr, deal, piece).await.unwrap();
    assert!(got == bytes);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        }
        found.push(path);
    }
    found
}

/// Puts `count` pieces under `deal`, has the provider sign the commitment
/// over them and commits it as the consumer; returns the commitment.
async fn commit_pieces(
    consumer: &Consumer,
    provider: &ProviderProcess,
    deal: DealId,
    count: u64,
) -> Commitment {
    let addr = provider.addr();
    let mut slots = Vec::new();
    for seed in 0..count {
        let bytes = piece_bytes(3000 + seed as usize * 700, 100 + seed);
        let piece = PieceId::of(&bytes);
        let stored = consumer
            .pieces
            .put_piece(&addr, deal, piece, &bytes)
            .await
            .unwrap();
        slots.push(PieceSlot {
            piece,
            root: stored.root,
            leaf_count: stored.leaf_count,
        });
    }
    let commitment = Commitment::over_pieces(deal, 1, &slots).unwrap();
    let signature = consumer
        .pieces
        .sign_commitment(&addr, &commitment)
        .await
        .unwrap();
    let chain_commitment = ChainCommitment {
        root: commitment.root,
        leaf_count: commitment.leaf_count,
        version: commitment.version,
    };
    // The provider's daemon signed with its wallet, in the marketplace's domain.
    let digest = eip712::commitment_digest(consumer.chain.deployment(), deal.0, &chain_commitment);
    assert_eq!(
        eip712::recover_signer(&digest, &signature),
        Some(provider.wallet())
    );
    consumer
        .chain
        .commit(
            deal.0,
            &chain_commitment,
            None,
            Some(Bytes::from(signature)),
        )
        .await
        .unwrap();
    commitment
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenged_deals_are_proven_through_an_rpc_outage_and_earnings_withdrawn() {
    const PERIOD: u64 = 120;
    const GRACE: u64 = 30;
    let network = Network::start("proofs", PERIOD, GRACE).await;
    let first = ProviderProcess::spawn(&network, "first", ProviderSpec::new(2)).await;
    let mut second = ProviderProcess::spawn(&network, "second", ProviderSpec::new(3)).await;
    let consumer = Consumer::new(&network, CONSUMER).await;
    let deals = [
        consumer.open_deal(&first, 1 << 20, 6).await,
        consumer.open_deal(&second, 1 << 20, 6).await,
    ];
    commit_pieces(&consumer, &first, deals[0], 3).await;
    commit_pieces(&consumer, &second, deals[1], 2).await;
    // A deal whose consumer deleted a committed piece cannot be proven; the
    // provider's other deals must be proven all the same.
    let broken = consumer.open_deal(&second, 1 << 20, 6).await;
    let lost = commit_pieces(&consumer, &second, broken, 2).await;
    assert!(
        consumer
            .pieces
            .delete_piece(&second.addr(), broken, lost.pieces[0])
            .await
            .unwrap()
    );
    let start = consumer
        .chain
        .deal(deals[0].0)
        .await
        .unwrap()
        .unwrap()
        .settled_to;
    let balances_before = [
        consumer.chain.token_balance(first.wallet()).await.unwrap(),
        consumer.chain.token_balance(second.wallet()).await.unwrap(),
    ];

    // The first committed period: both daemons anchor the seed and prove.
    network.go_to(&consumer.chain, start, 5).await;
    for deal in deals {
        wait_for("the first period is proven on chain", 60, || async {
            consumer
                .chain
                .is_proven(deal.0, start)
                .await
                .ok()
                .filter(|proven| *proven)
        })
        .await;
    }
    assert!(!consumer.chain.is_proven(broken.0, start).await.unwrap());

    // An RPC outage over a period boundary: the daemons wait it out.
    network.proxy.cut();
    network.go_to(&consumer.chain, start + 1, 5).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(!second.exited(), "a daemon died in an RPC outage");
    let status = second.status().unwrap();
    assert!(
        !status.errors.is_empty(),
        "the outage shows in the status: {status:?}"
    );
    network.proxy.restore();
    for deal in deals {
        wait_for("the period after the outage is proven", 60, || async {
            consumer
                .chain
                .is_proven(deal.0, start + 1)
                .await
                .ok()
                .filter(|proven| *proven)
        })
        .await;
    }

    // Past both periods' proof windows: settled and withdrawn without help.
    network.go_to(&consumer.chain, start + 2, GRACE + 5).await;
    for (provider, before) in [&first, &second].into_iter().zip(balances_before) {
        wait_for("the provider withdraws its earnings", 60, || async {
            let balance = consumer.chain.token_balance(provider.wallet()).await.ok()?;
            (balance > before).then_some(())
        })
        .await;
        let settled = consumer.chain.deal(deals[0].0).await.unwrap().unwrap();
        assert!(settled.settled_to >= start + 2, "{settled:?}");
    }
    let status = wait_for("the status counts proofs and earnings", 20, || async {
        first.status().filter(|status| {
            status.proofs_made >= 2 && status.withdrawn != "0" && !status.withdrawn.is_empty()
        })
    })
    .await;
    assert_eq!(status.proofs_missed, 0, "{status:?}");
    let body = first.metrics().await;
    assert!(metric(&body, "dbytes_provider_proofs_submitted_total").unwrap_or(0.0) >= 2.0);
    assert!(metric(&body, "dbytes_provider_earned_tokens_total").unwrap_or(0.0) > 0.0);
    assert_eq!(
        metric(&body, "dbytes_provider_proofs_missed_total"),
        Some(0.0)
    );

    // A daemon that is down over a whole period misses it, and says so
    // once it is back.
    wait_for(
        "the current period is proven before the kill",
        60,
        || async {
            consumer
                .chain
                .is_proven(deals[1].0, start + 2)
                .await
                .ok()
                .filter(|proven| *proven)
        },
    )
    .await;
    second.kill();
    network.go_to(&consumer.chain, start + 3, 5).await;
    wait_for("the running daemon proves the period", 60, || async {
        consumer
            .chain
            .is_proven(deals[0].0, start + 3)
            .await
            .ok()
            .filter(|proven| *proven)
    })
    .await;
    network.go_to(&consumer.chain, start + 4, GRACE + 5).await;
    second.start().await;
    let missed = |status: &dbytes_mesh::daemon::state::StatusFile, deal: DealId| {
        status
            .deals
            .iter()
            .find(|entry| entry.deal == deal.to_string())
            .map_or(0, |entry| entry.missed)
    };
    let status = wait_for(
        "the restarted daemon counts the missed periods",
        60,
        || async {
            second
                .status()
                .filter(|status| missed(status, deals[1]) >= 1 && missed(status, broken) >= 3)
        },
    )
    .await;
    assert_eq!(missed(&status, deals[1]), 1, "{status:?}");
    assert!(
        !consumer
            .chain
            .is_proven(deals[1].0, start + 3)
            .await
            .unwrap()
    );
    assert!(
        consumer
            .chain
            .is_proven(deals[0].0, start + 3)
            .await
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_are_accepted_or_declined_by_the_rules() {
    let network = Network::start("proposals", 3600, 600).await;
    let mut spec = ProviderSpec::new(2);
    spec.accept = "manual";
    spec.extra = vec![
        ("POLICY_MAX_PERIODS", "8".to_string()),
        // Above the listing's ask of 1: proposals at the ask are too cheap.
        ("POLICY_MIN_PRICE_PER_GIB_MONTH", "2".to_string()),
    ];
    // Started while the chain is unreachable, the daemon waits for it.
    network.proxy.cut();
    let log = network.dir.path().join("rules").join("daemon.log");
    let restore = async {
        // Once it said so (or after a minute, and the assertion fails).
        for _ in 0..600 {
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            if said.contains("the chain is unreachable; retrying") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        network.proxy.restore();
    };
    let (mut provider, ()) = tokio::join!(ProviderProcess::spawn(&network, "rules", spec), restore);
    assert!(
        provider
            .log()
            .contains("the chain is unreachable; retrying"),
        "{}",
        provider.log()
    );
    let mut operated = ProviderSpec::new(3);
    operated.accept = "manual";
    operated.extra = vec![("POLICY_DECIDE", "operator".to_string())];
    let by_hand = ProviderProcess::spawn(&network, "operator", operated).await;
    let consumer = Consumer::new(&network, CONSUMER).await;
    let propose = |to: &ProviderProcess, periods: u32, price: Option<u128>| DealRequest {
        provider: to.wallet(),
        capacity_bytes: 1 << 20,
        periods,
        price_per_gib_month: price,
        consumer_node_id: consumer.node_id(),
    };
    wait_for_listing(&consumer.chain, provider.wallet()).await;
    wait_for_listing(&consumer.chain, by_hand.wallet()).await;
    let listing = consumer
        .chain
        .listing(provider.wallet())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(listing.terms.policy, AcceptPolicy::Manual);

    let fair = consumer
        .chain
        .propose_deal(&propose(&provider, 4, Some(2 * TOKEN)), None)
        .await
        .unwrap();
    let too_long = consumer
        .chain
        .propose_deal(&propose(&provider, 20, Some(2 * TOKEN)), None)
        .await
        .unwrap();
    let cheap = consumer
        .chain
        .propose_deal(&propose(&provider, 4, None), None)
        .await
        .unwrap();
    let waiting = consumer
        .chain
        .propose_deal(&propose(&by_hand, 4, None), None)
        .await
        .unwrap();
    let state = |id: U256| {
        let chain = consumer.chain.clone();
        async move { chain.deal(id).await.ok().flatten().map(|deal| deal.state) }
    };
    wait_for("the fair proposal is accepted", 30, || async {
        (state(fair).await == Some(DealState::Active)).then_some(())
    })
    .await;
    wait_for("the long proposal is declined", 30, || async {
        (state(too_long).await == Some(DealState::Closed)).then_some(())
    })
    .await;
    wait_for("the cheap proposal is declined", 30, || async {
        (state(cheap).await == Some(DealState::Closed)).then_some(())
    })
    .await;
    // The operator's provider leaves it pending; the CLI lists and accepts it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(state(waiting).await, Some(DealState::Proposed));
    let listed = by_hand.command(&["deals", "--pending"]);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success(), "{listed:?}");
    assert!(
        text.contains(&format!("deal {:>4}  proposed", waiting.to_string())),
        "{text}"
    );
    // While the daemon runs, the command hands the decision to it (one
    // sender per wallet, no nonce clash) and waits for the transaction.
    let accepted = by_hand.command(&["deals", "accept", &waiting.to_string()]);
    let text = String::from_utf8_lossy(&accepted.stdout);
    assert!(accepted.status.success(), "{accepted:?}");
    assert!(text.contains("queued for the running daemon"), "{text}");
    assert!(text.contains(&format!("accepted deal {waiting}")), "{text}");
    assert_eq!(state(waiting).await, Some(DealState::Active));
    let decisions = |by: &str, decision: &str| {
        format!(
            "dbytes_provider_deal_decisions_total{{decided_by=\"{by}\",decision=\"{decision}\"}}"
        )
    };
    assert_eq!(
        metric(&by_hand.metrics().await, &decisions("operator", "accept")),
        Some(1.0)
    );
    // A decision on a deal that is no proposal is refused, naming why.
    let again = by_hand.command(&["deals", "decline", &waiting.to_string()]);
    assert!(!again.status.success(), "{again:?}");
    let error = String::from_utf8_lossy(&again.stderr);
    assert!(error.contains("is active, not an open proposal"), "{error}");
    assert_eq!(state(waiting).await, Some(DealState::Active));
    let second = consumer
        .chain
        .propose_deal(&propose(&by_hand, 4, None), None)
        .await
        .unwrap();
    let declined = by_hand.command(&["deals", "decline", &second.to_string()]);
    assert!(declined.status.success(), "{declined:?}");
    assert!(String::from_utf8_lossy(&declined.stdout).contains("queued"));
    assert_eq!(state(second).await, Some(DealState::Closed));
    // With no daemon running, the command sends the transaction itself.
    let mut by_hand = by_hand;
    by_hand.kill();
    let third = consumer
        .chain
        .propose_deal(&propose(&by_hand, 4, None), None)
        .await
        .unwrap();
    let direct = by_hand.command(&["deals", "accept", &third.to_string()]);
    let text = String::from_utf8_lossy(&direct.stdout);
    assert!(direct.status.success(), "{direct:?}");
    assert!(
        !text.contains("queued") && text.contains(&format!("accepted deal {third}")),
        "{text}"
    );
    assert_eq!(state(third).await, Some(DealState::Active));

    // The rules' provider read the deal events forward from where it
    // stopped, and a restart resumes there: it reads only the blocks since
    // and sends nothing for the proposals it already answered.
    let body = provider.metrics().await;
    assert_eq!(metric(&body, &decisions("rules", "accept")), Some(1.0));
    assert_eq!(metric(&body, &decisions("rules", "decline")), Some(2.0));
    network.anvil.mine(1500).await.unwrap();
    let (head, _) = consumer.chain.head().await.unwrap();
    wait_for(
        "the daemon reads the deal events up to the head",
        60,
        || async {
            provider
                .status()
                .filter(|status| status.deals_scanned_to_block >= head)
                .map(|_| ())
        },
    )
    .await;
    provider.kill();
    provider.start().await;
    wait_for("the restarted daemon knows its three deals", 60, || async {
        provider
            .status()
            .filter(|status| {
                status.deals.len() == 3
                    && status.deals_scanned_to_block >= head
                    && status.pid == provider.node.pid
            })
            .map(|_| ())
    })
    .await;
    let body = provider.metrics().await;
    let scanned = metric(&body, "dbytes_provider_deal_scan_blocks_total").unwrap();
    assert!(
        scanned < 500.0,
        "the restarted daemon read {scanned} blocks of deal events, more than the chain grew by \
         since it stopped"
    );
    assert_eq!(metric(&body, &decisions("rules", "accept")), None);
    assert_eq!(metric(&body, &decisions("rules", "decline")), None);
    // New proposals are still found.
    let later = consumer
        .chain
        .propose_deal(&propose(&provider, 4, Some(2 * TOKEN)), None)
        .await
        .unwrap();
    wait_for(
        "the restarted daemon accepts a new proposal",
        30,
        || async { (state(later).await == Some(DealState::Active)).then_some(()) },
    )
    .await;
    let (now_head, _) = consumer.chain.head().await.unwrap();
    let status = provider.status().unwrap();
    assert!(status.deals_scanned_to_block > head, "{status:?}");
    assert!(status.deals_scanned_to_block <= now_head);
    // The deal turns active when the accept is mined; the daemon counts it
    // once its receipt comes back, a moment later.
    wait_for("the daemon counts its accept by the rules", 30, || async {
        (metric(&provider.metrics().await, &decisions("rules", "accept")) == Some(1.0))
            .then_some(())
    })
    .await;
}

/// The chain authority and signer without a daemon: the terms come from the
/// marketplace, and a signature `commit` accepts recovers to the provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_deals_answer_from_the_marketplace_and_chain_signatures_commit() {
    let network = Network::start("signer", 3600, 600).await;
    let provider = network.party(2).await;
    let consumer = Consumer::new(&network, CONSUMER).await;
    let terms = dbytes_ledger::chain::ListingTerms {
        node_id: alloy_primitives::B256::repeat_byte(0x11),
        address_hints: Bytes::from_static(b"127.0.0.1:1"),
        capacity_bytes: 1 << 30,
        price_per_gib_month: TOKEN,
        min_periods: 1,
        max_periods: 100,
        collateral_bps: 20_000,
        collateral_per_gib: 0,
        region: dbytes_ledger::chain::Region::NONE,
        policy: AcceptPolicy::Auto,
        quote_signer: None,
    };
    provider.register(&terms).await.unwrap();
    provider
        .deposit_collateral(U256::from(1000 * TOKEN))
        .await
        .unwrap();
    let id = consumer
        .chain
        .open_deal(&DealRequest {
            provider: provider.address().unwrap(),
            capacity_bytes: 1 << 20,
            periods: 3,
            price_per_gib_month: None,
            consumer_node_id: consumer.node_id(),
        })
        .await
        .unwrap();

    let deals = ChainDeals::new(provider.clone(), Duration::from_secs(60));
    let answer = deals.deal_terms(DealId(id)).await.unwrap().unwrap();
    assert!(answer.active);
    assert_eq!(answer.consumer, consumer.chain.address().unwrap());
    assert_eq!(answer.consumer_node, consumer.node_id().0);
    assert_eq!(answer.provider, provider.address().unwrap());
    assert_eq!(answer.capacity_bytes, 1 << 20);
    assert_eq!(deals.deal_terms(DealId::from(77)).await.unwrap(), None);

    let bytes = piece_bytes(5000, 9);
    let tree = dbytes_ledger::commitment::PieceTree::build(&bytes);
    let commitment = Commitment::over_pieces(
        DealId(id),
        1,
        &[PieceSlot {
            piece: PieceId::of(&bytes),
            root: tree.root(),
            leaf_count: tree.leaf_count(),
        }],
    )
    .unwrap();
    let signer = ChainSigner::new(network.anvil.account(2), network.deployment.clone());
    let signature = signer.sign_commitment(&commitment, &answer).await.unwrap();
    let chain_commitment = ChainCommitment {
        root: commitment.root,
        leaf_count: commitment.leaf_count,
        version: 1,
    };
    let digest = eip712::commitment_digest(&network.deployment, id, &chain_commitment);
    assert_eq!(
        eip712::recover_signer(&digest, &signature),
        provider.address()
    );
    // Another provider's wallet refuses to sign for this deal.
    let wrong = ChainSigner::new(network.anvil.account(3), network.deployment.clone());
    assert!(wrong.sign_commitment(&commitment, &answer).await.is_err());

    consumer
        .chain
        .commit(id, &chain_commitment, None, Some(Bytes::from(signature)))
        .await
        .unwrap();
    // The cache answers the old state until invalidated.
    deals.invalidate(DealId(id));
    let state = provider.commitments(id).await.unwrap();
    assert_eq!(state.latest(), Some(chain_commitment));
}
