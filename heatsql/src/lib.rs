//! heatsql: a distributed SQL and array engine for scientific data.
//!
//! The same program runs on every MPI rank (`mpirun -n P …`). Today this facade re-exports the
//! engine: [`Comm`] (the MPI layer) and [`DNDarray`] (the distributed n-dimensional array).
//! `HeatContext`, the SQL entry point, arrives with the shell and embedding issue (#5).

pub use engine::{Comm, CommError, DNDarray, DeviceSetting, EngineError, comm, dndarray};

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
