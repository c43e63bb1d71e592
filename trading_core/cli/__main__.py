"""``python -m trading_core.cli``: the same as the ``trading`` command."""

import sys

from trading_core.cli import main

sys.exit(main())
