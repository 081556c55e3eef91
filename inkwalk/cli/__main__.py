"""`python -m inkwalk.cli`, the same as the `inkwalk` console script."""

import sys

from inkwalk.cli import main

sys.exit(main())
