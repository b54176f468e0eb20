"""The compiled rule kernels (``udfs/_rules.c``), or ``None`` when they are not built.

``pip install -e .`` / ``make setup`` compiles them when a C compiler is present; without one (or from
a code zip shipped with ``--py-files``, where extension modules cannot be imported) every step runs its
pure-Python definition instead, with the same decisions. ``LAKESIFT_PURE_PYTHON=1`` forces the Python
path (for comparisons and benchmarks). Steps look up :data:`rules` at call time, so
:func:`pure_python` can switch it for a block of code.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType


def _load() -> ModuleType | None:
    if os.environ.get("LAKESIFT_PURE_PYTHON", "0") not in ("", "0"):
        return None
    try:
        from udfs import _rules
    except ImportError:
        return None
    return _rules


rules: ModuleType | None = _load()


def active() -> str:
    """``"compiled"`` or ``"python"``: which implementation the rules use in this process."""
    return "compiled" if rules is not None else "python"


@contextmanager
def pure_python(on: bool = True) -> Iterator[None]:
    """Run the block with the pure-Python definitions (``on``), or with the kernels if built."""
    global rules
    saved = rules
    rules = None if on else (saved or _load())
    try:
        yield
    finally:
        rules = saved
