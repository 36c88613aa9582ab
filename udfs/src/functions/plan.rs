//! Planning: the relation planner that recognises heatsql's functions in `FROM` (by the
//! registry, [`super::FUNCTIONS`]) and the logical node they become.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::common::{DFSchema, DFSchemaRef};
use datafusion::error::Result;
use datafusion::logical_expr::planner::{PlannedRelation, RelationPlanner, RelationPlannerContext, RelationPlanning};
use datafusion::logical_expr::{Expr, Extension, LogicalPlan, UserDefinedLogicalNodeCore};
use datafusion::sql::sqlparser::ast::TableFactor;

use super::args::Args;
use super::{Call, find};
use crate::settings::HeatsqlOptions;

/// Plans heatsql's table functions (the [`super::FUNCTIONS`], names case-insensitive) in a
/// `FROM` clause into a [`FunctionNode`]; leaves every other relation to DataFusion.
#[derive(Debug, Default)]
pub struct FunctionRelationPlanner;

impl RelationPlanner for FunctionRelationPlanner {
    fn plan_relation(&self, relation: TableFactor, ctx: &mut dyn RelationPlannerContext) -> Result<RelationPlanning> {
        let def = match &relation {
            TableFactor::Table {
                name, args: Some(_), ..
            } if name.0.len() == 1 => name.0[0].as_ident().and_then(|i| find(&i.value)),
            _ => None,
        };
        let Some(def) = def else {
            unknown_with_named_arguments(&relation)?;
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
        let args = Args::parse(def.name, def.inputs, &def.specs(), args.args, ctx)?;
        let (call, inputs) = Call::new(def, (def.plan)(args, &settings)?);
        let node = FunctionNode::try_new(call, inputs)?;
        let plan = LogicalPlan::Extension(Extension { node: Arc::new(node) });
        Ok(RelationPlanning::Planned(Box::new(PlannedRelation::new(plan, alias))))
    }
}

/// A call of a table function heatsql does not have, with `name => value` arguments (a typo
/// of one of heatsql's, most likely): an error naming it and listing heatsql's functions.
/// DataFusion's own table functions take no named arguments, so it would only report
/// "Unsupported function argument type".
fn unknown_with_named_arguments(relation: &TableFactor) -> Result<()> {
    use datafusion::sql::sqlparser::ast::FunctionArg;
    let TableFactor::Table {
        name, args: Some(args), ..
    } = relation
    else {
        return Ok(());
    };
    let named = args
        .args
        .iter()
        .any(|a| matches!(a, FunctionArg::Named { .. } | FunctionArg::ExprNamed { .. }));
    if !named {
        return Ok(());
    }
    let list = super::FUNCTIONS.iter().map(|d| d.name).collect::<Vec<_>>().join(", ");
    Err(datafusion::error::DataFusionError::Plan(format!(
        "unknown table function '{name}'; heatsql's table functions are {list}"
    )))
}

/// A table function call in a logical plan; its children are the relation arguments.
#[derive(Debug, Clone)]
pub struct FunctionNode {
    /// The resolved call.
    pub call: Call,
    /// The relation arguments (inputs, then models), in the order of [`Call::input_layouts`].
    pub inputs: Vec<LogicalPlan>,
    /// The output schema (unqualified; an alias qualifies it).
    schema: DFSchemaRef,
}

impl FunctionNode {
    /// The node for `call` over `inputs`.
    pub fn try_new(call: Call, inputs: Vec<LogicalPlan>) -> Result<Self> {
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
            call: self.call.clone(),
            inputs,
            schema: Arc::clone(&self.schema),
        })
    }

    fn supports_limit_pushdown(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::DataType;

    use super::super::Layout;
    use super::super::testing::{function_node, plan, plan_error, plan_in, session};
    use super::*;

    fn columns(node: &FunctionNode) -> Vec<(String, DataType)> {
        node.call
            .schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect()
    }

    fn names(node: &FunctionNode) -> Vec<String> {
        columns(node).into_iter().map(|c| c.0).collect()
    }

    /// The columns a relation argument reads (its plan's output).
    fn input_columns(node: &FunctionNode, i: usize) -> Vec<String> {
        node.inputs[i]
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    #[test]
    fn pca_plans_its_scores_over_the_numeric_columns_only() {
        let p = plan("SELECT * FROM pca(t, k => 2, keep => 'id')").unwrap();
        let node = function_node(&p);
        assert_eq!(node.call.exec_name(), "PcaExec");
        assert_eq!(
            columns(node),
            [
                ("id".to_string(), DataType::Int64),
                ("pc1".into(), DataType::Float64),
                ("pc2".into(), DataType::Float64)
            ]
        );
        assert_eq!(
            input_columns(node, 0),
            ["id", "x", "y", "z"],
            "s is neither a feature nor kept"
        );
        assert_eq!(node.call.input_layouts, [Layout::RowSplit]);
        assert_eq!(node.call.output_layout(), Layout::RowSplit);
        let d = node.call.describe();
        assert!(d.starts_with("k=2, solver=covariance (auto)"), "{d}");
        assert!(
            d.contains("columns=[x, y, z], keep=[id], dtype=float64, nulls=error, device=auto"),
            "{d}"
        );
    }

    #[test]
    fn pca_outputs_and_the_session_dtype_fix_the_schema() {
        let p = plan("SELECT * FROM pca(t, k => 2, output => 'variance')").unwrap();
        let node = function_node(&p);
        assert_eq!(
            names(node),
            [
                "component",
                "singular_value",
                "explained_variance",
                "explained_variance_ratio",
                "cumulative_variance_ratio",
                "error_estimate"
            ]
        );
        assert_eq!(node.call.output_layout(), Layout::Replicated);
        let p = plan("SELECT * FROM pca(t, k => 1, output => 'loadings', columns => 'y, x')").unwrap();
        let node = function_node(&p);
        assert_eq!(names(node), ["feature", "mean", "scale", "pc1"]);
        assert_eq!(input_columns(node, 0), ["y", "x"]);
        let ctx = session(crate::settings::HeatsqlOptions {
            dtype: "float32".into(),
            ..Default::default()
        });
        let p = plan_in(&ctx, "SELECT * FROM pca(t, k => 1)").unwrap();
        assert_eq!(columns(function_node(&p)), [("pc1".to_string(), DataType::Float32)]);
    }

    #[test]
    fn planning_errors_name_the_function_and_argument() {
        for (sql, want) in [
            (
                "SELECT * FROM pca(t)",
                "pca: missing argument k (the number of components) or variance",
            ),
            (
                "SELECT * FROM pca(t, k => 4, keep => 'id')",
                "pca: k = 4 is out of range; expected 1 ≤ k ≤ the number of feature columns (3)",
            ),
            (
                "SELECT * FROM pca(t, k => 1, columns => 's, x')",
                "pca: column 's' is Utf8; feature columns must be numeric (choose them with columns => ...)",
            ),
            (
                "SELECT * FROM pca(t, k => 1, keep => 'nope')",
                "pca: keep column 'nope' not found",
            ),
            (
                "SELECT * FROM svd(t, k => 4, keep => 'id')",
                "svd: k = 4 exceeds min(rows, columns): the input has 3 feature columns",
            ),
            (
                "SELECT * FROM kmeans(t, k => 0)",
                "kmeans: k = 0 is out of range; expected k ≥ 1",
            ),
            (
                "SELECT * FROM dmd(t, order_by => 'id', rank => 2, energy => 0.9)",
                "dmd: give rank => or energy =>, not both",
            ),
        ] {
            let got = plan_error(sql);
            assert!(got.contains(want), "{sql}\n got: {got}\nwant: {want}");
        }
    }

    #[test]
    fn relation_arguments_get_their_layouts() {
        let p = plan("SELECT * FROM matmul((SELECT x, y FROM t), (SELECT x, z FROM t WHERE id < 3))").unwrap();
        let node = function_node(&p);
        assert_eq!(node.call.exec_name(), "MatmulExec");
        assert_eq!(node.call.input_layouts, [Layout::RowSplit, Layout::RowSplit]);
        assert_eq!(names(node), ["x", "z"], "the product has B's columns");
        let p = plan(
            "SELECT * FROM pca_project(t, model => (SELECT * FROM pca(t, k => 2, output => 'loadings')), keep => 'id')",
        )
        .unwrap();
        let node = function_node(&p);
        assert_eq!(node.call.name(), "pca_project");
        assert_eq!(node.call.input_layouts, [Layout::RowSplit, Layout::Replicated]);
        let p = plan("SELECT * FROM kmeans(t, k => 2, keep => 'id', output => 'centroids')").unwrap();
        let node = function_node(&p);
        assert_eq!(names(node), ["cluster", "size", "inertia", "x", "y", "z"]);
        assert_eq!(node.call.output_layout(), Layout::Replicated);
    }

    #[test]
    fn other_relations_are_left_to_datafusion_and_aliases_qualify_the_output() {
        let p = plan("SELECT p.pc1 FROM pca(t, k => 1) AS p WHERE p.pc1 > 0").unwrap();
        assert_eq!(function_node(&p).call.name(), "pca");
        assert_eq!(p.schema().field(0).name(), "pc1");
        assert!(plan("SELECT * FROM t").is_ok());
        assert_eq!(
            plan_error("SELECT * FROM pcaa(t, k => 1)"),
            "Error during planning: unknown table function 'pcaa'; heatsql's table functions are \
             pca, pca_project, kmeans, kmeans_predict, svd, matmul, dmd"
        );
        // DataFusion's own table functions (no named arguments) are left to it.
        assert!(plan("SELECT * FROM generate_series(1, 3)").is_ok());
    }
}
