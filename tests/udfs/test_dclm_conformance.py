"""Our DCLM-Baseline pipeline against decisions made by DCLM's own mappers on the same documents.

``tests/data/dclm_decisions.json`` was written by ``bench/dclm_conformance.py --golden`` running
mlfoundations/dclm's code (commit 361714b, outside this project) on every document our ingest path
extracts from ../shared/data/warc and sample/warc. Keys are "<path relative to its root>#<record index>".
"""

import json
from pathlib import Path

from tests.conftest import REPO
from udfs.ingest import FileReport, IngestConfig, iter_documents

GOLDEN = REPO / "tests" / "data" / "dclm_decisions.json"


def golden_documents(shared: Path):
    roots = [(shared / "data" / "warc", "shared"), (REPO / "sample" / "warc", "sample")]
    cfg = IngestConfig()
    for root, label in roots:
        for f in sorted(p for p in root.rglob("*") if p.is_file() and ".warc" in p.name):
            for d in iter_documents(str(f), cfg, FileReport(str(f)), "conformance"):
                yield f"{label}/{f.relative_to(root)}#{d['warc_record_index']}", d

# DCLM's golden decisions cover its heuristic mappers; the quality classifier is checked elsewhere
HEURISTICS_ONLY = ["quality", "quality_threshold"]


def test_same_keep_drop_decisions_as_dclm(shared):
    from udfs.pipeline import load

    golden = json.loads(GOLDEN.read_text())
    pipe = load(REPO / "conf" / "pipelines" / "dclm_baseline.yaml", skips=HEURISTICS_ONLY)
    seen, agree, differ = 0, 0, []
    for key, d in golden_documents(shared):
        seen += 1
        kept = pipe.run(d["text"], d["url"]).kept
        if kept == golden[key]["kept"]:
            agree += 1
        else:
            differ.append(key)
    assert seen == len(golden) and seen > 300
    assert agree / seen >= 0.99, f"{agree} of {seen} agree; differ: {differ[:10]}"
