//! heatsql's SQL tests: `.slt` files ([sqllogictest] format) run under `mpirun` at P = 1..4,
//! every rank checking the same expected results, and every rank's result compared with every
//! other rank's.
//!
//! # Running
//!
//! ```sh
//! cargo build -p heatsql-sql-tests
//! . scripts/env.sh
//! mpirun -n 3 target/debug/heatsql-slt sql-tests/slt/*.slt
//! cargo test -p heatsql-sql-tests        # every file at P = 1, 2, 3, 4 and the negative checks
//! ```
//!
//! `heatsql-slt [--reference] [--complete] [--with-rank-udf] [--data DIR] FILE.slt...`
//!
//! * Every rank runs the same files, records and statements in the same order (SPMD); each file
//!   runs in a fresh [`heatsql::HeatContext`]. Rank 0 prints each failure with `file:line` and a
//!   summary such as `slt at P=3: 12 files, 345 records passed, 0 failed`. The exit status is 0
//!   only if every record passed on every rank; it is the same on every rank.
//! * Before the files run, rank 0 writes the deterministic Parquet tables of [`data`] to the data
//!   directory (default `<workspace>/target/slt-data`, `--data DIR` to change it); files already
//!   holding the right bytes are left alone. `__DATA__` in SQL text is replaced by that directory
//!   (`CREATE EXTERNAL TABLE orders STORED AS PARQUET LOCATION '__DATA__/orders/'`), and
//!   `__FIXTURES__` by `heatsql/tests/fixtures` (committed fixtures with the scripts that made
//!   them).
//! * Records marked `onlyif heatsql` run on heatsql only: the table functions (`pca`, …), which
//!   plain DataFusion does not have. They compare heatsql's results with committed fixtures
//!   inside the query (a count of rows beyond a tolerance must be 0).
//! * `--reference` runs the files in one process on a plain DataFusion `SessionContext` with
//!   default settings (DataFusion's own listing tables): what single-node DataFusion returns on
//!   the whole data. No `mpirun` needed.
//! * `--complete` rewrites each file's expected results (and error messages that no longer match)
//!   with the actual ones; under MPI rank 0 writes the files.
//! * `--with-rank-udf` registers `heatsql_rank()`, this process's rank as Int64; only the
//!   negative test `sql-tests/negative/rank_disagree.slt` uses it.
//!
//! # Regenerating expected results
//!
//! ```sh
//! target/debug/heatsql-slt --reference --complete sql-tests/slt/*.slt
//! git diff sql-tests/slt     # review the new results by eye
//! ```
//!
//! The expected results therefore come from single-node DataFusion on the same data; heatsql
//! must return exactly those at every rank count. Queries without `ORDER BY` are marked
//! `rowsort`; EXPLAIN output depends on the rank count, so files only check that it runs.
//!
//! # Normalisation
//!
//! Results become text as in datafusion-sqllogictest ([`normalize`]): `NULL`, `(empty)` for an
//! empty string, `true`/`false`; floats rounded to **10 significant digits** in plain notation
//! with trailing zeros removed and `-0` printed as `0` (distributed sums add in another order;
//! the last bits differ, the first 10 digits do not); decimals exact with their scale; other
//! types in Arrow's display format. Column types: `I` integers, `R` floats and decimals, `B`
//! booleans, `T` text and everything else; they are checked strictly.
//!
//! # Rank agreement
//!
//! After every statement and query each rank digests its outcome with 64-bit FNV-1a: the column
//! types and normalised rows (sorted first when the record is `rowsort`/`valuesort`, in order
//! otherwise), the statement count, or the error text. The ranks allgather the digests; if any
//! differ, the record fails on every rank with
//! `ranks disagree on query at file:line: rank 0 digest …, rank 1 digest …` followed by rank 0's
//! output and the output of the first rank that differs. That holds even when the expected
//! result matches on rank 0. Each record's verdict is then agreed ([`engine::Comm::agree`]):
//! a record that failed on any rank fails on all, with the lowest failing rank's message.
//!
//! [sqllogictest]: https://www.sqlite.org/sqllogictest/doc/trunk/about.wiki

pub mod data;
pub mod db;
pub mod normalize;
pub mod run;
pub mod tpch;

pub use run::{Failure, Options, Summary, run};
