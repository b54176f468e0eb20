"""Decontamination: n-gram overlap between training documents and evaluation examples. No Spark.

An evaluation example is every text field of one line of an llm-foundry task file (``query``,
``choices``, ``context``, ``context_options``, ``continuation``, ``answer``, ``question`` ...). Each
field is normalised (lower-cased, words = runs of letters / digits, so punctuation and spacing do
not matter) and cut into word ``n``-grams (13 by default, as GPT-3 and DCLM's decontamination); a
field shorter than ``n`` words has no ``n``-gram and cannot be detected (counted as ``too_short``).
N-grams never span two fields. Each n-gram is a 64-bit hash of its words' CRC32 hashes, the same in
every process; the index is three sorted numpy arrays (hash, task, example), small enough to ship
to every executor (~16 bytes per n-gram).

A document is contaminated when at least ``min_matches`` of its n-grams occur in the index.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

WORD = re.compile(r"[^\W_]+", re.UNICODE)
TEXT_FIELDS = ("query", "question", "context", "continuation", "choices", "context_options", "answer",
               "answers", "aliases", "passage", "prompt", "canonical_solution", "chain_of_thought")
_P = np.uint64(1099511628211)  # FNV-64 prime as the polynomial base


def words(text: str, lowercase: bool = True) -> list[str]:
    return WORD.findall(text.lower() if lowercase else text)


def ngram_hashes(ws: Sequence[str], n: int) -> np.ndarray:
    """uint64 hash of every word n-gram of ``ws`` (empty when there are fewer than ``n`` words)."""
    if len(ws) < n:
        return np.zeros(0, dtype=np.uint64)
    h = np.fromiter((zlib.crc32(w.encode("utf-8")) for w in ws), dtype=np.uint64, count=len(ws))
    m = len(ws) - n + 1
    acc = np.zeros(m, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(n):
            acc = acc * _P + h[j:j + m] + np.uint64(j + 1)
    return acc


def example_texts(row: dict) -> list[str]:
    """The text fields of one task line, each a separate string (lists flattened)."""
    out = []
    for k in TEXT_FIELDS:
        v = row.get(k)
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, list):
            out += [x for x in v if isinstance(x, str)]
    return out


@dataclass
class EvalIndex:
    n: int
    tasks: list[str]
    examples: list[int]  # examples per task
    too_short: list[int]  # examples per task with no n-gram at all
    hashes: np.ndarray = field(repr=False)  # sorted uint64
    task_ids: np.ndarray = field(repr=False)  # int32, aligned with hashes
    example_ids: np.ndarray = field(repr=False)  # int32

    @classmethod
    def build(cls, files: Iterable[tuple[str, Path]], n: int = 13, lowercase: bool = True) -> EvalIndex:
        """``files``: (task name, jsonl path). Unreadable lines are skipped and counted per task."""
        tasks, examples, too_short = [], [], []
        hs, ts, es = [], [], []
        for t, (name, path) in enumerate(files):
            tasks.append(name)
            count = short = 0
            with open(path, encoding="utf-8") as f:
                for line in f:
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    got = [ngram_hashes(words(x, lowercase), n) for x in example_texts(row)]
                    got = [g for g in got if len(g)]
                    if got:
                        g = np.unique(np.concatenate(got))
                        hs.append(g)
                        ts.append(np.full(len(g), t, dtype=np.int32))
                        es.append(np.full(len(g), count, dtype=np.int32))
                    else:
                        short += 1
                    count += 1
            examples.append(count)
            too_short.append(short)
        if hs:
            h, tt, ee = np.concatenate(hs), np.concatenate(ts), np.concatenate(es)
            order = np.argsort(h, kind="stable")
            h, tt, ee = h[order], tt[order], ee[order]
        else:
            h, tt, ee = (np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int32))
        return cls(n, tasks, examples, too_short, h, tt, ee)

    def save(self, path: str) -> None:
        np.savez(path, hashes=self.hashes, task_ids=self.task_ids, example_ids=self.example_ids,
                 meta=np.array(json.dumps({"n": self.n, "tasks": self.tasks, "examples": self.examples,
                                           "too_short": self.too_short})))

    @classmethod
    def load(cls, path: str) -> EvalIndex:
        z = np.load(path)
        meta = json.loads(str(z["meta"]))
        return cls(meta["n"], meta["tasks"], meta["examples"], meta["too_short"],
                   z["hashes"], z["task_ids"], z["example_ids"])

    def match(self, text: str, lowercase: bool = True) -> tuple[int, list[tuple[int, int]]]:
        """(number of the document's n-grams found in the index, sorted distinct (task, example) hit)."""
        h = ngram_hashes(words(text, lowercase), self.n)
        if not len(h) or not len(self.hashes):
            return 0, []
        left = np.searchsorted(self.hashes, h, side="left")
        right = np.searchsorted(self.hashes, h, side="right")
        found = right > left
        n_found = int(found.sum())
        if not n_found:
            return 0, []
        pairs = set()
        for lo, hi in zip(left[found], right[found], strict=True):
            for k in range(lo, hi):
                pairs.add((int(self.task_ids[k]), int(self.example_ids[k])))
        return n_found, sorted(pairs)


@lru_cache(maxsize=2)
def load_index(path: str) -> EvalIndex:
    """``EvalIndex.load`` once per Python process (Spark reuses its Python workers)."""
    return EvalIndex.load(path)


def task_files(root: Path, patterns: Sequence[str]) -> list[tuple[str, Path]]:
    """Task files under ``root`` matching any glob in ``patterns``, named by their path without .jsonl."""
    seen: dict[str, Path] = {}
    for pat in patterns:
        for p in sorted(root.glob(pat)):
            if p.is_file() and p.suffix == ".jsonl":
                seen.setdefault(str(p.relative_to(root).with_suffix("")), p)
    return sorted(seen.items())
