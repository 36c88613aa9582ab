//! `svd(input, k => …, method => …, output => 's' | 'u' | 'v', …)`: the truncated SVD of the
//! input's feature columns, over `engine::linalg::svd`.
//!
//! Shapes: the feature columns form X (n rows × d features, split by rows as the input is);
//! X ≈ U Σ Vᵀ. `u` is n × k, row-aligned with the input (on the rank of its input row); `s`
//! (k rows) and `v` (d rows) are small and the same on every rank.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::error::{DataFusionError, Result};
use engine::linalg::{Solver, auto_svd, svd};
use futures::future::BoxFuture;

use super::args::{ArgKind, ArgSpec, Args, SOLVER_ARGS, arg, solver_knobs};
use super::features::{FeatureArgs, feature_args, output_schema, project, take_inputs};
use super::output::{float_array, scores_batches, values};
use super::{FunctionDef, Layout, Output, Planned, RunContext, TableFunction, exec_error};
use crate::convert::LoadInput;
use crate::settings::HeatsqlOptions;

/// `svd` in the registry.
pub const DEF: FunctionDef = FunctionDef {
    name: "svd",
    exec_name: "SvdExec",
    inputs: &["input"],
    args: &[&SVD_ARGS, &SOLVER_ARGS],
    plan,
};

const SVD_ARGS: [ArgSpec; 3] = [
    arg("k", ArgKind::Int),
    arg("method", ArgKind::Text),
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
    method: Solver,
    method_name: &'static str,
    output: SvdOutput,
    out: Output,
}

/// `prefix1` … `prefixN`.
fn numbered(prefix: &str, n: i64) -> Vec<String> {
    (1..=n).map(|i| format!("{prefix}{i}")).collect()
}

/// Plans `svd(input, k => …)`: checks the arguments and fixes the output schema; the input is
/// reduced to the keep and feature columns. k against min(rows, columns) is checked when the
/// rows are known (at execution, the same error on every rank).
fn plan(mut args: Args, settings: &HeatsqlOptions) -> Result<Planned> {
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
        "auto" => auto_svd(d, k).name(),
        other => other,
    };
    let method = match chosen {
        "tsqr" => Solver::Tsqr,
        "randomized" => Solver::Randomized {
            oversamples,
            power_iter,
            seed,
        },
        _ => Solver::Hierarchical { oversamples },
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
    let input = project(input, &f.keep, &f.features)?;
    let layout = if output == SvdOutput::U {
        Layout::RowSplit
    } else {
        Layout::Replicated
    };
    let call = SvdCall {
        f,
        k,
        method,
        method_name: if name == "auto" { "tsqr (auto)" } else { name },
        output,
        out: Output::new(schema, layout),
    };
    Ok(Planned::new(call, vec![input]))
}

impl TableFunction for SvdCall {
    fn describe(&self) -> String {
        let method = match self.method {
            Solver::Randomized {
                oversamples,
                power_iter,
                seed,
            } => format!("randomized(oversamples={oversamples}, power_iter={power_iter}, seed={seed})"),
            Solver::Hierarchical { oversamples } => format!("hierarchical(oversamples={oversamples})"),
            _ => self.method_name.to_string(),
        };
        format!(
            "k={}, method={method}, output={}, {}",
            self.k,
            match self.output {
                SvdOutput::S => "s",
                SvdOutput::U => "u",
                SvdOutput::V => "v",
            },
            self.f.describe()
        )
    }

    fn output(&self) -> &Output {
        &self.out
    }

    fn run<'a>(&'a self, inputs: Vec<LoadInput>, ctx: RunContext<'a>) -> BoxFuture<'a, Result<Vec<RecordBatch>>> {
        Box::pin(async move {
            let [input] = take_inputs("svd", inputs)?;
            let device = self.f.device(&ctx)?;
            let loaded = self.f.load(ctx.comm, "svd", input, device).await?;
            let r = svd(&loaded.array, self.k, self.method, self.output == SvdOutput::U).map_err(exec_error)?;
            let batch_size = ctx.task.session_config().batch_size();
            match self.output {
                SvdOutput::U => {
                    let u =
                        r.u.ok_or_else(|| DataFusionError::Internal("svd: U was not computed".into()))?;
                    let u_t = u.local().tr().contiguous();
                    scores_batches(u_t, self.k as usize, &self.out.schema, loaded.keep.as_ref(), batch_size)
                }
                SvdOutput::V => {
                    let float = self.out.schema.field(1).data_type().clone();
                    let mut columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from(self.f.features.clone()))];
                    for j in 0..self.k {
                        columns.push(float_array(values(&r.v.select(1, j))?, &float)?);
                    }
                    Ok(vec![RecordBatch::try_new(Arc::clone(&self.out.schema), columns)?])
                }
                SvdOutput::S => Ok(vec![RecordBatch::try_new(
                    Arc::clone(&self.out.schema),
                    vec![
                        Arc::new(Int64Array::from((1..=self.k).collect::<Vec<_>>())),
                        Arc::new(Float64Array::from(values(&r.s)?)),
                    ],
                )?]),
            }
        })
    }
}
