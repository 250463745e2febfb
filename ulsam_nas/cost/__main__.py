"""``python -m ulsam_nas.cost``: see ``command.main``."""

from .command import main

raise SystemExit(main())
