//! `kmeans_predict(input, centroids => (SELECT * FROM <centroids>), …)`: each input row's
//! nearest centroid of a fitted k-means (the table `kmeans(…, output => 'centroids')`
//! returns), over `engine::ml::kmeans::predict`.
//!
//! Shapes: the feature columns form X (n rows × d features, split by rows as the input is); the
//! centroids (k rows × d) are the same on every rank. The output has one row per input row, on
//! the rank of its input row: keep columns, `cluster` (0 … k − 1) and `distance`.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::error::Result;
use engine::ml::kmeans::predict;
use futures::future::BoxFuture;

use super::args::{ArgKind, ArgSpec, Args, arg};
use super::features::{FeatureArgs, feature_args, names, project, take_inputs};
use super::output::{assignment_batches, read_centroids};
use super::{FunctionDef, Layout, Output, Planned, RunContext, TableFunction, exec_error};
use crate::convert::{LoadInput, is_numeric};
use crate::settings::HeatsqlOptions;

/// `kmeans_predict` in the registry.
pub const DEF: FunctionDef = FunctionDef {
    name: "kmeans_predict",
    exec_name: "KMeansPredictExec",
    inputs: &["input"],
    args: &[&PREDICT_ARGS],
    plan,
};

const PREDICT_ARGS: [ArgSpec; 1] = [arg("centroids", ArgKind::Relation)];

#[derive(Debug)]
struct KMeansPredict {
    f: FeatureArgs,
    /// `columns =>` given: these input columns, in order, stand for the model's features.
    explicit: bool,
    /// The model's feature columns (every numeric column but cluster, size and inertia).
    features: Vec<String>,
    out: Output,
}

/// Plans `kmeans_predict(input, centroids => (SELECT * FROM <centroids>), …)`.
fn plan(mut args: Args, settings: &HeatsqlOptions) -> Result<Planned> {
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
        .filter(|x| is_numeric(x.data_type()))
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
    let input = project(input, &f.keep, &f.features)?;
    let mut model_cols = vec!["cluster".to_string()];
    model_cols.extend(features.iter().cloned());
    let model = project(model, &[], &model_cols)?;
    let call = KMeansPredict {
        f,
        explicit,
        features,
        out: Output::new(schema, Layout::RowSplit),
    };
    Ok(Planned::new(call, vec![input]).with_models(vec![model]))
}

impl TableFunction for KMeansPredict {
    fn describe(&self) -> String {
        let columns = if self.explicit {
            names(&self.f.features)
        } else {
            "the centroids' features".to_string()
        };
        format!("features={}, {}", names(&self.features), self.f.describe_as(&columns))
    }

    fn output(&self) -> &Output {
        &self.out
    }

    fn run<'a>(&'a self, inputs: Vec<LoadInput>, ctx: RunContext<'a>) -> BoxFuture<'a, Result<Vec<RecordBatch>>> {
        Box::pin(async move {
            let [input, model] = take_inputs("kmeans_predict", inputs)?;
            let (centroids, device) = self
                .f
                .read_model(model, &ctx, |batches| {
                    read_centroids(batches, &self.features, "kmeans_predict: centroids =>")
                })
                .await?;
            let loaded = self.f.load(ctx.comm, "kmeans_predict", input, device).await?;
            let (labels, distances) = predict(&loaded.array, &centroids).map_err(exec_error)?;
            assignment_batches(
                &self.out.schema,
                loaded.keep.as_ref(),
                labels.local(),
                distances.local(),
                ctx.task.session_config().batch_size(),
            )
        })
    }
}
