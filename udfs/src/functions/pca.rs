//! `pca(input, k => …, output => 'scores' | 'loadings' | 'variance', …)` and
//! `pca_project(input, model => (SELECT * FROM <loadings>), …)`, over `engine::ml::pca`.
//!
//! Shapes: the input's feature columns form X (n rows × d features, split by rows as the
//! input is). `scores` are n × k, row-aligned with the input (on the rank of their input
//! row); `loadings` (d rows) and `variance` (k rows) are small and the same on every rank.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, new_null_array};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::LogicalPlan;
use datafusion::logical_expr::planner::RelationPlannerContext;
use datafusion::sql::sqlparser::ast::FunctionArg;
use engine::ml::pca::{Components, PcaModel, PcaOptions, Solver, auto_solver, fit, project_into};
use futures::TryStreamExt;
use futures::future::BoxFuture;
use tch::{Device, Kind, Tensor};

use super::args::{ArgKind, ArgSpec, Args, arg};
use super::io::{f64_column, names, slices, solver_knobs, specs};
use super::plan::{FeatureArgs, feature_args, output_schema};
use super::{Layout, RunContext, TableFunction, exec_error};
use crate::convert::{LoadInput, LoadSpec, load};
use crate::settings::HeatsqlOptions;

const PCA_ARGS: [ArgSpec; 8] = [
    arg("k", ArgKind::Int),
    arg("variance", ArgKind::Float),
    arg("solver", ArgKind::Text),
    arg("standardize", ArgKind::Bool),
    arg("oversamples", ArgKind::Int),
    arg("power_iter", ArgKind::Int),
    arg("seed", ArgKind::Int),
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
    schema: SchemaRef,
}

/// `pc1` … `pcN`.
fn pc_names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("pc{i}")).collect()
}

/// Plans `pca(input, …)`: checks the arguments, resolves `auto` from d and k, fixes the output
/// schema; the input is reduced to the keep and feature columns.
pub fn plan_pca(
    args: Vec<FunctionArg>,
    ctx: &mut dyn RelationPlannerContext,
    settings: &HeatsqlOptions,
) -> Result<(Arc<dyn TableFunction>, Vec<LogicalPlan>)> {
    let mut args = Args::parse("pca", &["input"], &specs(&PCA_ARGS), args, ctx)?;
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
    let chosen = if name == "auto" { auto_solver(d, k).name() } else { name };
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
    let input = super::plan::project(input, &f.keep, &f.features)?;
    let call = Pca {
        f,
        components,
        solver,
        auto: name == "auto",
        standardize: args.bool("standardize").unwrap_or(false),
        output,
        width,
        schema,
    };
    Ok((Arc::new(call), vec![input]))
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

fn keep_names(keep: &[Field]) -> Vec<String> {
    keep.iter().map(|f| f.name().clone()).collect()
}

impl TableFunction for Pca {
    fn name(&self) -> &'static str {
        "pca"
    }

    fn exec_name(&self) -> &'static str {
        "PcaExec"
    }

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
            "{components}, solver={solver}{}, standardize={}, output={}, columns={}, keep={}, {}",
            if self.auto { " (auto)" } else { "" },
            self.standardize,
            match self.output {
                PcaOutput::Scores => "scores",
                PcaOutput::Loadings => "loadings",
                PcaOutput::Variance => "variance",
            },
            names(&self.f.features),
            names(&keep_names(&self.f.keep)),
            self.f.describe()
        )
    }

    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn output_layout(&self) -> Layout {
        match self.output {
            PcaOutput::Scores => Layout::RowSplit,
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
            let spec = load_spec("pca", &self.f, Some(self.f.features.clone()), device);
            let loaded = load(input, &spec).await.map_err(DataFusionError::from)?;
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
                    scores_batches(scores, self.width, &self.schema, loaded.keep.as_ref(), batch_size)
                }
                PcaOutput::Loadings => Ok(vec![loadings_batch(
                    &self.f.features,
                    &model,
                    self.width,
                    &self.schema,
                )?]),
                PcaOutput::Variance => Ok(vec![variance_batch(&model, &self.schema)?]),
            }
        })
    }
}

pub(super) fn one_input(function: &str, inputs: Vec<LoadInput>) -> Result<LoadInput> {
    let n = inputs.len();
    inputs
        .into_iter()
        .next()
        .filter(|_| n == 1)
        .ok_or_else(|| DataFusionError::Internal(format!("{function}: expected 1 input, got {n}")))
}

pub(super) fn load_spec(function: &str, f: &FeatureArgs, columns: Option<Vec<String>>, device: Device) -> LoadSpec {
    LoadSpec {
        function: function.to_string(),
        columns,
        keep: keep_names(&f.keep),
        kind: f.kind,
        nulls: f.nulls,
        device,
        expected_rows: None,
    }
}

/// A replicated 1-d tensor as f64 values.
pub(super) fn values(t: &Tensor) -> Result<Vec<f64>> {
    Vec::<f64>::try_from(&t.to_device(Device::Cpu).to_kind(Kind::Double).contiguous()).map_err(exec_error)
}

pub(super) fn float_array(v: Vec<f64>, data_type: &DataType) -> Result<ArrayRef> {
    let a: ArrayRef = Arc::new(Float64Array::from(v));
    if data_type == &DataType::Float64 {
        Ok(a)
    } else {
        Ok(cast(&a, data_type)?)
    }
}

/// This rank's score rows (keep columns, pc1 … pck, NULL columns up to `width`), cut into
/// batches of at most `batch_size` rows. `scores_t` is k × n_local (row j: component j), each
/// row becoming a column without a copy.
pub(super) fn scores_batches(
    scores_t: Tensor,
    width: usize,
    schema: &SchemaRef,
    keep: Option<&RecordBatch>,
    batch_size: usize,
) -> Result<Vec<RecordBatch>> {
    let rows = scores_t.size()[1] as usize;
    if keep.is_some_and(|k| k.num_rows() != rows) {
        return Err(DataFusionError::Internal("pca: keep rows and score rows differ".into()));
    }
    let mut columns: Vec<ArrayRef> = keep.map(|k| k.columns().to_vec()).unwrap_or_default();
    columns.extend(super::columns::float_columns(scores_t)?);
    let have = columns.len();
    for field in schema.fields().iter().skip(have).take(width) {
        columns.push(new_null_array(field.data_type(), rows));
    }
    Ok(slices(&RecordBatch::try_new(Arc::clone(schema), columns)?, batch_size))
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

const PROJECT_ARGS: [ArgSpec; 1] = [arg("model", ArgKind::Relation)];

/// A planned `pca_project(...)` call.
#[derive(Debug)]
struct PcaProject {
    f: FeatureArgs,
    /// `columns =>` given: these input columns, in order, stand for the model's features.
    explicit: bool,
    /// The model's component columns.
    pcs: Vec<String>,
    schema: SchemaRef,
}

/// Plans `pca_project(input, model => (SELECT * FROM loadings), …)`: the model must have a
/// loadings table's columns (`feature`, `mean`, `scale`, `pc1` …).
pub fn plan_pca_project(
    args: Vec<FunctionArg>,
    ctx: &mut dyn RelationPlannerContext,
    settings: &HeatsqlOptions,
) -> Result<(Arc<dyn TableFunction>, Vec<LogicalPlan>)> {
    let mut args = Args::parse("pca_project", &["input"], &specs(&PROJECT_ARGS), args, ctx)?;
    let input = args.inputs.remove(0);
    let Some(model) = args.take_relation("model") else {
        return Err(args
            .error("missing argument model, the loadings of a fitted PCA: model => (SELECT * FROM <loadings table>)"));
    };
    let f = feature_args(&args, &input, settings)?;
    let ms = model.schema();
    let expected = "model => must be a pca loadings table (columns feature, mean, scale, pc1 … pck)";
    let field = |name: &str| {
        ms.fields()
            .iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| args.error(format!("{expected}; it has no column '{name}'")))
    };
    let feature = field("feature")?;
    if !matches!(
        feature.data_type(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    ) {
        return Err(args.error(format!(
            "{expected}; its column 'feature' is {}, expected text",
            feature.data_type()
        )));
    }
    for name in ["mean", "scale"] {
        let t = field(name)?.data_type();
        if !crate::convert::is_numeric(t) {
            return Err(args.error(format!("{expected}; its column '{name}' is {t}, expected a number")));
        }
    }
    let pcs: Vec<String> = ms
        .fields()
        .iter()
        .filter(|f| {
            f.name().len() > 2 && f.name().starts_with("pc") && f.name()[2..].bytes().all(|b| b.is_ascii_digit())
        })
        .map(|f| f.name().clone())
        .collect();
    if pcs.is_empty() {
        return Err(args.error(format!("{expected}; it has no pc columns")));
    }
    for name in &pcs {
        let t = field(name)?.data_type();
        if !crate::convert::is_numeric(t) {
            return Err(args.error(format!("{expected}; its column '{name}' is {t}, expected a number")));
        }
    }
    let schema = output_schema(&f.keep, &pcs, &f.float_type(), true);
    let input = super::plan::project(input, &f.keep, &f.features)?;
    let model = super::plan::project(
        model,
        &[],
        &[
            &["feature", "mean", "scale"][..],
            &pcs.iter().map(String::as_str).collect::<Vec<_>>(),
        ]
        .concat()
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>(),
    )?;
    let call = PcaProject {
        f,
        explicit: args.has("columns"),
        pcs,
        schema,
    };
    Ok((Arc::new(call), vec![input, model]))
}

/// A loadings table read back: feature names, mean, scale, components (d × k, f64); component
/// columns that are entirely NULL (beyond the k a `variance =>` fit chose) are flagged.
struct Loadings {
    features: Vec<String>,
    mean: Tensor,
    scale: Tensor,
    components: Tensor,
    /// Per pc column: whether it is all NULL.
    empty: Vec<bool>,
}

fn read_loadings(batches: &[RecordBatch], pcs: &[String]) -> Result<Loadings> {
    let bad = |m: String| DataFusionError::Execution(format!("pca_project: model => {m}"));
    let Some(first) = batches.first() else {
        return Err(bad(
            "has no rows; expected one row per feature of a pca loadings table".into()
        ));
    };
    let batch = concat_batches(&first.schema(), batches)?;
    let d = batch.num_rows();
    let col = |name: &str| -> Result<ArrayRef> {
        batch
            .column_by_name(name)
            .cloned()
            .ok_or_else(|| DataFusionError::Internal(format!("pca_project: model column {name} missing")))
    };
    let names = cast(&col("feature")?, &DataType::Utf8)?;
    let names = names
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| DataFusionError::Internal("pca_project: feature column".into()))?;
    let mut features = Vec::with_capacity(d);
    for i in 0..d {
        if names.is_null(i) {
            return Err(bad(format!("has a NULL feature name (row {})", i + 1)));
        }
        let name = names.value(i).to_string();
        if features.contains(&name) {
            return Err(bad(format!("lists feature '{name}' twice")));
        }
        features.push(name);
    }
    let floats = |name: &str, allow_all_null: bool| -> Result<Option<Vec<f64>>> {
        let a = f64_column(&batch, name)?;
        if allow_all_null && a.null_count() == d {
            return Ok(None);
        }
        if a.null_count() > 0 {
            return Err(bad(format!("column '{name}' has {} NULL values", a.null_count())));
        }
        let v = a.values().to_vec();
        if v.iter().any(|x| !x.is_finite()) {
            return Err(bad(format!("column '{name}' has non-finite values")));
        }
        Ok(Some(v))
    };
    let mean = floats("mean", false)?.unwrap_or_default();
    let scale = floats("scale", false)?.unwrap_or_default();
    if let Some(i) = scale.iter().position(|s| *s <= 0.0) {
        return Err(bad(format!(
            "scale of feature '{}' is {}; expected > 0",
            features[i], scale[i]
        )));
    }
    let mut cols = Vec::with_capacity(pcs.len());
    let mut empty = Vec::with_capacity(pcs.len());
    for pc in pcs {
        match floats(pc, true)? {
            Some(v) => {
                cols.push(Tensor::from_slice(&v));
                empty.push(false);
            }
            None => empty.push(true),
        }
    }
    let components = if cols.is_empty() {
        Tensor::zeros([d as i64, 0], (Kind::Double, Device::Cpu))
    } else {
        Tensor::stack(&cols, 1)
    };
    Ok(Loadings {
        features,
        mean: Tensor::from_slice(&mean),
        scale: Tensor::from_slice(&scale),
        components,
        empty,
    })
}

impl TableFunction for PcaProject {
    fn name(&self) -> &'static str {
        "pca_project"
    }

    fn exec_name(&self) -> &'static str {
        "PcaProjectExec"
    }

    fn describe(&self) -> String {
        format!(
            "components={}, columns={}, keep={}, {}",
            names(&self.pcs),
            if self.explicit {
                names(&self.f.features)
            } else {
                "the model's features".to_string()
            },
            names(&keep_names(&self.f.keep)),
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
                return Err(DataFusionError::Internal("pca_project: expected 2 inputs".into()));
            };
            // The model is the same on every rank; reading it can still fail on one.
            let loadings = async {
                let batches: Vec<RecordBatch> = model.into_stream().try_collect().await?;
                let l = read_loadings(&batches, &self.pcs)?;
                if self.explicit && self.f.features.len() != l.features.len() {
                    return Err(DataFusionError::Execution(format!(
                        "pca_project: columns => names {} columns, the model has {} features ({})",
                        self.f.features.len(),
                        l.features.len(),
                        l.features.join(", ")
                    )));
                }
                if !self.explicit
                    && let Some(missing) = l.features.iter().find(|x| !self.f.features.contains(x))
                {
                    return Err(DataFusionError::Execution(format!(
                        "pca_project: the model's feature '{missing}' is not a numeric column of the input \
                         (numeric columns: {}); name the input's columns with columns => ...",
                        self.f.features.join(", ")
                    )));
                }
                let device = self.f.device.resolve(comm.local_rank()).map_err(exec_error)?;
                Ok((l, device))
            }
            .await;
            let (loadings, device) = comm.agree(loadings).map_err(crate::exchange::agreed)?;
            let columns = if self.explicit {
                self.f.features.clone()
            } else {
                loadings.features.clone()
            };
            let spec = load_spec("pca_project", &self.f, Some(columns), device);
            let loaded = load(input, &spec).await.map_err(DataFusionError::from)?;
            let scores = project_into(loaded.array, &loadings.mean, &loadings.scale, &loadings.components)
                .map_err(exec_error)?;
            let rows = scores.size()[1] as usize;
            let keep = self.f.keep.len();
            let mut columns: Vec<ArrayRef> = loaded.keep.map(|k| k.columns().to_vec()).unwrap_or_default();
            let mut computed = super::columns::float_columns(scores)?.into_iter();
            for (j, empty) in loadings.empty.iter().enumerate() {
                let field = self.schema.field(keep + j);
                if *empty {
                    columns.push(new_null_array(field.data_type(), rows));
                } else if let Some(c) = computed.next() {
                    columns.push(c);
                }
            }
            let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
            Ok(slices(&batch, ctx.task.session_config().batch_size()))
        })
    }
}
