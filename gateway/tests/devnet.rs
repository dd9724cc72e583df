//! The local network as its users meet it: `Devnet` (anvil, the contracts,
//! provider daemons, a gateway over the mesh) driven by aws-cli, rclone and
//! boto3 as subprocesses, then read back with n-k providers stopped.
//!
//! Without the clients the test skips loudly, except under `CI=true`, where
//! they are required.

mod common;

use std::path::Path;

use common::{Clients, clients_available, new_user, rclone_available, start_devnet};
use dbytes_gateway::devnet::default_redundancy;

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
    assert_eq!(default_redundancy(5), (3, 5));
    let mut devnet = start_devnet(dir.path(), 5).await;
    // The boto3 suite expects users with no buckets of their own yet.
    let key = |user: &str| new_user(&devnet, user);
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
