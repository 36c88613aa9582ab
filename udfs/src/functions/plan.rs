//! Planning: the relation planner that recognises heatsql's functions in `FROM`, the logical
//! node they become, and the argument handling every function shares (feature and keep
//! columns, dtype, NULL policy, device).

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::{Column, DFSchema, DFSchemaRef};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::planner::{PlannedRelation, RelationPlanner, RelationPlannerContext, RelationPlanning};
use datafusion::logical_expr::{Expr, Extension, LogicalPlan, LogicalPlanBuilder, UserDefinedLogicalNodeCore};
use datafusion::sql::sqlparser::ast::TableFactor;
use engine::DeviceSetting;
use tch::Kind;

use super::TableFunction;
use super::args::Args;
use crate::convert::NullPolicy;
use crate::settings::HeatsqlOptions;

/// Plans `pca(...)`, `pca_project(...)`, `kmeans(...)`, `kmeans_predict(...)` (names case-insensitive) in a `FROM` clause into a
/// [`FunctionNode`]; leaves every other relation to DataFusion.
#[derive(Debug, Default)]
pub struct FunctionRelationPlanner;

impl RelationPlanner for FunctionRelationPlanner {
    fn plan_relation(&self, relation: TableFactor, ctx: &mut dyn RelationPlannerContext) -> Result<RelationPlanning> {
        let name = match &relation {
            TableFactor::Table {
                name, args: Some(_), ..
            } if name.0.len() == 1 => name.0[0].as_ident().map(|i| i.value.to_ascii_lowercase()),
            _ => None,
        };
        let Some(name) = name.filter(|n| super::FUNCTIONS.contains(&n.as_str())) else {
            return Ok(RelationPlanning::Original(Box::new(relation)));
        };
        let TableFactor::Table {
            alias,
            args: Some(args),
            ..
        } = relation
        else {
            unreachable!("matched above");
        };
        let settings = ctx
            .context_provider()
            .options()
            .extensions
            .get::<HeatsqlOptions>()
            .cloned()
            .unwrap_or_default();
        let (call, inputs) = match name.as_str() {
            "pca" => super::pca::plan_pca(args.args, ctx, &settings)?,
            "pca_project" => super::pca::plan_pca_project(args.args, ctx, &settings)?,
            "kmeans" => super::kmeans::plan_kmeans(args.args, ctx, &settings)?,
            "svd" => super::svd::plan_svd(args.args, ctx, &settings)?,
            "matmul" => super::matmul::plan_matmul(args.args, ctx, &settings)?,
            "dmd" => super::dmd::plan_dmd(args.args, ctx, &settings)?,
            "kmeans_predict" => super::kmeans::plan_kmeans_predict(args.args, ctx, &settings)?,
            other => {
                return Err(DataFusionError::Internal(format!(
                    "table function {other} has no planner"
                )));
            }
        };
        let node = FunctionNode::try_new(call, inputs)?;
        let plan = LogicalPlan::Extension(Extension { node: Arc::new(node) });
        Ok(RelationPlanning::Planned(Box::new(PlannedRelation::new(plan, alias))))
    }
}

/// A table function call in a logical plan; its children are the relation arguments.
#[derive(Debug, Clone)]
pub struct FunctionNode {
    /// The resolved call.
    pub call: Arc<dyn TableFunction>,
    /// The relation arguments (inputs), in the order of [`TableFunction::input_layouts`].
    pub inputs: Vec<LogicalPlan>,
    /// The output schema (unqualified; an alias qualifies it).
    schema: DFSchemaRef,
}

impl FunctionNode {
    /// The node for `call` over `inputs`.
    pub fn try_new(call: Arc<dyn TableFunction>, inputs: Vec<LogicalPlan>) -> Result<Self> {
        let schema = Arc::new(DFSchema::try_from(call.schema().as_ref().clone())?);
        Ok(FunctionNode { call, inputs, schema })
    }

    fn key(&self) -> (&'static str, String) {
        (self.call.name(), self.call.describe())
    }
}

impl PartialEq for FunctionNode {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key() && self.inputs == other.inputs
    }
}

impl Eq for FunctionNode {}

impl Hash for FunctionNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
        self.inputs.hash(state);
    }
}

impl PartialOrd for FunctionNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match self.key().cmp(&other.key()) {
            Ordering::Equal if self.inputs != other.inputs => None,
            o => Some(o),
        }
    }
}

impl UserDefinedLogicalNodeCore for FunctionNode {
    fn name(&self) -> &str {
        self.call.name()
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        self.inputs.iter().collect()
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}: {}", self.call.name(), self.call.describe())
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> Result<Self> {
        Ok(FunctionNode {
            call: Arc::clone(&self.call),
            inputs,
            schema: Arc::clone(&self.schema),
        })
    }

    fn supports_limit_pushdown(&self) -> bool {
        false
    }
}

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
    pub fn describe(&self) -> String {
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

use crate::convert::is_numeric;

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
