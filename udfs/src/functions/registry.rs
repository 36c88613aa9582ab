//! The one list of heatsql's table functions: each [`FunctionDef`] names a function, its
//! positional inputs, its own named arguments and its planner. Everything else (the relation
//! planner, the rewrite of relation arguments, argument checking, input layouts) is derived
//! from this list.
//!
//! Adding a function: write `functions/<name>.rs` with a `pub const DEF: FunctionDef`, its
//! planner and its [`TableFunction`] implementation, and add `&<name>::DEF` to [`FUNCTIONS`]
//! (docs/architecture.md shows the steps).

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use datafusion::logical_expr::LogicalPlan;
use futures::future::BoxFuture;

use super::{FunctionDef, Layout, Planned, RunContext, TableFunction};
use crate::convert::LoadInput;

/// The functions, in the order the documentation lists them.
pub const FUNCTIONS: [&FunctionDef; 7] = [
    &super::pca::DEF,
    &super::pca_project::DEF,
    &super::kmeans::DEF,
    &super::kmeans_predict::DEF,
    &super::svd::DEF,
    &super::matmul::DEF,
    &super::dmd::DEF,
];

/// The function called `name` (case-insensitive), if heatsql has one.
pub fn find(name: &str) -> Option<&'static FunctionDef> {
    FUNCTIONS.iter().copied().find(|d| d.name.eq_ignore_ascii_case(name))
}

/// A planned call as the plan nodes hold it: the definition, the function, and where each of
/// its relations' rows must be.
#[derive(Debug, Clone)]
pub struct Call {
    /// The registry entry.
    pub def: &'static FunctionDef,
    /// The resolved call.
    pub function: Arc<dyn TableFunction>,
    /// One per relation (inputs, then models).
    pub input_layouts: Vec<Layout>,
}

impl Call {
    /// The call of `def` from its planner's result, with its relations in node order.
    pub fn new(def: &'static FunctionDef, planned: Planned) -> (Call, Vec<LogicalPlan>) {
        let Planned {
            function,
            inputs,
            models,
        } = planned;
        let mut input_layouts = vec![Layout::RowSplit; inputs.len()];
        input_layouts.extend(std::iter::repeat_n(Layout::Replicated, models.len()));
        let relations = inputs.into_iter().chain(models).collect();
        (
            Call {
                def,
                function,
                input_layouts,
            },
            relations,
        )
    }

    /// The SQL name.
    pub fn name(&self) -> &'static str {
        self.def.name
    }

    /// The physical node's name.
    pub fn exec_name(&self) -> &'static str {
        self.def.exec_name
    }

    /// The resolved arguments for EXPLAIN; also the call's identity when plans are compared.
    pub fn describe(&self) -> String {
        self.function.describe()
    }

    /// The output columns.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.function.output().schema)
    }

    /// Where the output rows are.
    pub fn output_layout(&self) -> Layout {
        self.function.output().layout
    }

    /// Collective: runs the function (see [`TableFunction::run`]).
    pub fn run<'a>(&'a self, inputs: Vec<LoadInput>, ctx: RunContext<'a>) -> BoxFuture<'a, Result<Vec<RecordBatch>>> {
        self.function.run(inputs, ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::super::args::COMMON;
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
