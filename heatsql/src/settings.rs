//! The DataFusion settings a distributed plan depends on, shared by [`crate::HeatContext`]
//! (which sets them) and [`crate::HeatFrame`] (which checks they still hold).

use engine::Comm;

/// DataFusion settings a distributed plan depends on, with the values heatsql sets. A query
/// run after one of them was changed (`SET …`) fails with an error naming it. Join dynamic
/// filters must be off only with several ranks: one rank runs every partition of a join, so
/// it keeps DataFusion's default (on) and a user may set it either way.
pub const REQUIRED_SETTINGS: [(&str, &str); 4] = [
    ("datafusion.optimizer.repartition_file_scans", "false"),
    (JOIN_DYNAMIC_FILTERS, "false"),
    ("datafusion.execution.enable_file_stream_work_stealing", "false"),
    (
        "datafusion.execution.target_partitions",
        "a multiple of the number of ranks",
    ),
];

/// The setting of DataFusion's hash-join dynamic filters (off with several ranks).
pub(crate) const JOIN_DYNAMIC_FILTERS: &str = "datafusion.optimizer.enable_join_dynamic_filter_pushdown";

/// The partitions each rank runs at once: its compute threads
/// ([`engine::device::threads_per_rank`]: `HEATSQL_THREADS` or `--threads` if set, else the
/// node's cores over the ranks on the node). One rank per node of 64 cores plans 64 partitions
/// per rank; under `mpirun -n 2` on two cores each rank runs one.
pub fn partitions_per_rank(comm: &Comm) -> usize {
    engine::device::threads_per_rank(comm.local_size())
}
