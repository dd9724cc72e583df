//! The redundancy policy of a segment: how many pieces, how many suffice.

use crate::durability::{self, DurabilityError, DurabilityTarget};

/// The most pieces a segment may have; keeps per-segment metadata and the
/// number of providers a read or repair touches bounded.
pub const MAX_PIECES: u16 = 255;

/// Why a redundancy policy is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// k must be at least 1 and at most n.
    #[error(
        "a policy needs 1 <= k <= n <= {MAX_PIECES} (got k={data_pieces}, n={total_pieces}); \
         k is the pieces needed to read, n the pieces stored"
    )]
    InvalidShape {
        /// k.
        data_pieces: u16,
        /// n.
        total_pieces: u16,
    },
    /// The thresholds must satisfy k <= repair <= success <= n.
    #[error(
        "a policy needs k <= repair threshold <= success threshold <= n (got k={data_pieces}, \
         repair={repair_threshold}, success={success_threshold}, n={total_pieces})"
    )]
    InvalidThresholds {
        /// k.
        data_pieces: u16,
        /// Repair when fewer healthy pieces remain than this.
        repair_threshold: u16,
        /// Commit an upload once this many pieces are stored.
        success_threshold: u16,
        /// n.
        total_pieces: u16,
    },
}

/// How a segment is spread: any `data_pieces` (k) of its `total_pieces` (n)
/// pieces rebuild it.
///
/// - A segment is committed once `success_threshold` pieces are stored, never
///   before; the slowest uploads beyond it are cancelled (the long tail).
/// - It is queued for repair when fewer than `repair_threshold` healthy
///   pieces remain, which leaves `repair_threshold - k` more losses of margin
///   while the repair runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RedundancyPolicy {
    data_pieces: u16,
    total_pieces: u16,
    repair_threshold: u16,
    success_threshold: u16,
}

impl RedundancyPolicy {
    /// A k-of-n policy with default thresholds: repair once 40 % of the
    /// parity margin (n - k) is gone, commit an upload once all but a quarter
    /// of the margin is stored.
    pub fn new(data_pieces: u16, total_pieces: u16) -> Result<Self, PolicyError> {
        if data_pieces == 0 || data_pieces > total_pieces || total_pieces > MAX_PIECES {
            return Err(PolicyError::InvalidShape {
                data_pieces,
                total_pieces,
            });
        }
        let margin = total_pieces - data_pieces;
        // Repair at k + ceil(0.6 * margin) healthy pieces: lose 40 % of the
        // margin, keep 60 % of it as a buffer for the repair's duration.
        let repair_threshold = data_pieces + (margin * 3).div_ceil(5);
        let success_threshold = total_pieces - margin / 4;
        Self::with_thresholds(
            data_pieces,
            total_pieces,
            repair_threshold,
            success_threshold,
        )
    }

    /// A policy with explicit thresholds.
    pub fn with_thresholds(
        data_pieces: u16,
        total_pieces: u16,
        repair_threshold: u16,
        success_threshold: u16,
    ) -> Result<Self, PolicyError> {
        if data_pieces == 0 || data_pieces > total_pieces || total_pieces > MAX_PIECES {
            return Err(PolicyError::InvalidShape {
                data_pieces,
                total_pieces,
            });
        }
        if !(data_pieces <= repair_threshold
            && repair_threshold <= success_threshold
            && success_threshold <= total_pieces)
        {
            return Err(PolicyError::InvalidThresholds {
                data_pieces,
                repair_threshold,
                success_threshold,
                total_pieces,
            });
        }
        Ok(RedundancyPolicy {
            data_pieces,
            total_pieces,
            repair_threshold,
            success_threshold,
        })
    }

    /// k: the pieces any read needs.
    pub fn data_pieces(&self) -> u16 {
        self.data_pieces
    }

    /// n - k: the parity pieces, and so the losses a segment survives.
    pub fn parity_pieces(&self) -> u16 {
        self.total_pieces - self.data_pieces
    }

    /// n: the pieces encoded and placed.
    pub fn total_pieces(&self) -> u16 {
        self.total_pieces
    }

    /// Repair when fewer healthy pieces than this remain.
    pub fn repair_threshold(&self) -> u16 {
        self.repair_threshold
    }

    /// An upload is committed once this many pieces are stored.
    pub fn success_threshold(&self) -> u16 {
        self.success_threshold
    }

    /// The cheapest policy that loses a segment in a year with probability
    /// at most `10^-target.nines` under the target's churn and repair time:
    /// see [`crate::durability::plan`], which also says how durable it is.
    pub fn for_durability(target: &DurabilityTarget) -> Result<Self, DurabilityError> {
        durability::plan(target).map(|plan| plan.policy)
    }

    /// Stored bytes per byte of data: n / k.
    pub fn expansion_factor(&self) -> f64 {
        f64::from(self.total_pieces) / f64::from(self.data_pieces)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn defaults_for_common_shapes() {
        let p = RedundancyPolicy::new(10, 20).unwrap();
        assert_eq!((p.repair_threshold(), p.success_threshold()), (16, 18));
        assert_eq!(p.expansion_factor(), 2.0);
        let p = RedundancyPolicy::new(4, 6).unwrap();
        assert_eq!((p.repair_threshold(), p.success_threshold()), (6, 6));
        let p = RedundancyPolicy::new(1, 1).unwrap();
        assert_eq!((p.repair_threshold(), p.success_threshold()), (1, 1));
    }

    #[test]
    fn bad_shapes_are_refused_and_say_why() {
        let err = RedundancyPolicy::new(0, 4).unwrap_err();
        assert!(err.to_string().contains("k=0"), "{err}");
        assert!(RedundancyPolicy::new(5, 4).is_err());
        assert!(RedundancyPolicy::new(10, 300).is_err());
        assert!(matches!(
            RedundancyPolicy::with_thresholds(4, 8, 3, 8),
            Err(PolicyError::InvalidThresholds { .. })
        ));
        assert!(RedundancyPolicy::with_thresholds(4, 8, 7, 6).is_err());
        assert!(RedundancyPolicy::with_thresholds(4, 8, 5, 9).is_err());
    }

    proptest! {
        #[test]
        fn default_thresholds_are_ordered(k in 1u16..=MAX_PIECES, extra in 0u16..=MAX_PIECES) {
            let n = k.saturating_add(extra).min(MAX_PIECES);
            let p = RedundancyPolicy::new(k, n).unwrap();
            prop_assert!(p.data_pieces() <= p.repair_threshold());
            prop_assert!(p.repair_threshold() <= p.success_threshold());
            prop_assert!(p.success_threshold() <= p.total_pieces());
            prop_assert_eq!(p.parity_pieces(), n - k);
        }
    }
}
