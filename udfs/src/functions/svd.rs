//! `svd(input, k => …, method => …, output => 's' | 'u' | 'v', …)`: the truncated SVD of the
//! input's feature columns, over `engine::linalg::svd`.
//!
//! Shapes: the feature columns form X (n rows × d features, split by rows as the input is);
//! X ≈ U Σ Vᵀ. `u` is n × k, row-aligned with the input (on the rank of its input row); `s`
//! (k rows) and `v` (d rows) are small and the same on every rank.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::LogicalPlan;
use datafusion::logical_expr::planner::RelationPlannerContext;
use datafusion::sql::sqlparser::ast::FunctionArg;
use engine::linalg::{Method, svd};
use futures::future::BoxFuture;

use super::args::{ArgKind, ArgSpec, Args, arg};
use super::io::{names, solver_knobs, specs};
use super::pca::{float_array, load_spec, one_input, scores_batches, values};
use super::plan::{FeatureArgs, feature_args, output_schema};
use super::{Layout, RunContext, TableFunction, exec_error};
use crate::convert::{LoadInput, load};
use crate::settings::HeatsqlOptions;

const SVD_ARGS: [ArgSpec; 6] = [
    arg("k", ArgKind::Int),
    arg("method", ArgKind::Text),
    arg("oversamples", ArgKind::Int),
    arg("power_iter", ArgKind::Int),
    arg("seed", ArgKind::Int),
    arg("output", ArgKind::Text),
];

/// Which table `svd` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SvdOutput {
    S,
    U,
    V,
}

/// A planned `svd(...)` call.
#[derive(Debug)]
struct SvdCall {
    f: FeatureArgs,
    k: i64,
    method: Method,
    method_name: &'static str,
    output: SvdOutput,
    schema: SchemaRef,
}

/// `prefix1` … `prefixN`.
fn numbered(prefix: &str, n: i64) -> Vec<String> {
    (1..=n).map(|i| format!("{prefix}{i}")).collect()
}

/// Plans `svd(input, k => …)`: checks the arguments and fixes the output schema; the input is
/// reduced to the keep and feature columns. k against min(rows, columns) is checked when the
/// rows are known (at execution, the same error on every rank).
pub fn plan_svd(
    args: Vec<FunctionArg>,
    ctx: &mut dyn RelationPlannerContext,
    settings: &HeatsqlOptions,
) -> Result<(Arc<dyn TableFunction>, Vec<LogicalPlan>)> {
    let mut args = Args::parse("svd", &["input"], &specs(&SVD_ARGS), args, ctx)?;
    let input = args.inputs.remove(0);
    let mut f = feature_args(&args, &input, settings)?;
    let d = f.features.len() as i64;
    let k = match args.int("k") {
        Some(k) if k < 1 => return Err(args.error(format!("k = {k} is out of range; expected k ≥ 1"))),
        // min(rows, columns) ≤ d is known now; the rows are checked at execution.
        Some(k) if k > d => {
            return Err(args.error(format!(
                "k = {k} exceeds min(rows, columns): the input has {d} feature columns"
            )));
        }
        Some(k) => k,
        None => {
            return Err(args.error("missing argument k (the number of singular triplets), e.g. svd(points, k => 3)"));
        }
    };
    let name = args.choice("method", &["auto", "tsqr", "randomized", "hierarchical"], "auto")?;
    let (oversamples, power_iter, seed) = solver_knobs(&args, "method", name)?;
    // `auto` is resolved now (d is known), with the arguments given.
    let chosen = match name {
        "auto" => match engine::linalg::svd::auto_method(d, k) {
            Method::Tsqr => "tsqr",
            _ => "randomized",
        },
        other => other,
    };
    let method = match chosen {
        "tsqr" => Method::Tsqr,
        "randomized" => Method::Randomized {
            oversamples,
            power_iter,
            seed,
        },
        _ => Method::Hierarchical { oversamples },
    };
    let output = match args.choice("output", &["s", "u", "v"], "s")? {
        "u" => SvdOutput::U,
        "v" => SvdOutput::V,
        _ => SvdOutput::S,
    };
    let float = f.float_type();
    let schema = match output {
        SvdOutput::U => output_schema(&f.keep, &numbered("u", k), &float, false),
        SvdOutput::V => {
            let mut fields = vec![Field::new("feature", DataType::Utf8, false)];
            fields.extend(numbered("v", k).iter().map(|n| Field::new(n, float.clone(), false)));
            Arc::new(Schema::new(fields))
        }
        SvdOutput::S => Arc::new(Schema::new(vec![
            Field::new("index", DataType::Int64, false),
            Field::new("singular_value", DataType::Float64, false),
        ])),
    };
    if output != SvdOutput::U {
        f.keep.clear();
    }
    let input = super::plan::project(input, &f.keep, &f.features)?;
    let call = SvdCall {
        f,
        k,
        method,
        method_name: if name == "auto" { "tsqr (auto)" } else { name },
        output,
        schema,
    };
    Ok((Arc::new(call), vec![input]))
}

impl TableFunction for SvdCall {
    fn name(&self) -> &'static str {
        "svd"
    }

    fn exec_name(&self) -> &'static str {
        "SvdExec"
    }

    fn describe(&self) -> String {
        let method = match self.method {
            Method::Randomized {
                oversamples,
                power_iter,
                seed,
            } => format!("randomized(oversamples={oversamples}, power_iter={power_iter}, seed={seed})"),
            Method::Hierarchical { oversamples } => format!("hierarchical(oversamples={oversamples})"),
            _ => self.method_name.to_string(),
        };
        format!(
            "k={}, method={method}, output={}, columns={}, keep={}, {}",
            self.k,
            match self.output {
                SvdOutput::S => "s",
                SvdOutput::U => "u",
                SvdOutput::V => "v",
            },
            names(&self.f.features),
            names(&self.f.keep.iter().map(|f| f.name().clone()).collect::<Vec<_>>()),
            self.f.describe()
        )
    }

    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn output_layout(&self) -> Layout {
        match self.output {
            SvdOutput::U => Layout::RowSplit,
            _ => Layout::Replicated,
        }
    }

    fn input_layouts(&self) -> Vec<Layout> {
        vec![Layout::RowSplit]
    }

    fn run<'a>(&'a self, inputs: Vec<LoadInput>, ctx: RunContext<'a>) -> BoxFuture<'a, Result<Vec<RecordBatch>>> {
        Box::pin(async move {
            let input = one_input(self.name(), inputs)?;
            let comm = ctx.comm;
            let device = comm
                .agree(self.f.device.resolve(comm.local_rank()))
                .map_err(crate::exchange::agreed)?;
            let spec = load_spec("svd", &self.f, Some(self.f.features.clone()), device);
            let loaded = load(input, &spec).await.map_err(DataFusionError::from)?;
            let r = svd(&loaded.array, self.k, self.method, self.output == SvdOutput::U).map_err(exec_error)?;
            let batch_size = ctx.task.session_config().batch_size();
            match self.output {
                SvdOutput::U => {
                    let u =
                        r.u.ok_or_else(|| DataFusionError::Internal("svd: U was not computed".into()))?;
                    let u_t = u.local().tr().contiguous();
                    scores_batches(u_t, self.k as usize, &self.schema, loaded.keep.as_ref(), batch_size)
                }
                SvdOutput::V => {
                    let float = self.schema.field(1).data_type().clone();
                    let mut columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from(self.f.features.clone()))];
                    for j in 0..self.k {
                        columns.push(float_array(values(&r.v.select(1, j))?, &float)?);
                    }
                    Ok(vec![RecordBatch::try_new(Arc::clone(&self.schema), columns)?])
                }
                SvdOutput::S => Ok(vec![RecordBatch::try_new(
                    Arc::clone(&self.schema),
                    vec![
                        Arc::new(Int64Array::from((1..=self.k).collect::<Vec<_>>())),
                        Arc::new(Float64Array::from(values(&r.s)?)),
                    ],
                )?]),
            }
        })
    }
}
