"""What the benchmark scripts share: their command line, a job timed in a fresh process, medians.

The scripts run as ``python bench/NAME.py`` (so bench/ is first on sys.path) and ``import harness``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def parse_args(doc: str, out: str | None = None, shared: bool = True, **options) -> argparse.Namespace:
    """``--shared`` (default ../shared) unless ``shared`` is false, ``--out`` (default bench/out/OUT)
    where ``out`` is given, then one option per keyword, in order, typed as its default
    (``peer_docs=2000``: ``--peer-docs``, an int). The description: the first line of ``doc``."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    if shared:
        ap.add_argument("--shared", default=str(REPO.parent / "shared"))
    if out:
        ap.add_argument("--out", default=str(REPO / "bench" / "out" / out))
    for name, default in options.items():
        ap.add_argument("--" + name.replace("_", "-"), type=type(default), default=default)
    return ap.parse_args()


def run_job(cmd: Sequence[str], what: str, tail: int = 3000, **kwargs) -> tuple[float, subprocess.CompletedProcess]:
    """Runs ``cmd`` (``subprocess.run`` keywords: ``env``, ``cwd``), its output captured as text.
    Returns its wall-clock seconds, start-up included, and the finished process; if it fails, writes
    the last ``tail`` characters of its stderr and exits with "WHAT failed"."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-tail:])
        raise SystemExit(f"{what} failed")
    return elapsed, proc


def counted(proc: subprocess.CompletedProcess, prefix: str) -> int:
    """The number after ``prefix`` on the first line of the job's stdout that starts with it
    (``kept 1234``)."""
    return next(int(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith(prefix))


def rate(count: float, seconds: Sequence[float]) -> float:
    """``count`` per second over the median of the runs' ``seconds``."""
    return count / statistics.median(seconds)


def ratios(title: str, figures: dict[str, float], digits: int = 2) -> str:
    """One line of ratios: ``TITLE: NAME 1.23x; NAME 0.45x``."""
    return f"{title}: " + "; ".join(f"{name} {x:.{digits}f}x" for name, x in figures.items())
