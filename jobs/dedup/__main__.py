"""``python -m jobs.dedup …``: the dedup job."""

import sys

from jobs.dedup import main

if __name__ == "__main__":
    sys.exit(main())
