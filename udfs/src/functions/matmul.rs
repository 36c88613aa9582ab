//! `matmul(a, b, transpose_a => BOOL, a_order => 'col', b_order => 'col', keep => …)`: the
//! product of two relations read as matrices, over `engine::linalg::{matmul, matmul_tn}`.
//!
//! Shapes: `a`'s numeric columns (or `columns =>`) form A (n rows × k, split by rows as the
//! input is); `b`'s numeric columns form B (k rows × m). A row's position is its input order
//! (file order), or with `a_order`/`b_order` its place in the order of that column (not a
//! feature): the rows are then sorted across ranks where they are
//! ([`crate::exchange::order_rows`], balanced, never gathered; duplicate, NULL or NaN
//! positions are refused). The product A·B (n × m) is row-aligned with `a`
//! (keep columns, then one column per column of `b`, named like them), computed by a ring that
//! passes B's row blocks between the ranks; neither operand is gathered. `transpose_a => true`
//! gives Aᵀ·B (k × m, both inputs with the same rows): `feature` (a's column names) plus `b`'s
//! columns, from local products and one allreduce.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::error::Result;
use futures::future::BoxFuture;

use super::args::{ArgKind, ArgSpec, Args, arg};
use super::features::{
    FeatureArgs, feature_args_ordered, keep_names, names, order_field, ordered, output_schema, project, take_inputs,
};
use super::output::{float_array, scores_batches, values};
use super::{FunctionDef, Layout, Output, Planned, RunContext, TableFunction, exec_error};
use crate::convert::{LoadInput, NullPolicy, is_numeric};
use crate::settings::HeatsqlOptions;

/// `matmul` in the registry.
pub const DEF: FunctionDef = FunctionDef {
    name: "matmul",
    exec_name: "MatmulExec",
    inputs: &["a", "b"],
    args: &[&MATMUL_ARGS],
    plan,
};

const MATMUL_ARGS: [ArgSpec; 3] = [
    arg("transpose_a", ArgKind::Bool),
    arg("a_order", ArgKind::Text),
    arg("b_order", ArgKind::Text),
];

/// A planned `matmul(...)` call.
#[derive(Debug)]
struct Matmul {
    /// A's feature and keep columns, dtype, device.
    a: FeatureArgs,
    /// B's columns (all numeric columns of `b`).
    b: FeatureArgs,
    transpose_a: bool,
    /// The columns that order a's and b's rows (sorted across ranks before the product).
    a_order: Option<String>,
    b_order: Option<String>,
    out: Output,
}

/// Plans `matmul(a, b, …)`: A's columns from `columns`/`keep`, B's are all its numeric
/// columns; k (A's columns, or with `transpose_a` the rows) must match B's rows, checked when
/// the rows are known.
fn plan(mut args: Args, settings: &HeatsqlOptions) -> Result<Planned> {
    if args.inputs.len() != 2 {
        return Err(
            args.error("expected 2 positional relation arguments (a, b), matmul(a, b, …): a is n × k, b is k × m")
        );
    }
    let b_input = args.inputs.remove(1);
    let a_input = args.inputs.remove(0);
    let a_order = order_field(&args, &a_input, "a_order")?;
    let b_order = order_field(&args, &b_input, "b_order")?;
    let mut a = feature_args_ordered(&args, &a_input, settings, a_order.as_ref().map(|f| ("a_order", f)))?;
    if a.nulls == NullPolicy::Drop {
        return Err(args.error("nulls => 'drop' would move rows of the operands; filter NULLs in a subquery"));
    }
    // B: every numeric column but b_order, with A's dtype and device.
    let b_fields = b_input.schema().fields();
    let b_features: Vec<String> = b_fields
        .iter()
        .filter(|f| is_numeric(f.data_type()) && b_order.as_ref().is_none_or(|o| o.name() != f.name()))
        .map(|f| f.name().clone())
        .collect();
    if b_features.is_empty() {
        return Err(args.error(format!(
            "b has no numeric columns{} (columns: {})",
            if b_order.is_some() { " besides b_order" } else { "" },
            b_fields
                .iter()
                .map(|f| format!("{} {}", f.name(), f.data_type()))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let b = FeatureArgs {
        features: b_features,
        keep: Vec::new(),
        ..a.clone()
    };
    let transpose_a = args.bool("transpose_a").unwrap_or(false);
    let float = a.float_type();
    let schema = if transpose_a {
        if !a.keep.is_empty() {
            return Err(
                args.error("keep => does not apply with transpose_a => true (the result has one row per column of a)")
            );
        }
        let mut fields = vec![Field::new("feature", DataType::Utf8, false)];
        fields.extend(b.features.iter().map(|n| Field::new(n, float.clone(), false)));
        Arc::new(Schema::new(fields))
    } else {
        if let Some(k) = a.keep.iter().find(|k| b.features.contains(k.name())) {
            return Err(args.error(format!(
                "keep column '{}' has the name of a column of b; rename one of them",
                k.name()
            )));
        }
        output_schema(&a.keep, &b.features, &float, false)
    };
    if transpose_a {
        a.keep.clear();
    }
    // The order columns travel with the rows until the rows are sorted.
    let with_order = |keep: &[Field], order: &Option<Field>| {
        let mut fields = keep.to_vec();
        if let Some(o) = order
            && !fields.iter().any(|f| f.name() == o.name())
        {
            fields.push(o.clone());
        }
        fields
    };
    let a_plan = project(a_input, &with_order(&a.keep, &a_order), &a.features)?;
    let b_plan = project(b_input, &with_order(&[], &b_order), &b.features)?;
    let call = Matmul {
        a,
        b,
        transpose_a,
        a_order: a_order.map(|f| f.name().clone()),
        b_order: b_order.map(|f| f.name().clone()),
        out: Output::new(
            schema,
            if transpose_a {
                Layout::Replicated
            } else {
                Layout::RowSplit
            },
        ),
    };
    Ok(Planned::new(call, vec![a_plan, b_plan]))
}

impl TableFunction for Matmul {
    fn describe(&self) -> String {
        let order = |o: &Option<String>, arg: &str| o.as_ref().map(|c| format!("{arg}={c}, ")).unwrap_or_default();
        format!(
            "transpose_a={}, {}{}a columns={}, b columns={}, keep={}, {}",
            self.transpose_a,
            order(&self.a_order, "a_order"),
            order(&self.b_order, "b_order"),
            names(&self.a.features),
            names(&self.b.features),
            names(&keep_names(&self.a.keep)),
            self.a.describe_options()
        )
    }

    fn output(&self) -> &Output {
        &self.out
    }

    fn run<'a>(&'a self, inputs: Vec<LoadInput>, ctx: RunContext<'a>) -> BoxFuture<'a, Result<Vec<RecordBatch>>> {
        Box::pin(async move {
            let [a_in, b_in] = take_inputs("matmul", inputs)?;
            let comm = ctx.comm;
            let device = self.a.device(&ctx)?;
            let a_in = ordered(a_in, "matmul", "a_order", self.a_order.as_deref(), comm).await?;
            let b_in = ordered(b_in, "matmul", "b_order", self.b_order.as_deref(), comm).await?;
            let a = self.a.load(comm, "matmul", a_in, device).await?;
            let b = self.b.load(comm, "matmul", b_in, device).await?;
            let batch_size = ctx.task.session_config().batch_size();
            if self.transpose_a {
                let c = engine::linalg::matmul_tn(&a.array, &b.array).map_err(exec_error)?;
                let float = self.out.schema.field(1).data_type().clone();
                let mut columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from(self.a.features.clone()))];
                for j in 0..self.b.features.len() as i64 {
                    columns.push(float_array(values(&c.select(1, j))?, &float)?);
                }
                Ok(vec![RecordBatch::try_new(Arc::clone(&self.out.schema), columns)?])
            } else {
                let c = engine::linalg::matmul(&a.array, &b.array).map_err(exec_error)?;
                let c_t = c.local().tr().contiguous();
                scores_batches(
                    c_t,
                    self.b.features.len(),
                    &self.out.schema,
                    a.keep.as_ref(),
                    batch_size,
                )
            }
        })
    }
}
