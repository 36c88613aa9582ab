//! What every function over feature columns shares: the feature and keep columns resolved
//! against an input (with dtype, NULL policy and device), the input reduced to them, output
//! schemas, and the run preamble (the device agreed over the ranks, the input loaded as a
//! row-split DNDarray, models read on every rank).

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{Column, DFSchema};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder};
use engine::{Comm, DeviceSetting};
use futures::TryStreamExt;
use tch::{Device, Kind};

use super::args::Args;
use super::{RunContext, exec_error};
use crate::convert::{LoadInput, LoadSpec, Loaded, NullPolicy, is_numeric, load};
use crate::settings::HeatsqlOptions;

/// Arguments every function over feature columns takes, resolved against the input.
#[derive(Debug, Clone)]
pub struct FeatureArgs {
    /// Feature columns in order.
    pub features: Vec<String>,
    /// Pass-through columns (their input fields).
    pub keep: Vec<Field>,
    /// `Kind::Double` or `Kind::Float`.
    pub kind: Kind,
    /// NULL/NaN policy.
    pub nulls: NullPolicy,
    /// Where the tensors live.
    pub device: DeviceSetting,
}

impl FeatureArgs {
    /// The Arrow type of float outputs (Float64 or Float32, following `dtype`).
    pub fn float_type(&self) -> DataType {
        if self.kind == Kind::Float {
            DataType::Float32
        } else {
            DataType::Float64
        }
    }

    /// `dtype=…, nulls=…, device=…` for EXPLAIN.
    pub fn describe_options(&self) -> String {
        format!(
            "dtype={}, nulls={}, device={}",
            if self.kind == Kind::Float { "float32" } else { "float64" },
            if self.nulls == NullPolicy::Drop {
                "drop"
            } else {
                "error"
            },
            match self.device {
                DeviceSetting::Auto => "auto",
                DeviceSetting::Cpu => "cpu",
                DeviceSetting::Cuda => "cuda",
            }
        )
    }
}

/// A column of `schema` by name (exact, else the only case-insensitive match).
fn find<'a>(args: &Args, schema: &'a DFSchema, name: &str, what: &str) -> Result<(usize, &'a Field)> {
    let fields = schema.fields();
    let exact: Vec<usize> = (0..fields.len()).filter(|&i| fields[i].name() == name).collect();
    let matches = if exact.is_empty() {
        (0..fields.len())
            .filter(|&i| fields[i].name().eq_ignore_ascii_case(name))
            .collect()
    } else {
        exact
    };
    match matches.as_slice() {
        [i] => Ok((*i, fields[*i].as_ref())),
        [] => Err(args.error(format!(
            "{what} column '{name}' not found; available columns: {}",
            fields.iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
        ))),
        _ => Err(args.error(format!(
            "{what} column '{name}' is ambiguous in the input; select it once (with an alias) in a subquery"
        ))),
    }
}

/// Resolves `columns`, `keep`, `dtype`, `nulls` and `device` against `input`. Feature columns
/// must be numeric; by default they are every numeric column not in `keep`. With
/// `default_features = false` and no `columns`, `features` is every numeric non-keep column
/// too but the function decides at execution which it uses (`pca_project`).
pub fn feature_args(args: &Args, input: &LogicalPlan, settings: &HeatsqlOptions) -> Result<FeatureArgs> {
    feature_args_ordered(args, input, settings, None)
}

/// The column named by the ordering argument `arg` (`a_order`, `order_by`) of `input`, when
/// given: it must exist and hold integers, floats or temporal values.
pub fn order_field(args: &Args, input: &LogicalPlan, arg: &str) -> Result<Option<Field>> {
    let Some(name) = args.text(arg) else {
        return Ok(None);
    };
    let (_, f) = find(args, input.schema(), name.trim(), arg)?;
    if !crate::exchange::is_orderable(f.data_type()) {
        return Err(args.error(format!(
            "{arg} column '{}' is {}; expected an integer, float, date, time, timestamp or duration column",
            f.name(),
            f.data_type()
        )));
    }
    Ok(Some(f.clone()))
}

/// [`feature_args`] for an input ordered by the column `order` (from [`order_field`]): that
/// column is not a feature (left out of the default features, refused in `columns`).
pub fn feature_args_ordered(
    args: &Args,
    input: &LogicalPlan,
    settings: &HeatsqlOptions,
    order: Option<(&str, &Field)>,
) -> Result<FeatureArgs> {
    let schema = input.schema();
    let keep_names = args.names("keep")?.unwrap_or_default();
    let mut keep = Vec::with_capacity(keep_names.len());
    let mut keep_idx = Vec::new();
    for k in &keep_names {
        let (i, f) = find(args, schema, k, "keep")?;
        if keep_idx.contains(&i) {
            return Err(args.error(format!("keep column '{k}' is listed twice")));
        }
        keep_idx.push(i);
        keep.push(f.clone());
    }
    let features = match args.names("columns")? {
        Some(cols) => {
            let mut out: Vec<String> = Vec::with_capacity(cols.len());
            for c in &cols {
                let (_, f) = find(args, schema, c, "feature")?;
                if !is_numeric(f.data_type()) {
                    return Err(args.error(format!(
                        "column '{}' is {}; feature columns must be numeric (choose them with columns => ...)",
                        f.name(),
                        f.data_type()
                    )));
                }
                if out.contains(f.name()) {
                    return Err(args.error(format!("feature column '{c}' is listed twice")));
                }
                if let Some((arg, o)) = order
                    && o.name() == f.name()
                {
                    return Err(args.error(format!(
                        "column '{}' is the {arg} column, which orders the rows and is not a feature",
                        f.name()
                    )));
                }
                out.push(f.name().clone());
            }
            out
        }
        None => {
            let fields = schema.fields();
            let out: Vec<String> = (0..fields.len())
                .filter(|i| {
                    !keep_idx.contains(i)
                        && is_numeric(fields[*i].data_type())
                        && order.is_none_or(|(_, o)| o.name() != fields[*i].name())
                })
                .map(|i| fields[i].name().clone())
                .collect();
            if out.is_empty() {
                return Err(args.error(format!(
                    "the input has no numeric feature columns (columns: {}); choose them with columns => ...",
                    fields
                        .iter()
                        .map(|f| format!("{} {}", f.name(), f.data_type()))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            out
        }
    };
    let dtype = match args.text("dtype") {
        Some(_) => args.choice("dtype", &["float64", "float32"], "float64")?,
        None => match settings.dtype.trim().to_ascii_lowercase().as_str() {
            "float64" | "double" | "f64" => "float64",
            "float32" | "float" | "f32" => "float32",
            other => {
                return Err(args.error(format!(
                    "SET heatsql.dtype = '{other}' is not a dtype; expected 'float64' or 'float32'"
                )));
            }
        },
    };
    let nulls = match args.choice("nulls", &["error", "drop"], "error")? {
        "drop" => NullPolicy::Drop,
        _ => NullPolicy::Error,
    };
    let device_text = args.text("device").unwrap_or(settings.device.as_str());
    let device: DeviceSetting = device_text.parse().map_err(|_| {
        let origin = if args.has("device") {
            "device =>"
        } else {
            "SET heatsql.device ="
        };
        args.error(format!(
            "{origin} '{device_text}' is not a device; expected 'auto', 'cpu' or 'cuda'"
        ))
    })?;
    Ok(FeatureArgs {
        features,
        keep,
        kind: if dtype == "float32" { Kind::Float } else { Kind::Double },
        nulls,
        device,
    })
}

/// `input` reduced to the named columns (keep columns first, each column once), so that the
/// optimizer prunes every other column from the scans.
pub fn project(input: LogicalPlan, keep: &[Field], features: &[String]) -> Result<LogicalPlan> {
    let mut names: Vec<&str> = keep.iter().map(|f| f.name().as_str()).collect();
    for f in features {
        if !names.contains(&f.as_str()) {
            names.push(f);
        }
    }
    let schema = Arc::clone(input.schema());
    let exprs = names
        .iter()
        .map(|n| {
            let (q, f) = schema.qualified_field_with_unqualified_name(n)?;
            Ok(Expr::Column(Column::new(q.cloned(), f.name())))
        })
        .collect::<Result<Vec<_>>>()?;
    LogicalPlanBuilder::from(input).project(exprs)?.build()
}

/// An output schema: `keep` fields, then the named float columns.
pub fn output_schema(keep: &[Field], floats: &[String], data_type: &DataType, nullable: bool) -> Arc<Schema> {
    let mut fields: Vec<Field> = keep.to_vec();
    fields.extend(floats.iter().map(|n| Field::new(n, data_type.clone(), nullable)));
    Arc::new(Schema::new(fields))
}

/// The keep columns' names.
pub fn keep_names(keep: &[Field]) -> Vec<String> {
    keep.iter().map(|f| f.name().clone()).collect()
}

impl FeatureArgs {
    /// `columns=[…], keep=[…], dtype=…, nulls=…, device=…` for EXPLAIN.
    pub fn describe(&self) -> String {
        self.describe_as(&names(&self.features))
    }

    /// [`FeatureArgs::describe`] with `columns` shown as given (`the model's features`).
    pub fn describe_as(&self, columns: &str) -> String {
        format!(
            "columns={columns}, keep={}, {}",
            names(&keep_names(&self.keep)),
            self.describe_options()
        )
    }

    /// How `columns` of an input are loaded: with the keep columns, dtype and NULL policy of
    /// these arguments, on `device`; `function` names the caller in errors.
    pub fn load_spec(&self, function: &str, columns: Vec<String>, device: Device) -> LoadSpec {
        LoadSpec {
            function: function.to_string(),
            columns: Some(columns),
            keep: keep_names(&self.keep),
            kind: self.kind,
            nulls: self.nulls,
            device,
            expected_rows: None,
        }
    }

    /// Collective: the device these arguments resolve to on this rank (`auto`: the GPU of
    /// this rank's local rank, else the CPU), agreed so that every rank fails if one cannot;
    /// recorded in the call's [`RunContext::device`].
    pub fn device(&self, ctx: &RunContext<'_>) -> Result<Device> {
        let device = ctx
            .comm
            .agree(self.device.resolve(ctx.comm.local_rank()))
            .map_err(crate::agree::comm_error)?;
        ctx.device.get_or_init(|| device);
        Ok(device)
    }

    /// Collective over `comm`: `input` loaded on `device` as the rows × features DNDarray
    /// (split by rows), with its keep columns.
    pub async fn load(&self, comm: &'static Comm, function: &str, input: LoadInput, device: Device) -> Result<Loaded> {
        self.load_columns(comm, function, input, self.features.clone(), device)
            .await
    }

    /// [`FeatureArgs::load`] of the named `columns` (the model's features).
    pub async fn load_columns(
        &self,
        comm: &'static Comm,
        function: &str,
        input: LoadInput,
        columns: Vec<String>,
        device: Device,
    ) -> Result<Loaded> {
        load(comm, input, &self.load_spec(function, columns, device))
            .await
            .map_err(DataFusionError::from)
    }

    /// Collective: a model relation (the same rows on every rank) read whole and checked by
    /// `read`, and this rank's device; agreed, so that every rank fails if one does.
    pub async fn read_model<T>(
        &self,
        model: LoadInput,
        ctx: &RunContext<'_>,
        read: impl FnOnce(&[RecordBatch]) -> Result<T>,
    ) -> Result<(T, Device)> {
        let comm = ctx.comm;
        let outcome = async {
            let batches: Vec<RecordBatch> = model.into_stream().try_collect().await?;
            let value = read(&batches)?;
            let device = self.device.resolve(comm.local_rank()).map_err(exec_error)?;
            Ok::<_, DataFusionError>((value, device))
        }
        .await;
        let (value, device) = crate::agree::agree(comm, outcome)?;
        ctx.device.get_or_init(|| device);
        Ok((value, device))
    }
}

/// A call's inputs as an array of `N` (the planner fixed how many there are).
pub fn take_inputs<const N: usize>(function: &str, inputs: Vec<LoadInput>) -> Result<[LoadInput; N]> {
    let n = inputs.len();
    inputs
        .try_into()
        .map_err(|_| DataFusionError::Internal(format!("{function}: expected {N} inputs, got {n}")))
}

/// `[a, b, c]` for EXPLAIN.
pub fn names(list: &[String]) -> String {
    format!("[{}]", list.join(", "))
}

/// Collective. `input` with its rows sorted across ranks by the column `order` (named by the
/// argument `argument` of `function`; see [`crate::exchange::order_rows`]), or `input` itself
/// when no order is given. Duplicate positions are refused.
pub async fn ordered(
    input: LoadInput,
    function: &str,
    argument: &str,
    order: Option<&str>,
    comm: &Comm,
) -> Result<LoadInput> {
    let Some(column) = order else {
        return Ok(input);
    };
    let input = input.into_stream();
    let schema = input.schema();
    let key = crate::exchange::OrderKey {
        function,
        argument,
        column,
        unique: true,
    };
    let rows = crate::exchange::order_rows(input, &key, comm).await?;
    let sorted: datafusion::execution::SendableRecordBatchStream =
        Box::pin(datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
            schema,
            futures::stream::iter(rows.into_iter().map(Ok)),
        ));
    Ok(sorted.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::DataType;

    fn args(keep: &[&str], features: &[&str]) -> FeatureArgs {
        FeatureArgs {
            features: features.iter().map(|s| s.to_string()).collect(),
            keep: keep.iter().map(|k| Field::new(*k, DataType::Int64, false)).collect(),
            kind: Kind::Float,
            nulls: NullPolicy::Drop,
            device: DeviceSetting::Cpu,
        }
    }

    #[test]
    fn describe_names_columns_keep_and_options_in_order() {
        let f = args(&["id"], &["x", "y"]);
        assert_eq!(
            f.describe(),
            "columns=[x, y], keep=[id], dtype=float32, nulls=drop, device=cpu"
        );
        assert_eq!(
            f.describe_as("the model's features"),
            "columns=the model's features, keep=[id], dtype=float32, nulls=drop, device=cpu"
        );
        assert_eq!(f.float_type(), DataType::Float32);
    }

    #[test]
    fn load_spec_carries_keep_dtype_and_nulls() {
        let f = args(&["id", "t"], &["x"]);
        let spec = f.load_spec("pca", vec!["x".into()], Device::Cpu);
        assert_eq!(spec.function, "pca");
        assert_eq!(spec.columns, Some(vec!["x".to_string()]));
        assert_eq!(spec.keep, ["id", "t"]);
        assert_eq!(spec.kind, Kind::Float);
        assert_eq!(spec.nulls, NullPolicy::Drop);
        assert_eq!(spec.expected_rows, None);
    }

    #[test]
    fn output_schema_puts_keep_columns_first() {
        let keep = [Field::new("id", DataType::Utf8, true)];
        let s = output_schema(&keep, &["pc1".into(), "pc2".into()], &DataType::Float64, false);
        let names: Vec<&str> = s.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["id", "pc1", "pc2"]);
        assert!(s.field(0).is_nullable() && !s.field(1).is_nullable());
    }

    #[test]
    fn take_inputs_refuses_another_count() {
        let err = take_inputs::<2>("matmul", Vec::new())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("matmul: expected 2 inputs, got 0"), "{err}");
        assert!(take_inputs::<0>("x", Vec::new()).is_ok());
        assert_eq!(names(&["a".into(), "b".into()]), "[a, b]");
        assert_eq!(names(&[]), "[]");
    }
}
