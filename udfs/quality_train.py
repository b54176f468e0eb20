"""fastText quality classifier, training: the training file (one ``<label> <normalised text>`` a
line), training in a child process, held-out metrics, the ``conf/quality/*.yaml`` model
(:class:`TrainConfig`) and the cutting of plain-text files and zips into training documents.
Inference (normalisation, model loading, scoring) is :mod:`udfs.quality`. No Spark.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from lakesift.config import StrictModel
from udfs.quality import Normalization, normalize, score


class Hyperparameters(StrictModel):
    """fastText ``train_supervised`` arguments (https://fasttext.cc/docs/en/options.html).

    DCLM: ``wordNgrams: 2``, fastText's defaults for the rest (listed here so a config shows them)."""

    lr: float = Field(0.1, gt=0)
    dim: int = Field(100, gt=0)
    ws: int = Field(5, gt=0)
    epoch: int = Field(5, gt=0)
    minCount: int = Field(1, ge=1)  # noqa: N815 - fastText's own names
    minn: int = Field(0, ge=0)
    maxn: int = Field(0, ge=0)
    neg: int = Field(5, gt=0)
    wordNgrams: int = Field(2, ge=1)  # noqa: N815
    loss: Literal["softmax", "ns", "hs", "ova"] = "softmax"
    bucket: int = Field(2_000_000, ge=0)
    lrUpdateRate: int = Field(100, gt=0)  # noqa: N815
    t: float = Field(1e-4, gt=0)
    thread: int = Field(1, gt=0)  # 1 thread makes training deterministic for a seed
    seed: int = 0


class Labels(StrictModel):
    positive: str = "__label__hq"
    negative: str = "__label__cc"


# --------------------------------------------------------------------------------------- metrics

def roc_auc(y: Sequence[int], s: Sequence[float]) -> float:
    """Area under the ROC curve by the rank-sum (Mann-Whitney) formula, ties counted as one half."""
    y = np.asarray(y, dtype=np.int64)
    s = np.asarray(s, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def classification_metrics(y: Sequence[int], s: Sequence[float], threshold: float) -> dict[str, Any]:
    """Precision / recall / F1 of the positive class when keeping ``score >= threshold``."""
    y = np.asarray(y, dtype=bool)
    pred = np.asarray(s, dtype=np.float64) >= threshold
    tp, fp, fn = int((pred & y).sum()), int((pred & ~y).sum()), int((~pred & y).sum())
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return {"threshold": threshold, "precision": prec, "recall": rec, "f1": f1,
            "kept_fraction": float(pred.mean()) if len(pred) else 0.0}


def distribution(s: Sequence[float], bins: int = 20) -> dict[str, Any]:
    s = np.asarray(s, dtype=np.float64)
    if not len(s):
        return {"n": 0}
    qs = [0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99]
    hist, edges = np.histogram(s, bins=bins, range=(0.0, 1.0))
    return {"n": int(len(s)), "mean": float(s.mean()),
            "quantiles": {f"p{int(q * 100)}": float(np.quantile(s, q)) for q in qs},
            "histogram": {"edges": [round(float(e), 4) for e in edges], "counts": hist.tolist()}}


# --------------------------------------------------------------------------------------- training

def write_training_file(path: str, rows: Iterable[tuple[int, str]], labels: Labels,
                        norm: Normalization) -> int:
    """fastText's input format, one ``<label> <normalised text>`` per line; empty texts are skipped."""
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for y, text in rows:
            line = normalize(text, norm)
            if not line:
                continue
            f.write(f"{labels.positive if y else labels.negative} {line}\n")
            n += 1
    return n


_TRAIN_SCRIPT = """
import json, sys
import fasttext
args = json.loads(sys.argv[1])
out = args.pop("_out")
fasttext.train_supervised(verbose=0, **args).save_model(out)
"""


def train(train_file: str, hp: Hyperparameters, out_path: str):
    """Train in a fresh Python process and load the result. fastText's binding (0.10.4) trains once
    per process: a second ``train_supervised`` in the same process can stop with "Encountered NaN"
    on data the first one trained on fine; a child process also keeps the trainer's memory off the
    Spark driver."""
    import subprocess
    import sys

    import fasttext

    args = {"input": train_file, "_out": out_path, **hp.model_dump()}
    proc = subprocess.run([sys.executable, "-c", _TRAIN_SCRIPT, json.dumps(args)], capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"fastText training failed on {train_file}: {tail[0]}")
    return fasttext.load_model(out_path)


def evaluate(model, rows: Sequence[tuple[int, str]], labels: Labels, norm: Normalization,
             thresholds: Sequence[float] = (0.5,)) -> dict[str, Any]:
    """Held-out metrics: ROC-AUC, precision / recall / F1 at each threshold, score distribution per class."""
    y = np.array([r[0] for r in rows], dtype=np.int64)
    s = score(model, [r[1] for r in rows], norm, labels.positive)
    return {
        "n": int(len(y)), "positives": int(y.sum()), "negatives": int(len(y) - y.sum()),
        "roc_auc": roc_auc(y, s),
        "at_threshold": [classification_metrics(y, s, t) for t in thresholds],
        "scores": {"positive": distribution(s[y == 1]), "negative": distribution(s[y == 0])},
    }


def save_json(path: str, obj: Any) -> None:
    def clean(o):
        if isinstance(o, float) and (math.isnan(o) or math.isinf(o)):
            return None
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, list):
            return [clean(v) for v in o]
        return o

    Path(path).write_text(json.dumps(clean(obj), indent=2) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------------------- sources

TEXT_SUFFIXES = (".txt", ".text", ".md", "")


def decode_bytes(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def split_units(text: str, unit: str, chunk_chars: int, min_chars: int) -> list[str]:
    """Cut a plain-text file into training documents: the whole ``file``, each blank-line separated
    ``paragraph``, each ``line``, or ``chunk``: consecutive lines grouped until ``chunk_chars``.
    Units shorter than ``min_chars`` (after stripping) are dropped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if unit == "file":
        units = [text]
    elif unit == "paragraph":
        units = re.split(r"\n\s*\n", text)
    elif unit == "line":
        units = text.split("\n")
    elif unit == "chunk":
        units, cur, size = [], [], 0
        for line in text.split("\n"):
            if not line.strip() and not cur:
                continue
            cur.append(line)
            size += len(line) + 1
            if size >= chunk_chars:
                units.append("\n".join(cur))
                cur, size = [], 0
        if cur:
            units.append("\n".join(cur))
    else:
        raise ValueError(f"unknown text unit {unit!r}")
    return [u.strip() for u in units if len(u.strip()) >= min_chars]


def file_units(path: str, data: bytes, unit: str, chunk_chars: int, min_chars: int) -> list[tuple[str, str]]:
    """(member name, text) units of one file; a ``.zip`` contributes each of its text members."""
    if path.lower().endswith(".zip"):
        import io
        import zipfile

        out = []
        try:
            zf = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile:
            return []
        for info in sorted(zf.infolist(), key=lambda i: i.filename):
            base = info.filename.rsplit("/", 1)[-1]
            if info.is_dir() or base.upper().startswith(("README", "LICENSE")) or base.startswith("."):
                continue
            if Path(base).suffix.lower() not in TEXT_SUFFIXES:
                continue
            text = decode_bytes(zf.read(info))
            out += [(f"{path}!{info.filename}", u) for u in split_units(text, unit, chunk_chars, min_chars)]
        return out
    return [(path, u) for u in split_units(decode_bytes(data), unit, chunk_chars, min_chars)]


def units_task(unit: str, chunk_chars: int, min_chars: int):
    """``mapInPandas`` over (path, content) rows of whole files (Spark's ``binaryFile`` source): one
    ``text`` row per unit (:func:`file_units`)."""

    def cut(batches):
        import pandas as pd

        for pdf in batches:
            rows = [u for p, c in zip(pdf["path"], pdf["content"], strict=True)
                    for _, u in file_units(p, bytes(c), unit, chunk_chars, min_chars)]
            yield pd.DataFrame({"text": pd.Series(rows, dtype=object)})

    return cut


class SourceOptions(StrictModel):
    text_column: str = "text"  # for Delta / parquet / jsonl sources
    text_unit: Literal["file", "paragraph", "line", "chunk"] = "chunk"  # for plain-text files and zips
    split_tables: bool = False  # also cut table / jsonl / parquet texts into units (default: one row, one example)
    chunk_chars: int = Field(2000, gt=0)
    min_chars: int = Field(200, ge=0)


class TrainConfig(StrictModel):
    """``conf/quality/*.yaml``: everything ``jobs/train_quality.py`` needs besides the sources."""

    name: str = "quality"
    per_class: int | None = Field(None, gt=0)  # examples per class (None: all); DCLM used 200k
    balance: bool = True  # sample the larger class down to the smaller one's size
    valid_fraction: float = Field(0.1, ge=0, lt=1)
    seed: int = 42
    labels: Labels = Labels()
    normalization: Normalization = Normalization()
    hyperparameters: Hyperparameters = Hyperparameters()
    report_thresholds: list[float] = [0.5]
    sources: SourceOptions = SourceOptions()
