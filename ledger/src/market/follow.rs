//! Following the chain: reading the contracts' events into the index.
//!
//! Each sync reads logs from the block after the cursor up to the head less
//! `confirmations`, in ranges, and folds each range into the index in one
//! transaction. Before reading, it checks that the cursor's block is still
//! the chain's block at that height; if not (a reorg), it walks back
//! through the block hashes it kept until one matches, undoes everything
//! after it and reads again from there. An unreachable endpoint makes one
//! sync fail with a clear error; [`Follower::run`] logs it, waits and tries
//! again, and never gives up.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use alloy::eips::BlockNumberOrTag;
use alloy::rpc::types::Filter;

use super::MarketError;
use super::index::{Cursor, MarketIndex};
use crate::chain::ChainClient;

/// How the follower reads the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowConfig {
    /// Blocks behind the head to stay (0 on a local chain; a few on an L2).
    pub confirmations: u64,
    /// Blocks read per transaction.
    pub batch_blocks: u64,
    /// Pause between syncs in [`Follower::run`].
    pub poll_interval: Duration,
    /// Blocks of history kept to undo a reorg; a deeper one re-reads everything.
    pub reorg_window: u64,
}

impl Default for FollowConfig {
    fn default() -> Self {
        FollowConfig {
            confirmations: 0,
            batch_blocks: 5_000,
            poll_interval: Duration::from_secs(2),
            reorg_window: 256,
        }
    }
}

/// What one sync did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncReport {
    /// The cursor after the sync.
    pub cursor: Option<Cursor>,
    /// Logs folded in.
    pub logs: u64,
    /// Journal entries undone after a reorg (0 without one).
    pub undone: u64,
}

/// Reads a deployment's events into a [`MarketIndex`].
#[derive(Debug, Clone)]
pub struct Follower {
    client: ChainClient,
    index: Arc<MarketIndex>,
    config: FollowConfig,
}

impl Follower {
    /// A follower of `client`'s deployment into `index`.
    pub fn new(client: ChainClient, index: Arc<MarketIndex>, config: FollowConfig) -> Follower {
        Follower {
            client,
            index,
            config,
        }
    }

    /// The index it writes.
    pub fn index(&self) -> &Arc<MarketIndex> {
        &self.index
    }

    /// Reads everything up to the confirmed head.
    pub async fn sync(&self) -> Result<SyncReport, MarketError> {
        let rpc = &self.client.rpc;
        let deployment = self.client.deployment();
        let mut report = SyncReport::default();
        let (head, _, _) = rpc.head().await?;
        let target = head.saturating_sub(self.config.confirmations);
        let mut cursor = self.index.cursor()?;
        if let Some(current) = cursor {
            let (undone, kept) = self.check_reorg(current).await?;
            report.undone = undone;
            cursor = kept;
        }
        let filter = Filter::new().address(vec![
            deployment.contracts.registry,
            deployment.contracts.marketplace,
            deployment.contracts.proofs,
        ]);
        let mut from = cursor.map_or(deployment.deploy_block, |c| c.block + 1);
        while from <= target {
            let to = target.min(from + self.config.batch_blocks.max(1) - 1);
            let mut logs = rpc.logs(&filter, from, to).await?;
            logs.retain(|log| !log.removed);
            logs.sort_by_key(|log| (log.block_number, log.log_index));
            let (number, hash, _) =
                rpc.block(BlockNumberOrTag::Number(to))
                    .await?
                    .ok_or_else(|| {
                        MarketError::Chain(crate::chain::ChainError::Unexpected {
                            action: "follow the chain".into(),
                            reason: format!("block {to} disappeared while reading it"),
                        })
                    })?;
            let next = Cursor {
                block: number,
                hash,
            };
            let keep_from = number.saturating_sub(self.config.reorg_window);
            self.index.apply(deployment, &logs, next, keep_from)?;
            report.logs += logs.len() as u64;
            cursor = Some(next);
            from = to + 1;
        }
        report.cursor = cursor;
        Ok(report)
    }

    /// Undoes indexed blocks the chain no longer has; returns the entries
    /// undone and the cursor to read on from (`None`: read from the start).
    async fn check_reorg(&self, cursor: Cursor) -> Result<(u64, Option<Cursor>), MarketError> {
        let rpc = &self.client.rpc;
        let on_chain = rpc.block(BlockNumberOrTag::Number(cursor.block)).await?;
        if on_chain.is_some_and(|(_, hash, _)| hash == cursor.hash) {
            return Ok((0, Some(cursor)));
        }
        for (block, hash) in self.index.recent_blocks()? {
            if block > cursor.block {
                continue;
            }
            let on_chain = rpc.block(BlockNumberOrTag::Number(block)).await?;
            if on_chain.is_some_and(|(_, h, _)| h == hash) {
                let undone = self.index.rollback_to(block, hash)?;
                tracing::warn!(
                    from = cursor.block,
                    to = block,
                    undone,
                    "chain reorganised; index rolled back"
                );
                return Ok((undone, Some(Cursor { block, hash })));
            }
        }
        // Deeper than the window: check the deployment itself still exists, then re-read.
        let deployment = self.client.deployment();
        let deploy_block = rpc
            .block(BlockNumberOrTag::Number(deployment.deploy_block))
            .await?;
        if deploy_block.is_none_or(|(_, h, _)| h != deployment.deploy_block_hash) {
            return Err(MarketError::DeploymentGone {
                block: deployment.deploy_block,
            });
        }
        tracing::warn!(
            cursor = cursor.block,
            "reorg deeper than the window; re-indexing from the deployment"
        );
        self.index.reset()?;
        Ok((0, None))
    }

    /// Syncs every `poll_interval` until `shutdown` completes. Errors (an
    /// unreachable endpoint, most often) are logged and retried with a
    /// growing pause, up to a minute; the loop never ends on its own.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut pause = self.config.poll_interval;
        loop {
            match self.sync().await {
                Ok(report) => {
                    if report.logs > 0 || report.undone > 0 {
                        tracing::debug!(?report, "market index synced");
                    }
                    pause = self.config.poll_interval;
                }
                Err(err) => {
                    tracing::warn!(%err, "market index sync failed; retrying");
                    pause = (pause * 2).clamp(self.config.poll_interval, Duration::from_secs(60));
                }
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}
