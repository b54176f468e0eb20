"""The dedup job's old path, kept for users: ``python jobs/dedup.py …`` and ``spark-submit jobs/dedup.py …``
run the job of ``jobs/dedup/`` (``jobs/dedup/main.py``, ``python -m jobs.dedup``), with the same flags.

Only ever run as a script: ``import jobs.dedup`` finds the package ``jobs/dedup/``, which Python prefers
to a module of the same name.
"""

import sys

from jobs.dedup.main import main

if __name__ == "__main__":
    sys.exit(main())
