//! The gateway's admin socket: how `dbytes gateway user ...` manages users
//! and keys while the gateway runs.
//!
//! The book is a redb file one process holds at a time, so a running
//! gateway answers user commands itself, over a Unix socket in its data
//! directory (`admin.sock`, mode 0600: only the OS user the gateway runs as
//! may use it; there is no network listener and no second secret). A
//! revoked key stops working on the next request, since every request
//! looks its key up in the book. With the gateway stopped the command opens
//! the book itself; both paths run the same [`execute`].
//!
//! One request per connection: a JSON line in, a JSON line out.
//!
//! Main items: [`AdminRequest`], [`AdminReply`], [`execute`], [`serve`],
//! [`request`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use dbytes_ledger::book::Book;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The socket's file name in the gateway's data directory.
pub const SOCKET_FILE: &str = "admin.sock";

/// The longest request line accepted.
const MAX_REQUEST: u64 = 64 * 1024;

/// How long one connection may take.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// The admin socket of the gateway whose data directory is `data_dir`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_FILE)
}

/// What an operator asks of the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum AdminRequest {
    /// Add a user and issue it a key.
    AddUser {
        /// The user's id.
        name: String,
    },
    /// Issue another key to a user.
    IssueKey {
        /// The user's id.
        name: String,
    },
    /// Every user with its buckets and key ids.
    ListUsers,
    /// Remove a user (refused while it owns buckets).
    RemoveUser {
        /// The user's id.
        name: String,
    },
    /// Revoke one key of a user.
    RevokeKey {
        /// The user's id.
        name: String,
        /// The access key id.
        key: String,
    },
    /// The repair report (`dbytes repair status`) from the book the
    /// gateway holds: queue, last health round, most endangered segments,
    /// all-time totals.
    RepairStatus,
}

/// One user, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSummary {
    /// The user's id.
    pub id: String,
    /// How many buckets it owns.
    pub buckets: usize,
    /// Its access key ids.
    pub keys: Vec<String>,
}

/// The gateway's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum AdminReply {
    /// A new key (its secret is shown this once).
    Key {
        /// The user's id.
        user: String,
        /// The access key id.
        access_key_id: String,
        /// The secret access key.
        secret_access_key: String,
    },
    /// The users.
    Users {
        /// Every user.
        users: Vec<UserSummary>,
    },
    /// A report to print as it is.
    Report {
        /// The report's text.
        text: String,
    },
    /// Done; what was done.
    Done {
        /// For the operator.
        message: String,
    },
    /// Refused; why.
    Error {
        /// For the operator.
        message: String,
    },
}

/// Carries out `request` on `book` at `now_ms`.
pub fn execute(book: &Book, request: &AdminRequest, now_ms: u64) -> AdminReply {
    let result = match request {
        AdminRequest::AddUser { name } => book
            .add_user(name, name, now_ms)
            .and_then(|_| book.issue_access_key(name, now_ms))
            .map(key_reply),
        AdminRequest::IssueKey { name } => book.issue_access_key(name, now_ms).map(key_reply),
        AdminRequest::ListUsers => list_users(book),
        AdminRequest::RemoveUser { name } => book.remove_user(name).map(|()| AdminReply::Done {
            message: format!("removed {name}"),
        }),
        AdminRequest::RevokeKey { name, key } => match book.access_key(key) {
            Ok(None) => Ok(error(format!("no access key {key}"))),
            Ok(Some(owner)) if owner.user_id != *name => Ok(error(format!(
                "access key {key} belongs to {}, not {name}",
                owner.user_id
            ))),
            Ok(Some(_)) => book.remove_access_key(key).map(|()| AdminReply::Done {
                message: format!("revoked {key}"),
            }),
            Err(err) => Err(err),
        },
        AdminRequest::RepairStatus => {
            crate::repair::status::book_report(book, now_ms).map(|text| AdminReply::Report { text })
        }
    };
    result.unwrap_or_else(|err| error(err.to_string()))
}

fn key_reply(key: dbytes_ledger::book::AccessKey) -> AdminReply {
    AdminReply::Key {
        user: key.user_id,
        access_key_id: key.access_key_id,
        secret_access_key: key.secret_access_key,
    }
}

fn error(message: String) -> AdminReply {
    AdminReply::Error { message }
}

fn list_users(book: &Book) -> Result<AdminReply, dbytes_ledger::book::BookError> {
    let mut users = Vec::new();
    for user in book.list_users()? {
        let keys = book
            .list_access_keys(Some(&user.id))?
            .into_iter()
            .map(|key| key.access_key_id)
            .collect();
        let buckets = book.list_buckets(&user.id)?.len();
        users.push(UserSummary {
            id: user.id,
            buckets,
            keys,
        });
    }
    Ok(AdminReply::Users { users })
}

/// Listens on `path` (replacing a socket a crashed gateway left behind) for
/// admin requests until `stop`; the socket file is removed on the way out.
pub fn serve(path: &Path, book: Book, stop: CancellationToken) -> std::io::Result<JoinHandle<()>> {
    if std::fs::symlink_metadata(path).is_ok() {
        // A live gateway would hold the book, so whatever is here is stale.
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    restrict_to_owner(path)?;
    let path = path.to_owned();
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let book = book.clone();
                        tokio::spawn(async move {
                            match tokio::time::timeout(CONNECTION_TIMEOUT, answer(stream, book)).await {
                                Ok(Ok(())) => {}
                                Ok(Err(err)) => tracing::debug!(%err, "admin connection failed"),
                                Err(_) => tracing::debug!("admin connection timed out"),
                            }
                        });
                    }
                    Err(err) => {
                        tracing::warn!(%err, "admin socket accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        let _ = std::fs::remove_file(&path);
    }))
}

#[cfg(unix)]
fn restrict_to_owner(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// Reads one request, answers it.
async fn answer(stream: UnixStream, book: Book) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read.take(MAX_REQUEST))
        .read_line(&mut line)
        .await?;
    let reply = match serde_json::from_str::<AdminRequest>(&line) {
        Ok(request) => {
            let now = crate::s3::now_ms();
            tokio::task::spawn_blocking(move || execute(&book, &request, now))
                .await
                .unwrap_or_else(|err| error(format!("the request failed: {err}")))
        }
        Err(err) => error(format!("not an admin request ({err})")),
    };
    let mut out = serde_json::to_vec(&reply).map_err(std::io::Error::other)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    write.shutdown().await
}

/// Sends `request` to the gateway listening on `path`. An error when no
/// gateway listens there (then the caller may open the book itself).
pub async fn request(path: &Path, request: &AdminRequest) -> std::io::Result<AdminReply> {
    let exchange = async {
        let stream = UnixStream::connect(path).await?;
        let (read, mut write) = stream.into_split();
        let mut line = serde_json::to_vec(request).map_err(std::io::Error::other)?;
        line.push(b'\n');
        write.write_all(&line).await?;
        let mut reply = String::new();
        BufReader::new(read.take(16 * 1024 * 1024))
            .read_line(&mut reply)
            .await?;
        serde_json::from_str(&reply).map_err(|err| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("the gateway's admin reply is not understood: {err}"),
            )
        })
    };
    tokio::time::timeout(CONNECTION_TIMEOUT, exchange)
        .await
        .map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, "the gateway did not answer")
        })?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book() -> (tempfile::TempDir, Book) {
        let dir = tempfile::tempdir().expect("temp dir");
        let book = Book::open(dir.path().join("book.redb")).expect("book");
        (dir, book)
    }

    #[tokio::test]
    async fn users_are_managed_over_the_socket_while_the_book_is_held() {
        let (dir, book) = book();
        let path = socket_path(dir.path());
        let stop = CancellationToken::new();
        let task = serve(&path, book.clone(), stop.clone()).expect("serve");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).expect("socket").permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "only the gateway's user may connect");

        let add = AdminRequest::AddUser {
            name: "alice".into(),
        };
        let AdminReply::Key {
            user,
            access_key_id,
            secret_access_key,
        } = request(&path, &add).await.expect("add")
        else {
            panic!("no key issued");
        };
        assert_eq!(user, "alice");
        // The key is in the book the gateway serves from.
        let stored = book.access_key(&access_key_id).expect("read").expect("key");
        assert_eq!(stored.secret_access_key, secret_access_key);
        // A second add of the same user is refused with the book's reason.
        let again = request(&path, &add).await.expect("add again");
        assert!(matches!(again, AdminReply::Error { .. }), "{again:?}");

        let listed = request(&path, &AdminRequest::ListUsers)
            .await
            .expect("list");
        assert_eq!(
            listed,
            AdminReply::Users {
                users: vec![UserSummary {
                    id: "alice".into(),
                    buckets: 0,
                    keys: vec![access_key_id.clone()],
                }]
            }
        );
        // Revoking someone else's key is refused; one's own works at once.
        let wrong = AdminRequest::RevokeKey {
            name: "bob".into(),
            key: access_key_id.clone(),
        };
        assert!(matches!(
            request(&path, &wrong).await.expect("revoke"),
            AdminReply::Error { .. }
        ));
        let revoke = AdminRequest::RevokeKey {
            name: "alice".into(),
            key: access_key_id.clone(),
        };
        assert!(matches!(
            request(&path, &revoke).await.expect("revoke"),
            AdminReply::Done { .. }
        ));
        assert!(book.access_key(&access_key_id).expect("read").is_none());

        // Garbage gets an error reply, and the socket keeps serving.
        let mut raw = UnixStream::connect(&path).await.expect("connect");
        raw.write_all(b"{\"op\":\"drop_tables\"}\n")
            .await
            .expect("send");
        let mut reply = String::new();
        BufReader::new(&mut raw)
            .read_line(&mut reply)
            .await
            .expect("reply");
        assert!(reply.contains("not an admin request"), "{reply}");
        let removed = request(
            &path,
            &AdminRequest::RemoveUser {
                name: "alice".into(),
            },
        )
        .await
        .expect("remove");
        assert!(matches!(removed, AdminReply::Done { .. }), "{removed:?}");

        stop.cancel();
        task.await.expect("the server stops");
        assert!(!path.exists(), "the socket is removed on shutdown");
        assert!(request(&path, &AdminRequest::ListUsers).await.is_err());
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced() {
        let (dir, book) = book();
        let path = socket_path(dir.path());
        std::fs::write(&path, b"left behind").expect("stale file");
        let stop = CancellationToken::new();
        let task = serve(&path, book, stop.clone()).expect("serve over a stale socket");
        let listed = request(&path, &AdminRequest::ListUsers)
            .await
            .expect("list");
        assert_eq!(listed, AdminReply::Users { users: vec![] });
        stop.cancel();
        task.await.expect("stops");
    }
}
