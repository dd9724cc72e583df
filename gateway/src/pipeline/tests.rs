use std::sync::Arc;

use bytes::Bytes;
use dbytes_ledger::book::{Book, KeyId, Manifest};
use dbytes_ledger::keys::{BucketKey, DataMasterKey};
use dbytes_placement::RedundancyPolicy;
use futures::StreamExt;

use super::memory::MemoryPieceStore;
use super::*;

/// Records every byte it is fed.
#[derive(Default)]
struct Collect(Vec<u8>);

impl BodyDigest for Collect {
    fn update(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
}

fn bucket_key() -> BucketKey {
    DataMasterKey::from_bytes([3; 32]).bucket_key(b"bucket")
}

fn setup(providers: usize) -> (Arc<MemoryPieceStore>, Pipeline, crate::codec::SegmentLayout) {
    let store = Arc::new(MemoryPieceStore::new(providers));
    let pipeline = Pipeline::new(
        store.clone(),
        PipelineConfig {
            piece_size: Some(128 * 1024),
            ..PipelineConfig::default()
        },
    );
    let layout = pipeline
        .layout(RedundancyPolicy::new(2, 4).unwrap())
        .unwrap();
    (store, pipeline, layout)
}

fn object(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|index| (index as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// The body in uneven chunks, as a network delivers it.
fn body(data: &[u8]) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Unpin + use<> {
    let chunks: Vec<Result<Bytes, std::io::Error>> = data
        .chunks(7777)
        .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
        .collect();
    futures::stream::iter(chunks)
}

async fn write(
    pipeline: &Pipeline,
    layout: crate::codec::SegmentLayout,
    data: &[u8],
) -> (KeyId, Written<Collect>) {
    let key_id = KeyId::random();
    let key = bucket_key().version_key(&key_id.0);
    let written = pipeline
        .write(body(data), layout, key, key_id, Collect::default(), true)
        .await
        .unwrap();
    assert_eq!(
        written.digest.0, data,
        "the digest sees every byte in order"
    );
    (key_id, written)
}

fn source(key_id: KeyId, written: &Written<Collect>) -> ObjectSource {
    match &written.data {
        WrittenData::Empty => ObjectSource::Empty,
        WrittenData::Inline(sealed) => ObjectSource::Inline {
            key_id,
            size: written.size,
            sealed: sealed.clone(),
        },
        WrittenData::Pieces(part) => ObjectSource::Pieces(Manifest {
            parts: vec![part.clone()],
        }),
    }
}

async fn read(
    pipeline: &Pipeline,
    source: ObjectSource,
    range: std::ops::Range<u64>,
) -> Result<Vec<u8>, PipelineError> {
    let mut stream = pipeline.read(&bucket_key(), source, range);
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

#[tokio::test]
async fn objects_of_every_shape_round_trip() {
    let (store, pipeline, layout) = setup(5);
    let segment = layout.segment_size() as usize;
    for len in [
        0,
        1,
        DEFAULT_INLINE_THRESHOLD,
        DEFAULT_INLINE_THRESHOLD + 1,
        segment,
        3 * segment + 12345,
    ] {
        let data = object(len, len as u8);
        let (key_id, written) = write(&pipeline, layout, &data).await;
        assert_eq!(written.size, len as u64);
        match (&written.data, len) {
            (WrittenData::Empty, 0) => {}
            (WrittenData::Inline(_), len) if len <= DEFAULT_INLINE_THRESHOLD => {}
            (WrittenData::Pieces(part), len) => {
                assert_eq!(part.segments.len() as u64, layout.segment_count(len as u64));
                assert_eq!(part.size, len as u64);
            }
            (data, len) => panic!("{len} bytes stored as {data:?}"),
        }
        let source = source(key_id, &written);
        assert_eq!(
            read(&pipeline, source.clone(), 0..len as u64)
                .await
                .unwrap(),
            data
        );
        // Ranges: inside a block, across a segment boundary, the last byte.
        let last = (len as u64).saturating_sub(1);
        for range in [
            1..2,
            100..70_000,
            segment as u64 - 10..segment as u64 + 10,
            last..len as u64,
        ] {
            if range.start < range.end && range.end <= len as u64 {
                let got = read(&pipeline, source.clone(), range.clone())
                    .await
                    .unwrap();
                assert_eq!(
                    got,
                    data[range.start as usize..range.end as usize],
                    "{len} bytes, range {range:?}"
                );
            }
        }
    }
    assert!(store.stats().pieces_held > 0);
}

#[tokio::test]
async fn a_range_inside_one_data_piece_reads_one_piece() {
    let (store, pipeline, layout) = setup(4);
    let data = object(2 * layout.segment_size() as usize, 9);
    let (key_id, written) = write(&pipeline, layout, &data).await;
    let before = store.stats().pieces_fetched;
    let got = read(&pipeline, source(key_id, &written), 10..1000)
        .await
        .unwrap();
    assert_eq!(got, data[10..1000]);
    assert_eq!(store.stats().pieces_fetched - before, 1);
    let before = store.stats().pieces_fetched;
    read(
        &pipeline,
        source(key_id, &written),
        0..layout.segment_size(),
    )
    .await
    .unwrap();
    assert_eq!(
        store.stats().pieces_fetched - before,
        2,
        "a whole segment reads k pieces"
    );
}

#[tokio::test]
async fn lost_and_corrupted_pieces_are_survived() {
    let (store, pipeline, layout) = setup(4);
    let data = object(2 * layout.segment_size() as usize + 99, 5);
    let (key_id, written) = write(&pipeline, layout, &data).await;
    let WrittenData::Pieces(part) = &written.data else {
        panic!("expected pieces");
    };
    // Segment 0 loses data piece 0; segment 1 has data piece 1 corrupted and
    // parity piece 2 lost: n - k = 2 faults each, the most it survives.
    assert!(store.lose_piece(&part.segments[0].pieces[0].id));
    assert!(store.corrupt_piece(&part.segments[1].pieces[1].id));
    assert!(store.lose_piece(&part.segments[1].pieces[2].id));
    let source = source(key_id, &written);
    assert_eq!(
        read(&pipeline, source.clone(), 0..data.len() as u64)
            .await
            .unwrap(),
        data
    );
    let segment = layout.segment_size();
    let range = segment + 5..segment + 500;
    assert_eq!(
        read(&pipeline, source.clone(), range.clone())
            .await
            .unwrap(),
        data[range.start as usize..range.end as usize]
    );
    // One more loss in segment 1 is beyond repair: the read fails, loudly.
    assert!(store.lose_piece(&part.segments[1].pieces[3].id));
    let err = read(&pipeline, source, 0..data.len() as u64)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            PipelineError::Codec(crate::codec::CodecError::NotEnoughPieces { .. })
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_failed_write_reports_the_pieces_it_stored() {
    let (store, pipeline, layout) = setup(4);
    let data = object(4 * layout.segment_size() as usize, 1);
    let key_id = KeyId::random();
    // Succeeds for the first segments, then fails.
    let failing = async {
        let result = pipeline
            .write(
                body(&data),
                layout,
                bucket_key().version_key(&key_id.0),
                key_id,
                Collect::default(),
                true,
            )
            .await;
        result.map(|_| ()).unwrap_err()
    };
    store.fail_next_stores(0);
    let (failure, _) = tokio::join!(failing, async {
        tokio::task::yield_now().await;
        store.fail_next_stores(1);
    });
    assert!(
        matches!(failure.error, PipelineError::Store(_)),
        "{}",
        failure.error
    );
    let held = store.stats().pieces_held;
    assert_eq!(
        failure.stored.len(),
        held,
        "every stored piece is reported for freeing"
    );

    // The free worker deletes them.
    let book = Book::in_memory().unwrap();
    book.queue_free(failure.stored, 0).unwrap();
    let finished = free_due_pieces(&book, store.as_ref(), 0, 10).await.unwrap();
    assert_eq!(finished, usize::from(held > 0));
    assert_eq!(store.stats().pieces_held, 0);
    assert!(book.pending_frees().unwrap().is_empty());
}

#[tokio::test]
async fn freeing_is_retried_while_a_provider_is_down() {
    let (store, pipeline, layout) = setup(4);
    let data = object(layout.segment_size() as usize, 2);
    let (_, written) = write(&pipeline, layout, &data).await;
    let book = Book::in_memory().unwrap();
    book.queue_free(written.stored_pieces(), 0).unwrap();
    store.set_provider_down("provider-1", true);
    assert_eq!(
        free_due_pieces(&book, store.as_ref(), 0, 10).await.unwrap(),
        0
    );
    let pending = book.pending_frees().unwrap();
    assert_eq!(pending[0].attempts, 1);
    assert!(pending[0].not_before_ms >= 60_000);
    store.set_provider_down("provider-1", false);
    assert_eq!(
        free_due_pieces(&book, store.as_ref(), 60_000, 10)
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.stats().pieces_held, 0);
}
