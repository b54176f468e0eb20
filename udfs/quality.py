"""fastText quality classifier: one text normalisation for training and inference, model loading from
a local path, a cloud URI or a model-hub id, batched scoring, training and its metrics. No Spark.

DCLM's classifier (Li et al. 2024, sec. 4.4) labels reference text ``__label__hq`` and random web
text ``__label__cc``, joins a page's lines with spaces before fastText (``" ".join(text.strip()
.splitlines())``), trains with word bigrams and fastText's defaults otherwise, and scores a page by
p(hq): the top label's probability, or one minus it when the top label is ``cc``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from lakesift.config import StrictModel

MODEL_FILE = "model.bin"
CONFIG_FILE = "quality.yaml"
METRICS_FILE = "metrics.json"
CACHE = Path(os.environ.get("LAKESIFT_MODEL_CACHE", Path.home() / ".cache" / "lakesift" / "models"))


class Normalization(StrictModel):
    """How a text becomes one fastText line. The defaults are DCLM's recipe."""

    lowercase: bool = False
    # DCLM joins lines with a space after stripping the page; "collapse" also squeezes runs of spaces
    collapse_whitespace: bool = False
    # cap on characters scored (None: the whole page, as DCLM); long pages cost linear time
    max_chars: int | None = Field(None, gt=0)


def normalize(text: str | None, norm: Normalization | None = None) -> str:
    """The single normalisation used to write training lines and to score pages."""
    norm = norm or Normalization()
    text = text or ""
    if norm.max_chars is not None:
        text = text[: norm.max_chars]
    out = " ".join(text.strip().splitlines())
    if norm.collapse_whitespace:
        out = " ".join(out.split())
    if norm.lowercase:
        out = out.lower()
    return out


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


# --------------------------------------------------------------------------------------- loading

def _is_hub(uri: str) -> bool:
    return uri.startswith(("hf://", "hf:"))


def _hub_download(uri: str) -> str:
    """``hf://owner/repo/path/in/repo.bin`` (or ``hf:owner/repo`` for ``model.bin``) -> a local file,
    through the Hugging Face hub client and its cache (``HF_HOME``; ``HF_TOKEN`` for private repos)."""
    rest = uri.split(":", 1)[1].lstrip("/")
    parts = rest.split("/")
    if len(parts) < 2:
        raise ValueError(f"model-hub id must look like hf://owner/repo[/file.bin]: {uri!r}")
    repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:]) or MODEL_FILE
    revision = None
    if "@" in repo_id:
        repo_id, revision = repo_id.split("@", 1)
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as exc:  # pragma: no cover - huggingface_hub comes with the train extra
        raise ValueError(f"{uri}: install huggingface_hub to load models from the hub") from exc
    try:
        return hf_hub_download(repo_id=repo_id, filename=filename, revision=revision)
    except Exception as exc:  # network, auth, missing file: one clear message
        raise ValueError(f"cannot fetch {uri} from the Hugging Face hub: {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}") from None


def _remote_download(uri: str) -> str:
    """Copy a cloud / http model file into the local model cache once (atomic rename)."""
    from lakesift.io import fetch_to_cache

    try:
        return fetch_to_cache(uri, "model", cache=str(CACHE))
    except Exception as exc:
        raise ValueError(f"cannot fetch model {uri}: {type(exc).__name__}: {exc}") from None


def resolve_model(uri: str) -> str:
    """A local file path for a model given as a file, a model folder (``model.bin`` inside), a
    ``file:``/``s3://``/``gs://``/``abfss://``/``https://``/``dbfs:/`` URI or a hub id ``hf://owner/repo/file``."""
    from lakesift.io import is_local, local_path

    if _is_hub(uri):
        return _hub_download(uri)
    if is_local(uri):
        p = Path(local_path(uri))
        if p.is_dir():
            p = p / MODEL_FILE
        if not p.is_file():
            raise ValueError(f"model file not found: {p}")
        return str(p)
    if uri.rstrip("/").endswith(".bin") or uri.rstrip("/").endswith(".ftz"):
        return _remote_download(uri)
    return _remote_download(uri.rstrip("/") + "/" + MODEL_FILE)


@lru_cache(maxsize=8)
def load_model(path: str):
    """Load a fastText model once per Python process (Spark reuses Python workers)."""
    import fasttext

    try:
        return fasttext.load_model(path)
    except ValueError as exc:
        raise ValueError(f"not a fastText model: {path}: {exc}") from None


def model_normalization(model_path: str) -> Normalization | None:
    """The normalisation a Lakesift-trained model was trained with (``quality.yaml`` beside it)."""
    cfg = Path(model_path).with_name(CONFIG_FILE)
    if not cfg.is_file():
        return None
    import yaml

    data = yaml.safe_load(cfg.read_text(encoding="utf-8")) or {}
    return Normalization.model_validate(data.get("normalization") or {})


def file_digest(path: str, limit: int = 1 << 30) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            limit -= len(chunk)
            if limit <= 0:
                break
    return h.hexdigest()[:12]


# --------------------------------------------------------------------------------------- scoring

def score_normalized(model, lines: Sequence[str], positive: str = "__label__hq") -> np.ndarray:
    """p(positive) for already-normalised lines, in one fastText call. Empty lines score 0."""
    out = np.zeros(len(lines), dtype=np.float64)
    idx = [i for i, t in enumerate(lines) if t]
    if not idx:
        return out
    labels, probs = model.predict([lines[i] for i in idx], k=1)
    for i, lab, p in zip(idx, labels, probs, strict=True):
        q = min(float(p[0]), 1.0)  # fastText can return 1.00001
        out[i] = q if lab[0] == positive else 1.0 - q
    return out


def score(model, texts: Sequence[str | None], norm: Normalization | None = None,
          positive: str = "__label__hq") -> np.ndarray:
    return score_normalized(model, [normalize(t, norm) for t in texts], positive)


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

_LABEL_PREFIX = re.compile(r"^__label__\S+\s*")


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
