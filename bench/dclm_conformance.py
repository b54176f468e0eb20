#!/usr/bin/env python
"""Keep / drop decisions of our DCLM-Baseline pipeline against DCLM's own mappers, same documents.

    python bench/dclm_conformance.py --dclm /path/to/dclm-checkout [--docs JSONL] [--limit N]

DCLM's code is not part of Lakesift: give a checkout of mlfoundations/dclm (any folder with its
``baselines/``) and a Python that has its dependencies (``DCLM_PYTHON``, default the benchmark venv
~/.cache/lakesift/bench-venv with retrie, uniseg, nltk, unidecode, blingfire, langdetect, fasttext).
Its language model path gets a link to our lid.176.ftz (standing in for lid.176.bin).

The DCLM side runs ``baselines/baselines_configs/dclm_baseline_refinedweb.yaml``'s steps in order
(``move_url_modifier`` is not needed here; the curated domain list is not published, so that step is
skipped on both sides: ours ships an empty list). Documents: the extracted real pages of
bench/filter_speed.py (one copy each). Prints the agreement and the steps where decisions differ.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DCLM_PY = os.environ.get("DCLM_PYTHON", str(Path.home() / ".cache/lakesift/bench-venv/bin/python"))

# Runs inside DCLM's environment: reads documents, writes one decision per line.
DCLM_SIDE = r'''
import importlib.util, json, sys, types, yaml
sys.path[:0] = [".", "baselines"]
# Load only the two small modules of DCLM's `core` package the mappers use: its __init__ imports the
# whole processor (S3, tokenizers). Heavy imports of mappers this pipeline does not use (transformers,
# kenlm, ...) get empty stand-in modules when they are not installed.
def load_file(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec); sys.modules[name] = mod; spec.loader.exec_module(mod)
    return mod
for pkg in ("core", "baselines.core"):
    sys.modules[pkg] = types.ModuleType(pkg)
    sys.modules[pkg].constants = load_file(pkg + ".constants", "baselines/core/constants.py")
    sys.modules[pkg].factory_utils = load_file(pkg + ".factory_utils", "baselines/core/factory_utils.py")
for name in ("transformers", "kenlm", "sentencepiece", "jsonlines", "cloudpathlib", "boto3"):
    if importlib.util.find_spec(name) is None:  # used only by mappers this pipeline does not call
        stub = types.ModuleType(name); stub.AutoTokenizer = stub.S3Path = None; sys.modules[name] = stub
import functools
from core.factory_utils import is_factory
mods = [importlib.import_module(m) for m in (
    "baselines.mappers.filters.metadata_filters", "baselines.mappers.filters.content_filters",
    "baselines.mappers.modifiers", "baselines.mappers.enrichers.enrichers",
    "baselines.mappers.enrichers.language_id_enrichers")]
spec = yaml.safe_load(open("baselines/baselines_configs/dclm_baseline_refinedweb.yaml"))[0]["steps"]
steps = []
for i, s in enumerate(spec):
    s = dict(s); name = s.pop("func")
    if name == "move_url_modifier" or "domains_curated" in str(s.get("banlist_from_fname", "")):
        continue
    fn = next(getattr(m, name) for m in mods if hasattr(m, name))
    steps.append((f"{i}:{name}", fn(**s) if is_factory(fn) else functools.partial(fn, **s)))
for line in open(sys.argv[1]):
    d = json.loads(line)
    page = {"text": d["text"], "url": d["url"]}
    dropped = None
    for sid, fn in steps:
        out = fn(page)
        if not out:
            dropped = sid; break
        page = out[0]
    print(json.dumps({"doc_id": d["doc_id"], "kept": dropped is None, "step": dropped}))
'''


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dclm", required=True, help="folder holding DCLM's baselines/ (a checkout)")
    ap.add_argument("--docs", default=str(REPO / "bench" / "out" / "filter" / "docs-12.jsonl"))
    ap.add_argument("--limit", type=int, default=1719, help="first N documents (default: one copy of each page)")
    ap.add_argument("--golden", help="instead: write DCLM's decisions on the documents of the shared WARCs "
                    "and the bundled sample to this JSON file (tests/data/dclm_decisions.json)")
    ap.add_argument("--shared", default=str(REPO.parent / "shared"))
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from udfs.langid import default_model_path
    from udfs.pipeline import load

    dclm = Path(args.dclm)
    model_dir = dclm / "baselines" / "mappers" / "enrichers" / "language_id_enrichment_models"
    model_dir.mkdir(parents=True, exist_ok=True)
    link = model_dir / "lid.176.bin"
    if not link.exists():
        link.symlink_to(default_model_path())
    subset = REPO / "bench" / "out" / "conformance-docs.jsonl"
    subset.parent.mkdir(parents=True, exist_ok=True)
    if args.golden:
        from tests.udfs.test_dclm_conformance import golden_documents

        with open(subset, "w", encoding="utf-8") as dst:
            for key, d in golden_documents(Path(args.shared)):
                dst.write(json.dumps({"doc_id": key, "url": d["url"], "text": d["text"]}) + "\n")
    else:
        with open(args.docs, encoding="utf-8") as src, open(subset, "w", encoding="utf-8") as dst:
            for i, line in enumerate(src):
                if i >= args.limit:
                    break
                dst.write(line)
    proc = subprocess.run([DCLM_PY, "-c", DCLM_SIDE, str(subset)], cwd=dclm, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        return 1
    theirs = {r["doc_id"]: r for r in map(json.loads, proc.stdout.splitlines())}
    if args.golden:
        Path(args.golden).write_text(json.dumps(
            {k: {"kept": r["kept"], "dclm_step": r["step"]} for k, r in sorted(theirs.items())}, indent=1) + "\n")
        print(f"wrote DCLM's decisions on {len(theirs)} documents to {args.golden}")
    pipe = load(REPO / "conf" / "pipelines" / "dclm_baseline.yaml", skips=["quality", "quality_threshold"])
    agree, n = 0, 0
    diffs: Counter = Counter()
    for line in open(subset, encoding="utf-8"):
        d = json.loads(line)
        o = pipe.run(d["text"], d["url"])
        t = theirs[d["doc_id"]]
        n += 1
        if o.kept == t["kept"]:
            agree += 1
        else:
            diffs[(o.step or "kept", t["step"] or "kept")] += 1
    kept_ours = sum(1 for line in open(subset, encoding="utf-8")
                    if pipe.run(json.loads(line)["text"], json.loads(line)["url"]).kept)
    kept_theirs = sum(r["kept"] for r in theirs.values())
    print(f"documents {n}: same keep/drop decision for {agree} ({100.0 * agree / n:.1f}%); "
          f"kept: ours {kept_ours}, DCLM {kept_theirs}")
    for (ours, theirs_step), c in diffs.most_common(15):
        print(f"  {c:5d}  ours: {ours:32s} DCLM: {theirs_step}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
