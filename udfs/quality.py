"""fastText quality classifier, inference: the one text normalisation (training writes its lines with
it too), model loading from a local path, a cloud URI or a model-hub id (through
:func:`lakesift.resolve.resolve`) and batched scoring. Training, evaluation and the cutting of text
files into training documents are in :mod:`udfs.quality_train`. No Spark.

DCLM's classifier (Li et al. 2024, sec. 4.4) labels reference text ``__label__hq`` and random web
text ``__label__cc``, joins a page's lines with spaces before fastText (``" ".join(text.strip()
.splitlines())``), trains with word bigrams and fastText's defaults otherwise, and scores a page by
p(hq): the top label's probability, or one minus it when the top label is ``cc``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from pydantic import Field

from lakesift.config import StrictModel

# a model folder: the model, the configuration it was trained with (read for its normalisation), its metrics
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


# --------------------------------------------------------------------------------------- loading

def resolve_model(uri: str) -> str:
    """A local file path for a model given as a file, a model folder (``model.bin`` inside), a
    ``file:``/``s3://``/``gs://``/``abfss://``/``https://``/``dbfs:/`` URI or a hub id ``hf://owner/repo/file``.
    A remote URI not ending in ``.bin`` / ``.ftz`` is a model folder; remote files are copied into
    :data:`CACHE` once. Failures are :class:`lakesift.resolve.ResolveError` (a ``ValueError``)."""
    from lakesift.resolve import resolve

    return resolve(uri, "model", file=MODEL_FILE, suffixes=(".bin", ".ftz"), cache=str(CACHE))


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
