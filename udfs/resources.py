"""Find data files named in configs: absolute paths, paths relative to the working directory, or
files shipped in ``conf/`` (e.g. ``banlists/iana_tlds.txt``).

On a cluster the code may arrive as a zip (``spark-submit --py-files lakesift-code.zip``, or shipped by
``jobs.common.ship``); ``conf/`` is then read from that archive into a local cache once per worker.
"""

from __future__ import annotations

from pathlib import Path

from lakesift.packaging import file_from_archive

CONF = Path(__file__).resolve().parents[1] / "conf"


def resolve(name: str) -> str:
    p = Path(name)
    for cand in (p, CONF / p):
        if cand.is_file():
            return str(cand)
    if not p.is_absolute():
        found = file_from_archive(f"conf/{p.as_posix()}", __file__)
        if found:
            return found
    raise FileNotFoundError(f"data file {name!r} not found (looked in the working directory and {CONF})")
