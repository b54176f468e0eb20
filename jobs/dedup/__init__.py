"""The dedup job (``jobs/dedup/main.py``; methods in ``jobs/dedup/methods/``, one file each).

Run it as ``python jobs/dedup/main.py …`` / ``spark-submit jobs/dedup/main.py …`` or ``python -m
jobs.dedup …``. The package re-exports the job's entry points, so ``jobs.dedup.main(argv)`` and
``jobs.dedup.parse_args(argv)`` are the functions (as for the single-file jobs): the module of that name
is imported with ``from jobs.dedup.main import DedupJob``.
"""

from jobs.dedup.main import JOB, DedupConfig, DedupJob, main, parse_args

__all__ = ["JOB", "DedupConfig", "DedupJob", "main", "parse_args"]
