"""One log format for every job: ``HH:MM:SS lakesift.<job> LEVEL message key=value ...``."""

from __future__ import annotations

import logging
import sys


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (notebooks and test runners swap it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def get_logger(name: str) -> logging.Logger:
    logger = logging.getLogger(f"lakesift.{name}")
    if not logging.getLogger("lakesift").handlers:
        handler = _StderrHandler()
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


def job_start(logger: logging.Logger, job: str, run_id: str, inputs, outputs, **extra) -> None:
    """The first line every job logs: ``event=start job=... run_id=... inputs=... outputs=...``."""
    logger.info(kv(event="start", job=job, run_id=run_id, inputs=_join(inputs), outputs=_join(outputs), **extra))


def job_done(logger: logging.Logger, job: str, run_id: str, seconds: float, **counts) -> None:
    """The last line every job logs: ``event=done job=... run_id=... <final counts> seconds=...``."""
    logger.info(kv(event="done", job=job, run_id=run_id, **counts, seconds=round(seconds, 1)))


def _join(v) -> str:
    if isinstance(v, (list, tuple)):
        return ",".join(str(x) for x in v) if v else "-"
    return str(v)
