"""``python -m cogenerate.cli`` runs the ``cogen`` command."""

import sys

from cogenerate.cli import main

sys.exit(main())
