//! Distributed machine learning on row-split DNDarrays.
//!
//! * [`pca`]: principal component analysis (covariance, TSQR, randomized and hierarchical
//!   solvers).
//! * [`dmd`]: exact dynamic mode decomposition (snapshots as rows or as columns).
//! * [`kmeans`]: k-means (Lloyd with one allreduce per iteration; k-means‖, k-means++ and
//!   random initialisation).

pub mod dmd;
pub mod kmeans;
mod nearest;
pub mod pca;
