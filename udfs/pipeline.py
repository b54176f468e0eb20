"""A pipeline: an ordered list of steps loaded from YAML, applied to one document at a time.

``conf/pipelines/<name>.yaml``::

    name: dclm_baseline
    units: default                      # optional: the text units words are counted in (udfs.steps.units)
    steps:
      - func: page_length_filter        # a registered step name (udfs.steps.REGISTRY)
        min_length: 50                  # its parameters, checked against the step's model
      - func: language_filter
        id: english                     # optional: a unique step id (default: func, numbered if repeated)

A **routed** pipeline runs its ``steps`` on every document, then sends each document to one branch
by a metadata value (``route.by``, e.g. the ``language`` lid.176 set), each branch a whole pipeline
of its own with its own text units (``conf/pipelines/multilingual.yaml``)::

    name: multilingual
    steps:
      - func: detect_lang_whole_page_enricher
    route:
      by: language                      # a metadata key set by an earlier step (or an input column)
      branches:
        zh: zh_baseline.yaml            # a pipeline file (beside this one, or under conf/pipelines/)
        en:                             # or the file with changes:
          pipeline: dclm_baseline.yaml
          skip: [quality, quality_threshold]          # step ids left out
          set: {language_filter.threshold: 0.65}      # STEP_ID.PARAM: value
          units: default                              # other text units
      default: fineweb2_default.yaml    # every other value (required)
      languages: fineweb2_languages.yaml   # optional: per-value changes of the default branch as
                                           # data; each value listed there becomes a branch of its own

A branch's steps get ids ``<branch>/<step id>`` (``zh/cjk_ratio_filter``); the document's branch is
stored as ``route``. Corpus-statistic steps (top-fraction thresholds) cannot be routed. Branch files
are read on the driver (:func:`resolve_routes`) and carried inline, so executors read no file.

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
    steps_ran: list[int]  # index (in Pipeline.steps) of each step that ran, as chars_after


@dataclass
class Route:
    """How a routed pipeline picks a branch: the metadata key, and per branch the range of its steps
    in :attr:`Pipeline.steps` and its text units."""

    by: str
    prefix: int  # steps[:prefix] run on every document
    branches: dict[str, tuple[int, int, TextUnits]]
    default: str = "default"

    def branch_of(self, value) -> str:
        key = value if isinstance(value, str) else None
        return key if key in self.branches and key != self.default else self.default


class Pipeline:
    def __init__(self, name: str, steps: list[tuple[str, Step]], source: str = "<inline>",
                 units: TextUnits | str | None = None, route: Route | None = None):
        self.name, self.steps, self.source = name, steps, source
        self.units = get_units(units)  # every document of this pipeline counts its words in these
        self.route = route

    @property
    def step_ids(self) -> list[str]:
        return [sid for sid, _ in self.steps]

    def columns(self) -> dict[str, str]:
        """Columns the enrichers add (metadata key -> Spark SQL type), in step order."""
        out: dict[str, str] = {}
        for _, step in self.steps:
            out.update(step.columns())
        if self.route is not None:
            out["route"] = "string"
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
        ran: list[list[int]] = [[] for _ in range(n)]
        dropped: list[tuple[str, str] | None] = [None] * n
        end = len(self.steps) if end is None else end

        def run(first: int, last: int, alive: list[int]) -> list[int]:
            for k in range(first, last):
                if not alive:
                    break
                sid, step = self.steps[k]
                reasons = step.apply_batch([docs[i] for i in alive])
                still = []
                for i, reason in zip(alive, reasons, strict=True):
                    lengths[i].append(len(docs[i].text))
                    ran[i].append(k)
                    if reason is None:
                        still.append(i)
                    else:
                        dropped[i] = (sid, reason)
                alive = still
            return alive

        route = self.route
        if route is None:
            run(start, end, list(range(n)))
        else:  # the shared steps, then each document's branch (segments are whole: no corpus statistics)
            alive = run(0, route.prefix, list(range(n)))
            groups: dict[str, list[int]] = {}
            for i in alive:
                b = route.branch_of(docs[i].meta.get(route.by))
                docs[i].meta["route"] = b
                groups.setdefault(b, []).append(i)
            for b, members in groups.items():
                first, last, units = route.branches[b]
                for i in members:
                    docs[i].use_units(units)
                run(first, last, members)
        out = []
        for i, d in enumerate(docs):
            sid, reason = dropped[i] or (None, None)
            out.append(Outcome(sid is None, d.text, sid, reason, lengths[i], d.meta, ran[i]))
        return out

    def raw_steps(self, spec: dict) -> list[dict]:
        """The step entries of ``spec`` (as :func:`build` got it, routes resolved) in the order of
        :attr:`steps`: the dicts themselves, so that changes to them change ``spec``."""
        out = list(spec["steps"] or [])
        if self.route is not None:
            branches = spec["route"]["_resolved"]
            for b in self.route.branches:
                out += branches[b]["steps"]
        return out


def _build_steps(raw_steps, where_prefix: str, id_prefix: str = "") -> list[tuple[str, Step]]:
    steps: list[tuple[str, Step]] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_steps):
        where = f"{where_prefix}steps[{i}]"
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
        sid = id_prefix + sid
        if sid in dict(steps):
            raise ConfigError(f"{where}: id: duplicate step id {sid!r}")
        try:
            steps.append((sid, cls(model)))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{where} ({func}): {exc}") from None
    return steps


def _check_units(units, where: str) -> str:
    if not isinstance(units, str) or units not in UNITS:
        raise ConfigError(f"{where}units: unknown text units {units!r}; known: {', '.join(sorted(UNITS))}")
    return units


def build(spec: dict, source: str = "<inline>") -> Pipeline:
    if not isinstance(spec, dict):
        raise ConfigError(f"{source}: top level must be a mapping with 'name' and 'steps'")
    unknown = set(spec) - {"name", "description", "units", "steps", "route"}
    if unknown:
        raise ConfigError(f"{source}: {', '.join(sorted(unknown))}: unknown key")
    units = _check_units(spec.get("units", "default"), f"{source}: ")
    raw_steps = spec.get("steps")
    routed = spec.get("route") is not None
    if not isinstance(raw_steps, list) or not (raw_steps or routed):
        raise ConfigError(f"{source}: steps: must be a non-empty list" + (" (a list, may be empty)" if routed else ""))
    steps = _build_steps(raw_steps, f"{source}: ")
    route = None
    if routed:
        resolved = resolve_routes(spec, source)["route"]
        prefix, branches = len(steps), {}
        for b, bspec in resolved["_resolved"].items():
            where = f"{source}: route.{b}: "
            bunits = _check_units(bspec.get("units", "default"), where)
            bsteps = _build_steps(bspec.get("steps") or [], where, f"{b}/")
            for sid, step in bsteps:
                if step.needs_corpus_stat():
                    raise ConfigError(f"{where}{sid}: a step with a corpus-wide threshold cannot run in a "
                                      "branch (each branch sees only its documents); give it a fixed threshold")
            taken = {sid for sid, _ in steps}
            clash = [sid for sid, _ in bsteps if sid in taken]
            if clash:
                raise ConfigError(f"{where}duplicate step id {clash[0]!r}")
            branches[b] = (len(steps), len(steps) + len(bsteps), get_units(bunits))
            steps += bsteps
        route = Route(resolved["by"], prefix, branches, "default")
    for sid, step in steps[:len(raw_steps)]:
        if route is not None and step.needs_corpus_stat():
            raise ConfigError(f"{source}: {sid}: a routed pipeline cannot have corpus-wide thresholds")
    return Pipeline(str(spec.get("name") or Path(source).stem), steps, source, units, route)


ROUTE_KEYS = {"by", "branches", "default", "languages", "_resolved"}
BRANCH_KEYS = {"pipeline", "skip", "set", "units"}


def _read_branch_file(name: str, source: str) -> tuple[dict, str]:
    """A branch's pipeline file: beside ``source``, as given, or under conf/pipelines/."""
    from udfs import resources

    cands = []
    if source and source != "<inline>" and "://" not in source:
        cands.append(Path(source).parent / name)
    cands.append(Path(name))
    for c in cands:
        if c.is_file():
            return read_yaml(c, "pipeline file"), str(c)
    try:
        path = resources.resolve(f"pipelines/{name}")
    except FileNotFoundError:
        path = None
    if path is None:
        raise ConfigError(f"{source}: route: pipeline file {name!r} not found (beside {source}, in the "
                          "working directory or under conf/pipelines/)")
    return read_yaml(path, "pipeline file"), path


def _branch(entry, where: str, source: str) -> dict:
    """One branch entry (a file name or a mapping) as a full pipeline spec with its changes applied."""
    if isinstance(entry, str):
        entry = {"pipeline": entry}
    if not isinstance(entry, dict) or "pipeline" not in entry:
        raise ConfigError(f"{where}: a branch is a pipeline file name or a mapping with 'pipeline'")
    bad = set(entry) - BRANCH_KEYS
    if bad:
        raise ConfigError(f"{where}: {', '.join(sorted(bad))}: unknown key (known: {', '.join(sorted(BRANCH_KEYS))})")
    spec, path = _read_branch_file(entry["pipeline"], source)
    if not isinstance(spec, dict) or spec.get("route") is not None:
        raise ConfigError(f"{where}: {path}: a branch must be a plain pipeline (no route of its own)")
    sets = entry.get("set") or {}
    if isinstance(sets, dict):
        sets = [f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
                for k, v in sets.items()]
    skips = entry.get("skip") or []
    if sets or skips:
        spec = override(spec, sets, skips, path)
    if "units" in entry:
        spec = {**spec, "units": entry["units"]}
    return {**spec, "_file": path}


def resolve_routes(spec: dict, source: str = "<inline>") -> dict:
    """``spec`` with every branch of its route read and carried inline (``route._resolved``: branch ->
    pipeline spec, the default last); unchanged when it has no route or is resolved already."""
    import copy

    route = spec.get("route") if isinstance(spec, dict) else None
    if route is None or (isinstance(route, dict) and "_resolved" in route):
        return spec
    where = f"{source}: route"
    if not isinstance(route, dict):
        raise ConfigError(f"{where}: must be a mapping with 'by', 'branches' and 'default'")
    bad = set(route) - ROUTE_KEYS
    if bad:
        raise ConfigError(f"{where}: {', '.join(sorted(bad))}: unknown key (known: by, branches, default, languages)")
    if not isinstance(route.get("by"), str):
        raise ConfigError(f"{where}.by: the metadata key to route on (e.g. language) is required")
    if "default" not in route:
        raise ConfigError(f"{where}.default: required: the pipeline for every other value")
    branches = route.get("branches") or {}
    if not isinstance(branches, dict):
        raise ConfigError(f"{where}.branches: must be a mapping of value -> pipeline")
    resolved: dict[str, dict] = {}
    for b, entry in branches.items():
        if not isinstance(b, str) or not b or "/" in b or b == "default":
            raise ConfigError(f"{where}.branches: {b!r}: a branch name is a non-empty string without '/' "
                              "and not 'default'")
        resolved[b] = _branch(entry, f"{where}.branches.{b}", source)
    default = route["default"]
    if route.get("languages"):  # per-value changes of the default branch, as data
        table, tpath = _read_branch_file(route["languages"], source) if isinstance(route["languages"], str) \
            else (route["languages"], source)
        if not isinstance(table, dict):
            raise ConfigError(f"{where}.languages: {tpath}: must map each value to its changes")
        base = default if isinstance(default, dict) else {"pipeline": default}
        for b, changes in table.items():
            if b in resolved:
                continue  # an explicit branch wins
            if not isinstance(changes, dict):
                raise ConfigError(f"{where}.languages: {tpath}: {b}: must be a mapping (set / skip / units)")
            bad = set(changes) - {"set", "skip", "units", "source"}
            if bad:
                raise ConfigError(f"{where}.languages: {tpath}: {b}: {', '.join(sorted(bad))}: unknown key")
            entry = {**base, **{k: v for k, v in changes.items() if k != "source"}}
            if "set" in base and "set" in changes:
                entry["set"] = {**base["set"], **changes["set"]}
            resolved[str(b)] = _branch(entry, f"{where}.languages.{b}", source)
    resolved["default"] = _branch(default, f"{where}.default", source)
    out = copy.deepcopy(spec)
    out["route"]["_resolved"] = resolved
    return out


def load(path: str | Path, sets: list[str] | None = None, skips: list[str] | None = None) -> Pipeline:
    spec = resolve_routes(read_yaml(path, "pipeline file"), str(path))
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
        raise ConfigError(f"{source}: steps: must be a list")
    resolved = (spec.get("route") or {}).get("_resolved") if isinstance(spec.get("route"), dict) else None
    if resolved:  # BRANCH/STEP ids go to that branch's pipeline
        def branch_of(item: str) -> str | None:
            head = item.split(".", 1)[0].split("=", 1)[0]
            b, slash, _ = head.partition("/")
            if slash and b not in resolved:
                raise ConfigError(f"{item!r}: no branch {b!r} in {source}; branches: {', '.join(resolved)}")
            return b if slash else None

        per: dict[str, tuple[list, list]] = {}
        for item in sets or []:
            if (b := branch_of(item)) is not None:
                per.setdefault(b, ([], []))[0].append(item.split("/", 1)[1])
        for item in skips or []:
            if (b := branch_of(item)) is not None:
                per.setdefault(b, ([], []))[1].append(item.split("/", 1)[1])
        for b, (bsets, bskips) in per.items():
            resolved[b] = override(resolved[b], bsets, bskips, f"{source}: route.{b}")
        sets = [x for x in sets or [] if branch_of(x) is None]
        skips = [x for x in skips or [] if branch_of(x) is None]
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
