//! Streaming writes: body -> segments -> encode (blocking pool) -> piece store.

use std::fmt::Display;

use bytes::Bytes;
use dbytes_ledger::book::{KeyId, ManifestPart, PieceRecord, Placement, SegmentRecord};
use dbytes_ledger::keys::VersionKey;
use dbytes_ledger::piece::PieceId;
use futures::{Stream, StreamExt};
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

type EncodeTask<D> = JoinHandle<(D, Vec<u8>, EncodedSegment, Result<(), CodecError>)>;
type UploadResult = (
    u64,
    EncodedSegment,
    Result<Vec<Option<Placement>>, PieceStoreError>,
);

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
    uploads: JoinSet<UploadResult>,
    records: Vec<Option<SegmentRecord>>,
    stored: Vec<(PieceId, Placement)>,
    spare: Vec<EncodedSegment>,
    error: Option<PipelineError>,
}

impl SegmentWriter<'_> {
    fn start_upload(&mut self, index: u64, encoded: EncodedSegment) {
        let store = self.pipeline.store.clone();
        let layout = self.layout;
        let in_flight = InFlight::count(&self.pipeline.in_flight);
        self.uploads.spawn(async move {
            let result = store.store_segment(&encoded, &layout).await;
            drop(in_flight);
            (index, encoded, result)
        });
    }

    /// Waits for one upload and records it.
    async fn finish_one(&mut self) {
        let Some(joined) = self.uploads.join_next().await else {
            return;
        };
        let (index, encoded, result) = match joined {
            Ok(done) => done,
            Err(err) => {
                self.error
                    .get_or_insert(PipelineError::Worker(err.to_string()));
                return;
            }
        };
        match result {
            Ok(placements) => {
                let stored = placements.iter().filter(|place| place.is_some()).count();
                let placed = encoded.ids().iter().zip(&placements);
                self.stored.extend(
                    placed.filter_map(|(id, place)| place.clone().map(|place| (*id, place))),
                );
                let needed = usize::from(self.layout.policy().success_threshold());
                if placements.len() != encoded.piece_count() || stored < needed {
                    self.error.get_or_insert(PipelineError::Store(
                        PieceStoreError::NotEnoughStored {
                            stored,
                            needed,
                            reason: format!(
                                "the store returned {} placements for {} pieces",
                                placements.len(),
                                encoded.piece_count()
                            ),
                        },
                    ));
                } else {
                    let pieces = encoded
                        .ids()
                        .iter()
                        .zip(placements)
                        .map(|(id, placement)| PieceRecord { id: *id, placement })
                        .collect();
                    let slot = index as usize;
                    if self.records.len() <= slot {
                        self.records.resize(slot + 1, None);
                    }
                    self.records[slot] = Some(SegmentRecord {
                        len: encoded.segment_len(),
                        piece_len: encoded.piece_len() as u64,
                        pieces,
                    });
                }
            }
            Err(err) => {
                self.error.get_or_insert(PipelineError::Store(err));
            }
        }
        self.spare.push(encoded);
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
    /// size. On failure, the pieces stored so far are returned for freeing.
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
            spare: Vec::new(),
            error: None,
        };
        // Read up to the inline threshold first: small bodies never allocate a segment.
        let first_want = if allow_inline {
            (self.config.inline_threshold + 1).min(segment_size)
        } else {
            segment_size
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
        let mut spare_plain: Vec<Vec<u8>> = Vec::new();
        let mut total: u64 = 0;
        let mut index: u64 = 0;
        loop {
            if !reader.done
                && plain.len() < segment_size
                && let Err(error) = reader.fill(&mut plain, segment_size).await
            {
                writer.error.get_or_insert(error);
            }
            if let Some((encoded_index, task)) = pending.take() {
                match task.await {
                    Ok((returned_digest, buffer, encoded, result)) => {
                        digest = Some(returned_digest);
                        spare_plain.push(buffer);
                        match result {
                            Ok(()) => {
                                while writer.uploads.len() >= self.config.segments_in_flight {
                                    writer.finish_one().await;
                                }
                                writer.start_upload(encoded_index, encoded);
                            }
                            Err(err) => {
                                writer.error.get_or_insert(err.into());
                            }
                        }
                    }
                    Err(err) => {
                        writer
                            .error
                            .get_or_insert(PipelineError::Worker(err.to_string()));
                    }
                }
            }
            if plain.is_empty() || writer.error.is_some() {
                break;
            }
            let Some(mut segment_digest) = digest.take() else {
                break;
            };
            total += plain.len() as u64;
            let segment = std::mem::take(&mut plain);
            let mut encoded = writer.spare.pop().unwrap_or_default();
            let segment_key = key.clone();
            let segment_index = index;
            index += 1;
            pending = Some((
                segment_index,
                tokio::task::spawn_blocking(move || {
                    segment_digest.update(&segment);
                    let result = encode_segment_into(
                        &layout,
                        &segment_key,
                        segment_index,
                        &segment,
                        &mut encoded,
                    );
                    (segment_digest, segment, encoded, result)
                }),
            ));
            plain = spare_plain.pop().unwrap_or_default();
            plain.clear();
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
