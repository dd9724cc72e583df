//! What the S3 client tests share: running aws-cli, boto3 (the versions
//! pinned in `tests/requirements.txt`) and rclone as subprocesses against a
//! gateway endpoint, with two users' keys, isolated from the machine's
//! own AWS configuration.

#![allow(dead_code)] // Each test binary uses its own part of this module.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use dbytes_gateway::devnet::{Devnet, DevnetOptions};
use dbytes_ledger::book::AccessKey;

/// The longest any one client command may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

/// S3 clients pointed at one endpoint, acting as Alice (Bob's keys are
/// passed to the boto3 suite for its access tests).
pub struct Clients {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// Scratch space: client configs, files to upload and download.
    pub dir: tempfile::TempDir,
    /// The first user.
    pub alice: AccessKey,
    /// The second user.
    pub bob: AccessKey,
}

impl Clients {
    /// Clients for `endpoint`, with aws-cli set to path-style addressing
    /// and 5 MB multipart parts.
    pub fn new(endpoint: String, alice: AccessKey, bob: AccessKey) -> Clients {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("aws-config"),
            "[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n    multipart_threshold = 5MB\n    multipart_chunksize = 5MB\n",
        )
        .expect("write the aws config");
        Clients {
            endpoint,
            dir,
            alice,
            bob,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A client command with Alice's credentials, isolated from the
    /// machine's AWS configuration, killed if it outlives the timeout.
    pub async fn run(&self, program: &str, args: &[&str]) -> Output {
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
    pub async fn aws(&self, args: &[&str]) -> String {
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
    pub async fn aws_fails(&self, args: &[&str]) -> String {
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
    pub async fn boto3(&self, groups: &[&str]) {
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
}

/// Whether aws-cli and boto3 are installed. Without them a test is skipped
/// loudly, unless CI is set: there they are required.
pub fn clients_available() -> bool {
    let available = runs("python3", &["-c", "import boto3"]) && runs("aws", &["--version"]);
    required(
        available,
        "aws-cli and boto3",
        "install them with `pip install -r gateway/tests/requirements.txt`",
    )
}

/// Whether rclone is installed (required under CI, as [`clients_available`]).
pub fn rclone_available() -> bool {
    required(
        runs("rclone", &["version"]),
        "rclone",
        "install it with `apt-get install rclone`",
    )
}

/// Whether `program args` runs and succeeds.
fn runs(program: &str, args: &[&str]) -> bool {
    std::process::Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|output| output.status.success())
}

/// `available`, after saying loudly that a test skips without `what`, or
/// failing under CI, where it is required.
fn required(available: bool, what: &str, hint: &str) -> bool {
    if !available {
        if std::env::var("CI").is_ok_and(|value| !value.is_empty() && value != "false") {
            panic!("{what} is required under CI; {hint}");
        }
        eprintln!("\n!!! SKIPPED: {what} is not installed; {hint} !!!\n");
    }
    available
}

pub fn random_file(path: &Path, len: usize, seed: u64) -> Vec<u8> {
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

/// A local network of `providers` providers under `dir` (S3 on an
/// OS-chosen port, hour-long periods, the default redundancy); the test
/// fails if it has not started within 3 minutes.
pub async fn start_devnet(dir: &Path, providers: usize) -> Devnet {
    let options = DevnetOptions {
        s3_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        period_secs: 3600,
        ..DevnetOptions::new(dir.join("net"), providers)
    };
    tokio::time::timeout(Duration::from_secs(180), Devnet::start(&options))
        .await
        .expect("the local network starts within 3 minutes")
        .expect("the local network starts")
}

/// A new user of the network's gateway, with a fresh access key.
pub fn new_user(devnet: &Devnet, user: &str) -> AccessKey {
    let book = devnet.gateway().gateway().book();
    book.add_user(user, user, 0).expect("add a user");
    book.issue_access_key(user, 0).expect("issue a key")
}
