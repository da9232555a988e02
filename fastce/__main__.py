"""``python -m fastce``: the same as the ``fastce`` command."""

import sys

from .cli import main

sys.exit(main())
