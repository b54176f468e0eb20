"""The code archive executors need on a cluster: ``lakesift/``, ``udfs/``, ``jobs/`` and ``conf/``.

Used two ways: ``make package`` writes it to ``dist/`` for ``spark-submit --py-files`` (EMR, EMR
Serverless, any YARN / Kubernetes cluster), and ``jobs.common.ship`` builds it on the fly and ships it
as a Python file when a job runs on a cluster straight from a checkout (Databricks
``spark_python_task`` from a Git folder or workspace files). The archive is reproducible: sorted
entries, fixed timestamps, so the same tree gives the same bytes (and the same digest in its name).
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("lakesift", "udfs", "jobs")
DATA_DIRS = ("conf",)
SKIP_DIRS = {"__pycache__", ".pytest_cache"}
FIXED_TIME = (2020, 1, 1, 0, 0, 0)


def _files(root: Path) -> list[tuple[str, Path]]:
    out = []
    for top in (*PACKAGES, *DATA_DIRS):
        base = root / top
        for dirpath, dirs, files in os.walk(base):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
            for f in sorted(files):
                if f.endswith((".pyc", ".pyo")):
                    continue
                if top in PACKAGES and not f.endswith((".py", ".txt", ".json", ".yaml")):
                    continue
                p = Path(dirpath) / f
                out.append((p.relative_to(root).as_posix(), p))
    return sorted(out)


def code_zip_bytes(root: Path = ROOT) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, path in _files(root):
            info = zipfile.ZipInfo(name, FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, path.read_bytes())
    return buf.getvalue()


def build_code_zip(out_dir: str | Path, root: Path = ROOT) -> Path:
    """Write ``lakesift-code-<digest>.zip`` into ``out_dir`` (kept if already there); return its path."""
    data = code_zip_bytes(root)
    digest = hashlib.sha1(data).hexdigest()[:10]
    out = Path(out_dir) / f"lakesift-code-{digest}.zip"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(out)
    return out


def archive_of(module_file: str) -> str | None:
    """The zip a module was imported from (``--py-files``), or None."""
    parts = Path(module_file).parts
    for i in range(len(parts) - 1, 0, -1):
        cand = Path(*parts[:i])
        if cand.suffix == ".zip" and cand.is_file():
            return str(cand)
    return None


def file_from_archive(rel: str, module_file: str = __file__) -> str | None:
    """A data file (``conf/...``) of the code zip this code runs from, copied once into a local cache
    (other code opens paths); None when not running from a zip or the file is not in it."""
    archive = archive_of(module_file)
    if not archive:
        return None
    try:
        with zipfile.ZipFile(archive) as z:
            data = z.read(rel)
    except (KeyError, OSError, zipfile.BadZipFile):
        return None
    tag = hashlib.sha1(f"{archive}:{os.path.getmtime(archive)}".encode()).hexdigest()[:10]
    out = Path(tempfile.gettempdir()) / f"lakesift-archive-{tag}" / rel
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}")
        tmp.write_bytes(data)
        tmp.replace(out)
    return str(out)
