//! Who may do what: access keys from the book, buckets per owner.

use dbytes_ledger::book::Book;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::path::S3Path;
use s3s::{S3Result, s3_error};

use super::errors::book_error;

/// SigV4 secrets from the book's access keys. An unknown key id is refused
/// with `InvalidAccessKeyId`, a wrong signature by s3s with
/// `SignatureDoesNotMatch`.
#[derive(Debug, Clone)]
pub struct BookAuth {
    book: Book,
}

impl BookAuth {
    /// Auth over `book`.
    pub fn new(book: Book) -> Self {
        BookAuth { book }
    }
}

#[async_trait::async_trait]
impl S3Auth for BookAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        // A point read: no fsync, microseconds.
        match self.book.access_key(access_key).map_err(book_error)? {
            Some(key) => Ok(SecretKey::from(key.secret_access_key)),
            None => Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            )),
        }
    }
}

/// The user a request acts as, put in the request's extensions by
/// [`BookAccess`] once its signature checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestUser(pub String);

/// Every request must be signed by a known key; a bucket can be used only by
/// its owner (others get `AccessDenied`, or `BucketAlreadyExists` when they
/// try to create it).
#[derive(Debug, Clone)]
pub struct BookAccess {
    book: Book,
}

impl BookAccess {
    /// Access control over `book`.
    pub fn new(book: Book) -> Self {
        BookAccess { book }
    }
}

#[async_trait::async_trait]
impl S3Access for BookAccess {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let Some(credentials) = cx.credentials() else {
            return Err(s3_error!(
                AccessDenied,
                "Anonymous access is not allowed: sign the request."
            ));
        };
        let Some(key) = self
            .book
            .access_key(&credentials.access_key)
            .map_err(book_error)?
        else {
            return Err(s3_error!(InvalidAccessKeyId));
        };
        let bucket = match cx.s3_path() {
            S3Path::Root => None,
            S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => Some(bucket.to_string()),
        };
        if let Some(name) = bucket
            && let Some(bucket) = self.book.bucket(&name).map_err(book_error)?
            && bucket.owner != key.user_id
        {
            if cx.s3_op().name() == "CreateBucket" {
                return Err(s3_error!(
                    BucketAlreadyExists,
                    "The requested bucket name is not available. Please select a different name and try again."
                ));
            }
            return Err(s3_error!(AccessDenied, "Access Denied"));
        }
        cx.extensions_mut().insert(RequestUser(key.user_id));
        Ok(())
    }
}
