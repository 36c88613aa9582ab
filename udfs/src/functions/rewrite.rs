//! A rewrite of parsed statements before planning: a table named as a relation argument of a
//! heatsql function (`pca(points, …)`, `model => loadings`) becomes `(SELECT * FROM points)`.
//!
//! DataFusion resolves the tables a statement references before it plans it, and a bare name
//! inside function arguments is not a table reference to it; a subquery is.

use std::ops::ControlFlow;

use datafusion::error::{DataFusionError, Result};
use datafusion::sql::parser::{CopyToSource, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, ObjectName, TableFactor, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// Rewrites every table-name relation argument of a heatsql function call in `statement`.
pub fn relation_arguments_as_queries(statement: &mut DFStatement) -> Result<()> {
    match statement {
        DFStatement::Statement(s) => visit(s.as_mut()),
        DFStatement::CopyTo(copy) => match &mut copy.source {
            CopyToSource::Query(q) => visit(q.as_mut()),
            CopyToSource::Relation(_) => Ok(()),
        },
        DFStatement::Explain(e) => relation_arguments_as_queries(e.statement.as_mut()),
        _ => Ok(()),
    }
}

fn visit<T: VisitMut>(node: &mut T) -> Result<()> {
    match node.visit(&mut Rewriter) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(e) => Err(e),
    }
}

struct Rewriter;

impl VisitorMut for Rewriter {
    type Break = DataFusionError;

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<Self::Break> {
        let TableFactor::Table {
            name, args: Some(args), ..
        } = factor
        else {
            return ControlFlow::Continue(());
        };
        let def = match name.0.as_slice() {
            [part] => part.as_ident().and_then(|i| super::find(&i.value)),
            _ => None,
        };
        let Some(def) = def else {
            return ControlFlow::Continue(());
        };
        for a in args.args.iter_mut() {
            let expr = match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => e,
                FunctionArg::Named {
                    name,
                    arg: FunctionArgExpr::Expr(e),
                    ..
                } if def.takes_relation(&name.value.to_ascii_lowercase()) => e,
                _ => continue,
            };
            let table = match expr {
                Expr::Identifier(i) => ObjectName::from(vec![i.clone()]),
                Expr::CompoundIdentifier(parts) => ObjectName::from(parts.clone()),
                _ => continue,
            };
            match Parser::new(&GenericDialect {})
                .try_with_sql(&format!("SELECT * FROM {table}"))
                .and_then(|mut p| p.parse_query())
            {
                Ok(query) => *expr = Expr::Subquery(query),
                Err(e) => return ControlFlow::Break(DataFusionError::SQL(Box::new(e), None)),
            }
        }
        ControlFlow::Continue(())
    }
}
