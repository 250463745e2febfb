"""``python -m ulsam_nas.export``: see ``command.main``."""

from .command import main

raise SystemExit(main())
