"""One resolver for everything a job or the trainer loads by name: models, tokenizers, checkpoints and
evaluation folders, given as a local path, a cloud URI or a Hugging Face hub id.

    resolve("lake/models/quality", "model", file="model.bin")    -> lake/models/quality/model.bin
    resolve("s3://b/tok.json", "tokenizer")                       -> ~/.cache/lakesift/fetched/…/tok.json
    resolve("hf://owner/repo/model.bin", "model")                 -> the hub client's cached file
    resolve("EleutherAI/gpt-neox-20b", "tokenizer", file="tokenizer.json", bare_hub_ids=True)

Rules, in order:
* ``hf://owner/repo[@revision][/path/in/repo]`` (also ``hf:owner/repo``): the hub client downloads the
  file (``path``, else ``file``) or, with neither, the whole repository snapshot; ``HF_HOME`` caches,
  ``HF_TOKEN`` authenticates, ``HF_HUB_OFFLINE=1`` uses the cache only;
* a local path or ``file:`` / ``dbfs:/`` URI: used as it is; a folder becomes ``folder/file`` when
  ``file`` is given;
* any other URI (``s3://``, ``gs://``, ``abfss://``, ``https://`` …): copied once into the local cache
  (``lakesift.io.fetch_to_cache``); a URI that does not end in one of ``suffixes`` is taken as a folder
  holding ``file``;
* with ``bare_hub_ids=True``, a name that is not an existing path and looks like ``owner/repo`` is a hub id.

Every failure is a :class:`ResolveError` (a ``ValueError``) saying what was looked for and where.
"""

from __future__ import annotations

import os
from pathlib import Path

from lakesift.io import is_local, local_path, scheme_of


class ResolveError(ValueError):
    """A model, tokenizer or folder that cannot be found or fetched."""


def shared_path(*parts: str) -> str:
    """A path under the shared data folder (``$LAKESIFT_SHARED``, default ``../shared``): the default
    home of the evaluation task files and the GPT-NeoX tokenizer."""
    return os.path.join(os.environ.get("LAKESIFT_SHARED", "../shared"), *parts)


def is_hub(spec: str) -> bool:
    return spec.startswith(("hf://", "hf:"))


def looks_like_hub_id(spec: str) -> bool:
    """``hf://…`` / ``hf:…``, or a bare ``owner/repo`` that is not a path."""
    return is_hub(spec) or _looks_like_hub_id(spec)


def _looks_like_hub_id(spec: str) -> bool:
    parts = spec.split("/")
    return (len(parts) == 2 and all(parts) and not spec.startswith((".", "/", "~"))
            and not spec.endswith((".json", ".bin", ".model", ".ftz")))


def _hub(spec: str, what: str, file: str | None) -> str:
    rest = spec.split(":", 1)[1].lstrip("/") if is_hub(spec) else spec
    parts = rest.split("/")
    if len(parts) < 2 or not all(parts[:2]):
        raise ResolveError(f"{what}: a hub id looks like hf://owner/repo[/file]: {spec!r}")
    repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:]) or file
    revision = None
    if "@" in repo_id:
        repo_id, revision = repo_id.split("@", 1)
    try:
        from huggingface_hub import hf_hub_download, snapshot_download
    except ImportError as exc:  # pragma: no cover - huggingface_hub comes with the train extra
        raise ResolveError(f"{spec}: install huggingface_hub to load a {what} from the hub") from exc
    try:
        if filename:
            return hf_hub_download(repo_id=repo_id, filename=filename, revision=revision)
        return snapshot_download(repo_id=repo_id, revision=revision)
    except Exception as exc:  # network, auth, missing file: one clear message
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ResolveError(f"cannot fetch {spec} from the Hugging Face hub: {type(exc).__name__}: {first}") from None


def resolve(spec: str, what: str, *, file: str | None = None, suffixes: tuple[str, ...] = (),
            bare_hub_ids: bool = False, must_exist: bool = True, cache: str | None = None) -> str:
    """A local path (file or folder) for ``spec``; see the module docstring for the rules.

    ``what`` names the thing in messages ("model", "tokenizer", "evaluation task folder").
    ``file``: the file to take inside a folder (``model.bin``, ``tokenizer.json``).
    ``suffixes``: endings that mark a remote ``spec`` as a file rather than a folder."""
    spec = str(spec)
    if is_hub(spec):
        return _hub(spec, what, file)
    if is_local(spec) or scheme_of(spec) == "dbfs":
        p = Path(local_path(spec))
        if p.is_dir() and file:
            p = p / file
        if p.exists() or not must_exist:
            return str(p)
        if bare_hub_ids and _looks_like_hub_id(spec):
            return _hub(spec, what, file)
        raise ResolveError(f"{what} file not found: {p}" if file else f"{what} not found: {p}")
    from lakesift.io import fetch_to_cache

    uri = spec
    if file and suffixes and not uri.rstrip("/").endswith(suffixes):
        uri = uri.rstrip("/") + "/" + file
    try:
        return fetch_to_cache(uri, what, cache=cache)
    except Exception as exc:
        raise ResolveError(f"cannot fetch {what} {uri}: {type(exc).__name__}: {exc}") from None
