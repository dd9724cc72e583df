//! The local chain outlives the process that started it: an anvil left
//! running by a killed parent is stopped (and so saves its chain) before a
//! new one starts on the same state file, and a killed anvil loses at most
//! its save interval.

use std::time::Duration;

use alloy::providers::{Provider, ProviderBuilder};
use dbytes_ledger::chain::anvil::{Anvil, AnvilOptions};

use crate::common::temp_dir;

async fn block_number(anvil: &Anvil) -> u64 {
    let url = anvil.endpoint().parse().expect("anvil's url");
    ProviderBuilder::new()
        .connect_http(url)
        .get_block_number()
        .await
        .expect("read the block number")
}

fn options(dir: &std::path::Path, save_secs: Option<u64>) -> AnvilOptions {
    AnvilOptions {
        state_file: Some(dir.join("chain-state.json")),
        state_interval_secs: save_secs,
        pid_file: Some(dir.join("anvil.pid")),
        ..AnvilOptions::default()
    }
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn an_anvil_left_by_a_killed_parent_is_stopped_and_its_chain_resumed() {
    let scratch = temp_dir("stray-anvil");
    let dir = scratch.path();
    // No periodic saves: only stopping the stray one can keep its blocks.
    let options = options(dir, None);
    let first = Anvil::spawn(&options).expect("anvil starts (`make setup`)");
    first.mine(25).await.expect("mine");
    let height = block_number(&first).await;
    assert!(height >= 25);
    let stray = first.pid();
    assert_eq!(
        std::fs::read_to_string(dir.join("anvil.pid")).expect("the pid is recorded"),
        stray.to_string()
    );
    // The parent dies without stopping it (as under kill -9): anvil runs
    // on with the chain in memory only.
    std::mem::forget(first);
    assert!(!dir.join("chain-state.json").exists(), "nothing saved yet");

    let second = Anvil::spawn(&options).expect("a new anvil starts");
    assert!(
        dir.join("chain-state.json").exists(),
        "the stray anvil saved its chain when stopped"
    );
    assert_eq!(block_number(&second).await, height, "the chain resumed");
    assert_eq!(
        std::fs::read_to_string(dir.join("anvil.pid")).expect("the pid is recorded"),
        second.pid().to_string()
    );
    second.stop();
    assert!(
        !dir.join("anvil.pid").exists(),
        "a clean stop forgets the pid"
    );
}

#[tokio::test]
async fn a_killed_anvil_loses_at_most_its_save_interval() {
    let scratch = temp_dir("killed-anvil");
    let dir = scratch.path();
    let options = options(dir, Some(1));
    let mut first = Anvil::spawn(&options).expect("anvil starts (`make setup`)");
    first.mine(12).await.expect("mine");
    let height = block_number(&first).await;
    // Two save intervals and a little: the state file has those blocks.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    first.kill();
    let second = Anvil::spawn(&options).expect("a new anvil starts");
    assert!(
        block_number(&second).await >= height,
        "the blocks saved before the kill are there"
    );
    second.stop();
}
