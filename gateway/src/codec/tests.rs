use dbytes_ledger::keys::{BucketKey, VersionKey};
use dbytes_placement::RedundancyPolicy;
use proptest::prelude::*;
use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};

use super::*;

fn key(seed: u8) -> VersionKey {
    BucketKey::from_bytes([seed; 32]).version_key(b"version")
}

/// The smallest pieces a layout allows (128 KiB) keep property tests fast:
/// a 3-of-5 segment is then 5 blocks (320 KiB).
fn small_layout(k: u16, n: u16) -> SegmentLayout {
    SegmentLayout::new(RedundancyPolicy::new(k, n).unwrap(), 128 * 1024).unwrap()
}

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    StdRng::seed_from_u64(seed).fill(&mut bytes[..]);
    bytes
}

fn encode_object(layout: &SegmentLayout, key: &VersionKey, object: &[u8]) -> Vec<EncodedSegment> {
    let size = layout.segment_size() as usize;
    object
        .chunks(size)
        .enumerate()
        .map(|(index, segment)| encode_segment(layout, key, index as u64, segment).unwrap())
        .collect()
}

fn pieces_of(segment: &EncodedSegment) -> Vec<Option<&[u8]>> {
    segment.pieces().map(Some).collect()
}

/// Reads `range` of the object through range plans, as the gateway will.
fn read_range(
    layout: &SegmentLayout,
    key: &VersionKey,
    segments: &[EncodedSegment],
    object_len: u64,
    range: std::ops::Range<u64>,
) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    for (index, within) in layout.segments_for_range(range) {
        let segment = &segments[index as usize];
        let plan = layout.plan_range(layout.segment_len(object_len, index), within)?;
        let reads: Vec<&[u8]> = plan
            .reads
            .iter()
            .map(|read| {
                &segment.piece(read.piece)[read.range.start as usize..read.range.end as usize]
            })
            .collect();
        out.extend(decode_range(key, index, &plan, &reads)?);
    }
    Ok(out)
}

#[test]
fn default_layouts_aim_at_32_mib_segments() {
    for (k, n, piece_mib) in [(10, 20, 4), (4, 8, 8), (3, 10, 8), (8, 12, 4), (1, 3, 32)] {
        let layout = SegmentLayout::for_policy(RedundancyPolicy::new(k, n).unwrap());
        assert_eq!(layout.piece_size(), piece_mib << 20, "k={k}");
        // A full segment's pieces fill their slots up to the last partial block.
        let full = layout.piece_len(layout.segment_size());
        assert!(full <= layout.piece_size() && layout.piece_size() - full < SEALED_BLOCK_SIZE);
        assert_eq!(1usize << layout.slot_height(), layout.piece_size() / 256);
    }
    assert!(matches!(
        SegmentLayout::new(RedundancyPolicy::new(2, 3).unwrap(), 100_000),
        Err(CodecError::InvalidPieceSize(100_000))
    ));
}

#[test]
fn sizes_at_block_and_segment_boundaries_round_trip() {
    let layout = small_layout(3, 5);
    let key = key(1);
    let segment = layout.segment_size() as usize;
    for len in [
        0,
        1,
        BLOCK_SIZE - 1,
        BLOCK_SIZE,
        BLOCK_SIZE + 1,
        segment - 1,
        segment,
        segment + 1,
        2 * segment + BLOCK_SIZE,
    ] {
        let object = random_bytes(len, len as u64);
        let segments = encode_object(&layout, &key, &object);
        assert_eq!(
            segments.len() as u64,
            layout.segment_count(len as u64),
            "len {len}"
        );
        let mut decoded = Vec::new();
        for (index, segment) in segments.iter().enumerate() {
            assert_eq!(
                segment.segment_len(),
                layout.segment_len(len as u64, index as u64)
            );
            assert_eq!(segment.piece_len(), layout.piece_len(segment.segment_len()));
            assert!(segment.piece_len() <= layout.piece_size());
            let out = decode_segment(
                &layout,
                &key,
                index as u64,
                segment.segment_len(),
                &pieces_of(segment),
                segment.ids(),
            )
            .unwrap();
            assert!(out.rejected.is_empty());
            decoded.extend(out.plaintext);
        }
        assert!(decoded == object, "round trip of {len} bytes");
    }
}

#[test]
fn pieces_are_ciphertext_and_depend_on_key_segment_and_position() {
    let layout = small_layout(2, 4);
    let plain = vec![0u8; 3 * BLOCK_SIZE];
    let a = encode_segment(&layout, &key(1), 0, &plain).unwrap();
    // No plaintext block survives in a data piece.
    assert!(a.piece(0).windows(64).all(|window| window != &plain[..64]));
    let other_key = encode_segment(&layout, &key(2), 0, &plain).unwrap();
    let other_segment = encode_segment(&layout, &key(1), 1, &plain).unwrap();
    assert_ne!(a.ids(), other_key.ids());
    assert_ne!(a.ids(), other_segment.ids());
    // Identical blocks inside one segment seal differently (nonce per block).
    assert_ne!(
        a.piece(0)[..64],
        a.piece(0)[SEALED_BLOCK_SIZE..SEALED_BLOCK_SIZE + 64]
    );
    // Decrypting with the wrong key or as the wrong segment fails loudly.
    let pieces = pieces_of(&a);
    let wrong_key = decode_segment(&layout, &key(2), 0, a.segment_len(), &pieces, a.ids());
    assert!(matches!(
        wrong_key,
        Err(CodecError::Tampered {
            segment: 0,
            block: 0
        })
    ));
    let wrong_segment = decode_segment(&layout, &key(1), 7, a.segment_len(), &pieces, a.ids());
    assert!(matches!(wrong_segment, Err(CodecError::Tampered { .. })));
}

#[test]
fn too_few_pieces_is_a_clear_error() {
    let layout = small_layout(3, 5);
    let segment = encode_segment(&layout, &key(1), 0, &random_bytes(5000, 1)).unwrap();
    let mut pieces = pieces_of(&segment);
    pieces[0] = None;
    pieces[1] = None;
    let mut corrupt = segment.piece(4).to_vec();
    corrupt[0] ^= 1;
    pieces[4] = Some(&corrupt);
    let err = decode_segment(&layout, &key(1), 0, 5000, &pieces, segment.ids()).unwrap_err();
    assert_eq!(
        err,
        CodecError::NotEnoughPieces {
            segment: 0,
            needed: 3,
            intact: 2,
            rejected: vec![4]
        }
    );
    assert!(err.to_string().contains("repair"), "{err}");
}

#[test]
fn repair_regenerates_identical_pieces_without_the_key() {
    let layout = small_layout(4, 8);
    let plain = random_bytes(layout.segment_size() as usize - 999, 9);
    let segment = encode_segment(&layout, &key(3), 5, &plain).unwrap();
    let mut pieces = pieces_of(&segment);
    for lost in [0, 2, 5, 7] {
        pieces[lost] = None;
    }
    let sealed = reassemble(&layout, 5, segment.segment_len(), &pieces, segment.ids()).unwrap();
    let regenerated = regenerate_pieces(&layout, &sealed, &[0, 2, 5, 7]).unwrap();
    for (piece, index) in regenerated.iter().zip([0, 2, 5, 7]) {
        assert_eq!(PieceId::of(piece), segment.ids()[index], "piece {index}");
    }
}

#[test]
fn a_range_inside_one_data_piece_reads_one_piece() {
    let layout = small_layout(4, 8);
    let segment_len = layout.segment_size();
    let plan = layout.plan_range(segment_len, 10..20).unwrap();
    assert_eq!(
        plan.reads,
        vec![PieceRead {
            piece: 0,
            range: 0..SEALED_BLOCK_SIZE as u64
        }]
    );
    // A range straddling a piece boundary reads the two pieces around it.
    let piece_len = layout.piece_len(segment_len) as u64;
    let boundary_block = piece_len / SEALED_BLOCK_SIZE as u64;
    let at = boundary_block * BLOCK_SIZE as u64;
    let plan = layout.plan_range(segment_len, at..at + 1).unwrap();
    assert_eq!(plan.reads.len(), 2);
    assert_eq!(plan.read_len(), SEALED_BLOCK_SIZE);
    assert!(layout.plan_range(segment_len, 5..5).is_err());
    assert!(layout.plan_range(segment_len, 0..segment_len + 1).is_err());
}

fn layout_strategy() -> impl Strategy<Value = SegmentLayout> {
    (1u16..=6, 0u16..=6).prop_map(|(k, parity)| small_layout(k, k + parity))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_n_minus_k_losses_recover(
        layout in layout_strategy(),
        len_fraction in 0.0f64..3.0,
        seed in any::<u64>(),
    ) {
        let len = ((layout.segment_size() as f64 * len_fraction) as usize).max(1);
        let object = random_bytes(len, seed);
        let key = key(seed as u8);
        let mut rng = StdRng::seed_from_u64(seed);
        let mut decoded = Vec::new();
        for (index, segment) in encode_object(&layout, &key, &object).iter().enumerate() {
            let mut order: Vec<usize> = (0..layout.total_pieces()).collect();
            order.shuffle(&mut rng);
            let mut pieces = pieces_of(segment);
            for &lost in &order[..layout.total_pieces() - layout.data_pieces()] {
                pieces[lost] = None;
            }
            let out = decode_segment(&layout, &key, index as u64, segment.segment_len(), &pieces, segment.ids()).unwrap();
            decoded.extend(out.plaintext);
        }
        prop_assert!(decoded == object);
    }

    #[test]
    fn any_flipped_bit_is_detected(
        layout in layout_strategy(),
        len in 1usize..200_000,
        piece_pick in any::<usize>(),
        bit_pick in any::<usize>(),
    ) {
        let key = key(7);
        let plain = random_bytes(len.min(layout.segment_size() as usize), len as u64);
        let segment = encode_segment(&layout, &key, 0, &plain).unwrap();
        let victim = piece_pick % layout.total_pieces();
        let bit = bit_pick % (segment.piece_len() * 8);
        let mut flipped = segment.piece(victim).to_vec();
        flipped[bit / 8] ^= 1 << (bit % 8);

        // Whole-segment reads: the piece fails its BLAKE3 check, is reported,
        // and the segment still decodes from the others when it can.
        let mut pieces = pieces_of(&segment);
        pieces[victim] = Some(&flipped);
        let result = decode_segment(&layout, &key, 0, plain.len() as u64, &pieces, segment.ids());
        let victim_needed = victim < layout.data_pieces() || layout.total_pieces() == layout.data_pieces();
        match result {
            Ok(out) => {
                prop_assert!(out.plaintext == plain);
                if victim_needed {
                    prop_assert_eq!(out.rejected, vec![victim]);
                }
            }
            Err(CodecError::NotEnoughPieces { rejected, .. }) => {
                prop_assert_eq!(layout.total_pieces(), layout.data_pieces());
                prop_assert_eq!(rejected, vec![victim]);
            }
            Err(other) => prop_assert!(false, "unexpected {other}"),
        }

        // Range reads skip BLAKE3: the GCM tag must catch a flip in the
        // sealed bytes (ciphertext or tag) of any block the range touches.
        let sealed_len = sealed_len(plain.len());
        let offset = victim * segment.piece_len() + bit / 8;
        if victim < layout.data_pieces() && offset < sealed_len {
            let block = offset / SEALED_BLOCK_SIZE;
            let plan = layout.plan_range(plain.len() as u64, (block * BLOCK_SIZE) as u64..plain.len() as u64).unwrap();
            let reads: Vec<Vec<u8>> = plan.reads.iter().map(|read| {
                let source = if read.piece == victim { &flipped[..] } else { segment.piece(read.piece) };
                source[read.range.start as usize..read.range.end as usize].to_vec()
            }).collect();
            let reads: Vec<&[u8]> = reads.iter().map(Vec::as_slice).collect();
            let result = decode_range(&key, 0, &plan, &reads);
            prop_assert_eq!(result, Err(CodecError::Tampered { segment: 0, block }));
        }
    }

    #[test]
    fn any_range_decodes_to_exactly_its_slice(
        layout in layout_strategy(),
        len_fraction in 0.0f64..2.5,
        a in any::<u64>(),
        b in any::<u64>(),
    ) {
        let len = ((layout.segment_size() as f64 * len_fraction) as u64).max(1);
        let object = random_bytes(len as usize, len);
        let key = key(3);
        let segments = encode_object(&layout, &key, &object);
        let (start, end) = (a % len, b % len);
        let (start, end) = (start.min(end), start.max(end) + 1);
        let read = read_range(&layout, &key, &segments, len, start..end).unwrap();
        prop_assert!(read == object[start as usize..end as usize], "range {start}..{end} of {len}");
    }
}
