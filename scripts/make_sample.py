#!/usr/bin/env python
"""Build the bundled demo sample: real pages from ../shared trafilatura-eval written as WARC files.

    python scripts/make_sample.py [--shared ../shared] [--out sample/warc] [--pages 200] [--files 4]

The pages are the first N (by URL) of trafilatura's evaluation set (Apache-2.0, see sample/NOTICE).
Re-running gives byte-identical files.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lakesift.warcwrite import write_warc  # noqa: E402


def trafilatura_pages(shared: Path) -> list[tuple[str, bytes]]:
    root = shared / "data" / "extraction" / "trafilatura-eval"
    meta = json.loads((root / "evaldata.json").read_text(encoding="utf-8"))
    pages = []
    for url in sorted(meta):
        name = meta[url]["file"] + ".gz"
        for sub in ("eval", "cache"):
            p = root / sub / name
            if p.exists():
                pages.append((url, gzip.decompress(p.read_bytes())))
                break
    return pages


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    ap.add_argument("--out", default="sample/warc")
    ap.add_argument("--pages", type=int, default=200)
    ap.add_argument("--files", type=int, default=4)
    args = ap.parse_args()
    pages = trafilatura_pages(Path(args.shared))[: args.pages]
    os.makedirs(args.out, exist_ok=True)
    per = -(-len(pages) // args.files)
    for i in range(args.files):
        path = os.path.join(args.out, f"sample-{i:04d}.warc.gz")
        n = write_warc(path, pages[i * per:(i + 1) * per])
        print(f"{path}: {n} pages, {os.path.getsize(path) / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
