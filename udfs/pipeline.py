"""A pipeline: an ordered list of steps loaded from YAML, applied to one document at a time.

``conf/pipelines/<name>.yaml``::

    name: dclm_baseline
    steps:
      - func: page_length_filter        # a registered step name (udfs.steps.REGISTRY)
        min_length: 50                  # its parameters, checked against the step's model
      - func: language_filter
        id: english                     # optional: a unique step id (default: func, numbered if repeated)

Unknown step names, unknown parameters and wrong types fail at load time with the file, the step's
position and the key named.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lakesift.config import ConfigError, read_yaml
from udfs.steps import REGISTRY, Doc, Step


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
    def __init__(self, name: str, steps: list[tuple[str, Step]], source: str = "<inline>"):
        self.name, self.steps, self.source = name, steps, source

    @property
    def step_ids(self) -> list[str]:
        return [sid for sid, _ in self.steps]

    def run(self, text: str, url: str | None = None, meta: dict | None = None) -> Outcome:
        doc = Doc(text, url, meta)
        lengths: list[int] = []
        for sid, step in self.steps:
            reason = step.apply(doc)
            lengths.append(len(doc.text))
            if reason is not None:
                return Outcome(False, doc.text, sid, reason, lengths, doc.meta)
        return Outcome(True, doc.text, None, None, lengths, doc.meta)


def build(spec: dict, source: str = "<inline>") -> Pipeline:
    if not isinstance(spec, dict):
        raise ConfigError(f"{source}: top level must be a mapping with 'name' and 'steps'")
    unknown = set(spec) - {"name", "description", "steps"}
    if unknown:
        raise ConfigError(f"{source}: {', '.join(sorted(unknown))}: unknown key")
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
                msgs.append(f"{where} ({func}): {key}: "
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
    return Pipeline(str(spec.get("name") or Path(source).stem), steps, source)


def load(path: str | Path) -> Pipeline:
    return build(read_yaml(path, "pipeline file"), str(path))
