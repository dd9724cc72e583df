//! The local network as its users meet it: `Devnet` (anvil, the contracts,
//! provider daemons, a gateway over the mesh) driven by aws-cli, rclone and
//! boto3 as subprocesses, then read back with n-k providers stopped.
//!
//! Without the clients the test skips loudly, except under `CI=true`, where
//! they are required.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::{Clients, clients_available, rclone_available};
use dbytes_gateway::devnet::{Devnet, DevnetOptions};

/// Runs `cli_clients.sh <phase>`; panics with its output if it fails.
async fn cli_script(clients: &Clients, phase: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cli_clients.sh");
    let script = script.to_string_lossy().into_owned();
    let output = clients.run("bash", &[script.as_str(), phase]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(&format!("ok cli-clients {phase}")),
        "cli_clients.sh {phase} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_network_serves_aws_cli_rclone_and_boto3_and_survives_n_minus_k_providers_gone() {
    if !clients_available() || !rclone_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    // Five providers, 3-of-5: any two may go.
    let options = DevnetOptions {
        s3_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        period_secs: 3600,
        ..DevnetOptions::new(dir.path().join("net"), 5)
    };
    assert_eq!(options.redundancy, (3, 5));
    let mut devnet = tokio::time::timeout(Duration::from_secs(180), Devnet::start(&options))
        .await
        .expect("the local network starts within 3 minutes")
        .expect("the local network starts");
    // The boto3 suite expects users with no buckets of their own yet.
    let book = devnet.gateway().gateway().book();
    let key = |user: &str| {
        book.add_user(user, user, 0).expect("add a user");
        book.issue_access_key(user, 0).expect("issue a key")
    };
    let (alice, bob) = (key("alice"), key("bob"));
    let clients = Clients::new(
        devnet.s3_endpoint(),
        devnet.access_key().clone(),
        bob.clone(),
    );
    let boto3 = Clients::new(devnet.s3_endpoint(), alice, bob);
    let boto3_auth = Clients::new(devnet.s3_endpoint(), key("carol"), key("dave"));

    cli_script(&clients, "write").await;
    boto3
        .boto3(&[
            "objects",
            "copy",
            "listing",
            "versioning",
            "conditions",
            "checksums",
            "multipart",
            "badinput",
        ])
        .await;
    boto3_auth.boto3(&["auth"]).await;
    // Pieces really are on the providers, spread over all five.
    let holding = devnet
        .providers()
        .iter()
        .filter(|provider| provider.node().store().usage().piece_count > 0)
        .count();
    assert_eq!(holding, 5, "every provider holds pieces");

    // Two providers gone: everything still reads back identical.
    assert!(devnet.stop_provider(0).await);
    assert!(devnet.stop_provider(0).await);
    cli_script(&clients, "verify").await;

    devnet.stop().await;
}
