"""``python -m nexus_trio`` is the ``nexus-trio`` command."""

import sys

from nexus_trio.cli import main

sys.exit(main())
