//! Distributed machine learning on row-split DNDarrays.
//!
//! * [`pca`]: principal component analysis (covariance, TSQR, randomized and hierarchical
//!   solvers; the [`Solver`](crate::linalg::Solver) type it shares with the SVD).
//! * [`dmd`]: exact dynamic mode decomposition (snapshots as rows or as columns).
//! * [`kmeans`]: k-means (Lloyd with one allreduce per iteration; k-means‖, k-means++ and
//!   random initialisation). On the CPU its passes run the fused kernel of
//!   [`crate::kernels`].

pub mod dmd;
pub mod kmeans;
pub mod pca;
