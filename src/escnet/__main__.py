"""``python -m escnet``: the ``escnet`` command, for environments without its script on PATH."""

import sys

from escnet.cli import main

sys.exit(main())
