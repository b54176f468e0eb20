"""Strict YAML configuration: typed pydantic models, unknown keys are errors.

Every config file is loaded into a model whose fields document themselves. A typo in a key, a value
of the wrong type or an unknown choice fails *before* any Spark work starts, with the file and the
dotted key named, e.g. ``conf/ingest.yaml: extraction.main_contnet: unknown key``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

M = TypeVar("M", bound="StrictModel")


class ConfigError(ValueError):
    """A configuration problem, phrased for the person who wrote the file."""


class StrictModel(BaseModel):
    """Base for every config section: no unknown keys, no silent coercion of strings to numbers."""

    model_config = ConfigDict(extra="forbid", strict=False, validate_assignment=True)


def _format_errors(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<root>"
        if e["type"] == "extra_forbidden":
            lines.append(f"{source}: {key}: unknown key")
        else:
            lines.append(f"{source}: {key}: {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


REPO_ROOT = Path(__file__).resolve().parents[1]


def read_yaml_bytes(path: str | Path, what: str = "file") -> tuple[bytes, Any]:
    """The raw bytes of a YAML file (for hashing) and its parsed content; :class:`ConfigError` naming
    the file when it is missing or not YAML."""
    from lakesift.io import is_local, local_path, open_binary

    spec = str(path)
    if not is_local(spec) and not spec.startswith("dbfs:"):  # s3://, abfss://, gs://, https:// ...
        try:
            with open_binary(spec) as fh:
                raw = fh.read()
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: cannot read {what}: {exc}") from None
    else:
        p = Path(local_path(spec))
        if not p.is_file() and not Path(spec).is_absolute() and (REPO_ROOT / spec).is_file():
            # conf/... given relative to the repository while the job runs elsewhere (a cluster task's
            # working directory is not the repository root)
            p = REPO_ROOT / spec
        if not p.is_file() and not Path(spec).is_absolute():
            from lakesift.packaging import file_from_archive

            found = file_from_archive(Path(spec).as_posix(), __file__)  # conf/... inside --py-files zip
            p = Path(found) if found else p
        if not p.is_file():
            raise ConfigError(f"{path}: {what} not found")
        raw = p.read_bytes()
    try:
        return raw, yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None


def read_yaml(path: str | Path, what: str = "file") -> Any:
    """Parse a YAML file, or raise :class:`ConfigError` naming the file."""
    return read_yaml_bytes(path, what)[1]


def _apply(data: Any, dotted: str, value: Any, source: str, remove_on_none: bool) -> None:
    """Set ``dotted`` (``a.b``, list items by index: ``steps.0.threshold``) in ``data``; with
    ``remove_on_none`` a None value removes the key."""
    node = data
    *parents, leaf = dotted.split(".")
    for part in parents:
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"{source}: {dotted}: no list item {part}")
            node = node[int(part)]
        elif isinstance(node, dict):
            node = node.setdefault(part, {})
        else:
            raise ConfigError(f"{source}: {dotted}: {part} is not a mapping or a list")
    if isinstance(node, list):
        if not leaf.isdigit() or int(leaf) >= len(node):
            raise ConfigError(f"{source}: {dotted}: no list item {leaf}")
        node[int(leaf)] = value
    elif not isinstance(node, dict):
        raise ConfigError(f"{source}: {dotted}: not a mapping")
    elif value is None and remove_on_none:
        node.pop(leaf, None)
    else:
        node[leaf] = value


def load_model(model: type[M], path: str | Path | None, overrides: dict[str, Any] | None = None,
               sets: dict[str, Any] | None = None) -> M:
    """Load ``path`` (YAML) into ``model``, apply ``overrides`` then ``sets`` (dotted keys), validate
    strictly.

    ``overrides`` come from a job's own flags: a None value means "flag not given" and is ignored.
    ``sets`` come from ``--set KEY=VALUE``: a None value (``null``) removes the key (its default applies).
    ``path=None`` gives the model's defaults (plus overrides).
    """
    source = str(path) if path is not None else "<defaults>"
    data: dict[str, Any] = {}
    if path is not None:
        loaded = read_yaml(path, "config file")
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{source}: top level must be a mapping, got {type(loaded).__name__}")
        data = loaded
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _apply(data, dotted, value, source, False)
    for dotted, value in (sets or {}).items():
        _apply(data, dotted, value, f"{source} (--set)", True)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None
