//! Named arguments of heatsql's table functions: parsed from the SQL call and checked against
//! each function's list of expected arguments (unknown, duplicated, wrongly typed, missing).

use std::collections::BTreeMap;

use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::LogicalPlan;
use datafusion::logical_expr::planner::RelationPlannerContext;
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, FunctionArg, FunctionArgExpr, ObjectName, TableFactor, UnaryOperator, Value,
};

/// The type an argument expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    /// An integer literal (`k => 3`).
    Int,
    /// A number (`variance => 0.95`; integers are accepted).
    Float,
    /// A string literal (`solver => 'tsqr'`).
    Text,
    /// `true` or `false`.
    Bool,
    /// A relation: a table name or a parenthesised query (`model => (SELECT * FROM m)`).
    Relation,
    /// A string literal, or a relation given as a parenthesised query or a table name
    /// (`init => 'random'` or `init => (SELECT …)`).
    TextOrRelation,
}

impl ArgKind {
    fn expected(self) -> &'static str {
        match self {
            ArgKind::Int => "an integer",
            ArgKind::Float => "a number",
            ArgKind::Text => "a string literal",
            ArgKind::Bool => "true or false",
            ArgKind::Relation => "a table name or a parenthesised query",
            ArgKind::TextOrRelation => "a string literal, a table name or a parenthesised query",
        }
    }
}

/// One expected named argument.
#[derive(Debug, Clone, Copy)]
pub struct ArgSpec {
    /// Its name (lower case; matched case-insensitively).
    pub name: &'static str,
    /// What it expects.
    pub kind: ArgKind,
}

/// Shorthand for an [`ArgSpec`].
pub const fn arg(name: &'static str, kind: ArgKind) -> ArgSpec {
    ArgSpec { name, kind }
}

/// Arguments every function over feature columns takes.
pub const COMMON: [ArgSpec; 5] = [
    arg("columns", ArgKind::Text),
    arg("keep", ArgKind::Text),
    arg("dtype", ArgKind::Text),
    arg("nulls", ArgKind::Text),
    arg("device", ArgKind::Text),
];

/// The knobs of the randomized and hierarchical solvers (`pca`'s `solver`, `svd`'s `method`),
/// checked by [`solver_knobs`].
pub const SOLVER_ARGS: [ArgSpec; 3] = [
    arg("oversamples", ArgKind::Int),
    arg("power_iter", ArgKind::Int),
    arg("seed", ArgKind::Int),
];

/// A literal argument value.
#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Int(i64),
    Float(f64),
    Text(String),
    Bool(bool),
}

/// The arguments of one call, checked against the function's [`ArgSpec`]s.
#[derive(Debug)]
pub struct Args {
    function: &'static str,
    /// The positional relations (the inputs), in order.
    pub inputs: Vec<LogicalPlan>,
    literals: BTreeMap<&'static str, Literal>,
    relations: BTreeMap<&'static str, LogicalPlan>,
}

fn plan_err(function: &str, message: String) -> DataFusionError {
    DataFusionError::Plan(format!("{function}: {message}"))
}

impl Args {
    /// Parses `args`: the first `inputs` arguments are positional relations (`inputs` names
    /// them for error messages, e.g. `["input"]` or `["a", "b"]`), every other argument is
    /// `name => value` with a name from `specs`.
    pub fn parse(
        function: &'static str,
        inputs: &[&str],
        specs: &[ArgSpec],
        args: Vec<FunctionArg>,
        ctx: &mut dyn RelationPlannerContext,
    ) -> Result<Args> {
        let usage = || {
            let names = inputs.join(", ");
            format!(
                "expected {} positional relation argument{} ({names}: a table name or a parenthesised query) \
                 followed by named arguments, e.g. {function}({names}, name => value)",
                inputs.len(),
                if inputs.len() == 1 { "" } else { "s" },
            )
        };
        let expected_names = || specs.iter().map(|s| s.name).collect::<Vec<_>>().join(", ");
        let mut parsed = Args {
            function,
            inputs: Vec::new(),
            literals: BTreeMap::new(),
            relations: BTreeMap::new(),
        };
        for (position, a) in args.into_iter().enumerate() {
            let (name, value) = match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => {
                    if position >= inputs.len() || parsed.inputs.len() != position {
                        return Err(plan_err(
                            function,
                            format!("unexpected positional argument {}; {}", position + 1, usage()),
                        ));
                    }
                    let plan = relation(function, inputs[position], e, ctx)?;
                    parsed.inputs.push(plan);
                    continue;
                }
                FunctionArg::Named {
                    name,
                    arg: FunctionArgExpr::Expr(e),
                    ..
                } => (name.value.to_ascii_lowercase(), e),
                FunctionArg::ExprNamed {
                    name: SqlExpr::Identifier(name),
                    arg: FunctionArgExpr::Expr(e),
                    ..
                } => (name.value.to_ascii_lowercase(), e),
                other => return Err(plan_err(function, format!("unsupported argument {other}; {}", usage()))),
            };
            let Some(spec) = specs.iter().find(|s| s.name == name) else {
                return Err(plan_err(
                    function,
                    format!("unknown argument '{name}'; expected one of {}", expected_names()),
                ));
            };
            if parsed.literals.contains_key(spec.name) || parsed.relations.contains_key(spec.name) {
                return Err(plan_err(function, format!("argument {} is given twice", spec.name)));
            }
            let relation_value = matches!(
                value,
                SqlExpr::Subquery(_) | SqlExpr::Identifier(_) | SqlExpr::CompoundIdentifier(_)
            );
            if spec.kind == ArgKind::Relation || (spec.kind == ArgKind::TextOrRelation && relation_value) {
                let plan = relation(function, spec.name, value, ctx)?;
                parsed.relations.insert(spec.name, plan);
            } else {
                let literal = literal(function, spec, &value)?;
                parsed.literals.insert(spec.name, literal);
            }
        }
        if parsed.inputs.len() != inputs.len() {
            return Err(plan_err(function, usage()));
        }
        Ok(parsed)
    }

    /// The function these arguments belong to.
    pub fn function(&self) -> &'static str {
        self.function
    }

    /// Whether `name` was given.
    pub fn has(&self, name: &str) -> bool {
        self.literals.contains_key(name) || self.relations.contains_key(name)
    }

    /// An integer argument.
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.literals.get(name) {
            Some(Literal::Int(v)) => Some(*v),
            _ => None,
        }
    }

    /// A number argument.
    pub fn float(&self, name: &str) -> Option<f64> {
        match self.literals.get(name) {
            Some(Literal::Float(v)) => Some(*v),
            Some(Literal::Int(v)) => Some(*v as f64),
            _ => None,
        }
    }

    /// A string argument.
    pub fn text(&self, name: &str) -> Option<&str> {
        match self.literals.get(name) {
            Some(Literal::Text(v)) => Some(v),
            _ => None,
        }
    }

    /// A boolean argument.
    pub fn bool(&self, name: &str) -> Option<bool> {
        match self.literals.get(name) {
            Some(Literal::Bool(v)) => Some(*v),
            _ => None,
        }
    }

    /// Takes a relation argument.
    pub fn take_relation(&mut self, name: &str) -> Option<LogicalPlan> {
        self.relations.remove(name)
    }

    /// A string argument that must be one of `choices` (case-insensitive), lower-cased;
    /// `default` when absent.
    pub fn choice(&self, name: &str, choices: &[&'static str], default: &'static str) -> Result<&'static str> {
        let Some(v) = self.text(name) else {
            return Ok(default);
        };
        let lower = v.trim().to_ascii_lowercase();
        choices.iter().copied().find(|c| *c == lower).ok_or_else(|| {
            let list = choices.iter().map(|c| format!("'{c}'")).collect::<Vec<_>>().join(", ");
            plan_err(self.function, format!("{name} => '{v}' is not one of {list}"))
        })
    }

    /// An error naming this function.
    pub fn error(&self, message: impl Into<String>) -> DataFusionError {
        plan_err(self.function, message.into())
    }

    /// Fails unless at most one of `names` was given.
    pub fn exclusive(&self, names: &[&str]) -> Result<()> {
        let given: Vec<&str> = names.iter().copied().filter(|n| self.has(n)).collect();
        if given.len() > 1 {
            return Err(self.error(format!(
                "conflicting arguments {}; pass only one of them",
                given.join(" and ")
            )));
        }
        Ok(())
    }

    /// A comma-separated list of column names (`'a, b, c'`), or `None` when absent.
    pub fn names(&self, name: &str) -> Result<Option<Vec<String>>> {
        let Some(v) = self.text(name) else {
            return Ok(None);
        };
        let list: Vec<String> = v.split(',').map(|s| s.trim().to_string()).collect();
        if list.iter().any(String::is_empty) {
            return Err(self.error(format!(
                "{name} => '{v}' is not a list of column names; expected e.g. '{}'",
                if name == "keep" { "id, ts" } else { "a, b, c" }
            )));
        }
        Ok(Some(list))
    }
}

/// Plans a relation argument: a (possibly qualified) table name or a parenthesised query.
fn relation(function: &str, name: &str, e: SqlExpr, ctx: &mut dyn RelationPlannerContext) -> Result<LogicalPlan> {
    let factor = match e {
        SqlExpr::Subquery(query) => TableFactor::Derived {
            lateral: false,
            subquery: query,
            alias: None,
            sample: None,
        },
        SqlExpr::Identifier(ident) => table(ObjectName::from(vec![ident])),
        SqlExpr::CompoundIdentifier(idents) => table(ObjectName::from(idents)),
        other => {
            return Err(plan_err(
                function,
                format!("{name} must be a table name or a parenthesised query such as (SELECT …), got {other}"),
            ));
        }
    };
    ctx.plan(factor)
}

fn table(name: ObjectName) -> TableFactor {
    TableFactor::Table {
        name,
        alias: None,
        args: None,
        with_hints: Vec::new(),
        version: None,
        with_ordinality: false,
        partitions: Vec::new(),
        json_path: None,
        sample: None,
        index_hints: Vec::new(),
    }
}

/// A literal of the kind `spec` expects.
fn literal(function: &str, spec: &ArgSpec, e: &SqlExpr) -> Result<Literal> {
    let wrong = || {
        plan_err(
            function,
            format!("{} expects {}, got {e}", spec.name, spec.kind.expected()),
        )
    };
    let number = |text: &str, negative: bool| -> Result<Literal> {
        let text = if negative { format!("-{text}") } else { text.to_string() };
        match spec.kind {
            ArgKind::Int => text.parse::<i64>().map(Literal::Int).map_err(|_| wrong()),
            ArgKind::Float => text
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .map(Literal::Float)
                .ok_or_else(wrong),
            _ => Err(wrong()),
        }
    };
    match e {
        SqlExpr::Value(v) => match &v.value {
            Value::Number(n, _) => number(n, false),
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s)
                if matches!(spec.kind, ArgKind::Text | ArgKind::TextOrRelation) =>
            {
                Ok(Literal::Text(s.clone()))
            }
            Value::Boolean(b) if spec.kind == ArgKind::Bool => Ok(Literal::Bool(*b)),
            _ => Err(wrong()),
        },
        SqlExpr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match expr.as_ref() {
            SqlExpr::Value(v) => match &v.value {
                Value::Number(n, _) => number(n, true),
                _ => Err(wrong()),
            },
            _ => Err(wrong()),
        },
        _ => Err(wrong()),
    }
}

/// `oversamples`, `power_iter` and `seed` of `pca`'s solvers and `svd`'s methods (`what`:
/// "solver" or "method", `name`: the one given): refused for a solver that does not use them
/// (unless `auto`), ≥ 0, else the engine's defaults.
pub fn solver_knobs(args: &Args, what: &str, name: &str) -> Result<(i64, i64, u64)> {
    for (a, used_by) in [
        ("oversamples", &["randomized", "hierarchical"][..]),
        ("power_iter", &["randomized"][..]),
        ("seed", &["randomized"][..]),
    ] {
        if args.has(a) && name != "auto" && !used_by.contains(&name) {
            let list = used_by
                .iter()
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(" or ");
            return Err(args.error(format!("{a} applies to {what} => {list}, not '{name}'")));
        }
    }
    let non_negative = |a: &str, default: i64| -> Result<i64> {
        match args.int(a) {
            Some(v) if v < 0 => Err(args.error(format!("{a} = {v} is out of range; expected a value ≥ 0"))),
            Some(v) => Ok(v),
            None => Ok(default),
        }
    };
    Ok((
        non_negative("oversamples", engine::linalg::DEFAULT_OVERSAMPLES)?,
        non_negative("power_iter", engine::linalg::DEFAULT_POWER_ITER)?,
        args.int("seed").map_or(engine::linalg::DEFAULT_SEED, |s| s as u64),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{function_node, plan, plan_error};
    use super::*;

    fn args(literals: &[(&'static str, Literal)]) -> Args {
        Args {
            function: "f",
            inputs: Vec::new(),
            literals: literals.iter().cloned().collect(),
            relations: BTreeMap::new(),
        }
    }

    #[test]
    fn accessors_read_their_kind_and_integers_count_as_numbers() {
        let a = args(&[
            ("k", Literal::Int(3)),
            ("tol", Literal::Float(0.5)),
            ("solver", Literal::Text("TSQR ".into())),
            ("standardize", Literal::Bool(true)),
        ]);
        assert_eq!(a.int("k"), Some(3));
        assert_eq!(a.float("k"), Some(3.0));
        assert_eq!(a.float("tol"), Some(0.5));
        assert_eq!(a.int("tol"), None);
        assert_eq!(a.bool("standardize"), Some(true));
        assert_eq!(a.text("solver"), Some("TSQR "));
        assert!(a.has("k") && !a.has("seed"));
        assert_eq!(a.choice("solver", &["auto", "tsqr"], "auto").unwrap(), "tsqr");
        assert_eq!(a.choice("method", &["auto", "tsqr"], "auto").unwrap(), "auto");
    }

    #[test]
    fn choices_lists_and_conflicts_name_the_function_and_argument() {
        let a = args(&[
            ("solver", Literal::Text("magic".into())),
            ("keep", Literal::Text("id,,t".into())),
            ("columns", Literal::Text(" a , b ".into())),
            ("k", Literal::Int(2)),
            ("variance", Literal::Float(0.9)),
        ]);
        assert_eq!(
            a.choice("solver", &["auto", "tsqr"], "auto").unwrap_err().to_string(),
            "Error during planning: f: solver => 'magic' is not one of 'auto', 'tsqr'"
        );
        assert_eq!(
            a.names("keep").unwrap_err().to_string(),
            "Error during planning: f: keep => 'id,,t' is not a list of column names; expected e.g. 'id, ts'"
        );
        assert_eq!(
            a.names("columns").unwrap(),
            Some(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(a.names("nope").unwrap(), None);
        assert_eq!(
            a.exclusive(&["k", "variance"]).unwrap_err().to_string(),
            "Error during planning: f: conflicting arguments k and variance; pass only one of them"
        );
        assert!(a.exclusive(&["k", "seed"]).is_ok());
    }

    #[test]
    fn solver_knobs_default_to_the_engine_and_refuse_other_solvers() {
        assert_eq!(
            solver_knobs(&args(&[]), "solver", "randomized").unwrap(),
            (
                engine::linalg::DEFAULT_OVERSAMPLES,
                engine::linalg::DEFAULT_POWER_ITER,
                engine::linalg::DEFAULT_SEED
            )
        );
        let seeded = args(&[("seed", Literal::Int(7)), ("power_iter", Literal::Int(0))]);
        let given = (engine::linalg::DEFAULT_OVERSAMPLES, 0, 7);
        assert_eq!(solver_knobs(&seeded, "method", "auto").unwrap(), given);
        assert_eq!(solver_knobs(&seeded, "method", "randomized").unwrap(), given);
        assert!(
            solver_knobs(&seeded, "method", "tsqr")
                .unwrap_err()
                .to_string()
                .ends_with("f: power_iter applies to method => 'randomized', not 'tsqr'")
        );
        let negative = args(&[("oversamples", Literal::Int(-1))]);
        assert!(
            solver_knobs(&negative, "solver", "hierarchical")
                .unwrap_err()
                .to_string()
                .ends_with("f: oversamples = -1 is out of range; expected a value ≥ 0")
        );
    }

    #[test]
    fn parse_refuses_unknown_repeated_and_mistyped_arguments() {
        for (sql, want) in [
            (
                "SELECT * FROM pca(t, kk => 2)",
                "pca: unknown argument 'kk'; expected one of k, variance, solver, standardize, output, oversamples, power_iter, seed, columns, keep, dtype, nulls, device",
            ),
            ("SELECT * FROM pca(t, k => 2, K => 3)", "pca: argument k is given twice"),
            (
                "SELECT * FROM pca(t, k => 'two')",
                "pca: k expects an integer, got 'two'",
            ),
            ("SELECT * FROM pca(t, k => 2.5)", "pca: k expects an integer, got 2.5"),
            ("SELECT * FROM pca(t, k => x)", "pca: k expects an integer, got x"),
            (
                "SELECT * FROM pca(t, variance => 'most')",
                "pca: variance expects a number, got 'most'",
            ),
            (
                "SELECT * FROM pca(t, k => 1, standardize => 'yes')",
                "pca: standardize expects true or false, got 'yes'",
            ),
            (
                "SELECT * FROM pca(t, k => 1, solver => 3)",
                "pca: solver expects a string literal, got 3",
            ),
            (
                "SELECT * FROM pca(t, 3)",
                "pca: unexpected positional argument 2; expected 1 positional relation argument (input: a table name or a parenthesised query) followed by named arguments, e.g. pca(input, name => value)",
            ),
            (
                "SELECT * FROM matmul(t)",
                "matmul: expected 2 positional relation arguments (a, b: a table name or a parenthesised query) followed by named arguments, e.g. matmul(a, b, name => value)",
            ),
            (
                "SELECT * FROM pca(3, k => 1)",
                "pca: input must be a table name or a parenthesised query such as (SELECT …), got 3",
            ),
            (
                "SELECT * FROM pca_project(t, model => 'loadings')",
                "pca_project: model must be a table name or a parenthesised query such as (SELECT …), got 'loadings'",
            ),
        ] {
            let got = plan_error(sql);
            assert!(got.ends_with(want), "{sql}\n got: {got}\nwant: {want}");
        }
    }

    #[test]
    fn parse_accepts_any_case_negative_numbers_and_relations_by_name_or_query() {
        let p = plan("SELECT * FROM PCA(t, K => 2, Keep => 'id')").unwrap();
        assert_eq!(function_node(&p).call.name(), "pca");
        let p = plan(
            "SELECT * FROM kmeans(t, k => 2, keep => 'id', init => (SELECT x, y, z FROM t WHERE id < 3), seed => -1)",
        )
        .unwrap();
        assert_eq!(function_node(&p).inputs.len(), 2, "the input and the initial centroids");
        let by_name = plan("SELECT * FROM kmeans_predict(t, centroids => t, columns => 'x')");
        // t is no centroids table (no `cluster` column): the relation was planned, then checked.
        assert!(
            by_name
                .unwrap_err()
                .to_string()
                .contains("kmeans_predict: centroids => must be a kmeans centroids table"),
        );
    }
}
