//! Streaming writes: body -> segments -> encode (blocking pool) -> piece store.

use std::fmt::Display;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use dbytes_ledger::book::{KeyId, ManifestPart, PieceRecord, Placement, SegmentRecord};
use dbytes_ledger::keys::VersionKey;
use dbytes_ledger::piece::PieceId;
use futures::{Stream, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use super::{PieceStoreError, Pipeline, PipelineError, inline_layout};
use crate::codec::{
    CodecError, EncodedSegment, SegmentLayout, encode_segment, encode_segment_into,
};

/// Hashes a body as it streams through the pipeline (on the blocking pool,
/// in order): MD5 for the ETag, the checksums the client asked for.
pub trait BodyDigest: Send + 'static {
    /// Feeds the next bytes of the body.
    fn update(&mut self, bytes: &[u8]);
}

/// Where a written body's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WrittenData {
    /// The body was empty.
    Empty,
    /// Small body, sealed (one 1-of-1 piece) for the book.
    Inline(Vec<u8>),
    /// Pieces on the store.
    Pieces(ManifestPart),
}

/// A written body.
#[derive(Debug)]
pub struct Written<D> {
    /// Plaintext bytes.
    pub size: u64,
    /// Where they are.
    pub data: WrittenData,
    /// The digest, fed the whole body.
    pub digest: D,
}

impl<D> Written<D> {
    /// The pieces this write stored (to free them if it is not committed).
    pub fn stored_pieces(&self) -> Vec<(PieceId, Placement)> {
        match &self.data {
            WrittenData::Pieces(part) => part.placed_pieces().collect(),
            WrittenData::Empty | WrittenData::Inline(_) => Vec::new(),
        }
    }
}

/// A write that failed, and the pieces it had stored already: the caller
/// queues them for freeing.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct WriteFailure {
    /// What failed.
    pub error: PipelineError,
    /// Pieces stored before the failure.
    pub stored: Vec<(PieceId, Placement)>,
}

/// Reads a body stream into segment-sized buffers.
struct BodyReader<S> {
    body: S,
    leftover: Bytes,
    done: bool,
}

impl<S, E> BodyReader<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Display,
{
    /// Appends body bytes to `buffer` until it holds `want` bytes or the body ends.
    async fn fill(&mut self, buffer: &mut Vec<u8>, want: usize) -> Result<(), PipelineError> {
        while buffer.len() < want {
            if self.leftover.is_empty() {
                match self.body.next().await {
                    Some(Ok(chunk)) => self.leftover = chunk,
                    Some(Err(err)) => return Err(PipelineError::Body(err.to_string())),
                    None => {
                        self.done = true;
                        return Ok(());
                    }
                }
            }
            let take = self.leftover.len().min(want - buffer.len());
            buffer.extend_from_slice(&self.leftover.split_to(take));
        }
        Ok(())
    }
}

type EncodeTask<D> = JoinHandle<(D, SegmentSlot, Result<(), CodecError>)>;

/// What an upload task hands back: its segment's shape and where its
/// pieces went. The segment's buffers are already back in the budget.
struct UploadDone {
    index: u64,
    segment_len: u64,
    piece_len: usize,
    ids: Vec<PieceId>,
    result: Result<Vec<Option<Placement>>, PieceStoreError>,
}

/// The buffers one segment goes through: its plaintext and its pieces.
#[derive(Default)]
struct SegmentBuffers {
    plain: Vec<u8>,
    encoded: EncodedSegment,
}

/// The segments all writes of a pipeline may hold at once, from the first
/// byte of a segment read to its pieces stored: the gateway's memory bound
/// for writes, whatever the number of requests and object sizes. The
/// buffers of finished segments are kept for the next ones while writes run
/// (the kernel need not map and zero fresh pages each time), and freed when
/// the last segment is done.
pub(super) struct SegmentBudget {
    permits: Arc<Semaphore>,
    total: usize,
    spare: Mutex<Vec<SegmentBuffers>>,
}

impl SegmentBudget {
    pub(super) fn new(total: usize) -> Arc<SegmentBudget> {
        Arc::new(SegmentBudget {
            permits: Arc::new(Semaphore::new(total)),
            total,
            spare: Mutex::default(),
        })
    }

    fn spare(&self) -> std::sync::MutexGuard<'_, Vec<SegmentBuffers>> {
        // A list of buffers: a panic elsewhere leaves it usable.
        self.spare
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn with_permit(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> SegmentSlot {
        let buffers = self.spare().pop().unwrap_or_default();
        SegmentSlot {
            budget: self.clone(),
            _permit: permit,
            buffers,
        }
    }

    /// A slot if one is free now.
    fn try_slot(self: &Arc<Self>) -> Option<SegmentSlot> {
        let permit = self.permits.clone().try_acquire_owned().ok()?;
        Some(self.with_permit(permit))
    }

    /// Waits for a slot.
    async fn slot(self: &Arc<Self>) -> Result<SegmentSlot, PipelineError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            // The semaphore is never closed.
            .map_err(|err| PipelineError::Worker(err.to_string()))?;
        Ok(self.with_permit(permit))
    }
}

/// One segment's share of the [`SegmentBudget`] and its buffers; dropping
/// it gives both back.
struct SegmentSlot {
    budget: Arc<SegmentBudget>,
    _permit: OwnedSemaphorePermit,
    buffers: SegmentBuffers,
}

impl Drop for SegmentSlot {
    fn drop(&mut self) {
        let buffers = std::mem::take(&mut self.buffers);
        let budget = &self.budget;
        let mut spare = budget.spare();
        // This slot's permit is still held: all others free means idle.
        if budget.permits.available_permits() + 1 >= budget.total {
            spare.clear();
        } else if spare.len() < budget.total {
            spare.push(buffers);
        }
    }
}

/// One segment counted in the pipeline's in-flight gauge until dropped
/// (also when its upload is cancelled).
struct InFlight(prometheus::IntGauge);

impl InFlight {
    fn count(gauge: &prometheus::IntGauge) -> InFlight {
        gauge.inc();
        InFlight(gauge.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The state of one streaming write.
struct SegmentWriter<'p> {
    pipeline: &'p Pipeline,
    layout: SegmentLayout,
    uploads: JoinSet<UploadDone>,
    records: Vec<Option<SegmentRecord>>,
    stored: Vec<(PieceId, Placement)>,
    error: Option<PipelineError>,
}

impl SegmentWriter<'_> {
    fn start_upload(&mut self, index: u64, slot: SegmentSlot) {
        let store = self.pipeline.store.clone();
        let layout = self.layout;
        let in_flight = InFlight::count(&self.pipeline.in_flight);
        self.uploads.spawn(async move {
            let encoded = &slot.buffers.encoded;
            let result = store.store_segment(encoded, &layout).await;
            let done = UploadDone {
                index,
                segment_len: encoded.segment_len(),
                piece_len: encoded.piece_len(),
                ids: encoded.ids().to_vec(),
                result,
            };
            // The budget is given back here, not when the writer gets to
            // the result: a writer waiting for a slot must not hold one.
            drop(slot);
            drop(in_flight);
            done
        });
    }

    /// Waits for one upload and records it.
    async fn finish_one(&mut self) {
        let Some(joined) = self.uploads.join_next().await else {
            return;
        };
        let done = match joined {
            Ok(done) => done,
            Err(err) => {
                self.error
                    .get_or_insert(PipelineError::Worker(err.to_string()));
                return;
            }
        };
        match done.result {
            Ok(placements) => {
                let stored = placements.iter().filter(|place| place.is_some()).count();
                let placed = done.ids.iter().zip(&placements);
                self.stored.extend(
                    placed.filter_map(|(id, place)| place.clone().map(|place| (*id, place))),
                );
                let needed = usize::from(self.layout.policy().success_threshold());
                if placements.len() != done.ids.len() || stored < needed {
                    self.error.get_or_insert(PipelineError::Store(
                        PieceStoreError::NotEnoughStored {
                            stored,
                            needed,
                            reason: format!(
                                "the store returned {} placements for {} pieces",
                                placements.len(),
                                done.ids.len()
                            ),
                        },
                    ));
                } else {
                    let pieces = done
                        .ids
                        .iter()
                        .zip(placements)
                        .map(|(id, placement)| PieceRecord { id: *id, placement })
                        .collect();
                    let slot = done.index as usize;
                    if self.records.len() <= slot {
                        self.records.resize(slot + 1, None);
                    }
                    self.records[slot] = Some(SegmentRecord {
                        len: done.segment_len,
                        piece_len: done.piece_len as u64,
                        pieces,
                    });
                }
            }
            Err(err) => {
                self.error.get_or_insert(PipelineError::Store(err));
            }
        }
    }

    /// Hands the segment being encoded (if any) on to upload once it is
    /// encoded and one of this write's upload places is free; takes its
    /// digest back.
    async fn hand_on<D>(
        &mut self,
        pending: &mut Option<(u64, EncodeTask<D>)>,
        digest: &mut Option<D>,
    ) {
        let Some((index, task)) = pending.take() else {
            return;
        };
        match task.await {
            Ok((returned_digest, slot, result)) => {
                *digest = Some(returned_digest);
                match result {
                    Ok(()) => {
                        while self.uploads.len() >= self.pipeline.config.segments_in_flight {
                            self.finish_one().await;
                        }
                        self.start_upload(index, slot);
                    }
                    Err(err) => {
                        self.error.get_or_insert(err.into());
                    }
                }
            }
            Err(err) => {
                self.error
                    .get_or_insert(PipelineError::Worker(err.to_string()));
            }
        }
    }

    /// Waits for every upload in flight (also after an error: their pieces
    /// must be known to be freed).
    async fn drain(&mut self) {
        while !self.uploads.is_empty() {
            self.finish_one().await;
        }
    }

    fn fail(&mut self, error: PipelineError) -> WriteFailure {
        WriteFailure {
            error: self.error.take().unwrap_or(error),
            stored: std::mem::take(&mut self.stored),
        }
    }
}

impl Pipeline {
    /// Writes a body: encodes it segment by segment under `key` (the version
    /// key derived from `key_id`) with `layout`, stores the pieces, and
    /// feeds every byte to `digest` in order. Bodies of at most the inline
    /// threshold are sealed inline instead when `allow_inline`.
    ///
    /// Memory stays bounded by the segments in flight whatever the body's
    /// size and the number of writes at once: every segment holds a slot of
    /// the pipeline's budget ([`super::PipelineConfig::segments_total`])
    /// from its first byte read to its pieces stored. On failure, the pieces stored so far are returned for freeing.
    pub async fn write<S, E, D>(
        &self,
        body: S,
        layout: SegmentLayout,
        key: VersionKey,
        key_id: KeyId,
        mut digest: D,
        allow_inline: bool,
    ) -> Result<Written<D>, WriteFailure>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: Display,
        D: BodyDigest,
    {
        let segment_size = layout.segment_size() as usize;
        let mut reader = BodyReader {
            body,
            leftover: Bytes::new(),
            done: false,
        };
        let mut writer = SegmentWriter {
            pipeline: self,
            layout,
            uploads: JoinSet::new(),
            records: Vec::new(),
            stored: Vec::new(),
            error: None,
        };
        // Read up to the inline threshold first: small bodies never allocate a segment.
        // Otherwise one byte, to tell an empty body: segments are read into
        // slots of the budget.
        let first_want = if allow_inline {
            (self.config.inline_threshold + 1).min(segment_size)
        } else {
            1
        };
        let mut plain = Vec::new();
        if let Err(error) = reader.fill(&mut plain, first_want).await {
            return Err(writer.fail(error));
        }
        if plain.is_empty() {
            return Ok(Written {
                size: 0,
                data: WrittenData::Empty,
                digest,
            });
        }
        if reader.done && allow_inline && plain.len() <= self.config.inline_threshold {
            let size = plain.len() as u64;
            let sealed = tokio::task::spawn_blocking(move || {
                digest.update(&plain);
                encode_segment(&inline_layout(), &key, 0, &plain)
                    .map(|encoded| (digest, encoded.piece(0).to_vec()))
            })
            .await
            .map_err(|err| writer.fail(PipelineError::Worker(err.to_string())))?
            .map_err(|err| writer.fail(err.into()))?;
            return Ok(Written {
                size,
                data: WrittenData::Inline(sealed.1),
                digest: sealed.0,
            });
        }
        let mut digest = Some(digest);
        let mut pending: Option<(u64, EncodeTask<D>)> = None;
        let mut carried = plain;
        let mut total: u64 = 0;
        let mut index: u64 = 0;
        loop {
            // The next segment's bytes, read into a slot of the budget
            // while the previous segment is being encoded.
            let mut next = None;
            if writer.error.is_none() && (!carried.is_empty() || !reader.done) {
                let slot = match self.budget.try_slot() {
                    Some(slot) => Ok(slot),
                    None => {
                        // Hand the encoded segment on before waiting: its
                        // slot must not wait on others' (they could all be
                        // waiting on this one).
                        writer.hand_on(&mut pending, &mut digest).await;
                        self.budget.slot().await
                    }
                };
                match slot {
                    Ok(mut slot) => {
                        let buffer = &mut slot.buffers.plain;
                        buffer.clear();
                        buffer.reserve(segment_size);
                        buffer.append(&mut carried);
                        if !reader.done
                            && let Err(error) = reader.fill(buffer, segment_size).await
                        {
                            writer.error.get_or_insert(error);
                        }
                        if !slot.buffers.plain.is_empty() {
                            next = Some(slot);
                        }
                    }
                    Err(error) => {
                        writer.error.get_or_insert(error);
                    }
                }
            }
            writer.hand_on(&mut pending, &mut digest).await;
            let Some(mut slot) = next.filter(|_| writer.error.is_none()) else {
                break;
            };
            let Some(mut segment_digest) = digest.take() else {
                break;
            };
            total += slot.buffers.plain.len() as u64;
            let segment_key = key.clone();
            let segment_index = index;
            index += 1;
            pending = Some((
                segment_index,
                tokio::task::spawn_blocking(move || {
                    let SegmentBuffers { plain, encoded } = &mut slot.buffers;
                    segment_digest.update(plain);
                    let result =
                        encode_segment_into(&layout, &segment_key, segment_index, plain, encoded);
                    (segment_digest, slot, result)
                }),
            ));
        }
        writer.drain().await;
        if let Some(error) = writer.error.take() {
            return Err(writer.fail(error));
        }
        let Some(digest) = digest else {
            return Err(writer.fail(PipelineError::Worker("the body digest was lost".into())));
        };
        let segments: Option<Vec<SegmentRecord>> = writer.records.drain(..).collect();
        let Some(segments) = segments.filter(|segments| segments.len() as u64 == index) else {
            return Err(writer.fail(PipelineError::Worker(
                "a segment's upload result was lost".into(),
            )));
        };
        Ok(Written {
            size: total,
            data: WrittenData::Pieces(ManifestPart {
                key_id,
                size: total,
                data_pieces: layout.policy().data_pieces(),
                total_pieces: layout.policy().total_pieces(),
                piece_size: layout.piece_size() as u64,
                segments,
            }),
            digest,
        })
    }
}
