"""DuckDB on the TPC-H files the heatsql benchmark reads (scripts/bench.sh sql).

    python duckdb_tpch.py DATA_DIR QUERIES_DIR ROUNDS THREADS OUT.tsv [LABEL]

Views over each table's Parquet files (target/bench-data/tpch-sf<SF>/<table>/*.parquet), the
same 22 query texts (sql-tests/tpch/queries, DataFusion's), `THREADS` threads. Per query the
median of ROUNDS - 1 rounds after a warm-up is appended to OUT.tsv as `LABEL qN seconds`, and
the process's peak RSS as `LABEL rss MB`.
"""

import resource
import sys
import time
from pathlib import Path

import duckdb

TABLES = ["region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem"]


def statements(path):
    parts = [s.strip() for s in path.read_text().split(";")]
    parts = [s for s in parts if s and not all(l.strip().startswith("--") or not l.strip() for l in s.splitlines())]
    result = next((i for i, s in enumerate(parts) if s.lstrip().lower().startswith("select")), 0)
    return parts, result


def main():
    data, queries, rounds, threads, out = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    label = sys.argv[6] if len(sys.argv) > 6 else f"duckdb x{threads}"
    rounds = max(rounds, 2)
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    for t in TABLES:
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{data / t}/*.parquet')")
    lines = []
    total = 0.0
    for q in range(1, 23):
        parts, result = statements(queries / f"q{q}.sql")
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            for i, s in enumerate(parts):
                r = con.execute(s)
                if i == result:
                    r.fetchall()
            times.append(time.perf_counter() - start)
        times = sorted(times[1:])
        median = times[len(times) // 2]
        total += median
        lines.append(f"{label}\tq{q}\t{median:.6f}")
        print(f"q{q:<3} duckdb {median:8.3f} s", flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines.append(f"{label}\trss\t{rss:.0f}")
    print(f"total duckdb {total:.3f} s, peak RSS {rss:.0f} MB")
    with open(out, "a") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
