//! The gateway benchmark: `make bench-gateway`.
//!
//! Starts a local network (`Devnet`: anvil, 10 provider daemons with their
//! stores on tmpfs, a gateway over the mesh, all in this process), then
//! drives it through the S3 API with real clients and prints one line:
//!
//! ```text
//! gateway k=3 n=10 put_MBps=… get_MBps=… degraded_get_MBps=… small_put_p50_ms=… small_get_p50_ms=… peak_rss_MiB=…
//! ```
//!
//! - put / get: one object of `DBYTES_BENCH_MIB` MiB (default 1024) with
//!   `aws s3 cp` (multipart, 64 MiB parts, 8 requests at once);
//! - degraded_get: the same read after (success threshold - k) providers
//!   were stopped (6 of 10 for 3-of-10: a segment is committed once 9 of
//!   its pieces are stored, so that many may be gone whatever happened);
//! - small_put / small_get: the median of 200 PutObject / GetObject calls of
//!   4 KiB from one boto3 client (such objects are sealed inline in the
//!   book: no provider round trip);
//! - peak_rss: the peak resident memory of this process (gateway and
//!   providers together, so an upper bound for the gateway) from the start
//!   of the upload to the end.
//!
//! 3-of-10 on 10 providers by default; `DBYTES_BENCH_K` / `DBYTES_BENCH_N`
//! choose another policy (10-of-20 starts 20 providers, n at least) and
//! `DBYTES_BENCH_PROVIDERS` the number of providers. MB are 10^6 bytes.

mod common;

use common::{env_number, peak_rss_mib, reset_peak_rss};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use dbytes_gateway::devnet::{Devnet, DevnetOptions};
use dbytes_placement::RedundancyPolicy;

/// The default policy, k-of-n.
const REDUNDANCY: (u64, u64) = (3, 10);

/// A scratch directory on tmpfs when the machine has one.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    };
    dir.expect("a scratch directory")
}

/// Writes `len` pseudo-random bytes (incompressible, fast to make).
fn random_file(path: &Path, len: u64) {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut block = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for chunk in block.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes());
        }
        let take = left.min(block.len() as u64) as usize;
        file.write_all(&block[..take]).expect("write");
        left -= take as u64;
    }
    file.flush().expect("flush");
}

struct Client {
    endpoint: String,
    key: String,
    secret: String,
    home: PathBuf,
}

impl Client {
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("AWS_ACCESS_KEY_ID", &self.key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", self.home.join("aws-config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", self.home.join("none"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("DBYTES_ENDPOINT", &self.endpoint);
        for (name, value) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("PYENV") || name == "PYTHONPATH" {
                command.env(name, value);
            }
        }
        command
    }

    /// Runs aws-cli; returns the seconds it took.
    fn aws(&self, args: &[&str]) -> f64 {
        let started = Instant::now();
        let output = self
            .command("aws")
            .args(["--endpoint-url", &self.endpoint])
            .args(args)
            .output()
            .expect("run aws (install it: pip install -r gateway/tests/requirements.txt)");
        assert!(
            output.status.success(),
            "aws {args:?} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        started.elapsed().as_secs_f64()
    }

    /// The medians of 200 small PUTs and GETs from one boto3 client, in ms.
    fn small_ops(&self) -> (f64, f64) {
        let script = r#"
import os, statistics, time, boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=os.environ["DBYTES_ENDPOINT"], region_name="us-east-1",
                  config=Config(s3={"addressing_style": "path"}))
s3.create_bucket(Bucket="small")
body = os.urandom(4096)
puts, gets = [], []
for i in range(200):
    t = time.perf_counter(); s3.put_object(Bucket="small", Key=f"o{i}", Body=body); puts.append(time.perf_counter() - t)
for i in range(200):
    t = time.perf_counter(); assert s3.get_object(Bucket="small", Key=f"o{i}")["Body"].read() == body; gets.append(time.perf_counter() - t)
print(statistics.median(puts) * 1000, statistics.median(gets) * 1000)
"#;
        let output = self
            .command("python3")
            .args(["-c", script])
            .output()
            .expect("run python3 with boto3");
        assert!(
            output.status.success(),
            "the small-object loop failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8_lossy(&output.stdout);
        let mut numbers = text
            .split_whitespace()
            .map(|word| word.parse::<f64>().expect("a number"));
        (
            numbers.next().expect("put p50"),
            numbers.next().expect("get p50"),
        )
    }
}

fn main() {
    let mib = env_number("DBYTES_BENCH_MIB", 1024);
    let k = env_number("DBYTES_BENCH_K", REDUNDANCY.0);
    let n = env_number("DBYTES_BENCH_N", REDUNDANCY.1);
    let redundancy = (
        u16::try_from(k).expect("DBYTES_BENCH_K fits 16 bits"),
        u16::try_from(n).expect("DBYTES_BENCH_N fits 16 bits"),
    );
    let policy = RedundancyPolicy::new(redundancy.0, redundancy.1)
        .expect("DBYTES_BENCH_K / DBYTES_BENCH_N: a valid k-of-n policy");
    let providers = env_number("DBYTES_BENCH_PROVIDERS", n).max(n) as usize;
    let bytes = mib << 20;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let scratch = scratch();
    eprintln!(
        "scratch (provider stores, files): {}",
        scratch.path().display()
    );
    let mut options = DevnetOptions::new(scratch.path().join("net"), providers);
    options.s3_addr = SocketAddr::from(([127, 0, 0, 1], 0));
    options.redundancy = redundancy;
    options.period_secs = 3600;
    let mut devnet = runtime
        .block_on(Devnet::start(&options))
        .expect("the local network starts");
    let home = scratch.path().join("client");
    std::fs::create_dir_all(&home).expect("client dir");
    std::fs::write(
        home.join("aws-config"),
        "[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n    multipart_threshold = 64MB\n    multipart_chunksize = 64MB\n    max_concurrent_requests = 8\n",
    )
    .expect("aws config");
    let client = Client {
        endpoint: devnet.s3_endpoint(),
        key: devnet.access_key().access_key_id.clone(),
        secret: devnet.access_key().secret_access_key.clone(),
        home: home.clone(),
    };
    let file = home.join("object.bin");
    random_file(&file, bytes);
    let file_arg = file.to_string_lossy().into_owned();
    let back = home.join("back.bin");
    let back_arg = back.to_string_lossy().into_owned();

    client.aws(&["s3", "mb", "s3://bench"]);
    reset_peak_rss();
    let put = client.aws(&[
        "s3",
        "cp",
        "--no-progress",
        &file_arg,
        "s3://bench/object.bin",
    ]);
    let get = client.aws(&[
        "s3",
        "cp",
        "--no-progress",
        "s3://bench/object.bin",
        &back_arg,
    ]);
    let peak = peak_rss_mib();
    assert_eq!(
        std::fs::metadata(&back).map(|m| m.len()).unwrap_or(0),
        bytes,
        "the object reads back whole"
    );
    std::fs::remove_file(&back).expect("remove the copy");
    let (small_put, small_get) = client.small_ops();

    // A segment is committed once the policy's success threshold of its
    // pieces is stored (the long tail is cancelled), so stopping that many
    // minus k providers leaves every segment readable from k.
    let lost = usize::from(policy.success_threshold() - policy.data_pieces());
    for _ in 0..lost {
        runtime.block_on(devnet.stop_provider(0));
    }
    let degraded = client.aws(&[
        "s3",
        "cp",
        "--no-progress",
        "s3://bench/object.bin",
        &back_arg,
    ]);
    let same = std::fs::read(&file).ok() == std::fs::read(&back).ok();
    assert!(same, "the degraded read is byte-identical");

    let mb = bytes as f64 / 1e6;
    eprintln!(
        "object {mib} MiB; providers {providers}, {lost} stopped for the degraded read; client aws-cli (64 MiB parts, 8 at once), boto3 for small objects"
    );
    println!(
        "gateway k={} n={} put_MBps={:.0} get_MBps={:.0} degraded_get_MBps={:.0} small_put_p50_ms={:.1} small_get_p50_ms={:.1} peak_rss_MiB={:.0}",
        k,
        n,
        mb / put,
        mb / get,
        mb / degraded,
        small_put,
        small_get,
        peak
    );
    runtime.block_on(devnet.stop());
}
