//! `kmeans(input, k => …, output => 'assignments' | 'centroids' | 'summary', …)`, over
//! `engine::ml::kmeans` (`kmeans_predict` applies fitted centroids to new rows).
//!
//! Shapes: the feature columns form X (n rows × d features, split by rows as the input is).
//! `assignments` has one row per input row, on the rank of its input row; `centroids` (k rows)
//! and `summary` (one row) are the same on every rank. Clusters are numbered 0 … k − 1.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::{DataFusionError, Result};
use engine::ml::kmeans::{Init, KMeansModel, KMeansOptions, fit, predict};
use futures::future::BoxFuture;
use tch::Tensor;

use super::args::{ArgKind, ArgSpec, Args, arg};
use super::features::{FeatureArgs, feature_args, output_schema, project};
use super::output::{assignment_batches, finite_matrix, read_centroids};
use super::{FunctionDef, Layout, Output, Planned, RunContext, TableFunction, exec_error};
use crate::convert::{LoadInput, is_numeric};
use crate::settings::HeatsqlOptions;

/// `kmeans` in the registry.
pub const DEF: FunctionDef = FunctionDef {
    name: "kmeans",
    exec_name: "KMeansExec",
    inputs: &["input"],
    args: &[&KMEANS_ARGS],
    plan,
};

const KMEANS_ARGS: [ArgSpec; 7] = [
    arg("k", ArgKind::Int),
    arg("init", ArgKind::TextOrRelation),
    arg("max_iter", ArgKind::Int),
    arg("tol", ArgKind::Float),
    arg("seed", ArgKind::Int),
    arg("n_init", ArgKind::Int),
    arg("output", ArgKind::Text),
];

/// scikit-learn's defaults.
const MAX_ITER: i64 = 300;
const TOL: f64 = 1e-4;
/// k-means‖: sampling rounds and rows drawn per round as a multiple of k.
const ROUNDS: usize = 5;
const OVERSAMPLING: f64 = 2.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KMeansOutput {
    Assignments,
    Centroids,
    Summary,
}

#[derive(Debug)]
struct KMeans {
    f: FeatureArgs,
    k: i64,
    /// `k-means||`, `k-means++`, `random`, or `given` (initial centroids as a second input).
    init: &'static str,
    max_iter: usize,
    tol: f64,
    seed: u64,
    n_init: usize,
    output: KMeansOutput,
    out: Output,
}

/// Plans `kmeans(input, k => …)`.
fn plan(mut args: Args, settings: &HeatsqlOptions) -> Result<Planned> {
    let input = args.inputs.remove(0);
    let mut f = feature_args(&args, &input, settings)?;
    let k = match args.int("k") {
        None => return Err(args.error("missing argument k (the number of clusters), e.g. kmeans(points, k => 8)")),
        Some(k) if k < 1 => return Err(args.error(format!("k = {k} is out of range; expected k ≥ 1"))),
        Some(k) => k,
    };
    let given = args.take_relation("init");
    let init = if given.is_some() {
        "given"
    } else {
        args.choice("init", &["k-means||", "k-means++", "random"], "k-means||")?
    };
    if given.is_some() && args.has("n_init") {
        return Err(args.error("n_init applies to drawn initial centroids, not to init => (SELECT …)"));
    }
    let max_iter = match args.int("max_iter").unwrap_or(MAX_ITER) {
        m if m < 1 => return Err(args.error(format!("max_iter = {m} is out of range; expected ≥ 1"))),
        m => m as usize,
    };
    let tol = match args.float("tol").unwrap_or(TOL) {
        t if t < 0.0 => return Err(args.error(format!("tol = {t} is out of range; expected ≥ 0"))),
        t => t,
    };
    let n_init = match args.int("n_init").unwrap_or(1) {
        m if m < 1 => return Err(args.error(format!("n_init = {m} is out of range; expected ≥ 1"))),
        m => m as usize,
    };
    let seed = args.int("seed").unwrap_or(0) as u64;
    let output = match args.choice("output", &["assignments", "centroids", "summary"], "assignments")? {
        "centroids" => KMeansOutput::Centroids,
        "summary" => KMeansOutput::Summary,
        _ => KMeansOutput::Assignments,
    };
    let float = f.float_type();
    let schema = match output {
        KMeansOutput::Assignments => {
            let mut fields: Vec<Field> = f.keep.clone();
            fields.push(Field::new("cluster", DataType::Int64, false));
            fields.push(Field::new("distance", DataType::Float64, false));
            Arc::new(Schema::new(fields))
        }
        KMeansOutput::Centroids => {
            let base = [
                Field::new("cluster", DataType::Int64, false),
                Field::new("size", DataType::Int64, false),
                Field::new("inertia", DataType::Float64, false),
            ];
            output_schema(&base, &f.features, &float, false)
        }
        KMeansOutput::Summary => Arc::new(Schema::new(vec![
            Field::new("iterations", DataType::Int64, false),
            Field::new("inertia", DataType::Float64, false),
            Field::new("converged", DataType::Boolean, false),
            Field::new("init", DataType::Utf8, false),
            Field::new("seed", DataType::Int64, false),
        ])),
    };
    if output != KMeansOutput::Assignments {
        f.keep.clear();
    }
    let input = project(input, &f.keep, &f.features)?;
    let mut models = Vec::new();
    if let Some(given) = given {
        let gs = given.schema();
        if let Some(missing) = f
            .features
            .iter()
            .find(|x| !gs.fields().iter().any(|g| g.name() == *x && is_numeric(g.data_type())))
        {
            return Err(args.error(format!(
                "init => must have one numeric column per feature ({}); it has no numeric column '{missing}'",
                f.features.join(", ")
            )));
        }
        let mut cols: Vec<String> = Vec::new();
        if gs.fields().iter().any(|g| g.name() == "cluster") {
            cols.push("cluster".into());
        }
        cols.extend(f.features.iter().cloned());
        models.push(project(given, &[], &cols)?);
    }
    let call = KMeans {
        f,
        k,
        init,
        max_iter,
        tol,
        seed,
        n_init,
        output,
        out: Output::new(
            schema,
            if output == KMeansOutput::Assignments {
                Layout::RowSplit
            } else {
                Layout::Replicated
            },
        ),
    };
    Ok(Planned::new(call, vec![input]).with_models(models))
}

fn centroids_batch(schema: &SchemaRef, model: &KMeansModel) -> Result<RecordBatch> {
    let k = model.sizes.len();
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from((0..k as i64).collect::<Vec<_>>())),
        Arc::new(Int64Array::from(model.sizes.clone())),
        Arc::new(Float64Array::from(model.cluster_inertia.clone())),
    ];
    for j in 0..model.centroids.size()[1] {
        let v: Vec<f64> = Vec::try_from(&model.centroids.select(1, j).contiguous()).map_err(exec_error)?;
        let a: ArrayRef = Arc::new(Float64Array::from(v));
        columns.push(cast(&a, schema.field(3 + j as usize).data_type())?);
    }
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

fn summary_batch(schema: &SchemaRef, model: &KMeansModel, init: &str) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![model.iterations as i64])),
        Arc::new(Float64Array::from(vec![model.inertia])),
        Arc::new(BooleanArray::from(vec![model.converged])),
        Arc::new(StringArray::from(vec![init.to_string()])),
        Arc::new(Int64Array::from(vec![model.seed as i64])),
    ];
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

impl KMeans {
    /// Initial centroids: a centroids table (ordered by `cluster`) or any relation with the
    /// feature columns (rows in order), k × d (f64); k rows.
    fn read_initial(&self, batches: &[RecordBatch]) -> Result<Tensor> {
        let features = &self.f.features;
        let has_cluster = batches.first().is_some_and(|b| b.schema().index_of("cluster").is_ok());
        let c = if has_cluster {
            read_centroids(batches, features, "kmeans: init =>")?
        } else {
            let Some(first) = batches.first() else {
                return Err(DataFusionError::Execution("kmeans: init => has no rows".into()));
            };
            let batch = concat_batches(&first.schema(), batches)?;
            finite_matrix(&batch, features, |m| {
                DataFusionError::Execution(format!("kmeans: init => {m}"))
            })?
        };
        if c.size()[0] != self.k {
            return Err(DataFusionError::Execution(format!(
                "kmeans: init => has {} rows; expected k = {} initial centroids",
                c.size()[0],
                self.k
            )));
        }
        Ok(c)
    }
}

impl TableFunction for KMeans {
    fn describe(&self) -> String {
        format!(
            "k={}, init={}, max_iter={}, tol={}, seed={}, n_init={}, output={}, {}",
            self.k,
            self.init,
            self.max_iter,
            self.tol,
            self.seed,
            self.n_init,
            match self.output {
                KMeansOutput::Assignments => "assignments",
                KMeansOutput::Centroids => "centroids",
                KMeansOutput::Summary => "summary",
            },
            self.f.describe()
        )
    }

    fn output(&self) -> &Output {
        &self.out
    }

    fn run<'a>(&'a self, inputs: Vec<LoadInput>, ctx: RunContext<'a>) -> BoxFuture<'a, Result<Vec<RecordBatch>>> {
        Box::pin(async move {
            let mut inputs = inputs.into_iter();
            let Some(input) = inputs.next() else {
                return Err(DataFusionError::Internal("kmeans: expected an input".into()));
            };
            // Initial centroids (the same on every rank), read before the data.
            let (given, device) = match inputs.next() {
                Some(given) => {
                    let (c, device) = self.f.read_model(given, &ctx, |b| self.read_initial(b)).await?;
                    (Some(c), device)
                }
                None => (None, self.f.device(&ctx)?),
            };
            let loaded = self.f.load(ctx.comm, "kmeans", input, device).await?;
            let init = match (self.init, given) {
                (_, Some(c)) => Init::Centroids(c),
                ("k-means++", _) => Init::PlusPlus,
                ("random", _) => Init::Random,
                _ => Init::Parallel {
                    rounds: ROUNDS,
                    oversampling: OVERSAMPLING,
                },
            };
            let opts = KMeansOptions {
                k: self.k,
                init,
                max_iter: self.max_iter,
                tol: self.tol,
                seed: self.seed,
                n_init: self.n_init,
                progress: crate::settings::progress_enabled(ctx.task),
            };
            let model = fit(&loaded.array, &opts).map_err(exec_error)?;
            match self.output {
                KMeansOutput::Assignments => {
                    let (labels, distances) = predict(&loaded.array, &model.centroids).map_err(exec_error)?;
                    assignment_batches(
                        &self.out.schema,
                        loaded.keep.as_ref(),
                        labels.local(),
                        distances.local(),
                        ctx.task.session_config().batch_size(),
                    )
                }
                KMeansOutput::Centroids => Ok(vec![centroids_batch(&self.out.schema, &model)?]),
                KMeansOutput::Summary => Ok(vec![summary_batch(&self.out.schema, &model, self.init)?]),
            }
        })
    }
}
