//! The explicit start of a heatsql process: MPI, the abort handler, libtorch's CUDA backend
//! and libtorch's threads.

use std::sync::Once;

use crate::comm::Comm;

static THREADS: Once = Once::new();

/// Starts heatsql's runtime in this process and returns the world communicator: MPI (on
/// first use, with the panic/abort handler of [`crate::comm::abort`]), libtorch's CUDA backend
/// when it and its libraries are installed ([`crate::cuda::load`]), and libtorch's intra-op
/// thread count set to this rank's share of the node's cores
/// ([`crate::device::threads_per_rank`]: `HEATSQL_THREADS` if set, else the node's cores over
/// the ranks on the node, at most [`crate::device::GPU_RANK_THREADS`] on a rank that computes
/// on a GPU). Idempotent. `heatsql::HeatContext::new` calls it; a program that
/// uses the engine alone calls it first. [`Comm::world`] alone initialises MPI but leaves
/// libtorch's threads as they are.
pub fn start() -> &'static Comm {
    let comm = Comm::world();
    crate::cuda::load();
    THREADS.call_once(|| crate::device::configure_threads(comm.local_size()));
    comm
}
