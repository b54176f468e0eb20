"""What the notebooks in ``notebooks/`` share: widgets, display and running a job, on Databricks or locally.

On Databricks, ``dbutils`` and ``display`` are in the notebook's globals: parameters become text
widgets (and job parameters of a scheduled notebook task fill them). Run locally as plain Python
(``python notebooks/02_filter.py``), a parameter comes from the environment variable
``LAKESIFT_NB_<NAME>`` or its default, and tables are printed.
"""

from __future__ import annotations

import os
import shlex

from lakesift.log import get_logger, kv

log = get_logger("notebook")


def params(ns: dict, **defaults: str) -> dict[str, str]:
    """Declare the notebook's parameters with defaults; return their current values."""
    dbutils = ns.get("dbutils")
    out = {}
    for name, default in defaults.items():
        if dbutils is not None:
            dbutils.widgets.text(name, str(default), name)
            out[name] = dbutils.widgets.get(name)
        else:
            out[name] = os.environ.get(f"LAKESIFT_NB_{name.upper()}", str(default))
    log.info(kv(**{k: v for k, v in out.items()}))
    return out


def show(ns: dict, df, n: int = 20) -> None:
    """Databricks ``display`` when there is one, else a plain-text table of the first ``n`` rows."""
    display = ns.get("display")
    if display is not None and ns.get("dbutils") is not None:
        display(df.limit(n) if hasattr(df, "limit") else df)
        return
    if hasattr(df, "toPandas"):
        import pandas as pd

        with pd.option_context("display.max_columns", 20, "display.width", 160, "display.max_colwidth", 60):
            print(df.limit(n).toPandas().to_string(index=False))
    else:
        print(df)


def run_job(module, *args: str) -> None:
    """Run a job's ``main`` with command-line arguments, in this Python process and Spark session;
    raise when it fails, so a notebook (or a scheduled notebook task) stops there."""
    argv = [a for a in args if a != ""]
    # jobs/filter.py, jobs/dataset/main.py; a package (jobs.dedup) runs its main.py
    path = module.__name__.replace(".", "/") + ("/main.py" if hasattr(module, "__path__") else ".py")
    log.info(kv(job=path, argv=shlex.join(argv)))
    rc = module.main(argv)
    if rc:
        raise RuntimeError(f"{path} exited with status {rc}: {shlex.join(argv)}")


def split(value: str) -> list[str]:
    """A widget holding several values: comma or whitespace separated."""
    return [x for x in value.replace(",", " ").split() if x]


def flag_list(flag: str, value: str) -> list[str]:
    """``--flag a --flag b`` for each value of a multi-value widget."""
    out: list[str] = []
    for x in split(value):
        out += [flag, x]
    return out
