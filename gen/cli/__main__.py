"""``python -m rnnaccel.cli``."""

import sys

from .main import main

sys.exit(main())
