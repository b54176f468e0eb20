"""A pipeline: an ordered list of steps loaded from YAML, applied to one document at a time.

``conf/pipelines/<name>.yaml``::

    name: dclm_baseline
    units: default                      # optional: the text units words are counted in (udfs.steps.units)
    steps:
      - func: page_length_filter        # a registered step name (udfs.steps.REGISTRY)
        min_length: 50                  # its parameters, checked against the step's model
      - func: language_filter
        id: english                     # optional: a unique step id (default: func, numbered if repeated)

Unknown step names, unknown parameters and wrong types fail at load time with the file, the step's
position and the key named. ``override(spec, sets, skips)`` applies command-line changes
(``--set quality.model=PATH``, ``--skip url_domains``) to a spec before it is built, with the same checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from lakesift.config import ConfigError, read_yaml
from udfs.steps import REGISTRY, UNITS, Doc, Step, TextUnits, get_units


@dataclass
class Outcome:
    """What a pipeline did to one document."""

    kept: bool
    text: str
    step: str | None  # id of the step that dropped it
    reason: str | None
    chars_after: list[int]  # text length after each step that ran (for per-step statistics)
    meta: dict[str, Any]


class Pipeline:
    def __init__(self, name: str, steps: list[tuple[str, Step]], source: str = "<inline>",
                 units: TextUnits | str | None = None):
        self.name, self.steps, self.source = name, steps, source
        self.units = get_units(units)  # every document of this pipeline counts its words in these

    @property
    def step_ids(self) -> list[str]:
        return [sid for sid, _ in self.steps]

    def columns(self) -> dict[str, str]:
        """Columns the enrichers add (metadata key -> Spark SQL type), in step order."""
        out: dict[str, str] = {}
        for _, step in self.steps:
            out.update(step.columns())
        return out

    def reads(self) -> list[str]:
        return sorted({k for _, step in self.steps for k in step.reads()})

    def segments(self) -> list[tuple[int, int]]:
        """Step ranges [start, end) to run one after another: a new range starts at each step that
        needs a statistic of the whole corpus (computed between ranges by the Spark job)."""
        cuts = [i for i, (_, step) in enumerate(self.steps) if i > 0 and step.needs_corpus_stat()]
        bounds = [0, *cuts, len(self.steps)]
        return list(zip(bounds[:-1], bounds[1:], strict=True))

    def run(self, text: str, url: str | None = None, meta: dict | None = None) -> Outcome:
        return self.run_batch([text], [url], [meta])[0]

    def run_batch(self, texts: list[str], urls: list[str | None] | None = None,
                  metas: list[dict | None] | None = None, start: int = 0, end: int | None = None) -> list[Outcome]:
        """Run steps ``start..end`` on a batch, step by step over the documents still alive, so that
        model-backed steps score the whole batch in one call. Same decisions as one document at a time."""
        n = len(texts)
        urls = urls or [None] * n
        metas = metas or [None] * n
        docs = [Doc(t, u, m, self.units) for t, u, m in zip(texts, urls, metas, strict=True)]
        lengths: list[list[int]] = [[] for _ in range(n)]
        dropped: list[tuple[str, str] | None] = [None] * n
        alive = list(range(n))
        for sid, step in self.steps[start:end]:
            if not alive:
                break
            reasons = step.apply_batch([docs[i] for i in alive])
            still = []
            for i, reason in zip(alive, reasons, strict=True):
                lengths[i].append(len(docs[i].text))
                if reason is None:
                    still.append(i)
                else:
                    dropped[i] = (sid, reason)
            alive = still
        out = []
        for i, d in enumerate(docs):
            sid, reason = dropped[i] or (None, None)
            out.append(Outcome(sid is None, d.text, sid, reason, lengths[i], d.meta))
        return out


def build(spec: dict, source: str = "<inline>") -> Pipeline:
    if not isinstance(spec, dict):
        raise ConfigError(f"{source}: top level must be a mapping with 'name' and 'steps'")
    unknown = set(spec) - {"name", "description", "units", "steps"}
    if unknown:
        raise ConfigError(f"{source}: {', '.join(sorted(unknown))}: unknown key")
    units = spec.get("units", "default")
    if not isinstance(units, str) or units not in UNITS:
        raise ConfigError(f"{source}: units: unknown text units {units!r}; known: {', '.join(sorted(UNITS))}")
    raw_steps = spec.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise ConfigError(f"{source}: steps: must be a non-empty list")
    steps: list[tuple[str, Step]] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_steps):
        where = f"{source}: steps[{i}]"
        if not isinstance(raw, dict) or "func" not in raw:
            raise ConfigError(f"{where}: each step needs a 'func'")
        params = dict(raw)
        func = params.pop("func")
        sid = params.pop("id", None)
        cls = REGISTRY.get(func)
        if cls is None:
            raise ConfigError(f"{where}: func: unknown step {func!r}; known: {', '.join(sorted(REGISTRY))}")
        try:
            model = cls.Params.model_validate(params)
        except ValidationError as exc:
            msgs = []
            for e in exc.errors():
                key = ".".join(str(p) for p in e["loc"])
                label = func if sid is None else f"{func}, id {sid}"
                msgs.append(f"{where} ({label}): {key}: "
                            + ("unknown parameter" if e["type"] == "extra_forbidden" else e["msg"]))
            raise ConfigError("\n".join(msgs)) from None
        if sid is None:
            seen[func] = seen.get(func, 0) + 1
            sid = func if seen[func] == 1 else f"{func}_{seen[func]}"
        if sid in dict(steps):
            raise ConfigError(f"{where}: id: duplicate step id {sid!r}")
        try:
            steps.append((sid, cls(model)))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{where} ({func}): {exc}") from None
    return Pipeline(str(spec.get("name") or Path(source).stem), steps, source, units)


def load(path: str | Path, sets: list[str] | None = None, skips: list[str] | None = None) -> Pipeline:
    spec = read_yaml(path, "pipeline file")
    return build(override(spec, sets, skips, str(path)) if (sets or skips) else spec, str(path))


def _step_ids(raw_steps: list) -> list[str]:
    ids, seen = [], {}
    for raw in raw_steps:
        func = raw.get("func") if isinstance(raw, dict) else None
        sid = raw.get("id") if isinstance(raw, dict) else None
        if sid is None:
            seen[func] = seen.get(func, 0) + 1
            sid = func if seen[func] == 1 else f"{func}_{seen[func]}"
        ids.append(sid)
    return ids


def override(spec: dict, sets: list[str] | None, skips: list[str] | None, source: str = "<inline>") -> dict:
    """A copy of ``spec`` with ``STEP_ID.PARAM=VALUE`` settings (VALUE parsed as YAML: numbers, lists,
    ``null`` to remove) and the steps named in ``skips`` removed. Unknown step ids fail."""
    import copy

    spec = copy.deepcopy(spec)
    raw_steps = spec.get("steps") if isinstance(spec, dict) else None
    if not isinstance(raw_steps, list):
        raise ConfigError(f"{source}: steps: must be a non-empty list")
    ids = _step_ids(raw_steps)
    for item in sets or []:
        key, eq, value = item.partition("=")
        sid, dot, param = key.strip().partition(".")
        if not eq or not dot or not param:
            raise ConfigError(f"--set {item!r}: expected STEP_ID.PARAM=VALUE")
        if sid not in ids:
            raise ConfigError(f"--set {item!r}: no step with id {sid!r} in {source}; ids: {', '.join(ids)}")
        if param in ("func", "id"):
            raise ConfigError(f"--set {item!r}: cannot change a step's {param}")
        try:
            parsed = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            parsed = value
        step = raw_steps[ids.index(sid)]
        if parsed is None:
            step.pop(param, None)
        else:
            step[param] = parsed
    for sid in skips or []:
        if sid not in ids:
            raise ConfigError(f"--skip {sid!r}: no step with id {sid!r} in {source}; ids: {', '.join(ids)}")
    keep = [raw for raw, sid in zip(raw_steps, ids, strict=True) if sid not in set(skips or [])]
    for raw, sid in zip(raw_steps, ids, strict=True):  # keep generated ids stable when a step is skipped
        if isinstance(raw, dict) and "id" not in raw:
            raw["id"] = sid
    spec["steps"] = keep
    return spec
