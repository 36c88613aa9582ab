//! `dmd(input, order_by => 't', rank => … | energy => …, dt => …, steps => …, layout => …,
//! output => …)`: exact dynamic mode decomposition of the input's snapshots, over
//! `engine::ml::dmd`.
//!
//! Shapes: with `layout => 'rows'` (the default) each row is a snapshot (m rows × d feature
//! columns), in the order of `order_by` (sorted across ranks where the rows are, never
//! gathered; evenly spaced, no duplicates, no NULLs) or, without it, in input order. With
//! `layout => 'columns'` each row is a state point (n rows, split by rows; `keep` identifies
//! them) and the feature columns, in order, are the m snapshots.
//!
//! Outputs: `eigenvalues` (one row per mode, the same on every rank), `modes` (one row per
//! feature, or per state point on its rank), `forecast` (`steps` snapshots past the last) and
//! `reconstruction` (one per input snapshot, or per state point).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, new_null_array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::{DataFusionError, Result};
use engine::ml::dmd::{DmdOptions, Layout as Snapshots, Rank, fit};
use futures::future::BoxFuture;
use tch::{Kind, Tensor};

use super::args::{ArgKind, ArgSpec, Args, arg};
use super::features::{FeatureArgs, feature_args_ordered, order_field, ordered, output_schema, project, take_inputs};
use super::output::{float_array, float_columns, scores_batches, slices};
use super::series::TimeAxis;
use super::{FunctionDef, Layout, Output, Planned, RunContext, TableFunction, exec_error};
use crate::convert::{LoadInput, NullPolicy, load};
use crate::settings::HeatsqlOptions;

/// `dmd` in the registry.
pub const DEF: FunctionDef = FunctionDef {
    name: "dmd",
    exec_name: "DmdExec",
    inputs: &["input"],
    args: &[&DMD_ARGS],
    plan,
};

const DMD_ARGS: [ArgSpec; 7] = [
    arg("order_by", ArgKind::Text),
    arg("rank", ArgKind::Int),
    arg("energy", ArgKind::Float),
    arg("dt", ArgKind::Float),
    arg("steps", ArgKind::Int),
    arg("layout", ArgKind::Text),
    arg("output", ArgKind::Text),
];

/// Which table `dmd` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DmdOutput {
    Eigenvalues,
    Modes,
    Forecast,
    Reconstruction,
}

/// A planned `dmd(...)` call.
#[derive(Debug)]
struct DmdCall {
    f: FeatureArgs,
    layout: Snapshots,
    order_by: Option<Field>,
    rank: Rank,
    dt: Option<f64>,
    steps: i64,
    output: DmdOutput,
    /// Mode columns in the `modes` output (the rank, or its largest possible value).
    width: i64,
    out: Output,
}

/// Plans `dmd(input, …)`: checks the arguments and fixes the output schema.
fn plan(mut args: Args, settings: &HeatsqlOptions) -> Result<Planned> {
    let input = args.inputs.remove(0);
    let layout = match args.choice("layout", &["rows", "columns"], "rows")? {
        "columns" => Snapshots::Columns,
        _ => Snapshots::Rows,
    };
    let order_by = order_field(&args, &input, "order_by")?;
    if layout == Snapshots::Columns && order_by.is_some() {
        return Err(args.error(
            "order_by => applies to layout => 'rows'; with layout => 'columns' the feature columns, in order, \
             are the snapshots",
        ));
    }
    let mut f = feature_args_ordered(&args, &input, settings, order_by.as_ref().map(|o| ("order_by", o)))?;
    if layout == Snapshots::Rows {
        if !f.keep.is_empty() {
            return Err(args.error(
                "keep => applies to layout => 'columns' (rows that are state points); with snapshots as rows the \
                 outputs carry the order_by column",
            ));
        }
        if f.nulls == NullPolicy::Drop {
            return Err(args.error("nulls => 'drop' would remove snapshots; filter or fill NULLs in a subquery"));
        }
    }
    let rank = match (args.int("rank"), args.float("energy")) {
        (Some(_), Some(_)) => return Err(args.error("give rank => or energy =>, not both")),
        (Some(r), None) => {
            if r < 1 {
                return Err(args.error(format!("rank = {r} is out of range; expected rank ≥ 1")));
            }
            Rank::Fixed(r)
        }
        (None, Some(e)) => {
            if !(e > 0.0 && e <= 1.0) {
                return Err(args.error(format!("energy = {e} is out of range; expected 0 < energy ≤ 1")));
            }
            Rank::Energy(e)
        }
        (None, None) => Rank::Optimal,
    };
    let dt = args.float("dt");
    if let Some(dt) = dt
        && !(dt.is_finite() && dt > 0.0)
    {
        return Err(args.error(format!("dt = {dt} must be a positive number")));
    }
    let output = match args.choice(
        "output",
        &["eigenvalues", "modes", "forecast", "reconstruction"],
        "eigenvalues",
    )? {
        "modes" => DmdOutput::Modes,
        "forecast" => DmdOutput::Forecast,
        "reconstruction" => DmdOutput::Reconstruction,
        _ => DmdOutput::Eigenvalues,
    };
    let steps = match (output, args.int("steps")) {
        (DmdOutput::Forecast, Some(s)) if s >= 1 => s,
        (DmdOutput::Forecast, Some(s)) => {
            return Err(args.error(format!("steps = {s} is out of range; expected steps ≥ 1")));
        }
        (DmdOutput::Forecast, None) => {
            return Err(args.error("output => 'forecast' needs steps => N (how many snapshots past the last)"));
        }
        (_, Some(_)) => return Err(args.error("steps => applies to output => 'forecast'")),
        (_, None) => 0,
    };
    let d = f.features.len() as i64;
    // The largest rank the data can have that is known now: the features (rows layout) or the
    // snapshot pairs (columns layout).
    let most = match layout {
        Snapshots::Rows => d,
        Snapshots::Columns => d - 1,
    };
    if layout == Snapshots::Columns && d < 2 {
        return Err(args.error(format!(
            "layout => 'columns' needs at least 2 snapshot columns; the input has {d}"
        )));
    }
    if let Rank::Fixed(r) = rank
        && r > most
    {
        return Err(args.error(match layout {
            Snapshots::Rows => format!("rank = {r} exceeds the {d} feature columns of each snapshot"),
            Snapshots::Columns => {
                format!("rank = {r} exceeds the snapshot pairs: {d} snapshot columns give at most {most}")
            }
        }));
    }
    let width = match rank {
        Rank::Fixed(r) => r,
        _ => most,
    };
    let float = f.float_type();
    let f64_field = |n: &str| Field::new(n, DataType::Float64, false);
    let schema = match output {
        DmdOutput::Eigenvalues => Arc::new(Schema::new(vec![
            Field::new("mode", DataType::Int64, false),
            f64_field("real"),
            f64_field("imag"),
            f64_field("modulus"),
            f64_field("frequency"),
            f64_field("growth_rate"),
            f64_field("amplitude"),
        ])),
        DmdOutput::Modes => {
            let cols: Vec<String> = (1..=width)
                .flat_map(|j| [format!("mode{j}_re"), format!("mode{j}_im")])
                .collect();
            let nullable = !matches!(rank, Rank::Fixed(_));
            match layout {
                Snapshots::Rows => {
                    let mut fields = vec![Field::new("feature", DataType::Utf8, false)];
                    fields.extend(cols.iter().map(|n| Field::new(n, float.clone(), nullable)));
                    Arc::new(Schema::new(fields))
                }
                Snapshots::Columns => output_schema(&f.keep, &cols, &float, nullable),
            }
        }
        DmdOutput::Forecast => match layout {
            Snapshots::Rows => {
                let mut fields = vec![Field::new("step", DataType::Int64, false)];
                fields.extend(order_by.iter().cloned().map(|o| o.with_nullable(false)));
                fields.extend(f.features.iter().map(|n| Field::new(n, float.clone(), false)));
                Arc::new(Schema::new(fields))
            }
            Snapshots::Columns => {
                let cols: Vec<String> = (1..=steps).map(|s| format!("step{s}")).collect();
                output_schema(&f.keep, &cols, &float, false)
            }
        },
        DmdOutput::Reconstruction => match layout {
            Snapshots::Rows => {
                let first = match &order_by {
                    Some(o) => o.clone().with_nullable(false),
                    None => Field::new("snapshot", DataType::Int64, false),
                };
                let mut fields = vec![first];
                fields.extend(f.features.iter().map(|n| Field::new(n, float.clone(), false)));
                Arc::new(Schema::new(fields))
            }
            Snapshots::Columns => output_schema(&f.keep, &f.features, &float, false),
        },
    };
    if output == DmdOutput::Eigenvalues || layout == Snapshots::Rows {
        f.keep.clear();
    }
    // The order column travels with the rows (a keep column of the load).
    let mut carried = f.keep.clone();
    carried.extend(order_by.iter().cloned());
    let input = project(input, &carried, &f.features)?;
    let call = DmdCall {
        f,
        layout,
        order_by,
        rank,
        dt,
        steps,
        output,
        width,
        out: Output::new(schema, output_layout(output, layout)),
    };
    Ok(Planned::new(call, vec![input]))
}

/// Where the rows of `output` are: one row per snapshot (`reconstruction`) or per state
/// variable with snapshots in columns follow the input's split; the rest is small.
fn output_layout(output: DmdOutput, layout: Snapshots) -> Layout {
    match (output, layout) {
        (DmdOutput::Reconstruction, _) => Layout::RowSplit,
        (DmdOutput::Modes | DmdOutput::Forecast, Snapshots::Columns) => Layout::RowSplit,
        _ => Layout::Replicated,
    }
}

impl TableFunction for DmdCall {
    fn describe(&self) -> String {
        let rank = match self.rank {
            Rank::Fixed(r) => format!("rank={r}"),
            Rank::Energy(e) => format!("energy={e}"),
            Rank::Optimal => "rank=optimal".to_string(),
        };
        format!(
            "layout={}, {}{rank}, dt={}, output={}{}, {}",
            if self.layout == Snapshots::Rows {
                "rows"
            } else {
                "columns"
            },
            self.order_by
                .as_ref()
                .map(|o| format!("order_by={}, ", o.name()))
                .unwrap_or_default(),
            self.dt.map(|d| d.to_string()).unwrap_or_else(|| "step".into()),
            match self.output {
                DmdOutput::Eigenvalues => "eigenvalues",
                DmdOutput::Modes => "modes",
                DmdOutput::Forecast => "forecast",
                DmdOutput::Reconstruction => "reconstruction",
            },
            if self.output == DmdOutput::Forecast {
                format!(", steps={}", self.steps)
            } else {
                String::new()
            },
            self.f.describe()
        )
    }

    fn output(&self) -> &Output {
        &self.out
    }

    fn run<'a>(&'a self, inputs: Vec<LoadInput>, ctx: RunContext<'a>) -> BoxFuture<'a, Result<Vec<RecordBatch>>> {
        Box::pin(async move {
            let [input] = take_inputs("dmd", inputs)?;
            let comm = ctx.comm;
            let device = self.f.device(&ctx)?;
            let order = self.order_by.as_ref().map(|o| o.name().as_str());
            let input = ordered(input, "dmd", "order_by", order, comm).await?;
            let mut spec = self.f.load_spec("dmd", self.f.features.clone(), device);
            spec.keep.extend(order.map(str::to_string));
            let loaded = load(comm, input, &spec).await.map_err(DataFusionError::from)?;
            // The time axis: evenly spaced (checked), its step the default dt.
            let axis = match (&self.order_by, &loaded.keep) {
                (Some(o), Some(keep)) => {
                    let values = keep
                        .column_by_name(o.name())
                        .ok_or_else(|| DataFusionError::Internal("dmd: order column not loaded".into()))?;
                    Some(TimeAxis::new("dmd", o.name(), values, comm)?)
                }
                _ => None,
            };
            let dt = self.dt.or(axis.as_ref().map(|a| a.dt())).unwrap_or(1.0);
            let model = fit(&loaded.array, self.layout, &DmdOptions { rank: self.rank, dt }).map_err(exec_error)?;
            let batch_size = ctx.task.session_config().batch_size();
            let float = self.f.float_type();
            let kind = self.f.kind;
            match self.output {
                DmdOutput::Eigenvalues => Ok(vec![eigenvalue_batch(&model, &self.out.schema)?]),
                DmdOutput::Modes => {
                    let r = model.rank();
                    // Columns re, im per mode: state × 2r (f64) → 2r × state.
                    let parts = model.modes.view_as_real().reshape([-1, 2 * r]).to_kind(kind);
                    match self.layout {
                        Snapshots::Rows => {
                            let mut columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from(self.f.features.clone()))];
                            for j in 0..2 * r {
                                let v = Vec::<f64>::try_from(parts.select(1, j).to_kind(Kind::Double).contiguous())
                                    .map_err(exec_error)?;
                                columns.push(float_array(v, &float)?);
                            }
                            let rows = self.f.features.len();
                            for field in self.out.schema.fields().iter().skip(columns.len()) {
                                columns.push(new_null_array(field.data_type(), rows));
                            }
                            Ok(vec![RecordBatch::try_new(Arc::clone(&self.out.schema), columns)?])
                        }
                        Snapshots::Columns => scores_batches(
                            parts.tr().contiguous(),
                            2 * self.width as usize,
                            &self.out.schema,
                            loaded.keep.as_ref(),
                            batch_size,
                        ),
                    }
                }
                DmdOutput::Forecast => {
                    let x = model.forecast(self.steps).map_err(exec_error)?.to_kind(kind);
                    match self.layout {
                        Snapshots::Rows => {
                            let mut columns: Vec<ArrayRef> =
                                vec![Arc::new(Int64Array::from((1..=self.steps).collect::<Vec<_>>()))];
                            if let Some(a) = &axis {
                                columns.push(a.extrapolate(self.steps)?);
                            }
                            columns.extend(float_columns(x.tr().contiguous())?);
                            Ok(slices(
                                &RecordBatch::try_new(Arc::clone(&self.out.schema), columns)?,
                                batch_size,
                            ))
                        }
                        Snapshots::Columns => scores_batches(
                            x.tr().contiguous(),
                            self.steps as usize,
                            &self.out.schema,
                            loaded.keep.as_ref(),
                            batch_size,
                        ),
                    }
                }
                DmdOutput::Reconstruction => {
                    let x = model.reconstruction().map_err(exec_error)?.to_kind(kind);
                    match self.layout {
                        Snapshots::Rows => {
                            let rows = x.size()[0];
                            let first: ArrayRef = match (&self.order_by, &loaded.keep) {
                                (Some(o), Some(keep)) => keep
                                    .column_by_name(o.name())
                                    .cloned()
                                    .ok_or_else(|| DataFusionError::Internal("dmd: order column not loaded".into()))?,
                                _ => {
                                    let start = engine::dndarray::offsets(loaded.array.counts())[comm.rank()];
                                    Arc::new(Int64Array::from((start..start + rows).collect::<Vec<_>>()))
                                }
                            };
                            let mut columns = vec![first];
                            columns.extend(float_columns(x.tr().contiguous())?);
                            Ok(slices(
                                &RecordBatch::try_new(Arc::clone(&self.out.schema), columns)?,
                                batch_size,
                            ))
                        }
                        Snapshots::Columns => scores_batches(
                            x.tr().contiguous(),
                            self.f.features.len(),
                            &self.out.schema,
                            loaded.keep.as_ref(),
                            batch_size,
                        ),
                    }
                }
            }
        })
    }
}

/// One row per mode: λ's parts and modulus, the continuous-time frequency and growth rate, |b|.
fn eigenvalue_batch(model: &engine::ml::dmd::Dmd, schema: &SchemaRef) -> Result<RecordBatch> {
    let f = |t: Tensor| Vec::<f64>::try_from(t.to_kind(Kind::Double).contiguous()).map_err(exec_error);
    let lambda = &model.eigenvalues;
    let omega = model.continuous_eigenvalues();
    let r = model.rank();
    let freq: Vec<f64> = f(omega.imag())?.iter().map(|w| w / std::f64::consts::TAU).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from((1..=r).collect::<Vec<_>>())),
        Arc::new(Float64Array::from(f(lambda.real())?)),
        Arc::new(Float64Array::from(f(lambda.imag())?)),
        Arc::new(Float64Array::from(f(lambda.abs())?)),
        Arc::new(Float64Array::from(freq)),
        Arc::new(Float64Array::from(f(omega.real())?)),
        Arc::new(Float64Array::from(f(model.amplitudes.abs())?)),
    ];
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}
