//! Real S3 clients against a gateway on 127.0.0.1: aws-cli and boto3 (the
//! versions pinned in `tests/requirements.txt`), run as subprocesses.
//!
//! Each test starts its own gateway (OS-chosen port, its own temp dir with
//! the book, pieces in the in-memory test double) and stops it when done.
//! Without python3/boto3/aws the tests skip with a loud message, except
//! under `CI=true`, where they must run and fail instead.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Clients, clients_available, random_file};
use dbytes_gateway::pipeline::PipelineConfig;
use dbytes_gateway::pipeline::memory::MemoryPieceStore;
use dbytes_gateway::s3::{Gateway, GatewayConfig};
use dbytes_ledger::book::Book;
use dbytes_ledger::keys::DataMasterKey;
use dbytes_placement::RedundancyPolicy;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

struct TestGateway {
    clients: Clients,
    _dir: tempfile::TempDir,
    gateway: Gateway,
    store: Arc<MemoryPieceStore>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl TestGateway {
    async fn start() -> TestGateway {
        let dir = tempfile::tempdir().expect("temp dir");
        let book = Book::open(dir.path().join("book.redb")).expect("book");
        book.add_user("alice", "Alice", 0).unwrap();
        book.add_user("bob", "Bob", 0).unwrap();
        let alice = book.issue_access_key("alice", 0).unwrap();
        let bob = book.issue_access_key("bob", 0).unwrap();
        let store = Arc::new(MemoryPieceStore::new(5));
        let config = GatewayConfig {
            // 2-of-3 with 128 KiB pieces: 192 KiB segments, so small test
            // objects already span many segments.
            default_redundancy: RedundancyPolicy::new(2, 3).unwrap(),
            pipeline: PipelineConfig {
                piece_size: Some(128 * 1024),
                ..PipelineConfig::default()
            },
            free_interval: Duration::from_secs(3600),
            ..GatewayConfig::default()
        };
        let gateway = Gateway::new(
            book,
            store.clone(),
            DataMasterKey::from_bytes(rand::random()),
            config,
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let (shutdown, stop) = oneshot::channel::<()>();
        let server = {
            let gateway = gateway.clone();
            tokio::spawn(async move {
                gateway
                    .serve(listener, async {
                        let _ = stop.await;
                    })
                    .await
                    .expect("serve");
            })
        };
        TestGateway {
            clients: Clients::new(endpoint, alice, bob),
            _dir: dir,
            gateway,
            store,
            shutdown: Some(shutdown),
            server: Some(server),
        }
    }

    async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(20), server)
                .await
                .expect("the gateway stops within 20 s")
                .expect("the gateway task ends cleanly");
        }
    }
}

impl std::ops::Deref for TestGateway {
    type Target = Clients;

    fn deref(&self) -> &Clients {
        &self.clients
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        // A panicking test still stops its server.
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_bucket_and_object_lifecycle() {
    if !clients_available() {
        return;
    }
    let gateway = TestGateway::start().await;
    gateway.aws(&["s3", "mb", "s3://photos"]).await;
    let small = gateway.path("small.txt");
    std::fs::write(&small, b"hello from aws-cli").unwrap();
    let big = gateway.path("big.bin");
    let big_bytes = random_file(&big, 1_500_000, 1);
    gateway
        .aws(&[
            "s3",
            "cp",
            small.to_str().unwrap(),
            "s3://photos/notes/small.txt",
            "--content-type",
            "text/plain",
        ])
        .await;
    gateway
        .aws(&["s3", "cp", big.to_str().unwrap(), "s3://photos/big.bin"])
        .await;
    let listing = gateway.aws(&["s3", "ls", "s3://photos/"]).await;
    assert!(
        listing.contains("PRE notes/") && listing.contains("1500000 big.bin"),
        "{listing}"
    );
    let recursive = gateway
        .aws(&["s3", "ls", "--recursive", "s3://photos"])
        .await;
    assert!(recursive.contains("notes/small.txt"), "{recursive}");
    let back = gateway.path("back.bin");
    gateway
        .aws(&["s3", "cp", "s3://photos/big.bin", back.to_str().unwrap()])
        .await;
    assert_eq!(std::fs::read(&back).unwrap(), big_bytes);
    let head = gateway
        .aws(&[
            "s3api",
            "head-object",
            "--bucket",
            "photos",
            "--key",
            "notes/small.txt",
        ])
        .await;
    assert!(
        head.contains("text/plain") && head.contains("\"ContentLength\": 18"),
        "{head}"
    );
    // A range inside the object, through s3api.
    let range_out = gateway.path("range.bin");
    gateway
        .aws(&[
            "s3api",
            "get-object",
            "--bucket",
            "photos",
            "--key",
            "big.bin",
            "--range",
            "bytes=200000-200099",
            range_out.to_str().unwrap(),
        ])
        .await;
    assert_eq!(
        std::fs::read(&range_out).unwrap(),
        big_bytes[200_000..200_100]
    );
    let refused = gateway.aws_fails(&["s3", "rb", "s3://photos"]).await;
    assert!(refused.contains("BucketNotEmpty"), "{refused}");
    gateway
        .aws(&["s3", "rm", "--recursive", "s3://photos"])
        .await;
    gateway.aws(&["s3", "rb", "s3://photos"]).await;
    let buckets = gateway.aws(&["s3", "ls"]).await;
    assert!(!buckets.contains("photos"), "{buckets}");
    // Deleted pieces are freed by the free worker.
    assert!(gateway.store.stats().pieces_held > 0);
    gateway.gateway.free_pending_pieces().await.unwrap();
    assert_eq!(gateway.store.stats().pieces_held, 0);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_multipart_upload_spans_many_segments_and_survives_lost_pieces() {
    if !clients_available() {
        return;
    }
    let gateway = TestGateway::start().await;
    gateway.aws(&["s3", "mb", "s3://media"]).await;
    // 12 MiB in 5 MiB parts (the aws-config above): 3 parts, ~64 segments.
    let file = gateway.path("video.bin");
    let bytes = random_file(&file, 12 * 1024 * 1024 + 321, 2);
    gateway
        .aws(&["s3", "cp", file.to_str().unwrap(), "s3://media/video.bin"])
        .await;
    let head = gateway
        .aws(&[
            "s3api",
            "head-object",
            "--bucket",
            "media",
            "--key",
            "video.bin",
        ])
        .await;
    assert!(head.contains("-3\\\""), "a 3-part ETag: {head}");
    // Lose one piece of every segment (n - k = 1, in turn a data and a
    // parity piece): every read still succeeds.
    let book = gateway.gateway.book();
    let bucket = book.bucket("media").unwrap().unwrap();
    let version = book
        .get_version(&bucket.id, "video.bin", None)
        .unwrap()
        .unwrap();
    let manifest = book.manifest(&bucket.id, &version.key_id).unwrap().unwrap();
    let mut segments = 0;
    for part in &manifest.parts {
        for segment in &part.segments {
            assert!(gateway.store.lose_piece(&segment.pieces[segments % 3].id));
            segments += 1;
        }
    }
    assert!(segments > 60, "{segments} segments");
    let back = gateway.path("back.bin");
    gateway
        .aws(&["s3", "cp", "s3://media/video.bin", back.to_str().unwrap()])
        .await;
    assert!(
        std::fs::read(&back).unwrap() == bytes,
        "the download differs from the upload"
    );
    // A server-side copy of a large object: aws-cli uses UploadPartCopy.
    gateway
        .aws(&["s3", "cp", "s3://media/video.bin", "s3://media/copy.bin"])
        .await;
    let head = gateway
        .aws(&[
            "s3api",
            "head-object",
            "--bucket",
            "media",
            "--key",
            "copy.bin",
        ])
        .await;
    assert!(
        head.contains(&format!("\"ContentLength\": {}", bytes.len())),
        "{head}"
    );
    // One more loss in the first segment is beyond repair: the GET fails
    // with a clear 503 before any byte is sent, never a truncated 200.
    assert!(
        gateway
            .store
            .lose_piece(&manifest.parts[0].segments[0].pieces[1].id)
    );
    let refused = gateway
        .aws_fails(&[
            "s3api",
            "get-object",
            "--bucket",
            "media",
            "--key",
            "video.bin",
            back.to_str().unwrap(),
        ])
        .await;
    assert!(
        refused.contains("ServiceUnavailable") || refused.contains("503"),
        "{refused}"
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_objects_copy_and_listing() {
    if !clients_available() {
        return;
    }
    let gateway = TestGateway::start().await;
    gateway.boto3(&["objects", "copy", "listing"]).await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_versioning_and_delete_markers() {
    if !clients_available() {
        return;
    }
    let gateway = TestGateway::start().await;
    gateway.boto3(&["versioning"]).await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_conditions_and_checksums() {
    if !clients_available() {
        return;
    }
    let gateway = TestGateway::start().await;
    gateway.boto3(&["conditions", "checksums"]).await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_multipart() {
    if !clients_available() {
        return;
    }
    let gateway = TestGateway::start().await;
    gateway.boto3(&["multipart"]).await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_signatures_users_and_presigned_urls() {
    if !clients_available() {
        return;
    }
    let gateway = TestGateway::start().await;
    gateway.boto3(&["auth"]).await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_bad_input_gets_s3_errors_and_loses_nothing() {
    if !clients_available() {
        return;
    }
    let gateway = TestGateway::start().await;
    gateway.boto3(&["badinput"]).await;
    gateway.stop().await;
}
