//! heatsql: a distributed SQL and array engine for scientific data.
//!
//! The same program runs on every MPI rank (`mpirun -n P …`). [`HeatContext`] is the SQL entry
//! point (distributed Parquet tables, `COPY TO`); [`Comm`] is the MPI layer and [`DNDarray`] the
//! distributed n-dimensional array; [`convert`] moves data between query results and arrays.

mod context;
mod dense;
mod frame;
mod settings;

pub use context::HeatContext;
/// The DataFusion heatsql is built on (with its Arrow and Parquet), for embedders.
pub use datafusion;
pub use engine::runtime::start;
pub use engine::{Comm, CommError, DNDarray, DeviceSetting, EngineError, ReduceOp, comm, dndarray, memory, progress};
pub use frame::HeatFrame;
pub use settings::{REQUIRED_SETTINGS, partitions_per_rank};
/// libtorch bindings (the DNDarray's local tensors are `tch::Tensor`s).
pub use tch;
pub use udfs::convert;

/// A one-line description of this rank's runtime (rank, ranks, ranks on the node, libtorch
/// threads, device), as the `heatsql --info` command prints it.
pub fn runtime_info() -> Result<String, EngineError> {
    let comm = Comm::world();
    let device = DeviceSetting::from_env()?.resolve(comm.local_rank())?;
    Ok(format!(
        "rank {}/{} (local {}/{}), libtorch threads {}, device {:?}, cuda devices {}, datafusion {}",
        comm.rank(),
        comm.size(),
        comm.local_rank(),
        comm.local_size(),
        tch::get_num_threads(),
        device,
        tch::Cuda::device_count(),
        connectors::DATAFUSION_VERSION,
    ))
}
