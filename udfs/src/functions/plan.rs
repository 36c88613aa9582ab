//! Planning: the relation planner that recognises heatsql's functions in `FROM` (by the
//! [`super::registry`]) and the logical node they become.

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
use super::registry::{self, Call};
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
            } if name.0.len() == 1 => name.0[0].as_ident().and_then(|i| registry::find(&i.value)),
            _ => None,
        };
        let Some(def) = def else {
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
