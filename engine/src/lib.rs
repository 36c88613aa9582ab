//! heatsql's numerical core: the MPI layer, the distributed array, and the distributed linear
//! algebra and machine learning that the SQL table functions run.
//!
//! * [`comm`]: the one layer that talks to MPI (rsmpi). [`Comm`] wraps `MPI_COMM_WORLD`
//!   (initialised on first use; one rank without `mpirun`) with collectives on typed slices,
//!   bytes and `tch` tensors, sent in bounded rounds below MPI's count limit. [`Comm::agree`]
//!   turns an error on any rank into the same error on every rank, and a panic on any rank aborts
//!   the job. Every other module and crate moves data between ranks only through it.
//! * [`dndarray`]: [`DNDarray`], a distributed n-dimensional array in the style of Heat: a global
//!   shape, at most one split axis, and a local `tch::Tensor` per rank that holds that rank's slab
//!   of the split axis. It has factories (seeded random arrays are the same at every rank count),
//!   layout changes (balance, redistribute, resplit, gather, transpose), element-wise operations,
//!   reductions, and products with a replicated matrix.
//! * [`linalg`]: distributed linear algebra on row-split arrays.
//!   [`tsqr`](mod@linalg::tsqr): tall-skinny QR (CholeskyQR2 when accurate, Householder
//!   otherwise; R replicated, Q row-split).
//!   [`svd`](mod@linalg::svd): truncated SVD (TSQR, randomized, hierarchical).
//!   [`matmul`](mod@linalg::matmul): A·B of two row-split arrays by a ring, Aᵀ·B by one
//!   allreduce. [`solver`](linalg::solver): the one [`Solver`](linalg::Solver) type of the SVD
//!   and PCA, its defaults and what `Auto` picks. [`sign`](linalg::sign): the sign convention of
//!   singular vectors.
//! * [`ml`]: [`pca`](ml::pca) (covariance, TSQR, randomized and hierarchical solvers),
//!   [`kmeans`](ml::kmeans) (Lloyd iterations with one allreduce each; k-means‖, k-means++, random
//!   or given initial centroids), and [`dmd`](ml::dmd) (exact dynamic mode decomposition,
//!   snapshots as rows or as columns).
//! * [`kernels`]: the hand-written CPU kernels ([`gram`](kernels::gram): Gram matrices of
//!   prepared rows and the triangular solve of CholeskyQR2; [`skinny`](kernels::skinny): tall ×
//!   small products; k-means' fused distance → argmin → accumulate pass), the one view of a
//!   CPU tensor's elements as slices they read through, the run-time detection of the
//!   instruction set (AVX2 + FMA, or portable code), and the [`Policy`](kernels::Policy)
//!   (`Auto`: the kernels where they apply; `TensorOnly`: always libtorch) that decides whether
//!   they run.
//! * [`device`]: the compute device setting (`cpu`, `cuda`, `auto`) and the thread count per
//!   rank.
//! * [`memory`]: pre-faulting and huge-page advice for large local tensors, and the allocator
//!   setting for binaries ([`memory::retain_freed_memory`]).
//! * [`progress`]: progress events of long collective operations, shown by one sink.
//! * [`error`]: [`EngineError`]. Library code returns it and never panics on user input.
//!
//! Shapes are written rows × columns. Data matrices are n × d: one row per table row, one column
//! per feature. "Split 0" means the rows are distributed over the ranks: each rank holds a
//! contiguous block of rows, in rank order, and a rank may hold none. "Split none" means every
//! rank holds the whole array (replicated). Tables load as split-0 arrays. Small results (R
//! factors, Σ and V, components, centroids, DMD's modes in the row layout) are replicated, while
//! results with one row per input row (Q, U, scores, assignments) are split like the input.
//! Operations are collective unless their documentation says "local": every rank calls them in
//! the same order.

pub mod comm;
pub mod cuda;
pub mod device;
pub mod dndarray;
pub mod error;
pub mod kernels;
pub mod linalg;
pub mod memory;
pub mod ml;
pub mod progress;
mod rng;
pub mod runtime;

pub use comm::{Comm, CommError, ReduceOp, Round, RoundPattern};
pub use device::DeviceSetting;
pub use dndarray::DNDarray;
pub use error::{EngineError, Result};
