//! Systematic Reed-Solomon over pieces, in cache-sized stripes.
//!
//! reed-solomon-simd works position by position, so encoding a stripe of
//! every piece at a time gives the same parity as one call over whole pieces
//! while the working set (n stripes) stays in L2: measured ~1.7 GB/s for
//! 10+10 in stripes against ~0.6 GB/s over 32 MiB buffers in one call.

use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};

use super::CodecError;
use super::layout::PIECE_ALIGN;

/// Bytes of the whole stripe (all pieces) aimed at: about half an L2.
const STRIPE_TARGET: usize = 512 * 1024;

fn stripe_len(pieces: usize, piece_len: usize) -> usize {
    (STRIPE_TARGET / pieces)
        .clamp(4 * 1024, 64 * 1024)
        .next_multiple_of(PIECE_ALIGN)
        .min(piece_len)
}

fn erasure_error(err: reed_solomon_simd::Error) -> CodecError {
    CodecError::ErasureCode(err.to_string())
}

/// Writes into `parity` the parity pieces of `data` (k pieces of
/// `piece_len`, end to end).
pub(super) fn encode(
    data: &[u8],
    parity: &mut [u8],
    k: usize,
    parity_pieces: usize,
    piece_len: usize,
) -> Result<(), CodecError> {
    if parity_pieces == 0 {
        return Ok(());
    }
    let stripe = stripe_len(k + parity_pieces, piece_len);
    let mut encoder = ReedSolomonEncoder::new(k, parity_pieces, stripe).map_err(erasure_error)?;
    let mut offset = 0;
    while offset < piece_len {
        let len = stripe.min(piece_len - offset);
        encoder
            .reset(k, parity_pieces, len)
            .map_err(erasure_error)?;
        for piece in 0..k {
            let at = piece * piece_len + offset;
            encoder
                .add_original_shard(&data[at..at + len])
                .map_err(erasure_error)?;
        }
        let result = encoder.encode().map_err(erasure_error)?;
        for (piece, recovery) in result.recovery_iter().enumerate() {
            let at = piece * piece_len + offset;
            parity[at..at + len].copy_from_slice(recovery);
        }
        offset += len;
    }
    Ok(())
}

/// Fills the missing data pieces of `data` from the intact pieces at hand.
///
/// `intact` has n entries; at least k are `Some`. The data pieces present are
/// already in place in `data`.
pub(super) fn restore(
    data: &mut [u8],
    intact: &[Option<&[u8]>],
    k: usize,
    piece_len: usize,
) -> Result<(), CodecError> {
    let parity_pieces = intact.len() - k;
    // Use the data pieces present and just enough parity pieces to reach k.
    let present_data = intact[..k].iter().filter(|piece| piece.is_some()).count();
    let parity_used: Vec<usize> = (0..parity_pieces)
        .filter(|&index| intact[k + index].is_some())
        .take(k - present_data)
        .collect();
    let missing: Vec<usize> = (0..k).filter(|&index| intact[index].is_none()).collect();
    let stripe = stripe_len(k + parity_used.len(), piece_len);
    let mut decoder = ReedSolomonDecoder::new(k, parity_pieces, stripe).map_err(erasure_error)?;
    let mut offset = 0;
    while offset < piece_len {
        let len = stripe.min(piece_len - offset);
        decoder
            .reset(k, parity_pieces, len)
            .map_err(erasure_error)?;
        for (index, piece) in intact[..k].iter().enumerate() {
            if let Some(bytes) = piece {
                decoder
                    .add_original_shard(index, &bytes[offset..offset + len])
                    .map_err(erasure_error)?;
            }
        }
        for &index in &parity_used {
            let bytes = intact[k + index].unwrap_or_default();
            decoder
                .add_recovery_shard(index, &bytes[offset..offset + len])
                .map_err(erasure_error)?;
        }
        let result = decoder.decode().map_err(erasure_error)?;
        for &index in &missing {
            let restored = result.restored_original(index).ok_or_else(|| {
                CodecError::ErasureCode(format!("piece {index} was not restored"))
            })?;
            let at = index * piece_len + offset;
            data[at..at + len].copy_from_slice(restored);
        }
        offset += len;
    }
    Ok(())
}
