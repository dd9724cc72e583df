//! Bucket operations.

use dbytes_ledger::book::Versioning;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::{Shared, errors, now_ms, owned_bucket, redundancy_of, request_user, timestamp};

pub(super) async fn list_buckets(
    shared: &Shared,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let user = request_user(&req)?;
    let prefix = req.input.prefix.clone().unwrap_or_default();
    let owner_id = user.clone();
    let (buckets, display_name) = shared
        .book(move |book| {
            let display = book.user(&owner_id)?.map(|user| user.display_name);
            Ok((book.list_buckets(&owner_id)?, display))
        })
        .await?;
    let buckets = buckets
        .into_iter()
        .filter(|bucket| bucket.name.starts_with(&prefix))
        .map(|bucket| Bucket {
            name: Some(bucket.name),
            creation_date: Some(timestamp(bucket.created_ms)),
            bucket_region: Some(shared.config.region.clone()),
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        owner: Some(Owner {
            display_name: Some(display_name.unwrap_or_else(|| user.clone())),
            id: Some(user),
        }),
        prefix: req.input.prefix,
        ..Default::default()
    }))
}

pub(super) async fn create_bucket(
    shared: &Shared,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let user = request_user(&req)?;
    let name = req.input.bucket.clone();
    let redundancy = redundancy_of(shared.config.default_redundancy);
    let owner = user.clone();
    let created = shared
        .book({
            let name = name.clone();
            move |book| book.create_bucket(&name, &owner, redundancy, now_ms())
        })
        .await;
    match created {
        Ok(_) => Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{name}")),
        })),
        Err(err) if *err.code() == s3s::S3ErrorCode::BucketAlreadyExists => {
            // The book tells who owns it; the access check already refused other owners.
            match shared.book.bucket(&name).map_err(errors::book_error)? {
                Some(bucket) if bucket.owner == user => Err(s3_error!(
                    BucketAlreadyOwnedByYou,
                    "Your previous request to create the named bucket succeeded and you already own it."
                )),
                _ => Err(err),
            }
        }
        Err(err) => Err(err),
    }
}

pub(super) async fn head_bucket(
    shared: &Shared,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    let user = request_user(&req)?;
    owned_bucket(shared, &user, &req.input.bucket)?;
    Ok(S3Response::new(HeadBucketOutput {
        bucket_region: Some(shared.config.region.clone()),
        ..Default::default()
    }))
}

pub(super) async fn delete_bucket(
    shared: &Shared,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    let user = request_user(&req)?;
    let bucket = owned_bucket(shared, &user, &req.input.bucket)?;
    shared
        .book(move |book| book.delete_bucket(&bucket.name, now_ms()))
        .await?;
    Ok(S3Response::new(DeleteBucketOutput {}))
}

pub(super) async fn get_bucket_location(
    shared: &Shared,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    let user = request_user(&req)?;
    owned_bucket(shared, &user, &req.input.bucket)?;
    // S3 reports us-east-1 as an empty constraint.
    let location = (shared.config.region != "us-east-1")
        .then(|| BucketLocationConstraint::from(shared.config.region.clone()));
    Ok(S3Response::new(GetBucketLocationOutput {
        location_constraint: location,
    }))
}

pub(super) async fn put_bucket_versioning(
    shared: &Shared,
    req: S3Request<PutBucketVersioningInput>,
) -> S3Result<S3Response<PutBucketVersioningOutput>> {
    let user = request_user(&req)?;
    let bucket = owned_bucket(shared, &user, &req.input.bucket)?;
    let versioning = match req
        .input
        .versioning_configuration
        .status
        .as_ref()
        .map(BucketVersioningStatus::as_str)
    {
        Some(BucketVersioningStatus::ENABLED) => Versioning::Enabled,
        Some(BucketVersioningStatus::SUSPENDED) => Versioning::Suspended,
        _ => {
            return Err(s3_error!(
                IllegalVersioningConfigurationException,
                "The versioning configuration specified in the request is invalid: Status must be Enabled or Suspended"
            ));
        }
    };
    shared
        .book(move |book| book.set_versioning(&bucket.name, versioning).map(|_| ()))
        .await?;
    Ok(S3Response::new(PutBucketVersioningOutput {}))
}

pub(super) async fn get_bucket_versioning(
    shared: &Shared,
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    let user = request_user(&req)?;
    let bucket = owned_bucket(shared, &user, &req.input.bucket)?;
    let status = match bucket.versioning {
        Versioning::Unversioned => None,
        Versioning::Enabled => Some(BucketVersioningStatus::from_static(
            BucketVersioningStatus::ENABLED,
        )),
        Versioning::Suspended => Some(BucketVersioningStatus::from_static(
            BucketVersioningStatus::SUSPENDED,
        )),
    };
    Ok(S3Response::new(GetBucketVersioningOutput {
        status,
        ..Default::default()
    }))
}
