#!/usr/bin/env python
"""Build the bundled text sample the demo's quality classifier trains on (sample/text/).

    python scripts/make_text_sample.py [--shared ../shared] [--out sample/text]

* ``hq/wikipedia.txt``: WikiText-2 validation articles (CC-BY-SA-3.0), de-tokenised back to normal
  prose (``@-@`` joins, spaces before punctuation, ``<unk>`` dropped) so that the classifier cannot
  learn the tokeniser's marks instead of the writing;
* ``hq/state_union.txt``: State of the Union addresses 1945-1970 (public domain, NLTK ``state_union``);

The negative class of the demo is the sample's own web pages (the lake's ``documents`` table).

Re-running gives byte-identical files.
"""

from __future__ import annotations

import argparse
import re
import zipfile
from pathlib import Path


def detok_wikitext(text: str) -> str:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("=") and line.endswith("="):  # " = = Title = = " headings: the title on its own line
            out.append("")
            out.append(line.strip("= "))
            continue
        line = line.replace(" <unk>", "").replace("<unk> ", "")
        line = re.sub(r" @(.)@ ", r"\1", line)
        line = re.sub(r" ([.,;:!?%)\]}])", r"\1", line)
        line = re.sub(r"([(\[{$]) ", r"\1", line)
        line = re.sub(r" (n't|'s|'re|'ve|'ll|'d|'m)\b", r"\1", line)
        line = re.sub(r'" (.*?) "', r'"\1"', line)
        out.append(line)
    return "\n".join(out).strip() + "\n"


def zip_texts(path: Path, pattern: str) -> list[tuple[str, str]]:
    with zipfile.ZipFile(path) as zf:
        names = sorted(n for n in zf.namelist() if re.search(pattern, n))
        return [(n, zf.read(n).decode("utf-8", errors="replace")) for n in names]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    ap.add_argument("--out", default="sample/text")
    args = ap.parse_args()
    text = Path(args.shared) / "data" / "text"
    out = Path(args.out)
    (out / "hq").mkdir(parents=True, exist_ok=True)
    wiki = detok_wikitext((text / "wikitext2" / "valid.txt").read_text(encoding="utf-8"))
    (out / "hq" / "wikipedia.txt").write_text(wiki, encoding="utf-8")
    speeches = [t for n, t in zip_texts(text / "nltk-corpora" / "state_union.zip", r"/19[4-6]\d-")]
    (out / "hq" / "state_union.txt").write_text("\n\n".join(s.strip() for s in speeches) + "\n", encoding="utf-8")
    for p in sorted(out.rglob("*.txt")):
        print(f"{p}: {p.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
