"""``python -m jobs.dataset …``: the dataset job (``jobs/dataset/main.py``)."""

import sys

from jobs.dataset.main import main

sys.exit(main())
