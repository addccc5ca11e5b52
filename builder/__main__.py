"""``python -m builder`` is ``pallet``."""

import sys

from builder.cli import main

sys.exit(main())
