//! Streaming reads: byte range -> segment jobs -> fetch (fewest pieces) ->
//! decode (blocking pool) -> bytes, in order.

use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use dbytes_ledger::book::{KeyId, Manifest, SegmentRecord};
use dbytes_ledger::keys::{BucketKey, VersionKey};
use dbytes_ledger::piece::PieceId;
use dbytes_placement::RedundancyPolicy;
use futures::{Stream, StreamExt};
use tokio::sync::{Semaphore, mpsc};

use super::{PieceRequest, PieceStore, Pipeline, PipelineError, inline_layout};
use crate::codec::{CodecError, SegmentLayout, decode_range, decode_segment};

/// The stored form of an object version's bytes.
#[derive(Debug, Clone)]
pub enum ObjectSource {
    /// No bytes.
    Empty,
    /// Sealed inline bytes (one 1-of-1 piece under the version's key).
    Inline {
        /// The key id the bytes were sealed under.
        key_id: KeyId,
        /// Plaintext size.
        size: u64,
        /// The sealed piece.
        sealed: Vec<u8>,
    },
    /// Pieces on the store.
    Pieces(Manifest),
}

/// Object bytes as they are decoded, in order. Dropping it stops the reads.
pub struct ObjectStream {
    first: Option<Bytes>,
    chunks: mpsc::Receiver<Result<Bytes, PipelineError>>,
}

impl ObjectStream {
    /// Waits for the first bytes: a read that cannot start (pieces lost
    /// beyond repair, the store down) fails here, before a response is
    /// committed to a status, rather than as a truncated body.
    pub async fn ready(mut self) -> Result<Self, PipelineError> {
        match self.chunks.recv().await {
            Some(Ok(bytes)) => self.first = Some(bytes),
            Some(Err(err)) => return Err(err),
            None => {}
        }
        Ok(self)
    }
}

impl std::fmt::Debug for ObjectStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStream").finish_non_exhaustive()
    }
}

impl Stream for ObjectStream {
    type Item = Result<Bytes, PipelineError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(first)));
        }
        self.chunks.poll_recv(cx)
    }
}

/// One segment (or part of one) to read.
struct SegmentJob {
    layout: SegmentLayout,
    key: VersionKey,
    segment_index: u64,
    record: SegmentRecord,
    range: Range<u64>,
}

fn layout_of(
    data_pieces: u16,
    total_pieces: u16,
    piece_size: u64,
) -> Result<SegmentLayout, PipelineError> {
    let policy = RedundancyPolicy::new(data_pieces, total_pieces)
        .map_err(|err| PipelineError::Manifest(err.to_string()))?;
    let piece_size = usize::try_from(piece_size)
        .map_err(|_| PipelineError::Manifest(format!("piece size {piece_size}")))?;
    Ok(SegmentLayout::new(policy, piece_size)?)
}

/// The segment jobs that cover `range` of an object.
fn plan_jobs(
    bucket_key: &BucketKey,
    manifest: &Manifest,
    range: &Range<u64>,
) -> Result<Vec<SegmentJob>, PipelineError> {
    let mut jobs = Vec::new();
    let mut part_start = 0u64;
    for part in &manifest.parts {
        let part_end = part_start + part.size;
        if part_end > range.start && part_start < range.end {
            let layout = layout_of(part.data_pieces, part.total_pieces, part.piece_size)?;
            let key = bucket_key.version_key(&part.key_id.0);
            let mut segment_start = part_start;
            for (index, record) in part.segments.iter().enumerate() {
                let segment_end = segment_start + record.len;
                let start = range.start.max(segment_start);
                let end = range.end.min(segment_end);
                if start < end {
                    jobs.push(SegmentJob {
                        layout,
                        key: key.clone(),
                        segment_index: index as u64,
                        record: record.clone(),
                        range: start - segment_start..end - segment_start,
                    });
                }
                segment_start = segment_end;
            }
            if segment_start != part_end {
                return Err(PipelineError::Manifest(format!(
                    "a part of {} bytes has segments of {} bytes",
                    part.size,
                    segment_start - part_start
                )));
            }
        }
        part_start = part_end;
    }
    Ok(jobs)
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PipelineError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| PipelineError::Worker(err.to_string()))
}

/// Reads a whole segment: the data pieces first, more only if some are
/// missing or do not verify.
async fn read_segment(store: &dyn PieceStore, job: &SegmentJob) -> Result<Vec<u8>, PipelineError> {
    let n = job.layout.total_pieces();
    let k = job.layout.data_pieces();
    if job.record.pieces.len() != n {
        return Err(PipelineError::Manifest(format!(
            "a segment lists {} pieces, its layout has {n}",
            job.record.pieces.len()
        )));
    }
    let ids: Arc<Vec<PieceId>> = Arc::new(job.record.pieces.iter().map(|piece| piece.id).collect());
    let mut have: Vec<Option<Bytes>> = vec![None; n];
    let mut untried: Vec<usize> = (0..n)
        .filter(|&index| job.record.pieces[index].placement.is_some())
        .collect();
    let mut needed = k;
    loop {
        if untried.is_empty() {
            return Err(CodecError::NotEnoughPieces {
                segment: job.segment_index,
                needed: k,
                intact: have.iter().flatten().count(),
                rejected: Vec::new(),
            }
            .into());
        }
        let requests: Vec<PieceRequest> = untried
            .iter()
            .filter_map(|&index| {
                let piece = &job.record.pieces[index];
                piece.placement.clone().map(|placement| PieceRequest {
                    id: piece.id,
                    placement,
                    range: None,
                })
            })
            .collect();
        let fetched = store.fetch_pieces(&requests, needed).await?;
        let asked = std::mem::take(&mut untried);
        let mut arrived = 0;
        for (index, bytes) in asked
            .into_iter()
            .zip(fetched.into_iter().chain(std::iter::repeat(None)))
        {
            match bytes {
                Some(bytes) => {
                    have[index] = Some(bytes);
                    arrived += 1;
                }
                // Not fetched this round (the store stopped at `needed`, or
                // it failed): a candidate for the next round.
                None => untried.push(index),
            }
        }
        if arrived == 0 {
            // Every remaining candidate failed: no round can do better.
            untried.clear();
        }
        let (layout, key, segment_index, len) = (
            job.layout,
            job.key.clone(),
            job.segment_index,
            job.record.len,
        );
        let pieces = have.clone();
        let piece_ids = ids.clone();
        let decoded = blocking(move || {
            let views: Vec<Option<&[u8]>> = pieces.iter().map(|piece| piece.as_deref()).collect();
            decode_segment(&layout, &key, segment_index, len, &views, &piece_ids)
        })
        .await?;
        match decoded {
            Ok(decoded) => {
                if !decoded.rejected.is_empty() {
                    tracing::warn!(
                        segment = job.segment_index,
                        rejected = ?decoded.rejected,
                        "pieces failed their BLAKE3 check; the repair worker should replace them"
                    );
                }
                return Ok(decoded.plaintext);
            }
            Err(CodecError::NotEnoughPieces {
                intact, rejected, ..
            }) => {
                for index in rejected {
                    have[index] = None;
                }
                needed = k.saturating_sub(intact).max(1);
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// Reads a range of a segment from just the sealed blocks it touches; falls
/// back to the whole segment when a piece is missing or corrupt.
async fn read_range(store: &dyn PieceStore, job: &SegmentJob) -> Result<Vec<u8>, PipelineError> {
    let plan = job.layout.plan_range(job.record.len, job.range.clone())?;
    let requests: Option<Vec<PieceRequest>> = plan
        .reads
        .iter()
        .map(|read| {
            let piece = job.record.pieces.get(read.piece)?;
            Some(PieceRequest {
                id: piece.id,
                placement: piece.placement.clone()?,
                range: Some(read.range.clone()),
            })
        })
        .collect();
    if let Some(requests) = requests {
        let fetched = store.fetch_pieces(&requests, requests.len()).await?;
        let reads: Option<Vec<Bytes>> = fetched.into_iter().collect();
        if let Some(reads) = reads.filter(|reads| reads.len() == requests.len()) {
            let (key, segment_index) = (job.key.clone(), job.segment_index);
            let decoded = blocking(move || {
                let views: Vec<&[u8]> = reads.iter().map(|read| read.as_ref()).collect();
                decode_range(&key, segment_index, &plan, &views)
            })
            .await?;
            match decoded {
                Ok(plaintext) => return Ok(plaintext),
                Err(err) => {
                    tracing::warn!(segment = job.segment_index, %err, "range read failed; reading the whole segment")
                }
            }
        }
    }
    let whole = read_segment(store, job).await?;
    let range = job.range.start as usize..job.range.end as usize;
    whole
        .get(range)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| PipelineError::Manifest("a segment decoded shorter than recorded".into()))
}

async fn read_job(
    store: Arc<dyn PieceStore>,
    job: SegmentJob,
    reads: Arc<Semaphore>,
) -> Result<Bytes, PipelineError> {
    // The memory bound of all reads: pieces and plaintext of this many
    // segments at once (the semaphore is never closed).
    let _permit = reads
        .acquire_owned()
        .await
        .map_err(|err| PipelineError::Worker(err.to_string()))?;
    let whole = job.range.start == 0 && job.range.end == job.record.len;
    let plaintext = if whole {
        read_segment(store.as_ref(), &job).await?
    } else {
        read_range(store.as_ref(), &job).await?
    };
    Ok(Bytes::from(plaintext))
}

impl Pipeline {
    /// Streams bytes `range` of an object (an empty range gives an empty
    /// stream). Segments are fetched and decoded in a background task, a few
    /// ahead of the one being sent; dropping the stream stops it.
    pub fn read(
        &self,
        bucket_key: &BucketKey,
        source: ObjectSource,
        range: Range<u64>,
    ) -> ObjectStream {
        let (sender, chunks) = mpsc::channel(1);
        let store = self.store.clone();
        let reads = self.reads.clone();
        let ahead = self.config.segments_ahead;
        let bucket_key = bucket_key.clone();
        tokio::spawn(async move {
            if range.start >= range.end {
                return;
            }
            match source {
                ObjectSource::Empty => {}
                ObjectSource::Inline {
                    key_id,
                    size,
                    sealed,
                } => {
                    let key = bucket_key.version_key(&key_id.0);
                    let result = blocking(move || {
                        let id = PieceId::of(&sealed);
                        decode_segment(&inline_layout(), &key, 0, size, &[Some(&sealed)], &[id])
                    })
                    .await
                    .and_then(|decoded| Ok(decoded?))
                    .and_then(|decoded| {
                        decoded
                            .plaintext
                            .get(range.start as usize..range.end as usize)
                            .map(Bytes::copy_from_slice)
                            .ok_or_else(|| {
                                PipelineError::Manifest(
                                    "an inline object is shorter than recorded".into(),
                                )
                            })
                    });
                    let _ = sender.send(result).await;
                }
                ObjectSource::Pieces(manifest) => {
                    let jobs = match plan_jobs(&bucket_key, &manifest, &range) {
                        Ok(jobs) => jobs,
                        Err(err) => {
                            let _ = sender.send(Err(err)).await;
                            return;
                        }
                    };
                    let mut chunks = futures::stream::iter(jobs)
                        .map(|job| read_job(store.clone(), job, reads.clone()))
                        .buffered(ahead);
                    while let Some(chunk) = chunks.next().await {
                        let failed = chunk.is_err();
                        if sender.send(chunk).await.is_err() || failed {
                            return;
                        }
                    }
                }
            }
        });
        ObjectStream {
            first: None,
            chunks,
        }
    }
}
