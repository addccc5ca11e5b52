"""``python -m builder`` is ``pallet``."""

import sys

from builder.entry import main

sys.exit(main())
