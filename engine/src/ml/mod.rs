//! Distributed machine learning on row-split DNDarrays.
//!
//! * [`pca`]: principal component analysis (covariance, TSQR, randomized and hierarchical
//!   solvers).
//! * [`kmeans`]: k-means (Lloyd with one allreduce per iteration; k-means‖, k-means++ and
//!   random initialisation).

pub mod kmeans;
mod nearest;
pub mod pca;
