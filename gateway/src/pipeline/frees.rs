//! Freeing the pieces of deleted and overwritten versions, retried.

use std::time::Duration;

use dbytes_ledger::book::{Book, BookError, UnixMillis};

use super::{PieceStore, PipelineError};

/// The longest wait between two attempts to free the same pieces.
const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);

/// One pass of the free worker: deletes the pieces of up to `batch` due
/// tasks of the book's free queue; a task that fails is retried later with
/// exponential backoff (1 minute doubling, at most 6 hours). Returns how many
/// tasks were finished.
pub async fn free_due_pieces(
    book: &Book,
    store: &dyn PieceStore,
    now: UnixMillis,
    batch: usize,
) -> Result<usize, PipelineError> {
    let due = {
        let book = book.clone();
        run_blocking(move || book.due_frees(now, batch)).await?
    };
    let mut finished = 0;
    for task in due {
        let result = store.delete_pieces(&task.pieces).await;
        let book = book.clone();
        match result {
            Ok(()) => {
                run_blocking(move || book.finish_free(task.id)).await?;
                finished += 1;
            }
            Err(err) => {
                let backoff = Duration::from_secs(60)
                    .saturating_mul(1 << task.attempts.min(16))
                    .min(MAX_BACKOFF);
                tracing::warn!(task = task.id, attempts = task.attempts + 1, %err, "freeing pieces failed; will retry");
                let not_before = now.saturating_add(backoff.as_millis() as u64);
                run_blocking(move || book.retry_free(task.id, not_before)).await?;
            }
        }
    }
    Ok(finished)
}

async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, BookError> + Send + 'static,
) -> Result<T, PipelineError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => Ok(result?),
        Err(err) => Err(PipelineError::Worker(err.to_string())),
    }
}
