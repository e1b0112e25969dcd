"""``python -m pipelines``: the same as the ``contrasuite`` command."""

import sys

from pipelines.cli import main

sys.exit(main())
