//! `kmeans` through SQL: planted blobs for every initialisation (ARI, inertia three ways),
//! scikit-learn's KMeans on its wine dataset from the same initial centroids, `kmeans_predict`
//! reproducing the assignments; and `kmeans/seeded`: seeded output written for comparison
//! across rank counts. The errors are in sql-tests/slt/functions.slt.

use heatsql::HeatContext;
use tch::Kind;

use super::{int_column, matrix, names, rows};
use crate::checker::{Checker, adjusted_rand};

/// Collective. The `kmeans` subject.
pub async fn check(c: &mut Checker, ctx: &HeatContext) {
    blobs(c, ctx).await;
    sklearn(c, ctx).await;
    predict(c, ctx).await;
}

/// Four planted blobs, for every initialisation: ARI ≥ 0.99, and the reported inertia equals
/// Σ distance² of the assignments and the sum of the centroids' inertia.
async fn blobs(c: &mut Checker, ctx: &HeatContext) {
    for init in ["k-means||", "k-means++", "random"] {
        let tag = format!("kmeans/{init}");
        let call = format!("kmeans(blobs, k => 4, keep => 'id, label', init => '{init}', seed => 3, n_init => 2");
        // `cluster` is a keyword of the SQL parser: select it qualified (or quoted).
        let got = rows(
            ctx,
            &format!("SELECT a.id, a.label, a.cluster, a.distance FROM {call}) a ORDER BY a.id"),
        )
        .await;
        let Ok(got) = got else {
            c.check(&format!("{tag}/run"), false, || format!("{got:?}"));
            continue;
        };
        let (labels, clusters) = (int_column(&got, "label"), int_column(&got, "cluster"));
        let ari = adjusted_rand(&labels, &clusters);
        c.check(&format!("{tag}/ari"), ari >= 0.99 && labels.len() == 2000, || {
            format!("ARI {ari}, {} rows", labels.len())
        });
        // Reported inertia = Σ distance² of the assignments = Σ of the centroids' inertia.
        let direct = matrix(&got, &names(&["distance"])).map(|t| t.square().sum(Kind::Double).double_value(&[]));
        let summary = rows(ctx, &format!("SELECT inertia FROM {call}, output => 'summary')")).await;
        let summary = summary
            .and_then(|b| matrix(&b, &names(&["inertia"])))
            .map(|t| t.double_value(&[0, 0]));
        let per_cluster = rows(
            ctx,
            &format!("SELECT sum(inertia) AS s, sum(size) AS n FROM {call}, output => 'centroids')"),
        )
        .await;
        let per = per_cluster
            .as_ref()
            .map_err(|e| e.clone())
            .and_then(|b| matrix(b, &names(&["s"])))
            .map(|t| t.double_value(&[0, 0]));
        let sizes = per_cluster.map(|b| int_column(&b, "n"));
        let ok = match (&direct, &summary, &per) {
            (Ok(d), Ok(s), Ok(p)) => (d - s).abs() <= 1e-10 * d && (p - s).abs() <= 1e-10 * s,
            _ => false,
        };
        c.check(&format!("{tag}/inertia"), ok && sizes == Ok(vec![2000]), || {
            format!("{direct:?} {summary:?} {per:?} {sizes:?}")
        });
    }
}

/// scikit-learn's KMeans on its wine dataset from the same initial centroids: inertia and
/// centroids within 1e-6 relative, the same labels.
async fn sklearn(c: &mut Checker, ctx: &HeatContext) {
    let call = "kmeans(wine, k => 3, keep => 'id', init => km_init";
    let features = names(&[
        "alcohol",
        "malic_acid",
        "ash",
        "alcalinity_of_ash",
        "magnesium",
        "total_phenols",
        "flavanoids",
        "nonflavanoid_phenols",
        "proanthocyanins",
        "color_intensity",
        "hue",
        "od280_od315_of_diluted_wines",
        "proline",
    ]);
    let want = rows(ctx, "SELECT inertia FROM km_summary")
        .await
        .and_then(|b| matrix(&b, &names(&["inertia"])));
    let got = rows(ctx, &format!("SELECT inertia FROM {call}, output => 'summary')"))
        .await
        .and_then(|b| matrix(&b, &names(&["inertia"])));
    match want {
        Ok(w) => c.close("kmeans/sklearn/inertia", got, &w, 1e-6),
        Err(e) => c.check("kmeans/sklearn/inertia", false, || e),
    }
    let want = rows(ctx, "SELECT * FROM km_centroids ORDER BY \"cluster\"")
        .await
        .and_then(|b| matrix(&b, &features));
    let got = rows(
        ctx,
        &format!("SELECT * FROM {call}, output => 'centroids') c ORDER BY c.cluster"),
    )
    .await
    .and_then(|b| matrix(&b, &features));
    match want {
        Ok(w) => c.close("kmeans/sklearn/centroids", got, &w, 1e-6),
        Err(e) => c.check("kmeans/sklearn/centroids", false, || e),
    }
    let same = rows(
        ctx,
        &format!("SELECT count(*) AS n, sum(CASE WHEN a.cluster = l.cluster THEN 1 ELSE 0 END) AS same FROM {call}) a JOIN km_labels l ON a.id = l.id"),
    )
    .await
    .map(|b| (int_column(&b, "n"), int_column(&b, "same")));
    c.check("kmeans/sklearn/labels", same == Ok((vec![178], vec![178])), || {
        format!("{same:?}")
    });
}

/// kmeans_predict with the centroids table gives the same assignments.
async fn predict(c: &mut Checker, ctx: &HeatContext) {
    let made = rows(ctx, "CREATE TABLE cents AS SELECT * FROM kmeans(blobs, k => 4, keep => 'id, label', seed => 5, output => 'centroids')").await;
    let same = rows(
        ctx,
        "SELECT count(*) AS n, sum(CASE WHEN a.cluster = b.cluster AND abs(a.distance - b.distance) <= 1e-12 THEN 1 ELSE 0 END) AS same \
         FROM kmeans(blobs, k => 4, keep => 'id, label', seed => 5) a JOIN kmeans_predict(blobs, centroids => cents, keep => 'id') b ON a.id = b.id",
    )
    .await
    .map(|b| (int_column(&b, "n"), int_column(&b, "same")));
    c.check(
        "kmeans/predict_reproduces",
        made.is_ok() && same == Ok((vec![2000], vec![2000])),
        || format!("{made:?} {same:?}"),
    );
}

/// Seeded k-means on data where the initialisation matters (7 clusters on 4 blobs, so
/// different initial centroids end in different local optima): rank 0 writes every init's
/// assignments and centroids to `SCRATCH/kmeans_seeded.csv` (`init,kind,index,values…`, f64 in
/// full precision). checks/tests/functions.rs compares the files of P = 1 … 4: the same seed
/// must give the same clusters (numbering included) and centroids at every rank count.
/// Collective: the `kmeans/seeded` subject.
pub async fn check_seeded(c: &mut Checker, ctx: &HeatContext, scratch: &str) {
    let mut out = String::new();
    for init in ["k-means||", "k-means++", "random"] {
        let call = format!("kmeans(blobs, k => 7, keep => 'id', init => '{init}', seed => 11, n_init => 3");
        let a = rows(
            ctx,
            &format!("SELECT a.id, a.cluster, a.distance FROM {call}) a ORDER BY a.id"),
        )
        .await;
        let cents = rows(
            ctx,
            &format!(
                "SELECT c.cluster, c.size, c.x, c.y, c.z FROM {call}, output => 'centroids') c ORDER BY c.cluster"
            ),
        )
        .await;
        let (Ok(a), Ok(cents)) = (a, cents) else {
            c.check(&format!("kmeans/seeded/{init}/run"), false, || "query failed".into());
            continue;
        };
        let (ids, clusters) = (int_column(&a, "id"), int_column(&a, "cluster"));
        let dist =
            matrix(&a, &names(&["distance"])).map(|t| Vec::<f64>::try_from(&t.reshape([-1])).unwrap_or_default());
        let cm = matrix(&cents, &names(&["x", "y", "z"]));
        let sizes = int_column(&cents, "size");
        let (Ok(dist), Ok(cm)) = (dist, cm) else {
            c.check(&format!("kmeans/seeded/{init}/columns"), false, || "columns".into());
            continue;
        };
        c.check(
            &format!("kmeans/seeded/{init}/shape"),
            ids.len() == 2000 && sizes.len() == 7,
            || format!("{} rows, {} centroids", ids.len(), sizes.len()),
        );
        for ((id, cl), d) in ids.iter().zip(&clusters).zip(&dist) {
            out.push_str(&format!("{init},row,{id},{cl},{d:e}\n"));
        }
        for (j, size) in sizes.iter().enumerate() {
            let v: Vec<f64> = Vec::try_from(&cm.get(j as i64)).unwrap_or_default();
            let v: Vec<String> = v.iter().map(|x| format!("{x:e}")).collect();
            out.push_str(&format!("{init},centroid,{j},{size},{}\n", v.join(",")));
        }
    }
    // Collective check (every rank takes part); rank 0 writes.
    let path = format!("{scratch}/kmeans_seeded.csv");
    let written = ctx.comm().rank() != 0 || std::fs::write(&path, out).is_ok();
    c.check("kmeans/seeded/written", written, || path.clone());
}
