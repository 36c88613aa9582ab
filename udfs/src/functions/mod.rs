//! heatsql's table functions (`pca`, `pca_project`, …): SQL calls planned into plan nodes
//! that turn their input relation into a row-split DNDarray and run an `engine` algorithm.
//!
//! This file is the **registry**: the function files are declared below and listed once in
//! [`FUNCTIONS`] (each entry a [`FunctionDef`]: name, inputs, arguments, planner). The
//! relation planner, the rewrite of relation arguments, argument checking and input layouts
//! are derived from that list. Adding a function touches this file (its `pub mod` line and its
//! entry) and one new file, `functions/<name>.rs`, with a `pub const DEF: FunctionDef`, its
//! planner and its [`TableFunction`] implementation (docs/architecture.md shows the steps).
//!
//! The shared layer:
//! * [`def`]: the types every function shares ([`FunctionDef`], [`Planned`],
//!   [`TableFunction`], [`Output`], [`Layout`], [`RunContext`]).
//! * [`args`]: named arguments and their checks.
//! * [`features`]: feature and keep columns resolved against an input, output schemas, and
//!   the run preamble every function shares (the agreed device, the load).
//! * [`output`]: tensors and models to and from Arrow (columns, batches, model tables).
//! * [`plan`]: the [`FunctionRelationPlanner`] (a DataFusion `RelationPlanner`) and the
//!   logical node [`FunctionNode`] whose children are the relation arguments (so projections
//!   and filters reach the Parquet scans).
//! * [`call`]: [`Call`], a planned call as the plan nodes hold it.
//! * [`exec`]: [`FunctionExec`], the physical node. It is a collective stage of the distributed
//!   plan: when the stage runs (never while planning or under EXPLAIN), it drains this rank's
//!   share of each input, calls the function, and serves the output batches from memory.
//! * [`rewrite`]: table names given as relation arguments become subqueries before planning
//!   (DataFusion resolves a statement's tables first, and only sees those in relations).
//!
//! One file per function, holding only what is its own: [`pca`], [`pca_project`], [`kmeans`],
//! [`kmeans_predict`], [`svd`], [`matmul`], [`dmd`] (its time axis in `series`).
//!
//! A function is a [`TableFunction`]: its output schema is fixed when it is planned, and its
//! [`TableFunction::run`] is collective.

// The shared layer.
pub mod args;
pub mod call;
pub mod def;
pub mod exec;
pub mod features;
pub mod output;
pub mod plan;
pub mod rewrite;
mod series;
#[cfg(test)]
mod testing;

// The functions: one file each, listed again in FUNCTIONS.
pub mod dmd;
pub mod kmeans;
pub mod kmeans_predict;
pub mod matmul;
pub mod pca;
pub mod pca_project;
pub mod svd;

pub use call::Call;
pub(crate) use def::exec_error;
pub use def::{FunctionDef, Layout, Output, PlanFn, Planned, RunContext, TableFunction};
pub use exec::{FunctionExec, FunctionExtensionPlanner, FunctionQueryPlanner, install_in_builder};
pub use plan::{FunctionNode, FunctionRelationPlanner};

/// The functions, in the order the documentation lists them.
pub const FUNCTIONS: [&FunctionDef; 7] = [
    &pca::DEF,
    &pca_project::DEF,
    &kmeans::DEF,
    &kmeans_predict::DEF,
    &svd::DEF,
    &matmul::DEF,
    &dmd::DEF,
];

/// The function called `name` (case-insensitive), if heatsql has one.
pub fn find(name: &str) -> Option<&'static FunctionDef> {
    FUNCTIONS.iter().copied().find(|d| d.name.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::args::COMMON;
    use super::*;

    #[test]
    fn names_are_unique_and_lower_case() {
        for (i, d) in FUNCTIONS.iter().enumerate() {
            assert_eq!(d.name, d.name.to_ascii_lowercase());
            assert!(FUNCTIONS[..i].iter().all(|e| e.name != d.name), "{} twice", d.name);
            assert!(d.exec_name.ends_with("Exec"));
            assert!(!d.inputs.is_empty());
        }
    }

    #[test]
    fn find_is_case_insensitive() {
        assert_eq!(find("PCA").map(|d| d.name), Some("pca"));
        assert_eq!(find("Kmeans_Predict").map(|d| d.name), Some("kmeans_predict"));
        assert!(find("pca_fit").is_none());
    }

    #[test]
    fn relation_arguments_come_from_the_specs() {
        let relation_args = |f: &str| {
            let d = find(f).unwrap();
            d.specs()
                .iter()
                .filter(|a| d.takes_relation(a.name))
                .map(|a| a.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(relation_args("pca_project"), ["model"]);
        assert_eq!(relation_args("kmeans_predict"), ["centroids"]);
        assert_eq!(relation_args("kmeans"), ["init"]);
        assert!(relation_args("pca").is_empty());
        assert!(relation_args("matmul").is_empty());
    }

    #[test]
    fn own_arguments_do_not_shadow_the_common_ones() {
        for d in FUNCTIONS {
            for a in d.args.iter().copied().flatten() {
                assert!(COMMON.iter().all(|c| c.name != a.name), "{}: {}", d.name, a.name);
            }
        }
    }
}
