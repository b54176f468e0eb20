import sys

from training.eval.cli import main

sys.exit(main())
