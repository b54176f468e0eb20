"""The compiled kernels, or ``None`` when they are not built: :data:`rules`
(``lakesift_native/_rules.c``, the per-document rules of udfs.steps) and :data:`lid`
(``lakesift_native/_lid.c``, fastText language-ID inference).

``pip install -e .`` / ``make setup`` compiles them when a C compiler is present; without one (or from
on a cluster where the project is not installed: a code zip cannot carry them) every step runs its
pure-Python definition instead, with the same decisions. ``LAKESIFT_PURE_PYTHON=1`` forces the Python
path (for comparisons and benchmarks). Steps look up :data:`rules` at call time, so
:func:`pure_python` can switch it for a block of code.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType


def _load(name: str) -> ModuleType | None:
    if os.environ.get("LAKESIFT_PURE_PYTHON", "0") not in ("", "0"):
        return None
    try:
        return importlib.import_module(f"lakesift_native.{name}")
    except ImportError:
        return None


rules: ModuleType | None = _load("_rules")
lid: ModuleType | None = _load("_lid")


def active() -> str:
    """``"compiled"`` or ``"python"``: which implementation the rules use in this process."""
    return "compiled" if rules is not None else "python"


def describe() -> str:
    """What this process uses, for logs: ``rules:compiled|python,lid:compiled|fasttext``."""
    return f"rules:{active()},lid:{'compiled' if lid is not None else 'fasttext'}"


@contextmanager
def pure_python(on: bool = True) -> Iterator[None]:
    """Run the block with the pure-Python definitions and fastText's own binding (``on``), or with
    the kernels if built."""
    global rules, lid
    saved = rules, lid
    rules, lid = (None, None) if on else (saved[0] or _load("_rules"), saved[1] or _load("_lid"))
    try:
        yield
    finally:
        rules, lid = saved
