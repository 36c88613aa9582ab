"""TPC-DS data for the SQL benchmark (scripts/bench.sh tpcds): DuckDB's `tpcds` extension
(PyPI: duckdb, duckdb-ext-tpcds) generates scale factor SF and writes every table as Parquet,
`OUT/<table>/part-0.parquet`, with row groups of ROW_GROUP rows.

    python tpcds_gen.py SF OUT [ROW_GROUP]
"""

import os
import sys
from pathlib import Path

import duckdb
import duckdb_ext


def main():
    sf, out = sys.argv[1], Path(sys.argv[2])
    row_group = int(sys.argv[3]) if len(sys.argv) > 3 else 100_000
    stamp = out / ".sf"
    want = f"sf={sf} row_group={row_group} duckdb={duckdb.__version__}\n"
    if stamp.exists() and stamp.read_text() == want:
        return
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    ext = Path(list(duckdb_ext.__path__)[0]) / f"extensions/v{duckdb.__version__}/linux_amd64/tpcds.duckdb_extension"
    con.execute(f"LOAD '{ext}'")
    con.execute(f"CALL dsdgen(sf={sf})")
    tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
    for t in tables:
        d = out / t
        d.mkdir(parents=True, exist_ok=True)
        for f in d.glob("*.parquet"):
            os.remove(f)
        con.execute(f"COPY {t} TO '{d}/part-0.parquet' (FORMAT parquet, ROW_GROUP_SIZE {row_group})")
        print(f"{t}: {con.execute(f'SELECT count(*) FROM {t}').fetchone()[0]} rows", flush=True)
    stamp.write_text(want)


if __name__ == "__main__":
    main()
