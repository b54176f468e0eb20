"""One log format for every job: ``HH:MM:SS lakesift.<job> LEVEL message key=value ...``."""

from __future__ import annotations

import logging
import sys


def get_logger(name: str) -> logging.Logger:
    logger = logging.getLogger(f"lakesift.{name}")
    if not logging.getLogger("lakesift").handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s", "%H:%M:%S"))
        root = logging.getLogger("lakesift")
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        root.propagate = False
    return logger


def kv(**fields) -> str:
    """Render ``key=value`` pairs in a stable order, quoting values with spaces."""
    out = []
    for k, v in fields.items():
        s = str(v)
        out.append(f"{k}={s!r}" if (" " in s or s == "") else f"{k}={s}")
    return " ".join(out)
