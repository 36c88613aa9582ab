//! `pca(input, k => …, output => 'scores' | 'loadings' | 'variance', …)`, over
//! `engine::ml::pca` (`pca_project` applies a fitted model to new rows).
//!
//! Shapes: the input's feature columns form X (n rows × d features, split by rows as the
//! input is). `scores` are n × k, row-aligned with the input (on the rank of their input
//! row); `loadings` (d rows) and `variance` (k rows) are small and the same on every rank.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, new_null_array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::Result;
use engine::ml::pca::{Components, PcaModel, PcaOptions, Solver, auto_pca, fit, project_into};
use futures::future::BoxFuture;

use super::args::{ArgKind, ArgSpec, Args, SOLVER_ARGS, arg, solver_knobs};
use super::features::{FeatureArgs, feature_args, output_schema, project, take_inputs};
use super::output::{float_array, scores_batches, values};
use super::{FunctionDef, Layout, Output, Planned, RunContext, TableFunction, exec_error};
use crate::convert::LoadInput;
use crate::settings::HeatsqlOptions;

/// `pca` in the registry.
pub const DEF: FunctionDef = FunctionDef {
    name: "pca",
    exec_name: "PcaExec",
    inputs: &["input"],
    args: &[&PCA_ARGS, &SOLVER_ARGS],
    plan,
};

const PCA_ARGS: [ArgSpec; 5] = [
    arg("k", ArgKind::Int),
    arg("variance", ArgKind::Float),
    arg("solver", ArgKind::Text),
    arg("standardize", ArgKind::Bool),
    arg("output", ArgKind::Text),
];

/// Which table `pca` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PcaOutput {
    Scores,
    Loadings,
    Variance,
}

/// A planned `pca(...)` call.
#[derive(Debug)]
struct Pca {
    f: FeatureArgs,
    components: Components,
    solver: Solver,
    /// Whether `solver => 'auto'` chose the solver.
    auto: bool,
    standardize: bool,
    output: PcaOutput,
    /// Component columns in the output: k, or d with `variance =>` (the unused ones NULL).
    width: usize,
    out: Output,
}

/// `pc1` … `pcN`.
fn pc_names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("pc{i}")).collect()
}

/// Plans `pca(input, …)`: checks the arguments, resolves `auto` from d and k, fixes the output
/// schema; the input is reduced to the keep and feature columns.
fn plan(mut args: Args, settings: &HeatsqlOptions) -> Result<Planned> {
    let input = args.inputs.remove(0);
    let f = feature_args(&args, &input, settings)?;
    let d = f.features.len() as i64;
    args.exclusive(&["k", "variance"])?;
    let components = match (args.int("k"), args.float("variance")) {
        (Some(k), _) if k < 1 || k > d => {
            return Err(args.error(format!(
                "k = {k} is out of range; expected 1 ≤ k ≤ the number of feature columns ({d})"
            )));
        }
        (Some(k), _) => Components::Count(k),
        (None, Some(v)) if !(v > 0.0 && v <= 1.0) => {
            return Err(args.error(format!(
                "variance = {v} is out of range; expected a fraction of the total variance in (0, 1]"
            )));
        }
        (None, Some(v)) => Components::Variance(v),
        (None, None) => {
            return Err(args.error(
                "missing argument k (the number of components) or variance (the fraction of variance to keep), \
                 e.g. pca(points, k => 3)",
            ));
        }
    };
    let name = args.choice(
        "solver",
        &["auto", "covariance", "tsqr", "randomized", "hierarchical"],
        "auto",
    )?;
    let k = match components {
        Components::Count(k) => Some(k),
        Components::Variance(_) => None,
    };
    let chosen = if name == "auto" { auto_pca(d, k).name() } else { name };
    let (oversamples, power_iter, seed) = solver_knobs(&args, "solver", name)?;
    let solver = match chosen {
        "covariance" => Solver::Covariance,
        "tsqr" => Solver::Tsqr,
        "randomized" => Solver::Randomized {
            oversamples,
            power_iter,
            seed,
        },
        _ => Solver::Hierarchical { oversamples },
    };
    if matches!(components, Components::Variance(_))
        && matches!(solver, Solver::Randomized { .. } | Solver::Hierarchical { .. })
    {
        return Err(args.error(format!(
            "variance => needs every component, which solver => '{chosen}' does not compute: use solver => \
             'covariance' or 'tsqr', or give k"
        )));
    }
    let output = match args.choice("output", &["scores", "loadings", "variance"], "scores")? {
        "loadings" => PcaOutput::Loadings,
        "variance" => PcaOutput::Variance,
        _ => PcaOutput::Scores,
    };
    let width = k.unwrap_or(d) as usize;
    let nullable = k.is_none();
    let float = f.float_type();
    let schema = match output {
        PcaOutput::Scores => output_schema(&f.keep, &pc_names(width), &float, nullable),
        PcaOutput::Loadings => {
            let mut fields = vec![
                Field::new("feature", DataType::Utf8, false),
                Field::new("mean", float.clone(), false),
                Field::new("scale", float.clone(), false),
            ];
            fields.extend(pc_names(width).iter().map(|n| Field::new(n, float.clone(), nullable)));
            Arc::new(Schema::new(fields))
        }
        PcaOutput::Variance => Arc::new(variance_schema()),
    };
    let mut f = f;
    if output != PcaOutput::Scores {
        f.keep.clear();
    }
    let input = project(input, &f.keep, &f.features)?;
    let layout = if output == PcaOutput::Scores {
        Layout::RowSplit
    } else {
        Layout::Replicated
    };
    let call = Pca {
        f,
        components,
        solver,
        auto: name == "auto",
        standardize: args.bool("standardize").unwrap_or(false),
        output,
        width,
        out: Output::new(schema, layout),
    };
    Ok(Planned::new(call, vec![input]))
}

fn variance_schema() -> Schema {
    Schema::new(vec![
        Field::new("component", DataType::Int64, false),
        Field::new("singular_value", DataType::Float64, false),
        Field::new("explained_variance", DataType::Float64, false),
        Field::new("explained_variance_ratio", DataType::Float64, false),
        Field::new("cumulative_variance_ratio", DataType::Float64, false),
        Field::new("error_estimate", DataType::Float64, true),
    ])
}

impl TableFunction for Pca {
    fn describe(&self) -> String {
        let components = match self.components {
            Components::Count(k) => format!("k={k}"),
            Components::Variance(v) => format!("variance={v}"),
        };
        let solver = match self.solver {
            Solver::Randomized {
                oversamples,
                power_iter,
                seed,
            } => format!("randomized(oversamples={oversamples}, power_iter={power_iter}, seed={seed})"),
            Solver::Hierarchical { oversamples } => format!("hierarchical(oversamples={oversamples})"),
            s => s.name().to_string(),
        };
        format!(
            "{components}, solver={solver}{}, standardize={}, output={}, {}",
            if self.auto { " (auto)" } else { "" },
            self.standardize,
            match self.output {
                PcaOutput::Scores => "scores",
                PcaOutput::Loadings => "loadings",
                PcaOutput::Variance => "variance",
            },
            self.f.describe()
        )
    }

    fn output(&self) -> &Output {
        &self.out
    }

    fn run<'a>(&'a self, inputs: Vec<LoadInput>, ctx: RunContext<'a>) -> BoxFuture<'a, Result<Vec<RecordBatch>>> {
        Box::pin(async move {
            let [input] = take_inputs("pca", inputs)?;
            let device = self.f.device(&ctx)?;
            let loaded = self.f.load(ctx.comm, "pca", input, device).await?;
            let opts = PcaOptions {
                components: self.components,
                solver: self.solver,
                standardize: self.standardize,
            };
            let model = fit(&loaded.array, &opts).map_err(exec_error)?;
            let batch_size = ctx.task.session_config().batch_size();
            match self.output {
                PcaOutput::Scores => {
                    // Written over X's memory: no fresh pages for the scores.
                    let scores =
                        project_into(loaded.array, &model.mean, &model.scale, &model.components).map_err(exec_error)?;
                    scores_batches(scores, self.width, &self.out.schema, loaded.keep.as_ref(), batch_size)
                }
                PcaOutput::Loadings => Ok(vec![loadings_batch(
                    &self.f.features,
                    &model,
                    self.width,
                    &self.out.schema,
                )?]),
                PcaOutput::Variance => Ok(vec![variance_batch(&model, &self.out.schema)?]),
            }
        })
    }
}

/// One row per feature: its name, mean, scale and loadings on each component.
fn loadings_batch(features: &[String], model: &PcaModel, width: usize, schema: &SchemaRef) -> Result<RecordBatch> {
    let float = schema.field(1).data_type().clone();
    let d = features.len();
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(features.to_vec())),
        float_array(values(&model.mean)?, &float)?,
        float_array(values(&model.scale)?, &float)?,
    ];
    let k = model.k() as usize;
    for j in 0..width {
        if j < k {
            columns.push(float_array(values(&model.components.select(1, j as i64))?, &float)?);
        } else {
            columns.push(new_null_array(&float, d));
        }
    }
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// One row per component: singular value, explained variance, its ratio and the cumulative
/// ratio, and the hierarchical solver's error estimate.
fn variance_batch(model: &PcaModel, schema: &SchemaRef) -> Result<RecordBatch> {
    let k = model.k() as usize;
    let ratio = values(&model.explained_variance_ratio)?;
    let cumulative: Vec<f64> = ratio
        .iter()
        .scan(0.0, |acc, r| {
            *acc += r;
            Some(*acc)
        })
        .collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from((1..=k as i64).collect::<Vec<_>>())),
        Arc::new(Float64Array::from(values(&model.singular_values)?)),
        Arc::new(Float64Array::from(values(&model.explained_variance)?)),
        Arc::new(Float64Array::from(ratio)),
        Arc::new(Float64Array::from(cumulative)),
        Arc::new(Float64Array::from(vec![model.error_estimate; k])),
    ];
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}
