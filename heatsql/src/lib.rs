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

/// A one-line description of this rank's runtime, as `heatsql --info` prints it: rank, ranks
/// (on the node), libtorch's version and whether its CUDA support loaded (if not, why: the
/// first missing library), the GPUs it sees, the device this rank computes on (or why the
/// device setting cannot be used), libtorch's threads, the CPU kernel policy, DataFusion's
/// version. Never fails: what is wrong is part of the line.
pub fn runtime_info(comm: &Comm) -> String {
    let device = DeviceSetting::from_env()
        .and_then(|s| s.resolve(comm.local_rank()).map(|d| (s, d)))
        .map_or_else(
            |e| format!("unusable ({e})"),
            |(s, d)| format!("{} (setting {s:?})", engine::device::name(d)).to_lowercase(),
        );
    format!(
        "rank {}/{} (local {}/{}): libtorch {}, CUDA support {}, GPUs {}, device {}, libtorch threads {}, cpu kernels {}, datafusion {}",
        comm.rank(),
        comm.size(),
        comm.local_rank(),
        comm.local_size(),
        engine::cuda::libtorch_version().unwrap_or_else(|| "(version unknown)".into()),
        engine::cuda::load().describe(),
        engine::cuda::device_count(),
        device,
        tch::get_num_threads(),
        if engine::kernels::policy() == engine::kernels::Policy::Auto {
            "on"
        } else {
            "off"
        },
        connectors::DATAFUSION_VERSION,
    )
}
