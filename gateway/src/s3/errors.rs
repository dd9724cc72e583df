//! Book and pipeline errors as the S3 errors clients expect.

use dbytes_ledger::book::BookError;
use s3s::{S3Error, S3ErrorCode, s3_error};

use crate::codec::CodecError;
use crate::pipeline::{PieceStoreError, PipelineError};

/// The S3 error for a book error.
pub(crate) fn book_error(err: BookError) -> S3Error {
    match err {
        BookError::NoSuchBucket(_) => {
            s3_error!(NoSuchBucket, "The specified bucket does not exist")
        }
        BookError::BucketExists { .. } => s3_error!(BucketAlreadyExists),
        BookError::BucketNotEmpty(_) => s3_error!(
            BucketNotEmpty,
            "The bucket you tried to delete is not empty"
        ),
        BookError::VersioningCannotBeDisabled(_) => s3_error!(
            IllegalVersioningConfigurationException,
            "Versioning, once enabled, can only be suspended"
        ),
        BookError::NoSuchUpload(_) => s3_error!(
            NoSuchUpload,
            "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."
        ),
        BookError::InvalidPart(number) => s3_error!(
            InvalidPart,
            "One or more of the specified parts could not be found or its entity tag does not match (part {number})"
        ),
        BookError::InvalidPartOrder => s3_error!(
            InvalidPartOrder,
            "The list of parts was not in ascending order."
        ),
        BookError::EntityTooSmall {
            part_number,
            size,
            min,
        } => s3_error!(
            EntityTooSmall,
            "Your proposed upload is smaller than the minimum allowed object size: part {part_number} has {size} bytes, at least {min} are needed"
        ),
        BookError::PreconditionFailed => {
            s3_error!(
                PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold"
            )
        }
        other => {
            tracing::error!(err = %other, "book failure");
            S3Error::with_source(S3ErrorCode::InternalError, Box::new(other))
        }
    }
}

/// The S3 error for a pipeline error.
pub(crate) fn pipeline_error(err: PipelineError) -> S3Error {
    match err {
        PipelineError::Body(reason) => s3_error!(
            IncompleteBody,
            "The request body could not be read: {reason}"
        ),
        PipelineError::Store(PieceStoreError::NotEnoughStored { .. }) => {
            tracing::error!(%err, "upload failed");
            s3_error!(ServiceUnavailable, "{err}")
        }
        PipelineError::Codec(CodecError::NotEnoughPieces { .. }) => {
            tracing::error!(%err, "read failed");
            s3_error!(ServiceUnavailable, "{err}")
        }
        other => {
            tracing::error!(err = %other, "pipeline failure");
            S3Error::with_source(S3ErrorCode::InternalError, Box::new(other))
        }
    }
}
