"""``python -m cogenerate`` runs the ``cogen`` command."""

from cogenerate.cli import main

raise SystemExit(main())
