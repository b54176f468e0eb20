"""The dataset job's old path, kept for users: ``python jobs/tokenize.py …`` and ``spark-submit
jobs/tokenize.py …`` run the job of ``jobs/dataset/`` (``python -m jobs.dataset``, ``jobs/dataset/main.py``).

This file shadows nothing. Any ``python jobs/<job>.py`` puts ``jobs/`` first on ``sys.path``, where
``import tokenize`` (``inspect``, ``linecache`` and ``dataclasses`` need the standard library's) finds
this file; imported under that name it loads the standard library's module in its own place.
"""

if __name__ == "tokenize":  # found instead of the standard library's module: hand that one over
    import os
    import sys
    from importlib.machinery import PathFinder
    from importlib.util import module_from_spec

    _here = os.path.dirname(os.path.realpath(__file__))
    _spec = PathFinder.find_spec(__name__, [p for p in sys.path if os.path.realpath(p or os.curdir) != _here])
    sys.modules[__name__] = _std = module_from_spec(_spec)
    _spec.loader.exec_module(_std)
else:
    import sys

    from jobs.dataset.main import main, parse_args  # noqa: F401  (jobs.tokenize.main: notebooks, run_job)

    if __name__ == "__main__":
        sys.exit(main())
