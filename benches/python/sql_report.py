"""The TPC-H benchmark report (scripts/bench.sh sql): OUT.tsv lines `label query seconds` and
`label rss MB,MB` from heatsql-bench-sql and duckdb_tpch.py, into a markdown section and a
per-query bar chart.

    python sql_report.py OUT.tsv SF REPORT.md PLOT.png "HEADER"
"""

import sys
from collections import OrderedDict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ORDER = ["datafusion", "duckdb", "heatsql P=1 all cores", "heatsql P=1 one core", "heatsql P=2 one core each"]


def main():
    tsv, sf, md, png, header = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
    times = OrderedDict()
    rss = {}
    for line in open(tsv):
        parts = line.rstrip("\n").split("\t")
        if len(parts) != 3:
            continue
        label, query, value = parts
        if query == "rss":
            rss[label] = [float(v) for v in value.split(",") if v]
        else:
            times.setdefault(label, OrderedDict())[query] = float(value)
    labels = [l for l in ORDER if l in times] + [l for l in times if l not in ORDER]
    queries = [f"q{q}" for q in range(1, 23)]
    total = {l: sum(times[l].get(q, float("nan")) for q in queries) for l in labels}

    def ratio(a, b):
        if a in total and b in total and total[b] > 0:
            return f"{total[a] / total[b]:.2f}"
        return "–"

    out = [header, ""]
    out.append("| query | " + " | ".join(labels) + " |")
    out.append("|---|" + "---:|" * len(labels))
    for q in queries:
        out.append(f"| {q} | " + " | ".join(f"{times[l].get(q, float('nan')):.3f}" for l in labels) + " |")
    out.append("| **total (s)** | " + " | ".join(f"**{total[l]:.2f}**" for l in labels) + " |")
    out.append(
        "| peak RSS per rank (MB) | "
        + " | ".join(", ".join(f"{m:.0f}" for m in rss.get(l, [])) or "–" for l in labels)
        + " |"
    )
    out.append("")
    out.append(
        f"Totals: heatsql P=1 on all cores / DataFusion = **{ratio('heatsql P=1 all cores', 'datafusion')}** "
        f"(target ≤ 1.2); heatsql P=2 on one core each / P=1 on one core = "
        f"**{ratio('heatsql P=2 one core each', 'heatsql P=1 one core')}** (target ≤ 0.7); "
        f"DuckDB / DataFusion = {ratio('duckdb', 'datafusion')}."
    )
    out.append("")
    out.append(f"![TPC-H SF {sf} per query](benchmarks/{png.split('/')[-1]})")
    out.append("")
    open(md, "w").write("\n".join(out))

    fig, ax = plt.subplots(figsize=(14, 5))
    width = 0.8 / max(len(labels), 1)
    for i, l in enumerate(labels):
        xs = [j + (i - (len(labels) - 1) / 2) * width for j in range(len(queries))]
        ax.bar(xs, [times[l].get(q, 0.0) for q in queries], width, label=l)
    ax.set_xticks(range(len(queries)))
    ax.set_xticklabels(queries)
    ax.set_ylabel("seconds (median)")
    ax.set_title(f"TPC-H SF {sf}, per query")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=90)


if __name__ == "__main__":
    main()
