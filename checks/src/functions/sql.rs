//! `sql`: the table functions composed with ordinary SQL (filters, aggregates, joins, aliases,
//! case-insensitive names), a pca → loadings → pca_project round trip, the session dtype,
//! COPY TO of scores, the device argument. EXPLAIN of the functions and their errors are in
//! sql-tests/slt/functions.slt.

use datafusion::arrow::datatypes::DataType;
use heatsql::HeatContext;

use super::{VECTOR_TOL, error_of, int_column, matrix, names, rows};
use crate::checker::Checker;

/// Collective. The `sql` subject (COPY writes below `scratch`).
pub async fn check(c: &mut Checker, ctx: &HeatContext, scratch: &str) {
    // Composition with ordinary SQL: filters, aggregates, joins, aliases, case-insensitive names.
    let want = rows(ctx, "SELECT count(*) AS n FROM raw_scores WHERE pc1 > 0")
        .await
        .map(|b| int_column(&b, "n"));
    let got = rows(
        ctx,
        "SELECT count(*) AS n FROM pca(cancer, k => 2, keep => 'id') WHERE pc1 > 0",
    )
    .await
    .map(|b| int_column(&b, "n"));
    c.check("sql/filter_count", got.is_ok() && got == want, || {
        format!("{got:?} vs {want:?}")
    });
    let got = rows(
        ctx,
        "SELECT p.pc1 AS v FROM PCA(cancer, K => 1, Keep => 'id') AS p ORDER BY p.id LIMIT 1",
    )
    .await;
    let want = rows(ctx, "SELECT pc1 AS v FROM raw_scores ORDER BY id LIMIT 1").await;
    let (got, want) = (
        got.and_then(|b| matrix(&b, &names(&["v"]))),
        want.and_then(|b| matrix(&b, &names(&["v"]))),
    );
    match want {
        Ok(w) => c.close("sql/alias_and_case", got, &w, VECTOR_TOL),
        Err(e) => c.check("sql/alias_and_case", false, || e),
    }
    // pca → loadings table → pca_project reproduces the scores (standardised), joined on id.
    let made = rows(ctx, "CREATE TABLE model AS SELECT * FROM pca(cancer, k => 4, keep => 'id', standardize => true, output => 'loadings')").await;
    c.check("sql/model_table", made.is_ok(), || format!("{made:?}"));
    let diff = rows(
        ctx,
        "SELECT max(abs(a.pc1 - b.pc1) + abs(a.pc4 - b.pc4)) AS d, count(*) AS n \
         FROM pca(cancer, k => 4, keep => 'id', standardize => true) a \
         JOIN pca_project(cancer, model => (SELECT * FROM model), keep => 'id') b ON a.id = b.id",
    )
    .await;
    let ok = diff.as_ref().is_ok_and(|b| {
        let d = matrix(b, &names(&["d"]))
            .map(|t| t.double_value(&[0, 0]))
            .unwrap_or(f64::NAN);
        d < 1e-10 && int_column(b, "n") == vec![569]
    });
    c.check("sql/pca_project_reproduces_scores", ok, || format!("{diff:?}"));
    // columns => maps input columns, in order, onto the model's features.
    let renamed = rows(
        ctx,
        "SELECT max(abs(a.pc1 - b.pc1)) AS d FROM \
         pca_project((SELECT id, mean_radius AS r, mean_texture AS t FROM cancer), model => (SELECT * FROM pca((SELECT mean_radius, mean_texture FROM cancer), k => 1, output => 'loadings')), keep => 'id', columns => 'r, t') a \
         JOIN pca((SELECT id, mean_radius, mean_texture FROM cancer), k => 1, keep => 'id') b ON a.id = b.id",
    )
    .await
    .and_then(|b| matrix(&b, &names(&["d"])));
    c.check(
        "sql/pca_project_columns",
        renamed.as_ref().is_ok_and(|d| d.double_value(&[0, 0]) < 1e-10),
        || format!("{renamed:?}"),
    );
    // The session dtype.
    let typed = async {
        rows(ctx, "SET heatsql.dtype = 'float32'").await?;
        let b = rows(ctx, "SELECT * FROM pca(cancer, k => 1, keep => 'id') LIMIT 1").await;
        rows(ctx, "SET heatsql.dtype = 'float64'").await?;
        b.map(|b| b.first().map(|b| b.schema().field(1).data_type().clone()))
    }
    .await;
    c.check("sql/set_dtype", matches!(typed, Ok(Some(DataType::Float32))), || {
        format!("{typed:?}")
    });
    // EXPLAIN ANALYZE: where the call computed and the bytes it moved (over MPI at P > 1; none
    // between host and GPU on the CPU).
    let analyzed = rows(
        ctx,
        "EXPLAIN ANALYZE SELECT count(*) FROM pca(cancer, k => 3, keep => 'id', device => 'cpu')",
    )
    .await
    .map(|b| {
        datafusion::arrow::util::pretty::pretty_format_batches(&b)
            .map(|t| t.to_string())
            .unwrap_or_default()
    });
    let ok = analyzed.as_ref().is_ok_and(|t| {
        let line = t.lines().find(|l| l.contains("PcaExec: ")).unwrap_or("");
        let moved = |name: &str| {
            line.split(&format!("{name}="))
                .nth(1)
                .map(|v| v.split([',', ']']).next().unwrap_or("").trim().to_string())
        };
        line.contains("device=cpu, ran_on=cpu")
            && moved("host_to_device_bytes").as_deref() == Some("0")
            && moved("device_to_host_bytes").as_deref() == Some("0")
            && moved("mpi_bytes_sent").is_some_and(|v| (v == "0") == (c.comm.size() == 1))
            && moved("mpi_bytes_received").is_some_and(|v| (v == "0") == (c.comm.size() == 1))
    });
    c.check("sql/explain_analyze_device_and_bytes", ok, || format!("{analyzed:?}"));
    // COPY TO of scores: one part per rank, every row.
    let out = format!("{scratch}/scores-p{}/", c.comm.size());
    let n = rows(
        ctx,
        &format!("COPY (SELECT * FROM pca(cancer, k => 3, keep => 'id')) TO '{out}' STORED AS PARQUET"),
    )
    .await;
    let back = rows(
        ctx,
        &format!("CREATE EXTERNAL TABLE copied STORED AS PARQUET LOCATION '{out}'"),
    )
    .await;
    let diff = rows(
        ctx,
        "SELECT count(*) AS n, max(abs(c.pc3 - s.pc3)) AS d FROM copied c JOIN raw_scores s ON c.id = s.id",
    )
    .await;
    let ok = n.is_ok()
        && back.is_ok()
        && diff.as_ref().is_ok_and(|b| {
            int_column(b, "n") == vec![569] && matrix(b, &names(&["d"])).is_ok_and(|t| t.double_value(&[0, 0]) < 1e-6)
        });
    c.check("sql/copy_scores", ok, || format!("{n:?} {back:?} {diff:?}"));
    // Device: 'cpu' works; 'cuda' without a GPU is an error on every rank.
    let cpu = rows(
        ctx,
        "SELECT count(*) AS n FROM pca(cancer, k => 1, keep => 'id', device => 'cpu')",
    )
    .await;
    c.check(
        "sql/device_cpu",
        cpu.map(|b| int_column(&b, "n")) == Ok(vec![569]),
        || "device cpu".into(),
    );
    // 'cuda' without a usable GPU: an error on every rank saying why (the reason this rank's
    // libtorch gives: its CUDA support did not load, or it sees no GPU).
    if engine::cuda::device_count() == 0 {
        let e = error_of(ctx, "SELECT * FROM pca(cancer, k => 1, device => 'cuda')").await;
        let why = match engine::cuda::load() {
            engine::cuda::CudaSupport::NotLoaded { reason } => reason.clone(),
            engine::cuda::CudaSupport::Loaded { .. } => "libtorch sees no GPU on this node".to_string(),
        };
        c.check(
            "sql/device_cuda_missing",
            e.contains("'cuda' was requested but") && e.contains(&why),
            || format!("{e} (expected the reason: {why})"),
        );
    }
}
