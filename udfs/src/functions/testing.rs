//! Test support for the unit tests of planning and argument parsing: a session with the table
//! functions installed and one small table, and SQL planned the way heatsql plans it (relation
//! arguments rewritten first). Planning is local: nothing here communicates.

use std::sync::Arc;

use datafusion::arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::error::Result;
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::DFParser;
use datafusion::sql::sqlparser::dialect::GenericDialect;

use super::FunctionNode;
use crate::settings::HeatsqlOptions;

/// A session with the table functions and `t`: id (Int64), x, y, z (Float64), s (Utf8); 4 rows.
/// `options` are the session's `heatsql.*` settings.
pub fn session(options: HeatsqlOptions) -> SessionContext {
    let config = SessionConfig::new().with_option_extension(options);
    let state =
        super::install_in_builder(SessionStateBuilder::new().with_config(config).with_default_features()).build();
    let ctx = SessionContext::new_with_state(state);
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("x", DataType::Float64, false),
        Field::new("y", DataType::Float64, false),
        Field::new("z", DataType::Float64, false),
        Field::new("s", DataType::Utf8, false),
    ]);
    let f = |v: [f64; 4]| Arc::new(Float64Array::from(v.to_vec()));
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
            f([1.0, 2.0, 3.0, 4.0]),
            f([0.5, 0.25, 2.0, 1.0]),
            f([3.0, 1.0, 4.0, 1.5]),
            Arc::new(StringArray::from(vec!["a", "b", "c", "d"])),
        ],
    )
    .expect("test batch");
    ctx.register_batch("t", batch).expect("register t");
    ctx
}

/// The logical plan of `sql` with default settings.
pub fn plan(sql: &str) -> Result<LogicalPlan> {
    plan_in(&session(HeatsqlOptions::default()), sql)
}

/// The logical plan of `sql` in `ctx`: relation arguments rewritten, then planned.
pub fn plan_in(ctx: &SessionContext, sql: &str) -> Result<LogicalPlan> {
    let mut statements = DFParser::parse_sql_with_dialect(sql, &GenericDialect {})?;
    let mut statement = statements.pop_front().expect("one statement");
    super::rewrite::relation_arguments_as_queries(&mut statement)?;
    futures::executor::block_on(ctx.state().statement_to_plan(statement))
}

/// The planning error of `sql`, as the user sees it.
pub fn plan_error(sql: &str) -> String {
    match plan(sql) {
        Ok(p) => panic!("{sql} planned, expected an error:\n{p}"),
        Err(e) => e.to_string(),
    }
}

/// The function node in `plan` (the first one found, top down).
pub fn function_node(plan: &LogicalPlan) -> &FunctionNode {
    find(plan).unwrap_or_else(|| panic!("no function node in\n{plan}"))
}

fn find(plan: &LogicalPlan) -> Option<&FunctionNode> {
    if let LogicalPlan::Extension(e) = plan
        && let Some(node) = e.node.as_any().downcast_ref::<FunctionNode>()
    {
        return Some(node);
    }
    plan.inputs().into_iter().find_map(find)
}
