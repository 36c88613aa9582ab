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
        pub device: String, default = "auto".to_string()
        /// The float type of table functions' arrays: 'float64' or 'float32'; a function's
        /// `dtype =>` argument overrides it.
        pub dtype: String, default = "float64".to_string()
    }
}

impl ConfigExtension for HeatsqlOptions {
    const PREFIX: &'static str = "heatsql";
}

/// Whether `heatsql.progress` is on in this task's session (on when the extension is absent).
pub fn progress_enabled(ctx: &TaskContext) -> bool {
    ctx.session_config()
        .options()
        .extensions
        .get::<HeatsqlOptions>()
        .is_none_or(|o| o.progress)
}
