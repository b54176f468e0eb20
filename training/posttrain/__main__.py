import sys

from training.posttrain.cli import main

sys.exit(main())
