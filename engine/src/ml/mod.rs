//! Distributed machine learning on row-split DNDarrays.
//!
//! * [`pca`]: principal component analysis (covariance, TSQR and randomized solvers).

pub mod pca;
