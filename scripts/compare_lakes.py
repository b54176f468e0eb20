"""Do two lakes hold the same data? Row sets of their tables and the bytes of their MDS shards.

    python scripts/compare_lakes.py LAKE_A LAKE_B [--tables documents filtered ...] [--datasets demo]

For each table: the rows of A and of B as multisets (``exceptAll`` both ways), with the columns that
name a run (``run_id``, ``*_run_id``: run ids change with the fingerprint scheme, not with the data)
left out. For each MDS dataset folder under ``LAKE/datasets/``: every shard file and ``index.json``
compared byte for byte. Exit 0 when everything is equal, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

TABLES = ["documents", "filtered", "filtered_rejected", "deduped", "dup_clusters", "run_stats"]


def run_columns(columns: list[str]) -> list[str]:
    return [c for c in columns if c == "run_id" or c.endswith("_run_id")]


def compare_table(spark, a: str, b: str) -> tuple[int, int, int, int]:
    """(rows in A, rows in B, rows of A not in B, rows of B not in A)."""
    da, db = (spark.read.format("delta").load(p) for p in (a, b))
    if sorted(da.columns) != sorted(db.columns):
        raise SystemExit(f"{a} and {b} have different columns: {sorted(da.columns)} vs {sorted(db.columns)}")
    keep = [c for c in da.columns if c not in run_columns(da.columns)]
    da, db = da.select(*keep), db.select(*keep)
    return da.count(), db.count(), da.exceptAll(db).count(), db.exceptAll(da).count()


def digest_files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "manifest.json"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--tables", nargs="+", default=TABLES)
    ap.add_argument("--datasets", nargs="*", default=None,
                    help="dataset folders under LAKE/datasets to compare byte for byte (default: all in A)")
    args = ap.parse_args(argv)
    from jobs.common.session import get_spark

    spark = get_spark("compare-lakes")
    same = True
    print(f"{'table':20s} {'rows A':>8s} {'rows B':>8s} {'A-B':>6s} {'B-A':>6s}  equal")
    for t in args.tables:
        na, nb, ab, ba = compare_table(spark, f"{args.a.rstrip('/')}/{t}", f"{args.b.rstrip('/')}/{t}")
        ok = na == nb and ab == 0 and ba == 0
        same &= ok
        print(f"{t:20s} {na:8d} {nb:8d} {ab:6d} {ba:6d}  {'yes' if ok else 'NO'}")
    root_a, root_b = Path(args.a, "datasets"), Path(args.b, "datasets")
    # the MDS dataset folders (an index.json), not the Delta table `datasets` that shares the folder
    names = args.datasets if args.datasets is not None else sorted(
        p.name for p in root_a.iterdir() if (p / "index.json").is_file())
    for name in names:
        fa, fb = digest_files(root_a / name), digest_files(root_b / name)
        ok = fa == fb and bool(fa)
        same &= ok
        print(f"datasets/{name}: {len(fa)} files in A, {len(fb)} in B, "
              f"{sum(1 for k in fa if fb.get(k) == fa[k])} byte-identical  {'yes' if ok else 'NO'}")
    print("equal" if same else "DIFFERENT")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
