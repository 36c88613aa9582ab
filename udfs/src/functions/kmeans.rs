//! `kmeans(input, k => …, output => 'assignments' | 'centroids' | 'summary', …)` and
//! `kmeans_predict(input, centroids => (SELECT * FROM <centroids>), …)`, over
//! `engine::ml::kmeans`.
//!
//! Shapes: the feature columns form X (n rows × d features, split by rows as the input is).
//! `assignments` has one row per input row, on the rank of its input row; `centroids` (k rows)
//! and `summary` (one row) are the same on every rank. Clusters are numbered 0 … k − 1.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::LogicalPlan;
use datafusion::logical_expr::planner::RelationPlannerContext;
use datafusion::sql::sqlparser::ast::FunctionArg;
use engine::ml::kmeans::{Init, KMeansModel, KMeansOptions, fit, predict};
use futures::TryStreamExt;
use futures::future::BoxFuture;
use tch::{Device, Kind, Tensor};

use super::args::{ArgKind, ArgSpec, Args, arg};
use super::io::{finite_matrix, names, slices, specs};
use super::plan::{FeatureArgs, feature_args, output_schema};
use super::{Layout, RunContext, TableFunction, exec_error};
use crate::convert::{LoadInput, LoadSpec, load};
use crate::settings::HeatsqlOptions;

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
    schema: SchemaRef,
}

/// Plans `kmeans(input, k => …)`.
pub fn plan_kmeans(
    args: Vec<FunctionArg>,
    ctx: &mut dyn RelationPlannerContext,
    settings: &HeatsqlOptions,
) -> Result<(Arc<dyn TableFunction>, Vec<LogicalPlan>)> {
    let mut args = Args::parse("kmeans", &["input"], &specs(&KMEANS_ARGS), args, ctx)?;
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
    let input = super::plan::project(input, &f.keep, &f.features)?;
    let mut inputs = vec![input];
    if let Some(given) = given {
        let gs = given.schema();
        if let Some(missing) = f.features.iter().find(|x| {
            !gs.fields()
                .iter()
                .any(|g| g.name() == *x && crate::convert::is_numeric(g.data_type()))
        }) {
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
        inputs.push(super::plan::project(given, &[], &cols)?);
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
        schema,
    };
    Ok((Arc::new(call), inputs))
}

fn load_spec(function: &str, f: &FeatureArgs, columns: Vec<String>, device: Device) -> LoadSpec {
    LoadSpec {
        function: function.to_string(),
        columns: Some(columns),
        keep: f.keep.iter().map(|k| k.name().clone()).collect(),
        kind: f.kind,
        nulls: f.nulls,
        device,
        expected_rows: None,
    }
}

/// This rank's assignment rows: keep columns, cluster, distance; in batches.
fn assignment_batches(
    schema: &SchemaRef,
    keep: Option<&RecordBatch>,
    labels: &Tensor,
    distances: &Tensor,
    batch_size: usize,
) -> Result<Vec<RecordBatch>> {
    let labels: Vec<i64> = Vec::try_from(&labels.to_device(Device::Cpu)).map_err(exec_error)?;
    let distances: Vec<f64> =
        Vec::try_from(&distances.to_device(Device::Cpu).to_kind(Kind::Double)).map_err(exec_error)?;
    let mut columns: Vec<ArrayRef> = keep.map(|k| k.columns().to_vec()).unwrap_or_default();
    columns.push(Arc::new(Int64Array::from(labels)));
    columns.push(Arc::new(Float64Array::from(distances)));
    Ok(slices(&RecordBatch::try_new(Arc::clone(schema), columns)?, batch_size))
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

impl TableFunction for KMeans {
    fn name(&self) -> &'static str {
        "kmeans"
    }

    fn exec_name(&self) -> &'static str {
        "KMeansExec"
    }

    fn describe(&self) -> String {
        format!(
            "k={}, init={}, max_iter={}, tol={}, seed={}, n_init={}, output={}, columns={}, keep={}, {}",
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
            KMeansOutput::Assignments => Layout::RowSplit,
            _ => Layout::Replicated,
        }
    }

    fn input_layouts(&self) -> Vec<Layout> {
        if self.init == "given" {
            vec![Layout::RowSplit, Layout::Replicated]
        } else {
            vec![Layout::RowSplit]
        }
    }

    fn run<'a>(&'a self, inputs: Vec<LoadInput>, ctx: RunContext<'a>) -> BoxFuture<'a, Result<Vec<RecordBatch>>> {
        Box::pin(async move {
            let comm = ctx.comm;
            let mut inputs = inputs.into_iter();
            let Some(input) = inputs.next() else {
                return Err(DataFusionError::Internal("kmeans: expected an input".into()));
            };
            // Initial centroids (the same on every rank), read before the data.
            let given = match inputs.next() {
                Some(given) => {
                    let read = async {
                        let batches: Vec<RecordBatch> = given.into_stream().try_collect().await?;
                        let c = read_initial(&batches, &self.f.features)?;
                        if c.size()[0] != self.k {
                            return Err(DataFusionError::Execution(format!(
                                "kmeans: init => has {} rows; expected k = {} initial centroids",
                                c.size()[0],
                                self.k
                            )));
                        }
                        Ok::<_, DataFusionError>(c)
                    }
                    .await;
                    Some(comm.agree(read).map_err(crate::exchange::agreed)?)
                }
                None => None,
            };
            let device = comm
                .agree(self.f.device.resolve(comm.local_rank()))
                .map_err(crate::exchange::agreed)?;
            let loaded = load(input, &load_spec("kmeans", &self.f, self.f.features.clone(), device))
                .await
                .map_err(DataFusionError::from)?;
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
                        &self.schema,
                        loaded.keep.as_ref(),
                        labels.local(),
                        distances.local(),
                        ctx.task.session_config().batch_size(),
                    )
                }
                KMeansOutput::Centroids => Ok(vec![centroids_batch(&self.schema, &model)?]),
                KMeansOutput::Summary => Ok(vec![summary_batch(&self.schema, &model, self.init)?]),
            }
        })
    }
}

const PREDICT_ARGS: [ArgSpec; 1] = [arg("centroids", ArgKind::Relation)];

#[derive(Debug)]
struct KMeansPredict {
    f: FeatureArgs,
    /// `columns =>` given: these input columns, in order, stand for the model's features.
    explicit: bool,
    /// The model's feature columns (every numeric column but cluster, size and inertia).
    features: Vec<String>,
    schema: SchemaRef,
}

/// Plans `kmeans_predict(input, centroids => (SELECT * FROM <centroids>), …)`.
pub fn plan_kmeans_predict(
    args: Vec<FunctionArg>,
    ctx: &mut dyn RelationPlannerContext,
    settings: &HeatsqlOptions,
) -> Result<(Arc<dyn TableFunction>, Vec<LogicalPlan>)> {
    let mut args = Args::parse("kmeans_predict", &["input"], &specs(&PREDICT_ARGS), args, ctx)?;
    let input = args.inputs.remove(0);
    let Some(model) = args.take_relation("centroids") else {
        return Err(args.error(
            "missing argument centroids, the centroids of a fitted k-means: centroids => (SELECT * FROM <centroids table>)",
        ));
    };
    let mut f = feature_args(&args, &input, settings)?;
    let expected = "centroids => must be a kmeans centroids table (columns cluster and one per feature)";
    let ms = model.schema();
    if !ms.fields().iter().any(|x| x.name() == "cluster") {
        return Err(args.error(format!("{expected}; it has no column 'cluster'")));
    }
    let features: Vec<String> = ms
        .fields()
        .iter()
        .filter(|x| !["cluster", "size", "inertia"].contains(&x.name().as_str()))
        .filter(|x| crate::convert::is_numeric(x.data_type()))
        .map(|x| x.name().clone())
        .collect();
    if features.is_empty() {
        return Err(args.error(format!("{expected}; it has no numeric feature columns")));
    }
    let explicit = args.has("columns");
    if explicit && f.features.len() != features.len() {
        return Err(args.error(format!(
            "columns => names {} columns, the centroids have {} features ({})",
            f.features.len(),
            features.len(),
            features.join(", ")
        )));
    }
    if !explicit {
        if let Some(missing) = features.iter().find(|x| !f.features.contains(x)) {
            return Err(args.error(format!(
                "the centroids' feature '{missing}' is not a numeric column of the input (numeric columns: {}); \
                 name the input's columns with columns => ...",
                f.features.join(", ")
            )));
        }
        f.features = features.clone();
    }
    let mut fields: Vec<Field> = f.keep.clone();
    fields.push(Field::new("cluster", DataType::Int64, false));
    fields.push(Field::new("distance", DataType::Float64, false));
    let schema = Arc::new(Schema::new(fields));
    let input = super::plan::project(input, &f.keep, &f.features)?;
    let mut model_cols = vec!["cluster".to_string()];
    model_cols.extend(features.iter().cloned());
    let model = super::plan::project(model, &[], &model_cols)?;
    Ok((
        Arc::new(KMeansPredict {
            f,
            explicit,
            features,
            schema,
        }),
        vec![input, model],
    ))
}

/// Initial centroids: a centroids table (ordered by `cluster`) or any relation with the
/// feature columns (rows in order), k × d (f64).
fn read_initial(batches: &[RecordBatch], features: &[String]) -> Result<Tensor> {
    let has_cluster = batches.first().is_some_and(|b| b.schema().index_of("cluster").is_ok());
    if has_cluster {
        return read_centroids(batches, features).map_err(|e| {
            DataFusionError::Execution(e.to_string().replace("kmeans_predict: centroids =>", "kmeans: init =>"))
        });
    }
    let Some(first) = batches.first() else {
        return Err(DataFusionError::Execution("kmeans: init => has no rows".into()));
    };
    let batch = concat_batches(&first.schema(), batches)?;
    finite_matrix(&batch, features, |m| {
        DataFusionError::Execution(format!("kmeans: init => {m}"))
    })
}

/// The centroids table read back: k × d (f64), rows in cluster order 0 … k − 1.
fn read_centroids(batches: &[RecordBatch], features: &[String]) -> Result<Tensor> {
    let bad = |m: String| DataFusionError::Execution(format!("kmeans_predict: centroids => {m}"));
    let Some(first) = batches.first() else {
        return Err(bad("has no rows".into()));
    };
    let batch = concat_batches(&first.schema(), batches)?;
    let k = batch.num_rows();
    let clusters = cast(
        batch
            .column_by_name("cluster")
            .ok_or_else(|| bad("has no column 'cluster'".into()))?,
        &DataType::Int64,
    )?;
    let clusters = clusters
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or_else(|| DataFusionError::Internal("cluster column".into()))?;
    let mut order: Vec<Option<usize>> = vec![None; k];
    for i in 0..k {
        let c = if clusters.is_null(i) { -1 } else { clusters.value(i) };
        if c < 0 || c as usize >= k || order[c as usize].is_some() {
            return Err(bad(format!(
                "must number its {k} clusters 0 … {} once each (row {} has cluster {c})",
                k - 1,
                i + 1
            )));
        }
        order[c as usize] = Some(i);
    }
    let order: Vec<i64> = order.into_iter().map(|o| o.unwrap_or(0) as i64).collect();
    Ok(finite_matrix(&batch, features, bad)?.index_select(0, &Tensor::from_slice(&order)))
}

impl TableFunction for KMeansPredict {
    fn name(&self) -> &'static str {
        "kmeans_predict"
    }

    fn exec_name(&self) -> &'static str {
        "KMeansPredictExec"
    }

    fn describe(&self) -> String {
        format!(
            "features={}, columns={}, keep={}, {}",
            names(&self.features),
            if self.explicit {
                names(&self.f.features)
            } else {
                "the centroids' features".to_string()
            },
            names(&self.f.keep.iter().map(|f| f.name().clone()).collect::<Vec<_>>()),
            self.f.describe()
        )
    }

    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn output_layout(&self) -> Layout {
        Layout::RowSplit
    }

    fn input_layouts(&self) -> Vec<Layout> {
        vec![Layout::RowSplit, Layout::Replicated]
    }

    fn run<'a>(&'a self, inputs: Vec<LoadInput>, ctx: RunContext<'a>) -> BoxFuture<'a, Result<Vec<RecordBatch>>> {
        Box::pin(async move {
            let comm = ctx.comm;
            let mut inputs = inputs.into_iter();
            let (Some(input), Some(model), None) = (inputs.next(), inputs.next(), inputs.next()) else {
                return Err(DataFusionError::Internal("kmeans_predict: expected 2 inputs".into()));
            };
            let centroids = async {
                let batches: Vec<RecordBatch> = model.into_stream().try_collect().await?;
                let c = read_centroids(&batches, &self.features)?;
                let device = self.f.device.resolve(comm.local_rank()).map_err(exec_error)?;
                Ok::<_, DataFusionError>((c, device))
            }
            .await;
            let (centroids, device) = comm.agree(centroids).map_err(crate::exchange::agreed)?;
            let loaded = load(
                input,
                &load_spec("kmeans_predict", &self.f, self.f.features.clone(), device),
            )
            .await
            .map_err(DataFusionError::from)?;
            let (labels, distances) = predict(&loaded.array, &centroids).map_err(exec_error)?;
            assignment_batches(
                &self.schema,
                loaded.keep.as_ref(),
                labels.local(),
                distances.local(),
                ctx.task.session_config().batch_size(),
            )
        })
    }
}
