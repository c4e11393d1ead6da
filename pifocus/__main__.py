"""``python -m pifocus`` is the ``pifocus`` command."""

import sys

from .cli import main

sys.exit(main())
