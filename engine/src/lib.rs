//! heatsql's numerical core.
//!
//! * [`comm`]: the one layer that talks to MPI (rsmpi). Every other module and crate moves data
//!   between ranks only through it.
//! * [`DNDarray`]: a distributed n-dimensional array in the style of Heat: a global shape, at most
//!   one split axis, and a local `tch::Tensor` per rank holding that rank's slab of the split axis.
//! * [`device`]: the compute device setting (`cpu`, `cuda`, `auto`) and the per-rank thread count.
//! * [`linalg`]: TSQR and the sign convention of singular vectors.
//! * [`ml`]: PCA (k-means and DMD to come).
//! * [`memory`]: huge pages for large local tensors, allocator settings for binaries.
//! * [`progress`]: progress events of long collective operations, shown by one sink.
//!
//! Shapes are written rows × columns; "split 0" means rows are distributed over ranks (each
//! rank holds a contiguous block of rows, in rank order), "split none" means every rank holds the
//! whole array (replicated).

pub mod comm;
pub mod device;
pub mod dndarray;
pub mod error;
pub mod linalg;
pub mod memory;
pub mod ml;
pub mod progress;
mod rng;
mod simd;
pub mod testkit;

pub use comm::{Comm, CommError, ReduceOp, Round, RoundPattern};
pub use device::DeviceSetting;
pub use dndarray::DNDarray;
pub use error::{EngineError, Result};
