//! [`Call`]: a planned call of a registered function as the plan nodes hold it.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use datafusion::logical_expr::LogicalPlan;
use futures::future::BoxFuture;

use super::{FunctionDef, Layout, Planned, RunContext, TableFunction};
use crate::convert::LoadInput;

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
