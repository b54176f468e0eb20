"""Where inputs live: local paths, Hadoop-style cloud URIs and Common Crawl path listings.

The driver expands the user's ``--input`` arguments into a sorted, de-duplicated list of file URIs;
executors open each URI as a *stream* (never a whole file in memory). Local files use the OS;
``dbfs:/`` goes through the Databricks FUSE mount; everything else (``s3://``, ``gs://``,
``abfss://``, ``https://``) goes through fsspec, whose backends come with the ``cloud`` extra.
"""

from __future__ import annotations

import glob
import gzip
import os
from collections.abc import Iterable
from typing import BinaryIO
from urllib.parse import urlsplit

# Files a directory walk picks up. Files named explicitly are always taken, whatever their name,
# so that a mis-named or broken file gets a recorded failure instead of being skipped silently.
WARC_SUFFIXES = (
    ".warc", ".warc.gz", ".warc.lz4", ".warc.zst", ".wet", ".wet.gz", ".warc.wet", ".warc.wet.gz",
    ".arc", ".arc.gz",
)
LISTING_SUFFIXES = (".paths", ".paths.gz")
GLOB_CHARS = set("*?[")

# Read-ahead for remote streams: large enough to amortise request latency, small enough that a
# 1 GB WARC never sits in memory (fsspec reads blocks of this size on demand).
REMOTE_BLOCK_SIZE = 8 << 20


class InputError(ValueError):
    """An ``--input`` argument that names nothing, or a listing that cannot be read."""


def scheme_of(uri: str) -> str:
    s = urlsplit(uri).scheme
    return "" if len(s) <= 1 else s.lower()  # "C:\\x" on Windows has a one-letter "scheme"


def is_local(uri: str) -> bool:
    return scheme_of(uri) in ("", "file")


def local_path(uri: str) -> str:
    """Absolute local path of a ``file:`` URI or plain path; ``dbfs:/x`` maps to ``/dbfs/x``."""
    s = scheme_of(uri)
    if s == "file":
        return os.path.abspath(urlsplit(uri).path)
    if s == "dbfs":
        return "/dbfs/" + uri.split(":", 1)[1].lstrip("/")
    return os.path.abspath(uri)


def canonical(uri: str) -> str:
    """The form an input is recorded under: absolute path for local files, the URI otherwise."""
    return local_path(uri) if is_local(uri) else uri


def open_binary(uri: str) -> BinaryIO:
    """Open ``uri`` for streaming reads."""
    s = scheme_of(uri)
    if s in ("", "file", "dbfs"):
        return open(local_path(uri), "rb")
    try:
        import fsspec
    except ImportError as exc:  # pragma: no cover - fsspec is a core dependency
        raise InputError("reading remote inputs needs fsspec") from exc
    try:
        return fsspec.open(uri, "rb", block_size=REMOTE_BLOCK_SIZE).open()
    except (ImportError, ValueError) as exc:
        raise InputError(
            f"cannot open {uri}: no filesystem for '{s}://' ({exc}); install the cloud extra: "
            "pip install 'lakesift[cloud]'"
        ) from exc


def _fs(uri: str):
    import fsspec

    return fsspec.core.url_to_fs(uri)[0]


def read_listing(uri: str, prefix: str) -> list[str]:
    """Lines of a Common Crawl ``*.paths[.gz]`` listing, each joined to ``prefix``.

    Lines that are already URIs or absolute paths are taken as they are; blank lines are skipped.
    """
    with open_binary(uri) as raw:
        data = raw.read()
    if uri.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise InputError(f"listing {uri} is not valid gzip: {exc}") from exc
    out = []
    for line in data.decode("utf-8", errors="strict").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if scheme_of(line) or line.startswith("/"):
            out.append(line)
        else:
            out.append(prefix.rstrip("/") + "/" + line.lstrip("/"))
    return out


def _walk(uri: str) -> list[str]:
    if is_local(uri):
        root = local_path(uri)
        found = []
        for dirpath, _dirs, files in os.walk(root):
            found.extend(os.path.join(dirpath, f) for f in files if f.lower().endswith(WARC_SUFFIXES))
        return found
    fs = _fs(uri)
    proto = scheme_of(uri)
    return [f"{proto}://{p}" for p in fs.find(uri) if p.lower().endswith(WARC_SUFFIXES)]


def _matches(spec: str, listing_prefix: str) -> list[str]:
    if spec.lower().endswith(LISTING_SUFFIXES):
        return [canonical(u) for u in read_listing(spec, listing_prefix)]
    if GLOB_CHARS & set(spec):
        if is_local(spec):
            out = []
            for m in glob.glob(local_path(spec), recursive=True):
                out.extend(_walk(m) if os.path.isdir(m) else [os.path.abspath(m)])
            return out
        proto = scheme_of(spec)
        return [f"{proto}://{p}" for p in _fs(spec).glob(spec)]
    if is_local(spec):
        p = local_path(spec)
        if os.path.isdir(p):
            return _walk(p)
        return [p] if os.path.exists(p) else []
    fs = _fs(spec)
    if fs.isdir(spec):
        return _walk(spec)
    return [spec] if fs.exists(spec) else []


def expand_inputs(specs: Iterable[str], listing_prefix: str) -> list[str]:
    """Turn files, folders, globs and ``*.paths.gz`` listings into a sorted list of file URIs.

    Raises :class:`InputError` naming every argument that matched nothing.
    """
    found: set[str] = set()
    empty: list[str] = []
    for spec in specs:
        matches = _matches(spec, listing_prefix)
        if not matches:
            empty.append(spec)
        found.update(matches)
    if empty:
        raise InputError("these inputs matched no files: " + ", ".join(empty))
    return sorted(found)


def write_text(uri: str, text: str) -> str:
    """Write a UTF-8 text file to a local path, ``file:``, ``dbfs:/`` (FUSE) or a cloud URI (fsspec);
    local files are replaced atomically. Returns where it went."""
    if scheme_of(uri) in ("", "file", "dbfs"):
        path = local_path(uri)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
        return path
    import fsspec

    with fsspec.open(uri, "w", encoding="utf-8") as fh:
        fh.write(text)
    return uri


def fetch_to_cache(uri: str, what: str = "file", cache: str | None = None) -> str:
    """A local path for ``uri``: local paths and ``dbfs:/`` (FUSE) as they are; a cloud file or folder
    (``s3://``, ``gs://``, ``abfss://``, ``https://`` ...) downloaded once into
    ``cache`` (default ``~/.cache/lakesift/fetched``; atomically, keyed by the URI) for code that needs real
    files, such as tokenizers, evaluation task files and models."""
    if scheme_of(uri) in ("", "file", "dbfs"):
        return local_path(uri)
    import hashlib
    import shutil
    import tempfile

    try:
        import fsspec

        fs, path = fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as exc:
        raise InputError(f"cannot open {what} {uri}: {exc}; install the cloud extra: pip install 'lakesift[cloud]'") from exc
    cache = cache or os.path.expanduser(os.environ.get("LAKESIFT_CACHE", "~/.cache/lakesift")) + "/fetched"
    dest = os.path.join(cache, hashlib.sha1(uri.encode()).hexdigest()[:12], os.path.basename(path.rstrip("/")) or "data")
    if os.path.exists(dest):
        return dest
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    tmp = tempfile.mkdtemp(dir=os.path.dirname(dest))
    try:
        target = os.path.join(tmp, "x")
        if fs.isdir(path):
            fs.get(path.rstrip("/") + "/", target + "/", recursive=True)
        else:
            fs.get(path, target)
        os.replace(target, dest)
    except FileNotFoundError as exc:
        raise InputError(f"{what} not found: {uri}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
