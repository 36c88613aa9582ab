//! `pca_project(input, model => (SELECT * FROM <loadings>), …)`: new rows projected onto a
//! fitted PCA's components (the loadings table `pca(…, output => 'loadings')` returns), over
//! `engine::ml::pca::project_into`.
//!
//! Shapes: the input's feature columns (the model's features, or `columns =>`) form X (n rows ×
//! d, split by rows as the input is); the model is d rows, the same on every rank. The scores
//! (n × k) are row-aligned with the input (on the rank of their input row).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringArray, new_null_array};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::DataType;
use datafusion::error::{DataFusionError, Result};
use engine::ml::pca::project_into;
use futures::future::BoxFuture;
use tch::{Device, Kind, Tensor};

use super::args::{ArgKind, ArgSpec, Args, arg};
use super::features::{FeatureArgs, feature_args, names, output_schema, project, take_inputs};
use super::output::{f64_column, float_columns, slices};
use super::{FunctionDef, Layout, Output, Planned, RunContext, TableFunction, exec_error};
use crate::convert::{LoadInput, is_numeric};
use crate::settings::HeatsqlOptions;

/// `pca_project` in the registry.
pub const DEF: FunctionDef = FunctionDef {
    name: "pca_project",
    exec_name: "PcaProjectExec",
    inputs: &["input"],
    args: &[&PROJECT_ARGS],
    plan,
};

const PROJECT_ARGS: [ArgSpec; 1] = [arg("model", ArgKind::Relation)];

/// A planned `pca_project(...)` call.
#[derive(Debug)]
struct PcaProject {
    f: FeatureArgs,
    /// `columns =>` given: these input columns, in order, stand for the model's features.
    explicit: bool,
    /// The model's component columns.
    pcs: Vec<String>,
    out: Output,
}

/// Plans `pca_project(input, model => (SELECT * FROM loadings), …)`: the model must have a
/// loadings table's columns (`feature`, `mean`, `scale`, `pc1` …).
fn plan(mut args: Args, settings: &HeatsqlOptions) -> Result<Planned> {
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
        if !is_numeric(t) {
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
        if !is_numeric(t) {
            return Err(args.error(format!("{expected}; its column '{name}' is {t}, expected a number")));
        }
    }
    let schema = output_schema(&f.keep, &pcs, &f.float_type(), true);
    let input = project(input, &f.keep, &f.features)?;
    let model = project(
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
        out: Output::new(schema, Layout::RowSplit),
    };
    Ok(Planned::new(call, vec![input]).with_models(vec![model]))
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

impl PcaProject {
    /// The model's features against the input's columns: as many as `columns =>` names, or
    /// each a numeric input column.
    fn check_features(&self, model: &[String]) -> Result<()> {
        if self.explicit && self.f.features.len() != model.len() {
            return Err(DataFusionError::Execution(format!(
                "pca_project: columns => names {} columns, the model has {} features ({})",
                self.f.features.len(),
                model.len(),
                model.join(", ")
            )));
        }
        if !self.explicit
            && let Some(missing) = model.iter().find(|x| !self.f.features.contains(x))
        {
            return Err(DataFusionError::Execution(format!(
                "pca_project: the model's feature '{missing}' is not a numeric column of the input \
                 (numeric columns: {}); name the input's columns with columns => ...",
                self.f.features.join(", ")
            )));
        }
        Ok(())
    }
}

impl TableFunction for PcaProject {
    fn describe(&self) -> String {
        let columns = if self.explicit {
            names(&self.f.features)
        } else {
            "the model's features".to_string()
        };
        format!("components={}, {}", names(&self.pcs), self.f.describe_as(&columns))
    }

    fn output(&self) -> &Output {
        &self.out
    }

    fn run<'a>(&'a self, inputs: Vec<LoadInput>, ctx: RunContext<'a>) -> BoxFuture<'a, Result<Vec<RecordBatch>>> {
        Box::pin(async move {
            let [input, model] = take_inputs("pca_project", inputs)?;
            // The model is the same on every rank; reading it can still fail on one.
            let (loadings, device) = self
                .f
                .read_model(model, &ctx, |batches| {
                    let l = read_loadings(batches, &self.pcs)?;
                    self.check_features(&l.features)?;
                    Ok(l)
                })
                .await?;
            let columns = if self.explicit {
                self.f.features.clone()
            } else {
                loadings.features.clone()
            };
            let loaded = self
                .f
                .load_columns(ctx.comm, "pca_project", input, columns, device)
                .await?;
            let scores = project_into(loaded.array, &loadings.mean, &loadings.scale, &loadings.components)
                .map_err(exec_error)?;
            let rows = scores.size()[1] as usize;
            let keep = self.f.keep.len();
            let mut columns: Vec<ArrayRef> = loaded.keep.map(|k| k.columns().to_vec()).unwrap_or_default();
            let mut computed = float_columns(scores)?.into_iter();
            for (j, empty) in loadings.empty.iter().enumerate() {
                let field = self.out.schema.field(keep + j);
                if *empty {
                    columns.push(new_null_array(field.data_type(), rows));
                } else if let Some(c) = computed.next() {
                    columns.push(c);
                }
            }
            let batch = RecordBatch::try_new(Arc::clone(&self.out.schema), columns)?;
            Ok(slices(&batch, ctx.task.session_config().batch_size()))
        })
    }
}
