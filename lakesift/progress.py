"""Progress bars for long loops (the trainer, MDS writing); ``jobs.common.progress`` follows Spark
actions with them. The bar is drawn when stderr is a terminal; otherwise (CI, cluster logs) callers log
one progress line now and then. ``LAKESIFT_PROGRESS=0`` turns bars off, ``=1`` forces them.
"""

from __future__ import annotations

import os
import sys


def enabled() -> bool:
    flag = os.environ.get("LAKESIFT_PROGRESS", "")
    if flag in ("0", "1"):
        return flag == "1"
    return sys.stderr.isatty()


def bar(total: int, desc: str, unit: str, initial: int = 0):
    """A tqdm bar, or None when bars are off."""
    if not enabled():
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, file=sys.stderr)
