"""``python -m livecoach``: the same as the ``livecoach`` command."""

import sys

from .cli import main

sys.exit(main())
