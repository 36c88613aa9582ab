//! heatsql's session settings (`SET heatsql.…`), a DataFusion configuration extension.

use datafusion::common::config::ConfigExtension;
use datafusion::common::extensions_options;
use datafusion::execution::TaskContext;

extensions_options! {
    /// Settings under the `heatsql.` prefix, the same on every rank (every rank runs every
    /// `SET`).
    pub struct HeatsqlOptions {
        /// Report the progress of long operations (query stages, solver iterations) to the
        /// progress sink, which the shell shows on rank 0 when it writes to a terminal.
        pub progress: bool, default = true
        /// Where table functions compute: 'auto' (CUDA when libtorch sees a GPU), 'cpu' or
        /// 'cuda' (GPU local_rank % gpus); a function's `device =>` argument overrides it.
        /// Default: `HEATSQL_DEVICE` (the shell's `--device`), else 'auto'.
        pub device: String, default = std::env::var("HEATSQL_DEVICE").unwrap_or_else(|_| "auto".to_string())
        /// The float type of table functions' arrays: 'float64' or 'float32'; a function's
        /// `dtype =>` argument overrides it.
        pub dtype: String, default = "float64".to_string()
        /// The most bytes a rank sends (and receives) in one round of an MPI exchange
        /// (shuffle, gather, concat): exchanges of any size run as rounds of at most this
        /// many bytes per rank, so no MPI message exceeds MPI's counts and a rank holds at
        /// most about twice this in flight. Default 32 MiB, or `HEATSQL_EXCHANGE_ROUND_BYTES`.
        pub exchange_round_bytes: usize, default = default_round_bytes()
        /// Join key filters across ranks: a hash join whose two inputs are both shuffled
        /// drops the probe rows whose key no build row has before they are shuffled (a
        /// Bloom filter of the build keys, ORed over the ranks; `MpiShuffleExec: …,
        /// key_filter=build|probe` in EXPLAIN).
        pub join_key_filters: bool, default = true
        /// Run the hand-written CPU kernels (Gram/CholeskyQR2 passes, SVD's U, k-means'
        /// assignment) where they apply to CPU tensors; false: always libtorch, the path GPUs
        /// take (same results within rounding). Default: on, or `HEATSQL_CPU_KERNELS`.
        pub cpu_kernels: bool, default = engine::kernels::policy_from_env() == engine::kernels::Policy::Auto
    }
}

/// The default of `heatsql.exchange_round_bytes`: `HEATSQL_EXCHANGE_ROUND_BYTES` when set to a
/// number of bytes, else 32 MiB.
pub fn default_round_bytes() -> usize {
    std::env::var("HEATSQL_EXCHANGE_ROUND_BYTES")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(DEFAULT_ROUND_BYTES)
}

/// 32 MiB: large enough that the two collectives of a round cost little next to its bytes,
/// small enough that rounds bound a rank's memory on any machine.
pub const DEFAULT_ROUND_BYTES: usize = 32 << 20;

/// The smallest round accepted: 4 KiB.
pub const MIN_ROUND_BYTES: usize = 4 << 10;

/// `heatsql.exchange_round_bytes` of this task's session, checked.
pub fn exchange_round_bytes(ctx: &TaskContext) -> datafusion::error::Result<usize> {
    let n = options(ctx).map_or_else(default_round_bytes, |o| o.exchange_round_bytes);
    if n < MIN_ROUND_BYTES {
        return Err(datafusion::error::DataFusionError::Configuration(format!(
            "heatsql.exchange_round_bytes = {n}: expected at least {MIN_ROUND_BYTES} bytes"
        )));
    }
    Ok(n)
}

impl ConfigExtension for HeatsqlOptions {
    const PREFIX: &'static str = "heatsql";
}

/// This task's session's heatsql settings (`None` when the session has no heatsql extension:
/// every setting then has its default).
fn options(ctx: &TaskContext) -> Option<&HeatsqlOptions> {
    ctx.session_config().options().extensions.get::<HeatsqlOptions>()
}

/// Whether `heatsql.progress` is on in this task's session (on when the extension is absent).
pub fn progress_enabled(ctx: &TaskContext) -> bool {
    options(ctx).is_none_or(|o| o.progress)
}

/// The kernel policy `heatsql.cpu_kernels` selects in this task's session (the environment's
/// when the extension is absent).
pub fn kernel_policy(ctx: &TaskContext) -> engine::kernels::Policy {
    match options(ctx) {
        Some(o) if o.cpu_kernels => engine::kernels::Policy::Auto,
        Some(_) => engine::kernels::Policy::TensorOnly,
        None => engine::kernels::policy_from_env(),
    }
}

/// Whether `heatsql.join_key_filters` is on in this task's session (on when the extension is
/// absent).
pub fn join_key_filters_enabled(ctx: &TaskContext) -> bool {
    options(ctx).is_none_or(|o| o.join_key_filters)
}
