//! Real S3 clients against a gateway on 127.0.0.1: aws-cli and boto3 (the
//! versions pinned in `tests/requirements.txt`), run as subprocesses.
//!
//! Each test starts its own gateway (OS-chosen port, its own temp dir with
//! the book, pieces in the in-memory test double) and stops it when done.
//! Without python3/boto3/aws the tests skip with a loud message, except
//! under `CI=true`, where they must run and fail instead.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use dbytes_gateway::pipeline::PipelineConfig;
use dbytes_gateway::pipeline::memory::MemoryPieceStore;
use dbytes_gateway::s3::{Gateway, GatewayConfig};
use dbytes_ledger::book::{AccessKey, Book};
use dbytes_ledger::keys::DataMasterKey;
use dbytes_placement::RedundancyPolicy;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The longest any one client command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

struct TestGateway {
    endpoint: String,
    dir: tempfile::TempDir,
    gateway: Gateway,
    store: Arc<MemoryPieceStore>,
    alice: AccessKey,
    bob: AccessKey,
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
        std::fs::write(
            dir.path().join("aws-config"),
            "[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n    multipart_threshold = 5MB\n    multipart_chunksize = 5MB\n",
        )
        .unwrap();
        TestGateway {
            endpoint,
            dir,
            gateway,
            store,
            alice,
            bob,
            shutdown: Some(shutdown),
            server: Some(server),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A client command with Alice's credentials, isolated from the
    /// machine's AWS configuration, killed if it outlives the timeout.
    async fn run(&self, program: &str, args: &[&str]) -> Output {
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("AWS_ACCESS_KEY_ID", &self.alice.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &self.alice.secret_access_key)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", self.path("aws-config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", self.path("no-credentials"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_MAX_ATTEMPTS", "1")
            .env("DBYTES_ENDPOINT", &self.endpoint)
            .env("DBYTES_ALICE_KEY", &self.alice.access_key_id)
            .env("DBYTES_ALICE_SECRET", &self.alice.secret_access_key)
            .env("DBYTES_BOB_KEY", &self.bob.access_key_id)
            .env("DBYTES_BOB_SECRET", &self.bob.secret_access_key)
            .kill_on_drop(true);
        for (name, value) in std::env::vars_os() {
            // Keep the interpreter's own settings (pyenv), nothing AWS.
            if name.to_string_lossy().starts_with("PYENV") || name == "PYTHONPATH" {
                command.env(name, value);
            }
        }
        let started = std::time::Instant::now();
        match tokio::time::timeout(COMMAND_TIMEOUT, command.output()).await {
            Ok(Ok(output)) => {
                // Shown with the test's output when it fails: slow steps stand out.
                eprintln!("{program} {args:?}: {:?}", started.elapsed());
                output
            }
            Ok(Err(err)) => panic!("could not run {program}: {err}"),
            Err(_) => panic!("{program} {args:?} did not finish within {COMMAND_TIMEOUT:?}"),
        }
    }

    /// aws-cli against this gateway; panics with its output if it fails.
    async fn aws(&self, args: &[&str]) -> String {
        let mut full = vec!["--endpoint-url", self.endpoint.as_str()];
        full.extend_from_slice(args);
        let output = self.run("aws", &full).await;
        assert!(
            output.status.success(),
            "aws {args:?} failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// aws-cli expected to fail; returns its stderr.
    async fn aws_fails(&self, args: &[&str]) -> String {
        let mut full = vec!["--endpoint-url", self.endpoint.as_str()];
        full.extend_from_slice(args);
        let output = self.run("aws", &full).await;
        assert!(
            !output.status.success(),
            "aws {args:?} succeeded, a failure was expected"
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    /// The boto3 suite's groups; panics with the suite's output on failure.
    async fn boto3(&self, groups: &[&str]) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/s3_suite.py");
        let script = script.to_string_lossy().into_owned();
        let mut args = vec![script.as_str()];
        args.extend_from_slice(groups);
        let output = self.run("python3", &args).await;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "boto3 suite {groups:?} failed:\n{stdout}\n{stderr}"
        );
        for group in groups {
            assert!(
                stdout.contains(&format!("ok {group}")),
                "group {group} did not report:\n{stdout}"
            );
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

impl Drop for TestGateway {
    fn drop(&mut self) {
        // A panicking test still stops its server.
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// Whether aws-cli and boto3 are installed. Without them a test is skipped
/// loudly, unless CI is set: there they are required.
fn clients_available() -> bool {
    let works = |program: &str, args: &[&str]| {
        std::process::Command::new(program)
            .args(args)
            .output()
            .is_ok_and(|output| output.status.success())
    };
    let available = works("python3", &["-c", "import boto3"]) && works("aws", &["--version"]);
    if !available {
        let hint = "install them with `pip install -r gateway/tests/requirements.txt`";
        if std::env::var("CI").is_ok_and(|value| !value.is_empty() && value != "false") {
            panic!("aws-cli and boto3 are required under CI; {hint}");
        }
        eprintln!("\n!!! SKIPPED: aws-cli and/or boto3 are not installed; {hint} !!!\n");
    }
    available
}

fn random_file(path: &Path, len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 56) as u8
        })
        .collect();
    std::fs::write(path, &bytes).unwrap();
    bytes
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
