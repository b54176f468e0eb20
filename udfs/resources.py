"""Find data files named in configs: absolute paths, paths relative to the working directory, or
files shipped in ``conf/`` (e.g. ``banlists/iana_tlds.txt``)."""

from __future__ import annotations

from pathlib import Path

CONF = Path(__file__).resolve().parents[1] / "conf"


def resolve(name: str) -> str:
    p = Path(name)
    for cand in (p, CONF / p):
        if cand.is_file():
            return str(cand)
    raise FileNotFoundError(f"data file {name!r} not found (looked in the working directory and {CONF})")
