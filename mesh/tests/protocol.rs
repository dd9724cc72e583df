//! The piece protocol end to end: real iroh endpoints on 127.0.0.1, a
//! provider with its store in a temporary directory, consumers, strangers
//! and repairers.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use dbytes_ledger::commitment::{LEAF_SIZE, verify};
use dbytes_ledger::piece::PieceId;
use dbytes_mesh::audit::{AuditMismatch, check_audit};
use dbytes_mesh::client::ClientError;
use dbytes_mesh::commitment::{Commitment, CommitmentProblem, PieceSlot};
use dbytes_mesh::deal::{DealId, StaticDeals};
use dbytes_mesh::transport::node_id;
use dbytes_mesh::wire::{
    self, MAX_AUDIT_LEAVES, MAX_FRAME_BYTES, MAX_PIECE_BYTES, PIECE_ALPN, Refusal, Request,
    Response,
};
use iroh::endpoint::VarInt;

const MIB: u64 = 1 << 20;

fn refusal(result: Result<impl std::fmt::Debug, ClientError>) -> Refusal {
    match result {
        Err(ClientError::Refused { refusal, .. }) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pieces_round_trip_whole_and_in_ranges() {
    let dir = temp_dir("round-trip");
    let deals = Arc::new(StaticDeals::new());
    let consumer = random_secret();
    deals.insert(terms(1, &consumer, 64 * MIB));
    let provider = start_provider(dir.path(), 64 * MIB, deals.clone()).await;
    let client = client(&consumer).await;
    let addr = provider.addr();
    let deal = DealId::from(1);

    let (big_id, big) = piece(3 * MIB as usize + 123, 1);
    let (small_id, small) = piece(700, 2);
    let stored = client.put_piece(&addr, deal, big_id, &big).await.unwrap();
    assert_eq!(stored.length, big.len() as u64);
    assert_eq!(
        stored.leaf_count,
        (big.len() as u64).div_ceil(LEAF_SIZE as u64)
    );
    let small_stored = client
        .put_piece(&addr, deal, small_id, &small)
        .await
        .unwrap();
    assert_eq!(small_stored.leaf_count, 3);

    assert_eq!(client.get_piece(&addr, deal, big_id).await.unwrap(), big);
    assert_eq!(
        client.get_piece(&addr, deal, small_id).await.unwrap(),
        small
    );
    for (offset, length) in [
        (0, 4096),
        (MIB + 17, 300_000),
        (big.len() as u64 - 5, 5),
        (9, 0),
    ] {
        let range = client
            .get_range(&addr, deal, big_id, offset, length)
            .await
            .unwrap();
        assert_eq!(range, &big[offset as usize..(offset + length) as usize]);
    }
    assert!(matches!(
        refusal(client.get_range(&addr, deal, small_id, 600, 101).await),
        Refusal::RangeOutOfBounds {
            offset: 600,
            length: 101,
            piece_length: 700
        }
    ));

    // Putting the same piece again is idempotent and sends nothing twice.
    assert_eq!(
        client.put_piece(&addr, deal, big_id, &big).await.unwrap(),
        stored
    );
    let stat = client.stat(&addr).await.unwrap();
    assert_eq!(stat.protocol_version, wire::PROTOCOL_VERSION);
    assert_eq!(stat.capacity_bytes, 64 * MIB);
    assert_eq!(stat.used_bytes, (big.len() + small.len()) as u64);
    assert_eq!(stat.piece_count, 2);

    // Deleting frees the space and the piece is gone.
    assert!(client.delete_piece(&addr, deal, small_id).await.unwrap());
    assert!(!client.delete_piece(&addr, deal, small_id).await.unwrap());
    assert!(matches!(
        refusal(client.get_piece(&addr, deal, small_id).await),
        Refusal::NotFound { .. }
    ));
    assert_eq!(
        client.stat(&addr).await.unwrap().used_bytes,
        big.len() as u64
    );
    provider.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_consumer_writes_and_only_it_and_its_repairers_read() {
    let dir = temp_dir("auth");
    let deals = Arc::new(StaticDeals::new());
    let consumer = random_secret();
    let repairer = random_secret();
    let stranger = random_secret();
    let mut deal_terms = terms(1, &consumer, 16 * MIB);
    deal_terms.readers = vec![*node_id(&repairer).as_bytes()];
    deals.insert(deal_terms);
    let provider = start_provider(dir.path(), 64 * MIB, deals.clone()).await;
    let addr = provider.addr();
    let deal = DealId::from(1);
    let (consumer, repairer, stranger) = (
        client(&consumer).await,
        client(&repairer).await,
        client(&stranger).await,
    );
    let (id, bytes) = piece(100_000, 3);

    // Writes: the consumer only.
    for other in [&stranger, &repairer] {
        assert_eq!(
            refusal(other.put_piece(&addr, deal, id, &bytes).await),
            Refusal::NotConsumer(deal)
        );
    }
    assert_eq!(provider.store().usage().piece_count, 0);
    consumer.put_piece(&addr, deal, id, &bytes).await.unwrap();
    for other in [&stranger, &repairer] {
        assert_eq!(
            refusal(other.delete_piece(&addr, deal, id).await),
            Refusal::NotConsumer(deal)
        );
    }

    // Reads: the consumer and its repairer, not a stranger.
    assert_eq!(repairer.get_piece(&addr, deal, id).await.unwrap(), bytes);
    assert_eq!(
        repairer.get_range(&addr, deal, id, 10, 10).await.unwrap(),
        &bytes[10..20]
    );
    assert_eq!(
        refusal(stranger.get_piece(&addr, deal, id).await),
        Refusal::NotAuthorisedReader(deal)
    );
    assert_eq!(
        refusal(stranger.get_range(&addr, deal, id, 0, 10).await),
        Refusal::NotAuthorisedReader(deal)
    );
    assert_eq!(
        refusal(stranger.audit(&addr, deal, id, vec![0]).await),
        Refusal::NotAuthorisedReader(deal)
    );
    assert!(repairer.audit(&addr, deal, id, vec![0]).await.is_ok());

    // Unknown deals, other providers' deals and inactive deals.
    assert_eq!(
        refusal(consumer.put_piece(&addr, DealId::from(9), id, &bytes).await),
        Refusal::UnknownDeal(DealId::from(9))
    );
    let mut elsewhere = terms(2, &common::random_secret(), MIB);
    elsewhere.provider = alloy_primitives::Address::repeat_byte(0x71);
    deals.insert(elsewhere);
    assert_eq!(
        refusal(consumer.get_piece(&addr, DealId::from(2), id).await),
        Refusal::NotThisProvider(DealId::from(2))
    );
    deals.set_active(deal, false);
    let (other_id, other) = piece(10, 4);
    assert_eq!(
        refusal(consumer.put_piece(&addr, deal, other_id, &other).await),
        Refusal::DealNotActive(deal)
    );
    // The consumer can still read back what it stored.
    assert_eq!(consumer.get_piece(&addr, deal, id).await.unwrap(), bytes);
    provider.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_over_capacity_are_refused_and_say_so() {
    let dir = temp_dir("capacity");
    let deals = Arc::new(StaticDeals::new());
    let consumer = random_secret();
    deals.insert(terms(1, &consumer, 1000));
    deals.insert(terms(2, &consumer, 10 * MIB));
    // The store offers 1000 bytes more than the first deal.
    let provider = start_provider(dir.path(), 2000, deals.clone()).await;
    let client = client(&consumer).await;
    let addr = provider.addr();

    let (a, a_bytes) = piece(600, 1);
    let (b, b_bytes) = piece(600, 2);
    client
        .put_piece(&addr, DealId::from(1), a, &a_bytes)
        .await
        .unwrap();
    assert_eq!(
        refusal(client.put_piece(&addr, DealId::from(1), b, &b_bytes).await),
        Refusal::OverDealCapacity {
            deal: DealId::from(1),
            capacity_bytes: 1000,
            used_bytes: 600,
            requested_bytes: 600,
        }
    );
    let (c, c_bytes) = piece(1500, 3);
    assert_eq!(
        refusal(client.put_piece(&addr, DealId::from(2), c, &c_bytes).await),
        Refusal::StoreFull {
            capacity_bytes: 2000,
            used_bytes: 600,
            requested_bytes: 1500,
        }
    );
    // Freeing space makes room.
    assert!(
        client
            .delete_piece(&addr, DealId::from(1), a)
            .await
            .unwrap()
    );
    client
        .put_piece(&addr, DealId::from(1), b, &b_bytes)
        .await
        .unwrap();
    assert_eq!(provider.store().usage().used_bytes, 600);
    assert!(files_in(&dir.path().join("tmp")).is_empty());
    provider.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_piece_that_does_not_match_its_id_is_refused_and_nothing_is_stored() {
    let dir = temp_dir("mismatch");
    let deals = Arc::new(StaticDeals::new());
    let consumer = random_secret();
    deals.insert(terms(1, &consumer, 16 * MIB));
    let provider = start_provider(dir.path(), 16 * MIB, deals).await;
    let client = client(&consumer).await;
    let addr = provider.addr();
    let deal = DealId::from(1);

    let (_, bytes) = piece(MIB as usize + 5, 1);
    let claimed = PieceId::of(b"something else");
    assert_eq!(
        refusal(client.put_piece(&addr, deal, claimed, &bytes).await),
        Refusal::PieceIdMismatch {
            expected: claimed,
            actual: PieceId::of(&bytes),
        }
    );
    assert_eq!(provider.store().record(deal, claimed).unwrap(), None);
    let usage = provider.store().usage();
    assert_eq!(
        (usage.piece_count, usage.used_bytes, usage.reserved_bytes),
        (0, 0, 0)
    );
    assert!(files_in(&dir.path().join("pieces")).is_empty());
    assert!(files_in(&dir.path().join("tmp")).is_empty());
    provider.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audits_prove_leaves_against_the_root_returned_on_upload() {
    let dir = temp_dir("audit");
    let deals = Arc::new(StaticDeals::new());
    let consumer = random_secret();
    deals.insert(terms(1, &consumer, 16 * MIB));
    let provider = start_provider(dir.path(), 16 * MIB, deals).await;
    let client = client(&consumer).await;
    let addr = provider.addr();
    let deal = DealId::from(1);

    let (id, bytes) = piece(MIB as usize + 1000, 5);
    let stored = client.put_piece(&addr, deal, id, &bytes).await.unwrap();
    let last = stored.leaf_count - 1;
    let asked = vec![0, 1, last / 2, last];
    let reply = client.audit(&addr, deal, id, asked.clone()).await.unwrap();
    assert_eq!(reply.root, stored.root);
    for (proof, index) in reply.proofs.iter().zip(&asked) {
        assert_eq!(proof.index, *index);
        verify(stored.root, stored.leaf_count, proof).unwrap();
    }
    assert_eq!(check_audit(&bytes, &stored, &asked, &reply), Ok(()));
    // The gateway's spot check: K random leaves against the bytes it sent.
    client
        .spot_check(&addr, deal, id, &bytes, &stored, 32)
        .await
        .unwrap();
    // Bytes other than those the root covers fail the same check.
    let mut other = bytes.clone();
    other[(last / 2) as usize * LEAF_SIZE] ^= 0x80;
    assert_eq!(
        check_audit(&other, &stored, &asked, &reply),
        Err(AuditMismatch::LeafDiffers { index: last / 2 })
    );

    assert_eq!(
        refusal(client.audit(&addr, deal, id, vec![last + 1]).await),
        Refusal::LeafOutOfRange {
            index: last + 1,
            leaf_count: stored.leaf_count
        }
    );
    assert!(matches!(
        client.audit(&addr, deal, id, vec![0; 1000]).await,
        Err(ClientError::InvalidRequest(_))
    ));
    provider.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commitments_are_signed_only_over_exactly_the_pieces_held() {
    let dir = temp_dir("commit");
    let deals = Arc::new(StaticDeals::new());
    let consumer = random_secret();
    let stranger = random_secret();
    deals.insert(terms(1, &consumer, 16 * MIB));
    let provider = start_provider(dir.path(), 16 * MIB, deals).await;
    let (client, stranger) = (client(&consumer).await, common::client(&stranger).await);
    let addr = provider.addr();
    let deal = DealId::from(1);

    let mut slots = Vec::new();
    for (length, seed) in [(5000, 1), (256 * 16, 2), (100, 3)] {
        let (id, bytes) = piece(length, seed);
        let stored = client.put_piece(&addr, deal, id, &bytes).await.unwrap();
        slots.push(PieceSlot {
            piece: id,
            root: stored.root,
            leaf_count: stored.leaf_count,
        });
    }
    let commitment = Commitment::over_pieces(deal, 1, &slots).unwrap();
    assert_eq!(
        client.sign_commitment(&addr, &commitment).await.unwrap(),
        TestSigner::signature(&commitment)
    );
    assert_eq!(
        refusal(stranger.sign_commitment(&addr, &commitment).await),
        Refusal::NotConsumer(deal)
    );
    let mut reordered = commitment.clone();
    reordered.pieces.swap(0, 2);
    assert!(matches!(
        refusal(client.sign_commitment(&addr, &reordered).await),
        Refusal::Commitment(CommitmentProblem::RootMismatch { .. })
    ));
    let (missing, _) = piece(10, 99);
    let with_missing = Commitment::over_pieces(
        deal,
        2,
        &[
            slots[0],
            slots[1],
            slots[2],
            PieceSlot {
                piece: missing,
                root: slots[2].root,
                leaf_count: 1,
            },
        ],
    )
    .unwrap();
    assert_eq!(
        refusal(client.sign_commitment(&addr, &with_missing).await),
        Refusal::Commitment(CommitmentProblem::MissingPiece(missing))
    );
    let short = Commitment::over_pieces(deal, 2, &slots[..2]).unwrap();
    assert_eq!(
        refusal(client.sign_commitment(&addr, &short).await),
        Refusal::Commitment(CommitmentProblem::UnlistedPiece(slots[2].piece))
    );
    provider.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_requests_run_at_once_on_one_connection() {
    let dir = temp_dir("concurrent");
    let deals = Arc::new(StaticDeals::new());
    let consumer = random_secret();
    deals.insert(terms(1, &consumer, 256 * MIB));
    let provider = start_provider(dir.path(), 256 * MIB, deals).await;
    let client = client(&consumer).await;
    let addr = provider.addr();
    let deal = DealId::from(1);

    let pieces: Vec<_> = (0..12)
        .map(|seed| piece(300_000 + seed as usize, seed))
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (id, bytes) in pieces.clone() {
        let (client, addr) = (client.clone(), addr.clone());
        tasks.spawn(async move {
            client.put_piece(&addr, deal, id, &bytes).await.unwrap();
            assert_eq!(client.get_piece(&addr, deal, id).await.unwrap(), bytes);
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    assert_eq!(provider.store().usage().piece_count, 12);
    provider.shutdown().await.unwrap();
}

/// An upload whose connection dies half-way leaves no file, no index entry
/// and no reserved space.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_upload_leaves_nothing_behind() {
    let dir = temp_dir("truncated");
    let deals = Arc::new(StaticDeals::new());
    let consumer = random_secret();
    deals.insert(terms(1, &consumer, 64 * MIB));
    let provider = start_provider(dir.path(), 64 * MIB, deals).await;
    let client = client(&consumer).await;
    let deal = DealId::from(1);
    let (id, bytes) = piece(4 * MIB as usize, 7);

    let connection = client
        .endpoint()
        .connect(provider.addr(), PIECE_ALPN)
        .await
        .unwrap();
    let (mut send, _recv) = connection.open_bi().await.unwrap();
    let header = wire::encode_frame(&Request::PutPiece {
        deal,
        piece: id,
        length: bytes.len() as u64,
    })
    .unwrap();
    send.write_all(&header).await.unwrap();
    send.write_all(&bytes[..MIB as usize]).await.unwrap();
    // Wait until the provider is receiving (it reserved the space).
    eventually("the provider reserves space for the upload", || {
        provider.store().usage().reserved_bytes == bytes.len() as u64
    })
    .await;
    connection.close(VarInt::from_u32(0), b"gone");

    eventually("the abandoned upload is cleaned up", || {
        provider.store().usage().reserved_bytes == 0 && files_in(&dir.path().join("tmp")).is_empty()
    })
    .await;
    assert_eq!(provider.store().record(deal, id).unwrap(), None);
    assert!(files_in(&dir.path().join("pieces")).is_empty());
    provider.shutdown().await.unwrap();
}

/// Dropping a put's future resets its stream: the provider stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_put_stores_nothing() {
    let dir = temp_dir("cancelled");
    let deals = Arc::new(StaticDeals::new());
    let consumer = random_secret();
    deals.insert(terms(1, &consumer, 64 * MIB));
    // The provider reads no body until the deal check answers, so the
    // upload is certainly unfinished when the client gives up.
    let slow = SlowDeals {
        deals: deals.clone(),
        delay: Duration::from_millis(500),
    };
    let provider = start_provider(dir.path(), 64 * MIB, slow).await;
    let client = client(&consumer).await;
    let deal = DealId::from(1);
    let (id, bytes) = piece(8 * MIB as usize, 8);

    let addr = provider.addr();
    // Connect first, so the request is surely under way when it is dropped.
    client.stat(&addr).await.unwrap();
    let put = client.put_piece(&addr, deal, id, &bytes);
    assert!(
        tokio::time::timeout(Duration::from_millis(150), put)
            .await
            .is_err()
    );
    eventually("the provider gives up on the reset upload", || {
        provider
            .metrics()
            .requests
            .with_label_values(&["put", "truncated"])
            .get()
            == 1
    })
    .await;
    assert_eq!(provider.store().record(deal, id).unwrap(), None);
    assert_eq!(provider.store().usage().reserved_bytes, 0);
    assert!(files_in(&dir.path().join("tmp")).is_empty());
    // The connection is still good for the next request.
    assert_eq!(
        client
            .put_piece(&addr, deal, id, &bytes)
            .await
            .unwrap()
            .length,
        bytes.len() as u64
    );
    provider.shutdown().await.unwrap();
}

/// Malformed and oversized messages get an error reply, never a crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_requests_get_error_replies() {
    let dir = temp_dir("malformed");
    let deals = Arc::new(StaticDeals::new());
    let consumer = random_secret();
    deals.insert(terms(1, &consumer, 16 * MIB));
    let provider = start_provider(dir.path(), 16 * MIB, deals).await;
    let client = client(&consumer).await;
    let connection = client
        .endpoint()
        .connect(provider.addr(), PIECE_ALPN)
        .await
        .unwrap();

    async fn exchange(connection: &iroh::endpoint::Connection, bytes: &[u8]) -> Response {
        let (mut send, mut recv) = connection.open_bi().await.unwrap();
        send.write_all(bytes).await.unwrap();
        send.finish().unwrap();
        let answer = recv.read_to_end(MAX_FRAME_BYTES).await.unwrap();
        wire::decode_frame::<Response>(&answer, MAX_FRAME_BYTES)
            .unwrap()
            .0
    }

    // A frame declaring more than the maximum.
    let mut oversized = (MAX_FRAME_BYTES as u32 + 1).to_be_bytes().to_vec();
    oversized.extend_from_slice(&[0; 64]);
    assert!(matches!(
        exchange(&connection, &oversized).await,
        Response::Refused(Refusal::Malformed(_))
    ));
    // A frame of garbage.
    let mut garbage = 5u32.to_be_bytes().to_vec();
    garbage.extend_from_slice(&[0xff; 5]);
    assert!(matches!(
        exchange(&connection, &garbage).await,
        Response::Refused(Refusal::Malformed(_))
    ));
    // A frame whose body never fully arrives.
    let mut cut_short = 40u32.to_be_bytes().to_vec();
    cut_short.extend_from_slice(&[4; 10]);
    assert!(matches!(
        exchange(&connection, &cut_short).await,
        Response::Refused(Refusal::Malformed(_))
    ));
    // A small audit frame declaring 2^63 leaf indexes: refused for want of
    // input, without allocating for them.
    let mut huge_sequence = vec![4u8];
    huge_sequence.extend_from_slice(&[0; 64]);
    huge_sequence.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    let mut huge_sequence_frame = (huge_sequence.len() as u32).to_be_bytes().to_vec();
    huge_sequence_frame.extend_from_slice(&huge_sequence);
    assert!(matches!(
        exchange(&connection, &huge_sequence_frame).await,
        Response::Refused(Refusal::Malformed(_))
    ));
    // An audit asking for more leaves than allowed.
    let too_many_leaves = wire::encode_frame(&Request::Audit {
        deal: DealId::from(1),
        piece: PieceId::of(b""),
        leaf_indexes: vec![0; MAX_AUDIT_LEAVES + 1],
    })
    .unwrap();
    // Refused while decoding, before the list is allocated, by name.
    match exchange(&connection, &too_many_leaves).await {
        Response::Refused(Refusal::Malformed(reason)) => assert!(
            reason.contains("Request::Audit.leaf_indexes")
                && reason.contains(&MAX_AUDIT_LEAVES.to_string()),
            "{reason}"
        ),
        other => panic!("too many leaves gave {other:?}"),
    }
    // A piece larger than any provider takes.
    let too_large = wire::encode_frame(&Request::PutPiece {
        deal: DealId::from(1),
        piece: PieceId::of(b""),
        length: MAX_PIECE_BYTES + 1,
    })
    .unwrap();
    assert!(matches!(
        exchange(&connection, &too_large).await,
        Response::Refused(Refusal::PieceTooLarge { .. })
    ));
    // More body than declared.
    let mut too_long = wire::encode_frame(&Request::PutPiece {
        deal: DealId::from(1),
        piece: PieceId::of(b"abc"),
        length: 3,
    })
    .unwrap();
    too_long.extend_from_slice(b"abcd");
    assert_eq!(
        exchange(&connection, &too_long).await,
        Response::Refused(Refusal::TooLong { expected: 3 })
    );
    // The provider is unharmed and the connection still serves.
    assert!(client.stat(&provider.addr()).await.is_ok());
    assert_eq!(provider.store().usage().piece_count, 0);
    provider.shutdown().await.unwrap();
}

/// A provider that answers every stream with the same bytes, whatever was
/// asked: a hostile or broken peer as the gateway's client meets it.
#[derive(Debug, Clone)]
struct CannedProvider {
    answer: Arc<Vec<u8>>,
}

impl iroh::protocol::ProtocolHandler for CannedProvider {
    async fn accept(
        &self,
        connection: iroh::endpoint::Connection,
    ) -> Result<(), iroh::protocol::AcceptError> {
        while let Ok((mut send, mut recv)) = connection.accept_bi().await {
            let _ = recv.read_to_end(MAX_FRAME_BYTES).await;
            let _ = send.write_all(&self.answer).await;
            let _ = send.finish();
            let _ = send.stopped().await;
        }
        Ok(())
    }
}

/// Malformed, oversized and out-of-place response frames from a provider
/// fail the client's request with an error; the client keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_responses_fail_the_request_cleanly() {
    let mut oversized = (MAX_FRAME_BYTES as u32 + 1).to_be_bytes().to_vec();
    oversized.extend_from_slice(&[0; 64]);
    let mut garbage = 6u32.to_be_bytes().to_vec();
    garbage.extend_from_slice(&[0xff; 6]);
    // A signature declaring 2^32 bytes in a 7-byte frame.
    let mut huge_signature = 7u32.to_be_bytes().to_vec();
    huge_signature.extend_from_slice(&[5, 0xff, 0xff, 0xff, 0xff, 0x0f, 9]);
    let mut cut_short = 100u32.to_be_bytes().to_vec();
    cut_short.extend_from_slice(&[1; 10]);
    // A valid frame, but not an answer to a stat.
    let out_of_place = wire::encode_frame(&Response::Deleted { existed: true }).unwrap();
    // A piece announced longer than a range asked for.
    let too_long = wire::encode_frame(&Response::Piece {
        length: MAX_PIECE_BYTES + 1,
    })
    .unwrap();

    let consumer = client(&random_secret()).await;
    for (label, answer) in [
        ("oversized", oversized),
        ("garbage", garbage),
        ("huge signature", huge_signature),
        ("cut short", cut_short),
        ("out of place", out_of_place),
        ("too long", too_long),
        ("empty", vec![]),
    ] {
        let endpoint = dbytes_mesh::transport::bind_endpoint(
            &random_secret(),
            &dbytes_mesh::transport::TransportConfig::local(),
            vec![PIECE_ALPN.to_vec()],
        )
        .await
        .unwrap();
        let router = iroh::protocol::Router::builder(endpoint)
            .accept(
                PIECE_ALPN,
                CannedProvider {
                    answer: Arc::new(answer),
                },
            )
            .spawn();
        let addr = router.endpoint().addr();
        let stat = consumer.stat(&addr).await;
        assert!(
            matches!(stat, Err(ClientError::Protocol { .. })),
            "{label}: stat gave {stat:?}"
        );
        let range = consumer
            .get_range(&addr, DealId::from(1), PieceId::of(b"x"), 0, 16)
            .await;
        assert!(
            matches!(range, Err(ClientError::Protocol { .. })),
            "{label}: get_range gave {range:?}"
        );
        router.shutdown().await.unwrap();
    }
}

/// A provider restarted on its data directory with its key serves what it
/// stored before; clients reconnect by themselves. Its scrub finds rot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pieces_survive_a_restart_and_the_scrub_drops_rot() {
    let dir = temp_dir("restart");
    let deals = Arc::new(StaticDeals::new());
    let consumer = random_secret();
    deals.insert(terms(1, &consumer, 16 * MIB));
    let provider_key = random_secret();
    let mut config = provider_config(dir.path(), 16 * MIB);
    let provider = dbytes_mesh::provider::ProviderNode::start(
        &config,
        &provider_key,
        deals.clone(),
        TestSigner,
    )
    .await
    .unwrap();
    let client = client(&consumer).await;
    let deal = DealId::from(1);
    let (good, good_bytes) = piece(300_000, 1);
    let (rotting, rotting_bytes) = piece(200_000, 2);
    client
        .put_piece(&provider.addr(), deal, good, &good_bytes)
        .await
        .unwrap();
    client
        .put_piece(&provider.addr(), deal, rotting, &rotting_bytes)
        .await
        .unwrap();
    provider.shutdown().await.unwrap();

    // Rot on disk while it is down.
    let path = dir.path().join("pieces").join(format!(
        "{}-{}",
        hex::encode(deal.to_be_bytes()),
        hex::encode(rotting.0)
    ));
    let mut on_disk = std::fs::read(&path).unwrap();
    on_disk[1000] ^= 0x04;
    std::fs::write(&path, &on_disk).unwrap();

    config.scrub = dbytes_mesh::provider::ScrubConfig {
        bytes_per_sec: 64 * MIB,
        pass_interval: Duration::from_millis(50),
    };
    let provider = dbytes_mesh::provider::ProviderNode::start(
        &config,
        &provider_key,
        deals.clone(),
        TestSigner,
    )
    .await
    .unwrap();
    assert_eq!(provider.recovery(), &Default::default());
    let addr = provider.addr();
    eventually("the scrub drops the rotted piece", || {
        provider.metrics().rotted_pieces.get() == 1
    })
    .await;
    assert_eq!(
        client.get_piece(&addr, deal, good).await.unwrap(),
        good_bytes
    );
    assert!(matches!(
        refusal(client.get_piece(&addr, deal, rotting).await),
        Refusal::NotFound { .. }
    ));
    // The consumer repairs it by uploading it again.
    client
        .put_piece(&addr, deal, rotting, &rotting_bytes)
        .await
        .unwrap();
    assert_eq!(
        client.get_piece(&addr, deal, rotting).await.unwrap(),
        rotting_bytes
    );
    provider.shutdown().await.unwrap();
}

/// The `[faults] response_delay_ms` knob: piece answers (put, get, range
/// get, audit, refusals of those) wait it out, stat does not, it can be
/// changed on a running provider, and zero adds nothing measurable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_response_delay_holds_back_piece_answers_and_zero_adds_nothing() {
    let dir = temp_dir("faults");
    let deals = Arc::new(StaticDeals::new());
    let consumer = random_secret();
    deals.insert(terms(1, &consumer, 16 * MIB));
    let initial = Duration::from_millis(300);
    let mut config = provider_config(dir.path(), 16 * MIB);
    config.service.response_delay = initial;
    let provider =
        dbytes_mesh::provider::ProviderNode::start(&config, &random_secret(), deals, TestSigner)
            .await
            .unwrap();
    assert_eq!(provider.faults().response_delay(), initial);
    let client = client(&consumer).await;
    let addr = provider.addr();
    let deal = DealId::from(1);
    let (id, bytes) = piece(64 * 1024, 11);

    let timed = std::time::Instant::now();
    client.put_piece(&addr, deal, id, &bytes).await.unwrap();
    assert!(timed.elapsed() >= initial, "put took {:?}", timed.elapsed());
    let timed = std::time::Instant::now();
    assert_eq!(client.get_piece(&addr, deal, id).await.unwrap(), bytes);
    assert!(timed.elapsed() >= initial, "get took {:?}", timed.elapsed());

    // Off: the fastest of a few gets is far below the delay (what a
    // request costs on loopback is a millisecond or two).
    provider.faults().set_response_delay(Duration::ZERO);
    let undelayed = fastest_of(5, || async {
        client.get_range(&addr, deal, id, 0, 4096).await.unwrap();
    })
    .await;
    assert!(
        undelayed < Duration::from_millis(100),
        "an undelayed range get took {undelayed:?}"
    );

    // Changed while running: each kind of piece answer waits it out.
    let delay = Duration::from_millis(400);
    provider.faults().set_response_delay(delay);
    let ranged = fastest_of(2, || async {
        client.get_range(&addr, deal, id, 100, 10).await.unwrap();
    })
    .await;
    assert!(ranged >= delay, "a range get took {ranged:?}");
    let audited = fastest_of(1, || async {
        client.audit(&addr, deal, id, vec![0, 3]).await.unwrap();
    })
    .await;
    assert!(audited >= delay, "an audit took {audited:?}");
    let (missing, _) = piece(100, 12);
    let refused = fastest_of(1, || async {
        assert!(matches!(
            refusal(client.get_piece(&addr, deal, missing).await),
            Refusal::NotFound { .. }
        ));
    })
    .await;
    assert!(refused >= delay, "a refused get took {refused:?}");
    let stat = fastest_of(3, || async {
        client.stat(&addr).await.unwrap();
    })
    .await;
    assert!(stat < delay, "stat took {stat:?} but is not delayed");
    provider.shutdown().await.unwrap();
}

/// The shortest of `runs` runs of `run`.
async fn fastest_of<F, Fut>(runs: usize, mut run: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut fastest = Duration::MAX;
    for _ in 0..runs {
        let started = std::time::Instant::now();
        run().await;
        fastest = fastest.min(started.elapsed());
    }
    fastest
}
