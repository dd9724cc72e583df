//! `dbytes gateway user ...` as an operator runs it: against a running
//! gateway (which holds the book, so the command goes through its admin
//! socket) and against a stopped one (the command opens the book itself).

use std::path::Path;
use std::process::Command;

use dbytes_gateway::admin;
use dbytes_ledger::book::Book;
use tokio_util::sync::CancellationToken;

/// Runs `dbytes gateway user <args> --config <config>`; stdout, or a panic
/// with stderr when it fails.
fn user(config: &Path, args: &[&str]) -> Result<String, String> {
    let output = Command::new(env!("CARGO_BIN_EXE_dbytes"))
        .args(["gateway", "user"])
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run dbytes");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(stderr)
    }
}

fn field<'a>(output: &'a str, name: &str) -> &'a str {
    output
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in {output}"))
        .trim()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_keys_are_managed_while_the_gateway_runs_and_while_it_is_stopped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("state");
    std::fs::create_dir_all(&data).expect("data dir");
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!("[storage]\ndata_dir = \"{}\"\n", data.display()),
    )
    .expect("config");

    // Stopped: the command opens the book itself.
    let added = user(&config, &["add", "alice"]).expect("add alice");
    let alice_key = field(&added, "access key id:").to_owned();

    // Running: the gateway holds the book (a second open would fail) and
    // answers on its admin socket.
    let book = Book::open(data.join("book.redb")).expect("the gateway's book");
    let stop = CancellationToken::new();
    let server =
        admin::serve(&admin::socket_path(&data), book.clone(), stop.clone()).expect("admin socket");
    let config_for = config.clone();
    let run = move |args: &'static [&'static str]| {
        let config = config_for.clone();
        tokio::task::spawn_blocking(move || user(&config, args))
    };
    let added = run(&["add", "bob"]).await.expect("join").expect("add bob");
    let bob_key = field(&added, "access key id:").to_owned();
    assert!(
        book.access_key(&bob_key).expect("read").is_some(),
        "bob's key is in the running gateway's book"
    );
    let listed = run(&["list"]).await.expect("join").expect("list");
    assert!(
        listed.contains(&format!("alice\tbuckets=0\tkeys={alice_key}")),
        "{listed}"
    );
    assert!(
        listed.contains(&format!("bob\tbuckets=0\tkeys={bob_key}")),
        "{listed}"
    );
    // A leaked key is revoked without stopping the gateway.
    let config_revoke = config.clone();
    let key = bob_key.clone();
    let revoked = tokio::task::spawn_blocking(move || {
        user(&config_revoke, &["remove", "bob", "--key", &key])
    })
    .await
    .expect("join")
    .expect("revoke");
    assert_eq!(revoked.trim(), format!("revoked {bob_key}"));
    assert!(book.access_key(&bob_key).expect("read").is_none());
    // Refusals carry the book's reason and fail the command.
    let again = run(&["add", "alice"]).await.expect("join");
    assert!(again.is_err(), "adding alice twice succeeded: {again:?}");

    stop.cancel();
    server.await.expect("the admin socket stops");
    drop(book);
    // Stopped again: the book is opened directly and has everything.
    let listed = user(&config, &["list"]).expect("list");
    assert!(
        listed.contains("alice") && listed.contains("bob\tbuckets=0\tkeys=\n"),
        "{listed}"
    );
}
