"""``python -m snapcap``: the same as the ``snapcap`` command."""

import sys

from snapcap.cli import main

sys.exit(main())
