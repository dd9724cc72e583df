use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::U256;
use proptest::prelude::*;

use super::*;
use crate::piece::PieceId;

const NOW: UnixMillis = 1_700_000_000_000;

fn redundancy() -> Redundancy {
    Redundancy {
        data_pieces: 2,
        total_pieces: 3,
        repair_threshold: 3,
        success_threshold: 3,
    }
}

fn book_with_bucket() -> (Book, Bucket) {
    let book = Book::in_memory().unwrap();
    book.add_user("alice", "Alice", NOW).unwrap();
    let bucket = book
        .create_bucket("photos", "alice", redundancy(), NOW)
        .unwrap();
    (book, bucket)
}

fn manifest(tag: u8) -> Manifest {
    Manifest {
        parts: vec![ManifestPart {
            key_id: KeyId([tag; 16]),
            size: 10,
            data_pieces: 2,
            total_pieces: 3,
            piece_size: 1 << 17,
            segments: vec![SegmentRecord {
                len: 10,
                piece_len: 64,
                pieces: (0..3u8)
                    .map(|index| PieceRecord {
                        id: PieceId::of(&[tag, index]),
                        placement: Some(Placement {
                            provider: format!("provider-{index}"),
                            detail: vec![tag],
                        }),
                    })
                    .collect(),
            }],
        }],
    }
}

fn new_version(key: &str, etag: &str, data: NewData) -> NewVersion {
    NewVersion {
        key: key.to_owned(),
        key_id: KeyId::random(),
        size: 10,
        etag: etag.to_owned(),
        owner: "alice".to_owned(),
        headers: ObjectHeaders::default(),
        metadata: BTreeMap::new(),
        checksums: Checksums::default(),
        part_sizes: Vec::new(),
        data,
        condition: None,
    }
}

fn put(book: &Book, bucket: &Bucket, key: &str, etag: &str) -> PutOutcome {
    book.put_version(
        &bucket.name,
        &bucket.id,
        new_version(key, etag, NewData::Inline(vec![1, 2])),
        NOW,
    )
    .unwrap()
}

fn all_versions(book: &Book, bucket: &Bucket) -> Vec<(String, String, bool, bool)> {
    let query = VersionQuery {
        max_keys: usize::MAX,
        ..Default::default()
    };
    book.list_versions(&bucket.id, &query)
        .unwrap()
        .entries
        .into_iter()
        .map(|entry| match entry {
            VersionEntry::Version { version, is_latest } => {
                (version.key, version.etag, version.delete_marker, is_latest)
            }
            VersionEntry::CommonPrefix(prefix) => panic!("unexpected prefix {prefix}"),
        })
        .collect()
}

fn current_keys(book: &Book, bucket: &Bucket) -> Vec<String> {
    let query = ListQuery {
        max_keys: usize::MAX,
        ..Default::default()
    };
    book.list_objects(&bucket.id, &query)
        .unwrap()
        .entries
        .into_iter()
        .map(|entry| match entry {
            ListEntry::Object(version) => version.key,
            ListEntry::CommonPrefix(prefix) => prefix,
        })
        .collect()
}

#[test]
fn unversioned_writes_replace_the_null_version_and_free_its_pieces() {
    let (book, bucket) = book_with_bucket();
    let first = book
        .put_version(
            &bucket.name,
            &bucket.id,
            new_version("a", "e1", NewData::Pieces(manifest(1))),
            NOW,
        )
        .unwrap();
    assert_eq!(first.version.version_id, VersionId::Null);
    assert!(book.pending_frees().unwrap().is_empty());
    let second = put(&book, &bucket, "a", "e2");
    assert_eq!(
        second.replaced.map(|version| version.etag),
        Some("e1".to_owned())
    );
    assert_eq!(
        all_versions(&book, &bucket),
        vec![("a".into(), "e2".into(), false, true)]
    );
    let frees = book.pending_frees().unwrap();
    assert_eq!(frees.len(), 1);
    assert_eq!(frees[0].pieces.len(), 3);
    assert!(
        book.manifest(&bucket.id, &first.version.key_id)
            .unwrap()
            .is_none()
    );
    // Delete without a version id removes it; no marker.
    let deleted = book
        .delete_object(&bucket.name, "a", None, "alice", NOW)
        .unwrap();
    assert!(!deleted.delete_marker);
    assert!(all_versions(&book, &bucket).is_empty());
    assert!(
        book.inline_data(&bucket.id, &second.version.key_id)
            .unwrap()
            .is_none()
    );
}

#[test]
fn versioning_state_machine_matches_s3() {
    let (book, bucket) = book_with_bucket();
    put(&book, &bucket, "k", "null-1");
    book.set_versioning("photos", Versioning::Enabled).unwrap();
    let v1 = put(&book, &bucket, "k", "v1").version;
    let v2 = put(&book, &bucket, "k", "v2").version;
    assert_ne!(v1.version_id, v2.version_id);
    assert!(matches!(v1.version_id, VersionId::Id(_)));
    assert_eq!(
        all_versions(&book, &bucket),
        vec![
            ("k".into(), "v2".into(), false, true),
            ("k".into(), "v1".into(), false, false),
            ("k".into(), "null-1".into(), false, false),
        ]
    );
    // A delete makes a marker; GET of the latest sees it, the key leaves listings.
    let marker = book
        .delete_object("photos", "k", None, "alice", NOW)
        .unwrap();
    assert!(marker.delete_marker);
    let latest = book.get_version(&bucket.id, "k", None).unwrap().unwrap();
    assert!(latest.delete_marker);
    assert!(current_keys(&book, &bucket).is_empty());
    // Deleting the marker by id brings v2 back.
    let undo = book
        .delete_object("photos", "k", marker.version_id, "alice", NOW)
        .unwrap();
    assert!(undo.delete_marker);
    assert_eq!(current_keys(&book, &bucket), vec!["k".to_owned()]);
    // Deleting v2 by id makes v1 current.
    book.delete_object("photos", "k", Some(v2.version_id), "alice", NOW)
        .unwrap();
    assert_eq!(
        book.get_version(&bucket.id, "k", None)
            .unwrap()
            .unwrap()
            .etag,
        "v1"
    );
    // GET by id, and the null version by "null".
    assert_eq!(
        book.get_version(&bucket.id, "k", Some(&VersionId::Null))
            .unwrap()
            .unwrap()
            .etag,
        "null-1"
    );
    assert!(
        book.get_version(&bucket.id, "k", Some(&v2.version_id))
            .unwrap()
            .is_none()
    );
    // Suspended: writes replace the null version only.
    book.set_versioning("photos", Versioning::Suspended)
        .unwrap();
    put(&book, &bucket, "k", "null-2");
    assert_eq!(
        all_versions(&book, &bucket),
        vec![
            ("k".into(), "null-2".into(), false, true),
            ("k".into(), "v1".into(), false, false)
        ]
    );
    // Suspended delete: a null delete marker replaces the null version.
    let marker = book
        .delete_object("photos", "k", None, "alice", NOW)
        .unwrap();
    assert_eq!(marker.version_id, Some(VersionId::Null));
    assert_eq!(
        marker.removed.map(|version| version.etag),
        Some("null-2".to_owned())
    );
    assert_eq!(
        all_versions(&book, &bucket),
        vec![
            ("k".into(), String::new(), true, true),
            ("k".into(), "v1".into(), false, false)
        ]
    );
    assert!(matches!(
        book.set_versioning("photos", Versioning::Unversioned),
        Err(BookError::VersioningCannotBeDisabled(_))
    ));
    // A bucket with versions or markers cannot be deleted.
    assert!(matches!(
        book.delete_bucket("photos", NOW),
        Err(BookError::BucketNotEmpty(_))
    ));
}

#[test]
fn failed_writes_leave_nothing_visible() {
    let (book, bucket) = book_with_bucket();
    put(&book, &bucket, "k", "e1");
    let mut conditional = new_version("k", "e2", NewData::Pieces(manifest(2)));
    conditional.condition = Some(WriteCondition::NoCurrentObject);
    assert!(matches!(
        book.put_version("photos", &bucket.id, conditional.clone(), NOW),
        Err(BookError::PreconditionFailed)
    ));
    conditional.condition = Some(WriteCondition::CurrentETag("other".into()));
    assert!(
        book.put_version("photos", &bucket.id, conditional.clone(), NOW)
            .is_err()
    );
    assert!(
        book.manifest(&bucket.id, &conditional.key_id)
            .unwrap()
            .is_none()
    );
    assert_eq!(
        all_versions(&book, &bucket),
        vec![("k".into(), "e1".into(), false, true)]
    );
    conditional.condition = Some(WriteCondition::CurrentETag("e1".into()));
    book.put_version("photos", &bucket.id, conditional, NOW)
        .unwrap();
    // A bucket deleted and created again under the same name is another bucket.
    book.delete_object("photos", "k", None, "alice", NOW)
        .unwrap();
    book.delete_bucket("photos", NOW).unwrap();
    let again = book
        .create_bucket("photos", "alice", redundancy(), NOW)
        .unwrap();
    assert_ne!(again.id, bucket.id);
    assert!(matches!(
        book.put_version(
            "photos",
            &bucket.id,
            new_version("k", "e3", NewData::Empty),
            NOW
        ),
        Err(BookError::NoSuchBucket(_))
    ));
    assert!(all_versions(&book, &again).is_empty());
}

#[test]
fn multipart_completion_is_checked_and_atomic() {
    let (book, bucket) = book_with_bucket();
    let upload = book
        .create_upload(
            "photos",
            &bucket.id,
            NewUpload {
                key: "big".into(),
                owner: "alice".into(),
                ..Default::default()
            },
            NOW,
        )
        .unwrap();
    let part = |number: u32, size: u64, tag: u8| Part {
        part_number: number,
        size,
        etag: format!("etag{number}"),
        checksums: Checksums::default(),
        last_modified_ms: NOW,
        manifest: manifest(tag).parts.remove(0),
    };
    book.put_part(&bucket.id, "big", &upload.upload_id, part(1, 100, 1), NOW)
        .unwrap();
    book.put_part(&bucket.id, "big", &upload.upload_id, part(2, 5, 2), NOW)
        .unwrap();
    // Re-uploading part 2 frees the old one.
    let replaced = book
        .put_part(&bucket.id, "big", &upload.upload_id, part(2, 5, 3), NOW)
        .unwrap();
    assert!(replaced.is_some());
    assert_eq!(book.pending_frees().unwrap().len(), 1);
    book.put_part(&bucket.id, "big", &upload.upload_id, part(3, 7, 4), NOW)
        .unwrap();
    let listed = book
        .list_parts(&bucket.id, "big", &upload.upload_id, None, 2)
        .unwrap();
    assert_eq!(listed.parts.len(), 2);
    assert_eq!(listed.next_part_number_marker, Some(2));
    let rest = book
        .list_parts(&bucket.id, "big", &upload.upload_id, Some(2), 2)
        .unwrap();
    assert_eq!(
        rest.parts
            .iter()
            .map(|part| part.part_number)
            .collect::<Vec<_>>(),
        vec![3]
    );
    assert!(!rest.truncated);

    let completion = |parts: &[(u32, &str)], min: u64| Completion {
        key: "big".into(),
        parts: parts
            .iter()
            .map(|(number, etag)| CompletedPart {
                part_number: *number,
                etag: (*etag).to_owned(),
            })
            .collect(),
        min_part_size: min,
        etag: "md5s-2".into(),
        checksums: Checksums::default(),
        condition: None,
    };
    let try_complete = |parts: &[(u32, &str)], min: u64| {
        book.complete_upload(
            "photos",
            &bucket.id,
            &upload.upload_id,
            completion(parts, min),
            NOW,
        )
    };
    assert!(matches!(
        try_complete(&[(1, "wrong")], 1),
        Err(BookError::InvalidPart(1))
    ));
    assert!(matches!(
        try_complete(&[(2, "etag2"), (1, "etag1")], 1),
        Err(BookError::InvalidPartOrder)
    ));
    assert!(matches!(
        try_complete(&[(2, "etag2"), (3, "etag3")], 6),
        Err(BookError::EntityTooSmall { part_number: 2, .. })
    ));
    // Failed completions change nothing.
    assert_eq!(
        book.parts(&bucket.id, "big", &upload.upload_id)
            .unwrap()
            .len(),
        3
    );
    assert!(all_versions(&book, &bucket).is_empty());
    let done = try_complete(&[(1, "etag1"), (3, "etag3")], 50).unwrap();
    assert_eq!(done.version.size, 107);
    assert_eq!(done.version.part_sizes, vec![100, 7]);
    let stored = book
        .manifest(&bucket.id, &done.version.key_id)
        .unwrap()
        .unwrap();
    assert_eq!(stored.parts.len(), 2);
    // Part 2 was left out: its pieces are queued.
    assert_eq!(book.pending_frees().unwrap().len(), 2);
    assert!(matches!(
        book.parts(&bucket.id, "big", &upload.upload_id),
        Err(BookError::NoSuchUpload(_))
    ));
    // A part arriving after completion frees itself.
    assert!(matches!(
        book.put_part(&bucket.id, "big", &upload.upload_id, part(4, 1, 5), NOW),
        Err(BookError::NoSuchUpload(_))
    ));
    assert_eq!(book.pending_frees().unwrap().len(), 3);
}

#[test]
fn users_keys_and_bucket_ownership() {
    let book = Book::in_memory().unwrap();
    assert!(matches!(
        book.issue_access_key("nobody", NOW),
        Err(BookError::NoSuchUser(_))
    ));
    book.add_user("alice", "Alice", NOW).unwrap();
    assert!(matches!(
        book.add_user("alice", "A", NOW),
        Err(BookError::UserExists(_))
    ));
    let key = book.issue_access_key("alice", NOW).unwrap();
    assert_eq!(key.access_key_id.len(), 20);
    assert_eq!(key.secret_access_key.len(), 40);
    assert_eq!(
        book.access_key(&key.access_key_id).unwrap(),
        Some(key.clone())
    );
    assert!(!format!("{key:?}").contains(&key.secret_access_key));
    book.create_bucket("b", "alice", redundancy(), NOW).unwrap();
    assert!(matches!(
        book.create_bucket("b", "bob", redundancy(), NOW),
        Err(BookError::BucketExists { owner, .. }) if owner == "alice"
    ));
    assert_eq!(book.list_buckets("alice").unwrap().len(), 1);
    assert!(book.list_buckets("bob").unwrap().is_empty());
    assert!(matches!(
        book.remove_user("alice"),
        Err(BookError::UserOwnsBuckets { .. })
    ));
    book.delete_bucket("b", NOW).unwrap();
    book.remove_user("alice").unwrap();
    assert!(book.access_key(&key.access_key_id).unwrap().is_none());
}

#[test]
fn the_free_queue_retries_until_finished() {
    let book = Book::in_memory().unwrap();
    let pieces = manifest(9).placed_pieces();
    book.queue_free(pieces.clone(), NOW).unwrap();
    let due = book.due_frees(NOW, 10).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].pieces, pieces);
    book.retry_free(due[0].id, NOW + 1000).unwrap();
    assert!(book.due_frees(NOW + 999, 10).unwrap().is_empty());
    let again = book.due_frees(NOW + 1000, 10).unwrap();
    assert_eq!(again[0].attempts, 1);
    book.finish_free(again[0].id).unwrap();
    assert!(book.pending_frees().unwrap().is_empty());
}

#[test]
fn a_book_on_disk_survives_reopening() {
    let dir = std::env::temp_dir().join(format!("dbytes-book-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("book.redb");
    {
        let book = Book::open(&path).unwrap();
        book.add_user("alice", "Alice", NOW).unwrap();
        let bucket = book.create_bucket("b", "alice", redundancy(), NOW).unwrap();
        put(&book, &bucket, "k", "e");
    }
    let book = Book::open(&path).unwrap();
    let bucket = book.bucket("b").unwrap().unwrap();
    assert_eq!(
        book.get_version(&bucket.id, "k", None)
            .unwrap()
            .unwrap()
            .etag,
        "e"
    );
    drop(book);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// What S3 lists for `keys` (all current), from first principles.
fn model_listing(keys: &BTreeSet<String>, prefix: &str, delimiter: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for key in keys.iter().filter(|key| key.starts_with(prefix)) {
        let entry = match delimiter.and_then(|delimiter| {
            key[prefix.len()..]
                .find(delimiter)
                .map(|at| key[..prefix.len() + at + delimiter.len()].to_owned())
        }) {
            Some(common) => common,
            None => key.clone(),
        };
        if out.last() != Some(&entry) {
            out.push(entry);
        }
    }
    out
}

fn page_through(
    book: &Book,
    bucket: &Bucket,
    prefix: &str,
    delimiter: Option<&str>,
    page: usize,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..1000 {
        let query = ListQuery {
            prefix,
            delimiter,
            after: after.as_deref(),
            max_keys: page,
        };
        let listing = book.list_objects(&bucket.id, &query).unwrap();
        for entry in listing.entries {
            out.push(match entry {
                ListEntry::Object(version) => version.key,
                ListEntry::CommonPrefix(prefix) => prefix,
            });
        }
        if !listing.truncated {
            return out;
        }
        after = listing.next_after;
    }
    panic!("listing did not end");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn paged_listings_match_the_model(
        keys in prop::collection::btree_set("[ab/]{1,5}", 0..25),
        deleted in prop::collection::btree_set("[ab/]{1,5}", 0..5),
        prefix in "[ab/]{0,2}",
        use_delimiter in any::<bool>(),
        page in 1usize..5,
    ) {
        let (book, bucket) = book_with_bucket();
        book.set_versioning("photos", Versioning::Enabled).unwrap();
        for key in &keys {
            put(&book, &bucket, key, "e");
        }
        for key in &deleted {
            // Keys whose latest version is a delete marker are not listed.
            put(&book, &bucket, key, "e");
            book.delete_object("photos", key, None, "alice", NOW).unwrap();
        }
        let live: BTreeSet<String> = keys.difference(&deleted).cloned().collect();
        let delimiter = use_delimiter.then_some("/");
        let expected = model_listing(&live, &prefix, delimiter);
        prop_assert_eq!(page_through(&book, &bucket, &prefix, delimiter, page), expected.clone());
        prop_assert_eq!(page_through(&book, &bucket, &prefix, delimiter, 1000), expected);
    }

    #[test]
    fn paged_version_listings_see_every_version_once(
        writes in prop::collection::vec("[ab/]{1,3}", 1..20),
        page in 1usize..4,
    ) {
        let (book, bucket) = book_with_bucket();
        book.set_versioning("photos", Versioning::Enabled).unwrap();
        for (index, key) in writes.iter().enumerate() {
            put(&book, &bucket, key, &index.to_string());
        }
        let full = all_versions(&book, &bucket);
        prop_assert_eq!(full.len(), writes.len());
        let mut paged = Vec::new();
        let (mut key_marker, mut version_marker) = (None::<String>, None::<VersionId>);
        loop {
            let query = VersionQuery {
                key_marker: key_marker.as_deref(),
                version_id_marker: version_marker,
                max_keys: page,
                ..Default::default()
            };
            let listing = book.list_versions(&bucket.id, &query).unwrap();
            for entry in listing.entries {
                if let VersionEntry::Version { version, is_latest } = entry {
                    paged.push((version.key, version.etag, version.delete_marker, is_latest));
                }
            }
            if !listing.truncated {
                break;
            }
            key_marker = listing.next_key_marker;
            version_marker = listing.next_version_id_marker;
        }
        prop_assert_eq!(paged, full);
    }
}

/// One step of the versioning model test.
#[derive(Debug, Clone)]
enum Step {
    Put(u8),
    Delete(u8),
    DeleteVersion(u8, usize),
    Versioning(bool),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u8..3).prop_map(Step::Put),
        2 => (0u8..3).prop_map(Step::Delete),
        2 => (0u8..3, 0usize..4).prop_map(|(key, index)| Step::DeleteVersion(key, index)),
        1 => any::<bool>().prop_map(Step::Versioning),
    ]
}

/// A key's versions, newest first: (version id, delete marker, etag).
type ModelVersions = Vec<(VersionId, bool, String)>;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any sequence of writes, deletes and versioning changes leaves the
    /// book as S3's rules, restated as a plain list per key, say.
    #[test]
    fn versioning_follows_s3_rules(steps in prop::collection::vec(step(), 1..30)) {
        let (book, bucket) = book_with_bucket();
        let mut versioning = Versioning::Unversioned;
        let mut model: BTreeMap<String, ModelVersions> = BTreeMap::new();
        for (index, step) in steps.into_iter().enumerate() {
            match step {
                Step::Put(key) => {
                    let key = format!("k{key}");
                    let etag = format!("e{index}");
                    let outcome = put(&book, &bucket, &key, &etag);
                    let versions = model.entry(key).or_default();
                    if versioning != Versioning::Enabled {
                        versions.retain(|(id, _, _)| *id != VersionId::Null);
                    }
                    versions.insert(0, (outcome.version.version_id, false, etag));
                }
                Step::Delete(key) => {
                    let key = format!("k{key}");
                    let outcome = book.delete_object("photos", &key, None, "alice", NOW).unwrap();
                    let versions = model.entry(key).or_default();
                    if versioning != Versioning::Enabled {
                        versions.retain(|(id, _, _)| *id != VersionId::Null);
                    }
                    if versioning == Versioning::Unversioned {
                        prop_assert!(!outcome.delete_marker);
                    } else {
                        prop_assert!(outcome.delete_marker);
                        let marker = outcome.version_id.unwrap();
                        prop_assert_eq!(marker == VersionId::Null, versioning == Versioning::Suspended);
                        versions.insert(0, (marker, true, String::new()));
                    }
                }
                Step::DeleteVersion(key, at) => {
                    let key = format!("k{key}");
                    let versions = model.entry(key.clone()).or_default();
                    if at < versions.len() {
                        let (id, marker, _) = versions.remove(at);
                        let outcome = book.delete_object("photos", &key, Some(id), "alice", NOW).unwrap();
                        prop_assert_eq!(outcome.delete_marker, marker);
                        prop_assert!(outcome.removed.is_some());
                    }
                }
                Step::Versioning(enabled) => {
                    let wanted = if enabled { Versioning::Enabled } else { Versioning::Suspended };
                    book.set_versioning("photos", wanted).unwrap();
                    versioning = wanted;
                }
            }
            let expected: Vec<(String, String, bool, bool)> = model
                .iter()
                .flat_map(|(key, versions)| {
                    versions.iter().enumerate().map(move |(at, (_, marker, etag))| {
                        (key.clone(), etag.clone(), *marker, at == 0)
                    })
                })
                .collect();
            prop_assert_eq!(all_versions(&book, &bucket), expected);
            let current: Vec<String> = model
                .iter()
                .filter(|(_, versions)| versions.first().is_some_and(|(_, marker, _)| !marker))
                .map(|(key, _)| key.clone())
                .collect();
            prop_assert_eq!(current_keys(&book, &bucket), current);
        }
    }
}

#[test]
fn the_repair_queue_persists_orders_by_health_and_swaps_pieces_in_one_commit() {
    let path = std::env::temp_dir().join(format!("dbytes-repairs-{}.redb", rand::random::<u64>()));
    let (segment, old_piece) = {
        let book = Book::open(&path).unwrap();
        book.add_user("alice", "Alice", NOW).unwrap();
        let bucket = book
            .create_bucket("photos", "alice", redundancy(), NOW)
            .unwrap();
        let version = new_version("a", "e1", NewData::Pieces(manifest(1)));
        let key_id = version.key_id;
        book.put_version(&bucket.name, &bucket.id, version, NOW)
            .unwrap();
        let scanned = book.all_manifests().unwrap();
        assert_eq!(scanned.len(), 1);
        assert_eq!((scanned[0].0, scanned[0].1), (bucket.id, key_id));
        let segment = SegmentRef {
            bucket: bucket.id,
            key_id,
            part: 0,
            segment: 0,
        };
        let other = SegmentRef {
            segment: 1,
            ..segment
        };
        for (segment, healthy) in [(other, 2), (segment, 1)] {
            book.queue_repair(&RepairTask {
                segment,
                healthy,
                unhealthy: vec![0],
                queued_ms: NOW,
                attempts: 0,
                last_attempt_ms: 0,
            })
            .unwrap();
        }
        book.retry_repair(&segment, NOW + 5).unwrap();
        book.finish_repair(&other).unwrap();
        (segment, scanned[0].2.parts[0].segments[0].pieces[0].clone())
    };
    // A restarted gateway finds the queue where it was.
    let book = Book::open(&path).unwrap();
    let queue = book.repair_queue().unwrap();
    assert_eq!(queue.len(), 1);
    assert_eq!((queue[0].segment, queue[0].attempts), (segment, 1));
    assert_eq!(
        queue[0].last_attempt_ms,
        NOW + 5,
        "the backoff survives a restart"
    );

    let new_place = Placement {
        provider: "provider-9".into(),
        detail: U256::from(9).to_be_bytes::<32>().to_vec(),
    };
    let fresh = PieceRecord {
        id: old_piece.id,
        placement: Some(new_place.clone()),
    };
    let slot = DealSlot {
        piece: old_piece.id,
        root: alloy_primitives::B256::repeat_byte(7),
        leaf_count: 4,
    };
    let outcome = book
        .repair_segment(&segment, &[(0, fresh)], &[(U256::from(9), slot)], NOW)
        .unwrap();
    assert_eq!(outcome, RepairOutcome::Applied);
    let manifest = book
        .manifest(&segment.bucket, &segment.key_id)
        .unwrap()
        .unwrap();
    assert_eq!(
        manifest.parts[0].segments[0].pieces[0].placement,
        Some(new_place)
    );
    assert_eq!(book.deal_slots(U256::from(9)).unwrap(), vec![slot]);
    let frees = book.pending_frees().unwrap();
    assert_eq!(frees.len(), 1);
    assert_eq!(
        frees[0].pieces,
        vec![(old_piece.id, old_piece.placement.unwrap())]
    );
    assert!(book.repair_queue().unwrap().is_empty());
    drop(book);
    let _ = std::fs::remove_file(&path);
}
