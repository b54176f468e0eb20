#!/usr/bin/env python
"""Build the Chinese benchmark input: real Chinese HTML pages as WARC files, ingested into a Delta lake.

    python bench/zh_pages.py [--shared ../shared] [--out bench/out/zh] [--copies 4] [--files 8]

Pages: the 2,656 real Chinese HTML pages of ../shared/data/zh/html (LibreOffice help zh-CN / zh-TW,
Debian handbook, reference, FAQ, installation guide, maint-guide, LilyPond, KiCad, Debian Edu; listed
in html/index.jsonl, read in its order). ``--copies`` times (4: 10,624 documents), each copy with its own
URL (``?copy=K`` / ``&copy=K`` after the page's id) and one numbered line ``（第 K 份副本）`` inserted
before ``</body>``, so that no document is an exact duplicate of another (the line is in the extracted
text; it is the same in simplified and traditional script). Written with ``lakesift.warcwrite`` as
``--files`` gzipped WARC files, round-robin (every file holds the same mix of sites), then ingested
by the real ingest job (``python jobs/ingest.py --input WARCS --lake LAKE --source zh``: resiliparse main
content, lid.176) into ``LAKE/documents``, and exported (``doc_id``, ``url``, ``text`` after ingest,
``language``, ``language_score``, in WARC file and record order) to one JSONL file, so that a peer
outside Spark sees exactly the text our filter job reads.

Deterministic: the WARC files are byte-identical on every build (warcwrite's record ids and dates), so
are the doc ids (they hash the WARC path: the same checkout gives the same ids). Built once under
``--out`` (``warc-C/``, ``lake-C/``, ``docs-C.jsonl``; a ``built-C.json`` stamp records the counts); a
later call finds the stamp and returns at once. Used by bench/zh_filter.py (``build``).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from lakesift.warcwrite import write_warc  # noqa: E402

_BODY_END = re.compile(rb"</body\s*>", re.IGNORECASE)

EXPORT = """
import json, sys
sys.path.insert(0, {repo!r})
from jobs.common.session import get_spark
spark = get_spark("bench-zh-export")
df = (spark.read.format("delta").load({table!r})
      .select("doc_id", "url", "text", "language", "language_score", "warc_path", "warc_record_index")
      .orderBy("warc_path", "warc_record_index"))
n = 0
with open({jsonl!r} + ".tmp", "w", encoding="utf-8") as f:
    for r in df.toLocalIterator():
        f.write(json.dumps({{"doc_id": r.doc_id, "url": r.url, "text": r.text, "language": r.language,
                            "language_score": r.language_score}}, ensure_ascii=False) + "\\n")
        n += 1
print(n)
"""


def job_env() -> dict[str, str]:
    """The environment for a job run as ``python jobs/X.py``: the checkout first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def real_pages(shared: Path) -> list[tuple[str, str, bytes]]:
    """(id URL, lang, HTML bytes) of every page of html/index.jsonl, in its order."""
    root = shared / "data" / "zh" / "html"
    pages = []
    with open(root / "index.jsonl", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            rel = row["file"].removeprefix("html/")
            pages.append((row["id"], row["lang"], gzip.decompress((root / rel).read_bytes())))
    return pages


def copy_of(url: str, body: bytes, k: int) -> tuple[str, bytes]:
    """Copy ``k`` (0-based) of a page: its own URL and the numbered line ``（第 K+1 份副本）`` before
    ``</body>`` (at the end when there is none)."""
    line = f"<p>（第 {k + 1} 份副本）</p>\n".encode()
    ends = list(_BODY_END.finditer(body))
    at = ends[-1].start() if ends else len(body)
    return f"{url}{'&' if '?' in url else '?'}copy={k + 1}", body[:at] + line + body[at:]


def build(shared: Path, out: Path, copies: int = 4, n_files: int = 8, quiet: bool = False) -> dict:
    """Build (or find) the input; returns {"lake", "jsonl", "docs", "pages", "copies", "records"}."""
    stamp = out / f"built-{copies}.json"
    if stamp.exists():
        return json.loads(stamp.read_text(encoding="utf-8"))
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    warc_dir, lake, jsonl = out / f"warc-{copies}", out / f"lake-{copies}", out / f"docs-{copies}.jsonl"
    for p in (warc_dir, lake):
        shutil.rmtree(p, ignore_errors=True)
    warc_dir.mkdir(parents=True)
    pages = real_pages(shared)
    allp = [copy_of(url, body, k) for k in range(copies) for url, _, body in pages]
    say(f"zh input: writing {len(allp)} WARC records ({len(pages)} real pages x {copies} copies) "
        f"into {n_files} files under {warc_dir}")
    records = sum(write_warc(str(warc_dir / f"zh-{i:03d}.warc.gz"), allp[i::n_files]) for i in range(n_files))
    say(f"zh input: ingesting with jobs/ingest.py into {lake}/documents")
    proc = subprocess.run([sys.executable, str(REPO / "jobs" / "ingest.py"), "--input", str(warc_dir),
                           "--lake", str(lake), "--source", "zh"], capture_output=True, text=True, env=job_env())
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit("zh input: ingest failed")
    code = EXPORT.format(repo=str(REPO), table=str(lake / "documents"), jsonl=str(jsonl))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=job_env())
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit("zh input: export of documents failed")
    os.replace(str(jsonl) + ".tmp", jsonl)
    docs = int(proc.stdout.strip().splitlines()[-1])
    info = {"lake": str(lake), "jsonl": str(jsonl), "docs": docs, "pages": len(pages), "copies": copies,
            "records": records}
    stamp.write_text(json.dumps(info), encoding="utf-8")
    say(f"zh input: {docs} documents of {records} records ({records - docs} skipped by ingest)")
    return info


def main() -> int:
    sys.path.insert(0, str(REPO / "bench"))
    import harness

    args = harness.parse_args(__doc__, out="zh", copies=4, files=8)
    info = build(Path(args.shared), Path(args.out), args.copies, args.files)
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
