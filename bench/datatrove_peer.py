#!/usr/bin/env python
"""The datatrove side of bench/filter_speed.py; runs in its own venv (datatrove's dependencies are
not the project's). Reads JSONL documents, runs datatrove's closest equivalents of DCLM-Baseline's
heuristics in one process, prints one JSON line: {"docs": N, "kept": K, "seconds": S}.

    python bench/datatrove_peer.py DOCS.jsonl LID_MODEL_PATH [LIMIT]
"""

import json
import sys
import time

from datatrove.data import Document
from datatrove.pipeline.filters import (
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
    LanguageFilter,
)
from datatrove.utils.lid import FT176LID


class LocalFT176(FT176LID):
    """lid.176 from a local file (this machine reaches no model host)."""

    path = None

    @property
    def model(self):
        if self._model is None:
            from fasttext.FastText import _FastText

            self._model = _FastText(self.path)
        return self._model


def main():
    path, model_path = sys.argv[1], sys.argv[2]
    limit = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    LocalFT176.path = model_path
    docs = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if limit and i >= limit:
                break
            d = json.loads(line)
            docs.append(Document(text=d["text"], id=d["doc_id"], metadata={"url": d["url"]}))
    lang = LanguageFilter(languages=["en"], language_threshold=0.65)
    lang.model = LocalFT176(["en"])
    filters = [lang, GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(filter_no_terminal_punct=False),
               FineWebQualityFilter()]
    t0 = time.perf_counter()
    kept = 0
    for doc in docs:
        ok = True
        for flt in filters:
            res = flt.filter(doc)
            if res is False or (isinstance(res, tuple) and res[0] is False):
                ok = False
                break
        kept += ok
    print(json.dumps({"docs": len(docs), "kept": kept, "seconds": time.perf_counter() - t0}))


if __name__ == "__main__":
    main()
