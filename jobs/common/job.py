"""The skeleton every job shares, written once: common flags, config errors, start / done lines, run log.

A job is a subclass of :class:`Job` with a name, its own flags, a ``configure`` step that runs before
Spark starts (every mistake in the request fails there, exit 2, naming the file and key), and ``run``,
which does the work with a :class:`Context`:

    class Hello(Job):
        name, prog = "hello", "jobs/hello.py"
        description = "Count the documents of a table."
        config_model, default_config = HelloConfig, "conf/hello.yaml"

        def add_arguments(self, p):
            p.add_argument("--input", default="documents", help="input table (default documents)")

        def run(self, ctx):
            df, version = ctx.read(ctx.args.input)            # pinned, recorded as an input
            ctx.start(runs.run_id("hello", ctx.cfg.name, runs.fingerprint(ctx.cfg), {ctx.args.input: version}))
            ctx.done(documents=df.count())                     # summary + the done line

    main = Hello().main      # jobs/hello.py: if __name__ == "__main__": sys.exit(main())

What ``main`` does around ``run``:

* flags on every job: ``--lake`` (default ``./lake``), ``--config`` (the job's default file),
  ``--set KEY=VALUE`` (repeatable; VALUE is YAML, ``null`` removes the key; dotted keys, list items by
  index: ``--set steps.0.threshold=0.7``) for jobs with a config model;
* ``configure`` → :class:`~lakesift.config.ConfigError` / :class:`~lakesift.io.InputError` print
  ``error: …`` and exit 2 before Spark starts; so does one raised later in ``run`` — a
  :class:`UsageError` (a missing input table) or a step's model file that is not there — before any
  output is written: the request was refused, no run happened, nothing is recorded;
* the Spark session (``jobs.common.session``), the lake (``jobs.common.lake.Lake``);
* the run record (``jobs.common.runs``): ``succeeded`` when ``run`` returns, ``failed`` with the error
  when it raises (the exception then propagates: exit 1 with its traceback).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import yaml

from jobs.common.lake import Lake
from jobs.common.runs import Run, Table, record_run
from lakesift.config import ConfigError, load_model
from lakesift.io import InputError
from lakesift.log import get_logger, job_done, job_start

DEFAULT_LAKE = "./lake"


class UsageError(ConfigError):
    """A problem with the request found after Spark started (e.g. the input table does not exist)."""


def parse_sets(items: list[str]) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` → ``{"a.b": 1, "c": "x"}`` (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: VALUE is not YAML: {exc}") from None
    return out


class Context:
    """What ``Job.run`` works with: the session, the lake, the parsed flags and config, and the run
    being recorded (inputs and outputs are added to it as the job reads and writes)."""

    def __init__(self, job: Job, spark, args: argparse.Namespace, cfg: Any, run: Run, clock: float):
        self.job, self.spark, self.args, self.cfg, self.run = job, spark, args, cfg, run
        self.lake = Lake(args.lake)
        self.log = job.log
        self.record = True  # a dry run sets this to False: nothing happened, nothing to record
        self.extra: dict = {}  # what a job keeps between run() and run_config() (e.g. computed thresholds)
        self._clock = clock

    def require(self, table: str, hint: str = "") -> str:
        """The table's path; :class:`UsageError` when it is not a Delta table."""
        path = self.lake.path(table)
        if not self.lake.exists(self.spark, table):
            raise UsageError(f"no Delta table at {path}" + (f" ({hint})" if hint else ""))
        return path

    def read(self, table: str, hint: str = "", name: str | None = None):
        """``(DataFrame, version)`` of an input table, pinned to the version it records."""
        self.require(table, hint)
        df, version = self.lake.read(self.spark, table)
        self.run.inputs.append(Table(name or table, self.lake.path(table), version))
        return df, version

    def input(self, name: str, uri: str, version: int | None = None) -> None:
        self.run.inputs.append(Table(name, uri, version))

    def output(self, name: str, uri: str | None = None) -> str:
        """Declare an output (a table of the lake by default); returns its URI."""
        uri = uri or self.lake.path(name)
        self.run.outputs.append(Table(name, uri))
        return uri

    def start(self, run_id: str, **extra) -> None:
        """Name the run and log the start line (inputs and outputs declared so far)."""
        self.run.id = run_id
        job_start(self.log, self.job.name, run_id,
                  [f"{t.uri}@v{t.version}" if t.version is not None else t.uri for t in self.run.inputs] or "-",
                  [t.uri for t in self.run.outputs], **extra)

    def done(self, **counts) -> None:
        """Record the summary and log the done line."""
        self.run.summary.update(counts)
        job_done(self.log, self.job.name, self.run.id or "-", time.perf_counter() - self._clock,
                 **{k: v for k, v in counts.items() if not isinstance(v, (dict, list))})


class Job:
    """Base of every Spark job; see the module docstring."""

    name: str = "job"
    prog: str = "jobs/job.py"
    description: str = ""
    epilog: str = ""
    config_model: type | None = None  # a lakesift.config.StrictModel loaded from --config (+ --set)
    default_config: str | None = None
    config_required: bool | None = None  # None: required when there is no default_config
    config_help: str = "config YAML"
    sets_help: str = "override a config key for this run, e.g. --set name=x (VALUE is YAML; repeatable)"
    has_config: bool = True  # False: no --config / --set (the report reads only the lake)
    raw_help: bool = False  # True: --help prints the description and epilog with their line breaks kept

    def __init__(self):
        self.log = get_logger(self.name)

    # -- what a job defines
    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        """The job's own flags."""

    def overrides(self, args: argparse.Namespace) -> dict[str, Any]:
        """Config keys set by the job's own flags (``--seed`` → ``shuffle.seed``); None: not given."""
        return {}

    def configure(self, args: argparse.Namespace) -> Any:
        """Everything that can be checked before Spark starts; raise ConfigError / InputError."""
        if self.config_model is None:
            return None
        return load_model(self.config_model, args.config, self.overrides(args), sets=parse_sets(args.sets))

    def run(self, ctx: Context) -> None:
        raise NotImplementedError

    def run_config(self, ctx: Context) -> dict:
        """The resolved config recorded in ``_runs``."""
        cfg = ctx.cfg
        resolved = cfg.model_dump(mode="json") if hasattr(cfg, "model_dump") else cfg
        return {"config": ctx.args.config, "resolved": resolved}

    # -- the skeleton
    def parser(self) -> argparse.ArgumentParser:
        p = argparse.ArgumentParser(prog=self.prog, description=self.description, epilog=self.epilog,
                                    formatter_class=argparse.RawDescriptionHelpFormatter if self.raw_help
                                    else argparse.HelpFormatter)
        p.add_argument("--lake", default=DEFAULT_LAKE,
                       help=f"root URI under which the tables live (default {DEFAULT_LAKE})")
        if self.has_config:
            default = f" (default {self.default_config})" if self.default_config else ""
            required = self.config_required
            if required is None:
                required = self.default_config is None and self.config_model is not None
            p.add_argument("--config", default=self.default_config, required=required,
                           help=self.config_help + default)
            p.add_argument("--set", action="append", default=[], dest="sets", metavar="KEY=VALUE",
                           help=self.sets_help)
        self.add_arguments(p)
        return p

    def parse_args(self, argv: list[str] | None = None) -> argparse.Namespace:
        return self.parser().parse_args(argv)

    def main(self, argv: list[str] | None = None) -> int:
        args = self.parse_args(argv)
        clock = time.perf_counter()
        run = Run(self.name, sys.argv if argv is None else [self.prog, *argv])
        try:
            cfg = self.configure(args)
        except (ConfigError, InputError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        from jobs.common.session import get_spark

        spark = get_spark(f"lakesift-{self.name.replace('_', '-')}")
        ctx = Context(self, spark, args, cfg, run, clock)
        try:
            self.run(ctx)
        except (ConfigError, InputError) as exc:  # a refused request (UsageError included): nothing ran
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except BaseException as exc:
            if ctx.record:
                self._record(ctx, "failed", f"{type(exc).__name__}: {exc}")
            raise
        if ctx.record:
            self._record(ctx, "succeeded", None)
        return 0

    def _record(self, ctx: Context, status: str, error: str | None) -> None:
        try:
            ctx.run.config = self.run_config(ctx)
        except Exception as exc:  # a config that cannot be dumped must not hide the run's own error
            ctx.run.config = {"config": getattr(ctx.args, "config", None), "unrecorded": repr(exc)}
        try:
            record_run(ctx.spark, ctx.lake, ctx.run, status, error)
        except Exception as exc:
            if status == "succeeded":
                raise
            self.log.error("could not record the failed run %s: %s", ctx.run.id, exc)
