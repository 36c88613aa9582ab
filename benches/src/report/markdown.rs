//! The report as Markdown: the machine, its limits, strong and weak scaling, memory per rank,
//! heatsql beside each baseline, and the agreement of results across rank counts.

use std::fmt::Write;

use super::{Report, Run, Scaling};

fn gb(bytes: f64) -> String {
    format!("{:.2}", bytes / 1e9)
}

fn secs(s: f64) -> String {
    if s.is_nan() {
        "–".into()
    } else if s < 0.01 {
        format!("{s:.4}")
    } else {
        format!("{s:.3}")
    }
}

/// The compute seconds, "–" for `load` (its measured step is the load).
fn compute_secs(run: &Run) -> String {
    if run.op == "load" {
        "–".into()
    } else {
        secs(run.compute())
    }
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.filter(|x| x.is_finite()).map_or_else(|| "–".into(), f)
}

/// The rate of `run`'s measured step: GFLOP/s when it has nominal flops, else GB/s of input.
fn rate(run: &Run) -> String {
    let seconds = run.measured();
    match run.flops {
        Some(f) => format!("{:.1} GFLOP/s", f / seconds / 1e9),
        None => format!("{:.2} GB/s", run.bytes / seconds / 1e9),
    }
}

/// The Markdown document; `pngs` are the plot files (names relative to the Markdown).
pub fn render(r: &Report, pngs: &[String]) -> String {
    let mut s = String::new();
    let m = &r.machine;
    let o = &r.options;
    let _ = writeln!(s, "# heatsql benchmark and scaling report\n");
    let _ = writeln!(
        s,
        "{} · commit `{}` · {} ({} cores, {:.1} GiB) · {} · {} · libtorch {}\n",
        m.date,
        m.commit,
        m.cpu,
        m.cores,
        m.memory_bytes as f64 / (1u64 << 30) as f64,
        m.os,
        m.mpi,
        m.torch
    );
    let _ = writeln!(
        s,
        "Each heatsql run is one `mpirun -n P heatsql-bench-scaling` with {} compute thread(s) per rank: \
         {} rounds after a warm-up, medians; *load* is Parquet → row-split DNDarray, *compute* the \
         operation on it. Strong scaling keeps the data, weak scaling gives P ranks P times the rows \
         (matmul: P^(1/3) times the side). Peak RSS is each rank's `getrusage` maximum. Baselines \
         use every core of the machine (their BLAS/OpenMP defaults).\n",
        o.threads_per_rank, o.rounds
    );
    if let Some(l) = &r.limits {
        let _ = writeln!(s, "## Machine limits\n");
        let _ = writeln!(s, "| limit | 1 thread | {} threads |\n|---|---:|---:|", l.cores);
        let _ = writeln!(
            s,
            "| f64 GEMM (libtorch, {n} × {n}, best of 7) | {:.1} GFLOP/s | {:.1} GFLOP/s |",
            l.gemm_gflops[0],
            l.gemm_gflops[1],
            n = l.gemm_n
        );
        let _ = writeln!(
            s,
            "| memory bandwidth (STREAM triad, 3 × 256 MiB, best of 6) | {:.1} GB/s | {:.1} GB/s |\n",
            l.triad_gbs[0], l.triad_gbs[1]
        );
        let _ = writeln!(
            s,
            "*Fraction of limit*: matmul and k-means (nominal flops: 2n³, 2·n·k·d per Lloyd iteration) \
             against the GEMM rate at the run's cores; load, pca, svd and dmd against the memory \
             bandwidth at the run's cores, counting one read of the input (a lower bound on their \
             traffic; the load also decodes Parquet). Limits are measured once per report on a shared \
             machine: a fraction above 100 % means the limit was measured low.\n"
        );
    }
    let _ = writeln!(s, "## Strong scaling (the same data at every P)\n");
    let _ = writeln!(
        s,
        "| operation | rows × cols | P | load (s) | compute (s) | speedup | rate | fraction of limit | peak RSS per rank, max (GB) |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    for op in &o.ops {
        for &p in &o.ranks {
            let Some(run) = r.run(op, Scaling::Strong, p) else {
                continue;
            };
            let frac = r
                .fraction_of_limit(run)
                .map_or_else(|| "–".into(), |(f, what)| format!("{:.0} % of {what}", 100.0 * f));
            let _ = writeln!(
                s,
                "| {op} | {} × {} | {p} | {} | {} | {} | {} | {frac} | {} |",
                run.rows,
                run.cols,
                secs(run.load()),
                compute_secs(run),
                opt(r.speedup(op, p), |x| format!("{x:.2}×")),
                rate(run),
                gb(run.peak_rss_max())
            );
        }
    }
    if o.weak && o.ranks.len() > 1 {
        let _ = writeln!(s, "\n## Weak scaling (P times the rows at P ranks)\n");
        let _ = writeln!(
            s,
            "| operation | P | rows × cols | load (s) | compute (s) | efficiency T(1)/T(P) | peak RSS per rank, max (GB) |\n\
             |---|---:|---|---:|---:|---:|---:|"
        );
        for op in &o.ops {
            for &p in &o.ranks {
                let Some(run) = r.run(op, Scaling::Weak, p) else {
                    continue;
                };
                let _ = writeln!(
                    s,
                    "| {op} | {p} | {} × {} | {} | {} | {} | {} |",
                    run.rows,
                    run.cols,
                    secs(run.load()),
                    compute_secs(run),
                    opt(r.weak_efficiency(op, p), |x| format!("{:.0} %", 100.0 * x)),
                    gb(run.peak_rss_max())
                );
            }
        }
    }
    if !r.baselines.is_empty() {
        let _ = writeln!(s, "\n## heatsql beside the baselines (same files, same run)\n");
        let _ = writeln!(
            s,
            "Ratios are the baseline's time over heatsql's (above 1: heatsql is faster); *compute* \
             compares the compute steps (for load: the loads), *end to end* load + compute. *Its check \
             vs heatsql's* is the relative difference of the check values (below) at P = 1: other \
             algorithms agree to rounding, k-means to its own inertia definition (Heat's differs), \
             Heat's hierarchical PCA reports no explained variance (–).\n"
        );
        let mut head = String::from(
            "| operation | baseline | its load (s) | its compute (s) | its peak RSS (GB) | its check vs heatsql's |",
        );
        let mut rule = String::from("|---|---|---:|---:|---:|---:|");
        for &p in &o.ranks {
            let _ = write!(head, " compute ratio P={p} | end-to-end ratio P={p} |");
            rule.push_str("---:|---:|");
        }
        let _ = writeln!(s, "{head}\n{rule}");
        for op in &o.ops {
            for b in r.baselines_of(op) {
                let name = if b.ranks > 1 || b.system.starts_with("Heat") {
                    format!("{} (P = {})", b.system, b.ranks)
                } else {
                    format!("{} ({} threads)", b.system, b.threads)
                };
                let check = r
                    .run(op, Scaling::Strong, 1)
                    .map(|h| (b.check - h.check).abs() / h.check.abs().max(f64::MIN_POSITIVE));
                let _ = write!(
                    s,
                    "| {op} | {name} | {} | {} | {} | {} |",
                    secs(b.load()),
                    secs(b.compute()),
                    gb(b.peak_rss_max()),
                    opt(check, |x| format!("{x:.1e}"))
                );
                for &p in &o.ranks {
                    let h = r.run(op, Scaling::Strong, p);
                    let c = h.map(|h| b.measured() / h.measured());
                    let e = h.map(|h| b.end_to_end() / h.end_to_end());
                    let _ = write!(
                        s,
                        " {} | {} |",
                        opt(c, |x| format!("{x:.2}×")),
                        opt(e, |x| format!("{x:.2}×"))
                    );
                }
                let _ = writeln!(s);
            }
        }
    }
    let _ = writeln!(s, "\n## Results agree across rank counts\n");
    let _ = writeln!(
        s,
        "The check value of each operation (load: Σ of the array; pca: explained variance ratio; svd: σ₁; \
         kmeans: inertia; dmd: max |λ|; matmul: Σ of C) at every P against P = 1 (tolerance {:.0e} relative).\n",
        super::CHECK_TOLERANCE
    );
    let _ = writeln!(
        s,
        "| operation | value at P = 1 | largest relative difference | agrees |\n|---|---:|---:|---|"
    );
    for a in r.agreements() {
        let _ = writeln!(
            s,
            "| {} | {:.10e} | {:.1e} | {} |",
            a.op,
            a.reference,
            a.max_relative_difference,
            if a.holds() { "yes" } else { "**NO**" }
        );
    }
    if !pngs.is_empty() {
        let _ = writeln!(s, "\n## Plots\n");
        for p in pngs {
            let _ = writeln!(s, "![{p}]({p})\n");
        }
    }
    if !r.notes.is_empty() {
        let _ = writeln!(s, "\n## Not measured\n");
        for n in &r.notes {
            let _ = writeln!(s, "* {}", n.replace('\n', " "));
        }
    }
    s
}
